//! Protected branches: the API that lists, protects and unprotects them. What the rules mean
//! (which branch a rule matches, who may push or merge) is [`crate::domain::protected_refs`].

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::AccessLevel;
use pipewright_store::{NewProtectedBranch, ProtectionLevel};
use serde_json::Value;

use crate::auth::Caller;
use crate::domain::projects::authorize_project;
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from, page_of};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let branches = "/api/v4/projects/{id}/protected_branches";
    vec![
        Route::get(branches, list, Read),
        Route::post(branches, protect, Maintainer),
        Route::get(format!("{branches}/{{name}}"), show, Read),
        Route::delete(format!("{branches}/{{name}}"), unprotect, Maintainer),
    ]
}

fn level_param(params: &Params, key: &str) -> ApiResult<ProtectionLevel> {
    match params.i64(key)? {
        None => Ok(ProtectionLevel::AtLeast(AccessLevel::Maintainer)),
        Some(v) => ProtectionLevel::from_i64(v)
            .ok_or_else(|| ApiError::ParamError(format!("{key} does not have a valid value"))),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let page = page_from(&params)?;
    let all = state.store.protected_branches(project.id).await?;
    let total = all.len() as i64;
    let items: Vec<Value> = page_of(&all, page)
        .iter()
        .map(entities::protected_branch)
        .collect();
    Ok(Paginated::new(items, total, page, &state.config.external_url, &uri).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    // The same right as the list: a Guest of a private project sees neither.
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let name = seg.get("name")?;
    let rule = state
        .store
        .protected_branches(project.id)
        .await?
        .into_iter()
        .find(|b| b.name == name)
        .ok_or(ApiError::NotFound("Protected Branch"))?;
    Ok(Json(entities::protected_branch(&rule)))
}

pub(crate) async fn protect(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let (project, _) = authorize_project(
        &state,
        &caller,
        seg.get("id")?,
        Action::ManageProtectedBranches,
    )
    .await?;
    let name = params.non_blank("name")?;
    let new = NewProtectedBranch {
        project_id: project.id,
        name: name.clone(),
        push_access_level: level_param(&params, "push_access_level")?,
        merge_access_level: level_param(&params, "merge_access_level")?,
        allow_force_push: params.bool("allow_force_push")?.unwrap_or(false),
    };
    let rule = state
        .store
        .create_protected_branch(&new)
        .await
        .map_err(|e| match e {
            pipewright_store::StoreError::Conflict(_) => {
                ApiError::Conflict(format!("Protected branch '{name}' already exists"))
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(entities::protected_branch(&rule))).into_response())
}

pub(crate) async fn unprotect(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (project, _) = authorize_project(
        &state,
        &caller,
        seg.get("id")?,
        Action::ManageProtectedBranches,
    )
    .await?;
    state
        .store
        .delete_protected_branch(project.id, seg.get("name")?)
        .await
        .map_err(|e| match e {
            pipewright_store::StoreError::NotFound => ApiError::NotFound("Protected Branch"),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
