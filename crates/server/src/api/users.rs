//! Users: `/user`, `/users`, and admin management (create, update, block, delete).

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_store::{NewUser, UserState, UserUpdate};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::routes::{Access, Route};
use crate::secrets;
use crate::state::AppState;
use crate::validate;

pub fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        Route::get("/api/v4/user", current_user, SignedIn),
        Route::get("/api/v4/users", list_users, SignedIn),
        Route::post("/api/v4/users", create_user, Admin),
        Route::get("/api/v4/users/{id}", get_user, SignedIn),
        Route::put("/api/v4/users/{id}", update_user, Admin),
        Route::delete("/api/v4/users/{id}", delete_user, Admin),
        Route::post("/api/v4/users/{id}/block", block_user, Admin),
        Route::post("/api/v4/users/{id}/unblock", unblock_user, Admin),
    ]
}

async fn current_user(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let actor = caller.required()?;
    let groups = crate::domain::groups::creation_allowed(&state).await?;
    Ok(Json(entities::user_full(
        &state.config,
        &actor.user,
        groups,
    )))
}

async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?;
    let page = page_from(&params)?;
    let groups = crate::domain::groups::creation_allowed(&state).await?;
    let search = match params.str("username")? {
        Some(username) => {
            // `?username=` is an exact match in GitLab.
            let user = state.store.user_by_username(&username).await?;
            let items: Vec<Value> = user
                .iter()
                .map(|u| render(&state, actor.is_admin() || actor.user.id == u.id, u, groups))
                .collect();
            let total = items.len() as i64;
            return Ok(
                Paginated::new(items, total, page, &state.config.external_url, &uri)
                    .into_response(),
            );
        }
        None => params.str("search")?,
    };
    let result = state.store.users(page, search.as_deref()).await?;
    let items = result
        .items
        .iter()
        .map(|u| render(&state, actor.is_admin() || actor.user.id == u.id, u, groups))
        .collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

fn render(state: &AppState, full: bool, user: &pipewright_store::User, groups: bool) -> Value {
    if full {
        entities::user_full(&state.config, user, groups)
    } else {
        entities::user_basic(&state.config, user)
    }
}

async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let actor = caller.required()?;
    let id = seg.id("id", "User")?;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or(ApiError::NotFound("User"))?;
    // GitLab: lib/api/users.rb presents `Entities::User` to everyone but admins (the public
    // profile; never the email or the admin flag).
    let groups = crate::domain::groups::creation_allowed(&state).await?;
    Ok(Json(if actor.is_admin() || actor.user.id == id {
        entities::user_full(&state.config, &user, groups)
    } else {
        entities::user(&state.config, &user)
    }))
}

pub(crate) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    caller.admin()?;
    let mut missing = Vec::new();
    for key in ["email", "name", "username"] {
        if params.str(key)?.is_none() {
            missing.push(key);
        }
    }
    if !missing.is_empty() {
        let text: Vec<String> = missing.iter().map(|k| format!("{k} is missing")).collect();
        return Err(ApiError::ParamError(text.join(", ")));
    }
    let username = params.required_str("username")?;
    let name = params.required_str("name")?;
    let email = params.required_str("email")?;
    let password = params.str("password")?;
    let force_random = params.bool("force_random_password")?.unwrap_or(false)
        || params.bool("reset_password")?.unwrap_or(false);
    if password.is_none() && !force_random {
        return Err(ApiError::ParamError(
            "password, reset_password, force_random_password are missing, exactly one parameter must be provided".into(),
        ));
    }
    let mut errors = validate::Errors::default();
    validate::username(&mut errors, &username);
    validate::email(&mut errors, &email);
    validate::name(&mut errors, "name", &name);
    if let Some(p) = &password {
        validate::password(&mut errors, p);
    }
    errors.into_result()?;
    let password = password.unwrap_or_else(|| secrets::random_token("", 24));
    let hash = hash_password(password).await?;
    let new = NewUser {
        username,
        name,
        email,
        password_hash: Some(hash),
        is_admin: params.bool("admin")?.unwrap_or(false),
    };
    let user = state
        .store
        .create_user(&new)
        .await
        .map_err(crate::domain::accounts::user_conflict)?;
    let groups = crate::domain::groups::creation_allowed(&state).await?;
    Ok((
        StatusCode::CREATED,
        Json(entities::user_full(&state.config, &user, groups)),
    )
        .into_response())
}

async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.admin()?;
    let id = seg.id("id", "User")?;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or(ApiError::NotFound("User"))?;
    let mut errors = validate::Errors::default();
    let username = params.str("username")?;
    let email = params.str("email")?;
    let name = params.str("name")?;
    let password = params.str("password")?;
    // Only a changed username is checked, as GitLab checks a namespace's path only when it
    // changes (app/models/namespace.rb `if: :path_changed?`).
    if let Some(u) = username.as_ref().filter(|u| **u != user.username) {
        validate::username(&mut errors, u);
    }
    if let Some(e) = &email {
        validate::email(&mut errors, e);
    }
    if let Some(n) = &name {
        validate::name(&mut errors, "name", n);
    }
    if let Some(p) = &password {
        validate::password(&mut errors, p);
    }
    errors.into_result()?;
    let password_hash = match password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let update = UserUpdate {
        username,
        name,
        email,
        password_hash,
        is_admin: params.bool("admin")?,
    };
    let user = state
        .store
        .update_user(id, &update)
        .await
        .map_err(crate::domain::accounts::user_conflict)?;
    let groups = crate::domain::groups::creation_allowed(&state).await?;
    Ok(Json(entities::user_full(&state.config, &user, groups)))
}

async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let actor = caller.admin()?;
    let id = seg.id("id", "User")?;
    if actor.user.id == id {
        return Err(ApiError::Forbidden(Some(
            "You cannot delete yourself".into(),
        )));
    }
    state
        .store
        .user(id)
        .await?
        .ok_or(ApiError::NotFound("User"))?;
    // The user's personal projects go with them; remove their repositories first.
    if let Some(ns) = state.store.user_namespace(id).await? {
        let filter = pipewright_store::ProjectFilter {
            viewer: pipewright_store::Viewer::Admin,
            membership_of: None,
            owned_by: ns.owner_id,
            search: None,
            namespace: None,
            order_by: pipewright_store::ProjectOrder::Id,
            ascending: true,
        };
        let page = pipewright_store::Page {
            page: 1,
            per_page: 100_000,
        };
        for project in state.store.projects(&filter, page).await?.items {
            crate::domain::projects::remove_repository(&state, project.id).await;
        }
    }
    state.store.delete_user(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn block_user(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    set_state(state, caller, seg, UserState::Blocked).await
}

pub(crate) async fn unblock_user(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    set_state(state, caller, seg, UserState::Active).await
}

async fn set_state(
    state: AppState,
    caller: Caller,
    seg: Segments,
    to: UserState,
) -> ApiResult<Response> {
    let actor = caller.admin()?;
    let id = seg.id("id", "User")?;
    state
        .store
        .user(id)
        .await?
        .ok_or(ApiError::NotFound("User"))?;
    if actor.user.id == id && to == UserState::Blocked {
        return Err(ApiError::Forbidden(Some(
            "You cannot block yourself".into(),
        )));
    }
    state.store.set_user_state(id, to).await?;
    Ok((StatusCode::CREATED, Json(json!(true))).into_response())
}

pub async fn hash_password(password: String) -> ApiResult<String> {
    secrets::hash_password_async(password)
        .await
        .map_err(ApiError::Internal)
}
