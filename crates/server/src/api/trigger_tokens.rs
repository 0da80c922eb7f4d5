//! Pipeline trigger tokens (`/projects/:id/triggers`), as GitLab's "Pipeline trigger tokens
//! API": Maintainers list, create and revoke them; only a token's owner may edit it; the full
//! token is shown to its owner (and admins), everyone else sees the 4 characters after
//! `glptt-`.
//!
//! Beyond GitLab (issue 14): `…/rotate` gives a token a new value (the old one may keep
//! working for a grace period), and `ref_patterns` / `allowed_variables` restrict what a token
//! may run; both are decided in [`crate::domain::trigger_tokens`].

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pipewright_core::Timestamp;
use pipewright_store::{NewTrigger, Trigger, TriggerRestrictions};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::projects::{authorize_project, find_project};
use crate::domain::trigger_tokens;
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::{Action, ProjectAccess};
use crate::routes::{Access, Route};
use crate::sealing::Purpose;
use crate::state::AppState;

/// The longest a trigger token may live, as GitLab's personal-access-token lifetime.
const MAX_LIFETIME_DAYS: i64 = 365;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let trigger = "/api/v4/projects/{id}/triggers/{trigger_id}";
    vec![
        Route::get("/api/v4/projects/{id}/triggers", list, Maintainer),
        Route::post("/api/v4/projects/{id}/triggers", create, Maintainer),
        Route::get(trigger, show, Maintainer),
        Route::put(trigger, update, Maintainer),
        Route::delete(trigger, revoke, Maintainer),
        Route::post(
            "/api/v4/projects/{id}/triggers/{trigger_id}/rotate",
            rotate,
            Maintainer,
        ),
    ]
}

/// Whether the caller may see (and edit) this trigger's full token: its owner while still a
/// Maintainer, instance admins, and any Maintainer for owner-less legacy triggers.
pub(crate) fn may_administer(caller: &Caller, access: &ProjectAccess, trigger: &Trigger) -> bool {
    if caller.is_admin() {
        return true;
    }
    if !access.can(Action::ManageTriggers) {
        return false;
    }
    match trigger.owner_id {
        Some(owner) => caller.user_id() == Some(owner),
        None => trigger.legacy,
    }
}

async fn render(
    state: &AppState,
    caller: &Caller,
    access: &ProjectAccess,
    trigger: &Trigger,
) -> ApiResult<Value> {
    let token = if may_administer(caller, access, trigger) {
        state
            .sealer
            .open(Purpose::TriggerToken, &trigger.token_sealed)
            .map_err(ApiError::Internal)?
    } else {
        trigger.short_token.clone()
    };
    let owner = match trigger.owner_id {
        Some(id) => state
            .store
            .user(id)
            .await?
            .map(|u| entities::user_basic(&state.config, &u)),
        None => None,
    };
    Ok(json!({
        "id": trigger.id,
        "token": token,
        "description": trigger.description,
        "created_at": entities::time(trigger.created_at),
        "updated_at": entities::time(trigger.updated_at),
        "last_used": entities::opt_time(trigger.last_used_at),
        "expires_at": entities::opt_time(trigger.expires_at),
        "owner": owner,
        "ref_patterns": trigger.restrictions.ref_patterns,
        "allowed_variables": trigger.restrictions.allowed_variables,
    }))
}

async fn find_trigger(state: &AppState, project_id: i64, seg: &Segments) -> ApiResult<Trigger> {
    let id = seg.id("trigger_id", "")?;
    state
        .store
        .trigger(project_id, id)
        .await?
        .ok_or(ApiError::RecordNotFound)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageTriggers).await?;
    let page = page_from(&params)?;
    let result = state.store.triggers(project.id, page).await?;
    let mut items = Vec::with_capacity(result.items.len());
    for trigger in &result.items {
        items.push(render(&state, &caller, &access, trigger).await?);
    }
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageTriggers).await?;
    let trigger = find_trigger(&state, project.id, &seg).await?;
    Ok(Json(render(&state, &caller, &access, &trigger).await?))
}

fn parse_expiry(params: &Params) -> ApiResult<Option<Timestamp>> {
    let Some(text) = params.str("expires_at")? else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    let at = Timestamp::parse(&text).ok_or_else(|| ApiError::InvalidParam("expires_at".into()))?;
    let limit = Timestamp(Timestamp::now().millis() + MAX_LIFETIME_DAYS * 24 * 3600 * 1000);
    if at >= limit {
        return Err(ApiError::BadRequest(
            json!({"expires_at": [format!("must be before {}", limit.to_date_string())]})
                .to_string(),
        ));
    }
    Ok(Some(at))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageTriggers).await?;
    let actor = caller.required()?;
    let description = params.required_str("description")?;
    if description.chars().count() > 255 {
        return Err(ApiError::BadRequest(
            json!({"description": ["is too long (maximum is 255 characters)"]}).to_string(),
        ));
    }
    let expires_at = parse_expiry(&params)?;
    let restrictions = parse_restrictions(&params, &TriggerRestrictions::default())?;
    let (token_digest, token_sealed, short_token, _token) = trigger_tokens::new_token(&state)?;
    let new = NewTrigger {
        project_id: project.id,
        owner_id: Some(actor.user.id),
        legacy: false,
        description,
        token_digest,
        token_sealed,
        short_token,
        expires_at,
        restrictions,
    };
    let trigger = state.store.create_trigger(&new).await?;
    Ok((
        StatusCode::CREATED,
        Json(render(&state, &caller, &access, &trigger).await?),
    )
        .into_response())
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.required()?;
    let (project, access) = find_project(&state, &caller, seg.get("id")?).await?;
    let trigger = find_trigger(&state, project.id, &seg).await?;
    if !may_administer(&caller, &access, &trigger) {
        return Err(ApiError::Forbidden(Some(
            "The current user is not authorized to update the pipeline trigger token".into(),
        )));
    }
    let description = params.str("description")?;
    let restrictions = parse_restrictions(&params, &trigger.restrictions)?;
    if description.is_none() && restrictions == trigger.restrictions {
        return Ok(Json(render(&state, &caller, &access, &trigger).await?));
    }
    let description = description.unwrap_or_else(|| trigger.description.clone());
    if description.chars().count() > 255 {
        return Err(ApiError::BadRequest(
            json!({"description": ["is too long (maximum is 255 characters)"]}).to_string(),
        ));
    }
    let updated = state
        .store
        .update_trigger(trigger.id, &description, &restrictions)
        .await?;
    Ok(Json(render(&state, &caller, &access, &updated).await?))
}

/// `ref_patterns` and `allowed_variables` (`x[]=…` forms or JSON arrays); a list not given
/// keeps its `current` value.
fn parse_restrictions(
    params: &Params,
    current: &TriggerRestrictions,
) -> ApiResult<TriggerRestrictions> {
    let ref_patterns = params.string_list("ref_patterns")?;
    let allowed_variables = params.string_list("allowed_variables")?;
    trigger_tokens::validate(
        ref_patterns.unwrap_or_else(|| current.ref_patterns.clone()),
        allowed_variables.unwrap_or_else(|| current.allowed_variables.clone()),
    )
}

/// `POST …/triggers/:trigger_id/rotate` (`grace_period_seconds`, 0–604800): a new token for
/// the token's owner (or any Maintainer for an owner-less legacy token, or an admin); 201
/// with the trigger and its new full token.
pub(crate) async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    caller.required()?;
    let grace = trigger_tokens::grace_until(params.i64("grace_period_seconds")?)?;
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageTriggers).await?;
    let trigger = find_trigger(&state, project.id, &seg).await?;
    if !may_administer(&caller, &access, &trigger) {
        return Err(ApiError::Forbidden(Some(
            "The current user is not authorized to rotate the pipeline trigger token".into(),
        )));
    }
    let rotated = trigger_tokens::rotate(&state, &trigger, grace).await?;
    Ok((
        StatusCode::CREATED,
        Json(render(&state, &caller, &access, &rotated).await?),
    )
        .into_response())
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageTriggers).await?;
    let trigger = find_trigger(&state, project.id, &seg).await?;
    // GitLab's `destroy_conditionally!`: refuse if the client's copy is older than ours.
    if let Some(since) = headers
        .get(axum::http::header::IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        && since.timestamp() < trigger.updated_at.millis() / 1000
    {
        return Err(ApiError::Custom(
            StatusCode::PRECONDITION_FAILED,
            json!({"message": "412 Precondition Failed"}),
        ));
    }
    state.store.delete_trigger(trigger.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
