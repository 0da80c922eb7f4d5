//! Projects and who may do what in them: the one place that turns `:id` (a number or a
//! URL-encoded `namespace/path`) into a project the caller may see, and a user's role in a
//! project into a [`ProjectAccess`] that `permissions.rs` answers questions about. A project
//! the caller may not see is `404 Project Not Found`, exactly like one that does not exist.

use pipewright_store::Project;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::permissions::{Action, ProjectAccess};
use crate::state::AppState;

/// The caller's relation to a project.
pub async fn project_access(
    state: &AppState,
    caller: &Caller,
    project: &Project,
) -> ApiResult<ProjectAccess> {
    user_access(state, caller.0.as_ref().map(|a| &a.user), project).await
}

/// What `user` (or an anonymous caller) may do in `project`: their effective role is the
/// highest live one of their direct membership and their memberships of the project's group
/// and its ancestors (GitLab: `app/models/project_team.rb` `max_member_access`, over
/// `project_authorizations`), read in one query (the store's `project_role`).
pub async fn user_access(
    state: &AppState,
    user: Option<&pipewright_store::User>,
    project: &Project,
) -> ApiResult<ProjectAccess> {
    let role = match user {
        Some(u) => state.store.project_role(project.id, u.id).await?,
        None => None,
    };
    Ok(ProjectAccess {
        visibility: project.visibility,
        role,
        authenticated: user.is_some(),
        admin: user.is_some_and(|u| u.is_admin),
    })
}

/// Finds a project by numeric id or full path; an unknown project and one the caller may not
/// see are the same `404 Project Not Found`.
pub async fn find_project(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(Project, ProjectAccess)> {
    let project = lookup(state, id)
        .await?
        .ok_or(ApiError::NotFound("Project"))?;
    let access = project_access(state, caller, &project).await?;
    if !access.can_see() {
        return Err(ApiError::NotFound("Project"));
    }
    Ok((project, access))
}

/// As [`find_project`], then requires `action` (403 when visible but not allowed).
///
/// An action that needs a role asks an anonymous caller to authenticate first (401), before
/// looking the project up, as GitLab's APIs do (`before { authenticate! }`): the answer is the
/// same whether the project exists or not.
pub async fn authorize_project(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> ApiResult<(Project, ProjectAccess)> {
    if caller.0.is_none() && !action.open_to_readers() {
        return Err(ApiError::Unauthorized);
    }
    let (project, access) = find_project(state, caller, id).await?;
    if !access.can(action) {
        return Err(if caller.0.is_none() {
            ApiError::Unauthorized
        } else {
            ApiError::forbidden()
        });
    }
    Ok((project, access))
}

pub async fn lookup(state: &AppState, id: &str) -> ApiResult<Option<Project>> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        return match id.parse::<i64>() {
            Ok(n) => Ok(state.store.project(n).await?),
            Err(_) => Ok(None),
        };
    }
    match id.rsplit_once('/') {
        Some((namespace, path)) if !namespace.is_empty() && !path.is_empty() => {
            Ok(state.store.project_by_full_path(namespace, path).await?)
        }
        _ => Ok(None),
    }
}

/// Deletes a project's repository from disk; failures are logged, not fatal (the row is gone).
pub async fn remove_repository(state: &AppState, project_id: i64) {
    if let Err(err) = state.repos.delete_async(project_id).await {
        tracing::warn!(project_id, error = %err, "could not remove repository");
    }
}

/// GitLab's default CI config path (`Gitlab::FileDetector::PATTERNS[:gitlab_ci]`).
pub const DEFAULT_CI_CONFIG_PATH: &str = ".gitlab-ci.yml";

/// The project's CI config path: its `ci_config_path`, else `.gitlab-ci.yml` (GitLab's
/// `Project#ci_config_path_or_default`, `app/models/project.rb`). Where pipeline creation
/// reads the config, and the jobs' `CI_CONFIG_PATH`.
pub async fn ci_config_path(
    state: &AppState,
    project_id: i64,
) -> Result<String, pipewright_store::StoreError> {
    Ok(state
        .store
        .project_ci_config_path(project_id)
        .await?
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_CI_CONFIG_PATH.to_string()))
}
