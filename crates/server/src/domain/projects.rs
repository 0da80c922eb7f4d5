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
/// reads the config, and the jobs' `CI_CONFIG_PATH`. Every pipeline creation asks, so the
/// setting is cached per project ([`set_ci_config_path`] drops the entry).
pub async fn ci_config_path(
    state: &AppState,
    project_id: i64,
) -> Result<String, pipewright_store::StoreError> {
    let stored = state
        .ci_config_path_cache
        .get_or_load(project_id, state.store.project_ci_config_path(project_id))
        .await?;
    Ok(stored
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_CI_CONFIG_PATH)
        .to_string())
}

/// Stores the project's `ci_config_path` (`None` clears it).
pub async fn set_ci_config_path(
    state: &AppState,
    project_id: i64,
    path: Option<&str>,
) -> Result<(), pipewright_store::StoreError> {
    state
        .store
        .set_project_ci_config_path(project_id, path)
        .await?;
    state.ci_config_path_cache.invalidate(project_id);
    Ok(())
}

/// "Initialize repository with a README": the default branch gets one commit holding
/// `README.md` (the project's name and description), by `author`, so the project can be cloned
/// at once. GitLab: app/services/projects/create_service.rb (`initialize_with_readme`, commit
/// message "Initial commit"; GitLab's README template says more, this one only the name and
/// description).
pub async fn initialize_with_readme(
    state: &AppState,
    project: &Project,
    author: &pipewright_store::User,
) -> ApiResult<String> {
    let mut readme = format!("# {}\n", project.name);
    if let Some(description) = project.description.as_deref().filter(|d| !d.is_empty()) {
        readme.push_str(&format!("\n{description}\n"));
    }
    let author = pipewright_git::Author {
        name: author.name.clone(),
        email: author.email.clone(),
    };
    let files = vec![("README.md".to_string(), readme.into_bytes())];
    state
        .repos
        .initial_commit_async(
            project.id,
            &project.default_branch,
            files,
            author,
            "Initial commit",
        )
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("initial commit")))
}
