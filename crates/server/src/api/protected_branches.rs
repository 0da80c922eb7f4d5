//! Protected branches: who may push to and merge into which branches. The git server consults
//! [`push_allowed`] for every ref a push updates.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::AccessLevel;
use pipewright_store::{NewProtectedBranch, ProtectedBranch, ProtectionLevel};
use serde_json::Value;

use super::Segments;
use super::projects::authorize_project;
use crate::auth::Caller;
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from, page_of};
use crate::params::Params;
use crate::permissions::{Action, ProjectAccess};
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

/// GitLab's wildcard rule: `*` matches any run of characters, including `/`.
pub fn matches(pattern: &str, branch: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == branch;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = branch;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The rules that apply to a branch (exact and wildcard).
pub fn rules_for<'a>(rules: &'a [ProtectedBranch], branch: &str) -> Vec<&'a ProtectedBranch> {
    rules.iter().filter(|r| matches(&r.name, branch)).collect()
}

/// Whether a push to `branch` is allowed: unprotected branches need only push access
/// (checked by the caller); protected ones need every matching rule's push level.
pub fn push_allowed(rules: &[ProtectedBranch], branch: &str, access: &ProjectAccess) -> bool {
    rules_for(rules, branch)
        .iter()
        .all(|r| r.push_access_level.allows(access.role(), access.admin))
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

async fn protect(
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

async fn unprotect(
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

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("main", "main"));
        assert!(!matches("main", "main2"));
        assert!(matches("release/*", "release/1.0"));
        assert!(matches("*-stable", "6-0-stable"));
        assert!(matches("*", "anything/at/all"));
        assert!(!matches("release/*", "feature/x"));
    }
}
