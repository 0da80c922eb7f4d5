//! Personal access tokens: created by admins for a user, listed, inspected, revoked and
//! rotated (GitLab: lib/api/personal_access_tokens.rb, lib/api/personal_access_tokens/
//! self_rotation.rb).

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::Timestamp;
use pipewright_store::PersonalAccessToken;
use serde_json::Value;

use crate::auth::{Actor, Caller, Credential, KNOWN_SCOPES};
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::routes::{Access, Route};
use crate::state::AppState;

/// `/personal_access_tokens/{id}` is the token's owner's, or an administrator's.
pub fn routes() -> Vec<Route> {
    use Access::*;
    let for_user = "/api/v4/users/{id}/personal_access_tokens";
    vec![
        Route::get(for_user, list_for_user, SelfOrAdmin),
        Route::post(for_user, create_for_user, Admin),
        Route::get("/api/v4/personal_access_tokens", list_tokens, SignedIn),
        Route::get("/api/v4/personal_access_tokens/self", get_self, SignedIn),
        Route::delete("/api/v4/personal_access_tokens/self", revoke_self, SignedIn),
        Route::post(
            "/api/v4/personal_access_tokens/self/rotate",
            rotate_self,
            SignedIn,
        ),
        Route::post(
            "/api/v4/personal_access_tokens/{id}/rotate",
            rotate_token,
            SelfOrAdmin,
        ),
        Route::get(
            "/api/v4/personal_access_tokens/{id}",
            get_token,
            SelfOrAdmin,
        ),
        Route::delete(
            "/api/v4/personal_access_tokens/{id}",
            revoke_token,
            SelfOrAdmin,
        ),
    ]
}

async fn create_for_user(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    caller.admin()?;
    let user_id = seg.id("id", "User")?;
    state
        .store
        .user(user_id)
        .await?
        .ok_or(ApiError::NotFound("User"))?;
    let name = params.non_blank("name")?;
    let scopes = params
        .string_list("scopes")?
        .ok_or_else(|| ApiError::MissingParam("scopes".into()))?;
    if scopes.is_empty() || scopes.iter().any(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return Err(ApiError::InvalidParam("scopes".into()));
    }
    let expires_at = expires_at_param(&params)?;
    let (pat, token) =
        crate::domain::tokens::issue_token(&state, user_id, &name, scopes, expires_at, None)
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(entities::personal_access_token(&pat, Some(&token))),
    )
        .into_response())
}

/// `expires_at`, a date in the future, if given.
pub(crate) fn expires_at_param(params: &Params) -> ApiResult<Option<Timestamp>> {
    match params.str("expires_at")? {
        Some(text) if !text.is_empty() => {
            let at = Timestamp::parse(&text)
                .ok_or_else(|| ApiError::InvalidParam("expires_at".into()))?;
            if at <= Timestamp::now() {
                return Err(ApiError::validation("expires_at", "must be in the future"));
            }
            Ok(Some(at))
        }
        _ => Ok(None),
    }
}

async fn list_for_user(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?;
    let user_id = seg.id("id", "User")?;
    if !actor.is_admin() && actor.user.id != user_id {
        return Err(ApiError::forbidden());
    }
    let page = page_from(&params)?;
    let result = state
        .store
        .personal_access_tokens(Some(user_id), page)
        .await?;
    let items: Vec<Value> = result
        .items
        .iter()
        .map(|p| entities::personal_access_token(p, None))
        .collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?;
    let user_id = if actor.is_admin() {
        params.i64("user_id")?
    } else {
        Some(actor.user.id)
    };
    let page = page_from(&params)?;
    let result = state.store.personal_access_tokens(user_id, page).await?;
    let items: Vec<Value> = result
        .items
        .iter()
        .map(|p| entities::personal_access_token(p, None))
        .collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

fn current_token_id(actor: &Actor) -> ApiResult<i64> {
    match &actor.credential {
        Credential::Token { id, .. } => Ok(*id),
        Credential::Password | Credential::Session => Err(ApiError::NotFound("")),
    }
}

async fn get_self(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let actor = caller.required()?;
    let id = current_token_id(actor)?;
    let pat = state
        .store
        .personal_access_token(id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    Ok(Json(entities::personal_access_token(&pat, None)))
}

async fn revoke_self(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    let actor = caller.required()?;
    let id = current_token_id(actor)?;
    state.store.revoke_personal_access_token(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A token the caller may see: their own, or any for admins. Others are 404.
async fn visible_token(state: &AppState, actor: &Actor, id: i64) -> ApiResult<PersonalAccessToken> {
    let pat = state
        .store
        .personal_access_token(id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    if !actor.is_admin() && pat.user_id != actor.user.id {
        return Err(ApiError::NotFound(""));
    }
    Ok(pat)
}

async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let actor = caller.required()?;
    let pat = visible_token(&state, actor, seg.id("id", "")?).await?;
    Ok(Json(entities::personal_access_token(&pat, None)))
}

async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let actor = caller.required()?;
    let pat = visible_token(&state, actor, seg.id("id", "")?).await?;
    if pat.revoked {
        return Err(ApiError::BadRequest(
            "Token has already been revoked".into(),
        ));
    }
    state.store.revoke_personal_access_token(pat.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /personal_access_tokens/:id/rotate`: the caller's own token (any, for admins); others
/// are 404 (`manage_user_personal_access_token`). 200 with the new token.
async fn rotate_token(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?;
    let pat = visible_token(&state, actor, seg.id("id", "")?).await?;
    rotated(&state, &pat, &params).await
}

/// `POST /personal_access_tokens/self/rotate`: the token that authenticates the request
/// (scope `api` or `self_rotate`).
async fn rotate_self(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?;
    let id = current_token_id(actor)?;
    let pat = visible_token(&state, actor, id).await?;
    rotated(&state, &pat, &params).await
}

async fn rotated(
    state: &AppState,
    pat: &PersonalAccessToken,
    params: &Params,
) -> ApiResult<Response> {
    use crate::domain::tokens::{RotatedExpiry, rotate_token};
    let expiry = match expires_at_param(params)? {
        Some(at) => RotatedExpiry::At(at),
        None => RotatedExpiry::DefaultPeriod,
    };
    let (new, token) = rotate_token(state, pat, expiry).await?;
    Ok(Json(entities::personal_access_token(&new, Some(&token))).into_response())
}
