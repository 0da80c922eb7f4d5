//! Projects: create (with a bare repository), list, read, update, delete; and the one place
//! that turns `:id` (a number or a URL-encoded `namespace/path`) into a project the caller
//! may see.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::Visibility;
use pipewright_store::{NewProject, Project, ProjectFilter, ProjectOrder, ProjectUpdate, Viewer};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::projects::{authorize_project, find_project, project_access, remove_repository};
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::{Action, ProjectAccess};
use crate::routes::{Access, Route};
use crate::state::AppState;
use crate::validate;

pub fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        Route::get("/api/v4/projects", list_projects, Public),
        Route::post("/api/v4/projects", create_project, SignedIn),
        Route::get("/api/v4/projects/{id}", get_project, See),
        Route::put("/api/v4/projects/{id}", update_project, Maintainer),
        Route::delete("/api/v4/projects/{id}", delete_project, Owner),
    ]
}

pub async fn render(
    state: &AppState,
    project: &Project,
    access: &ProjectAccess,
) -> ApiResult<Value> {
    let empty = state.repos.is_empty_async(project.id).await.unwrap_or(true);
    Ok(entities::project(
        &state.config,
        project,
        Some(access),
        empty,
    ))
}

async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let page = page_from(&params)?;
    let viewer = match &caller.0 {
        Some(a) if a.is_admin() => Viewer::Admin,
        Some(a) => Viewer::User(a.user.id),
        None => Viewer::Anonymous,
    };
    let membership = params.bool("membership")?.unwrap_or(false);
    let owned = params.bool("owned")?.unwrap_or(false);
    let order_by = match params.str("order_by")?.as_deref() {
        None | Some("created_at") => ProjectOrder::CreatedAt,
        Some("id") => ProjectOrder::Id,
        Some("name") => ProjectOrder::Name,
        Some("path") => ProjectOrder::Path,
        Some("updated_at") => ProjectOrder::UpdatedAt,
        Some("last_activity_at") => ProjectOrder::LastActivityAt,
        Some(_) => return Err(ApiError::InvalidParam("order_by".into())),
    };
    let ascending = match params.str("sort")?.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(ApiError::InvalidParam("sort".into())),
    };
    let filter = ProjectFilter {
        viewer,
        membership_of: if membership { caller.user_id() } else { None },
        owned_by: if owned { caller.user_id() } else { None },
        search: params.str("search")?,
        namespace: None,
        order_by,
        ascending,
    };
    if (membership || owned) && caller.0.is_none() {
        return Err(ApiError::Unauthorized);
    }
    let result = state.store.projects(&filter, page).await?;
    let mut items = Vec::with_capacity(result.items.len());
    for project in &result.items {
        let access = project_access(&state, &caller, project).await?;
        items.push(render(&state, project, &access).await?);
    }
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let (project, access) = find_project(&state, &caller, seg.get("id")?).await?;
    let mut out = render(&state, &project, &access).await?;
    add_ci_settings(&state, &project, &mut out).await?;
    add_runners_token(&state, &project, &access, &mut out).await?;
    Ok(Json(out))
}

/// `runners_token`, the project's runner registration token, for those who manage its runners
/// (GitLab's project entity: `expose :runners_token, if: user_can_admin_project`); `null`
/// while registration tokens are off, as GitLab 17 answers (`runners_token` is nil then).
async fn add_runners_token(
    state: &AppState,
    project: &Project,
    access: &crate::permissions::ProjectAccess,
    out: &mut Value,
) -> ApiResult<()> {
    use crate::domain::runner_registration;
    if !access.can(Action::ManageRunners) {
        return Ok(());
    }
    out["runners_token"] = if runner_registration::allowed(state).await? {
        json!(runner_registration::token(state, Some(project.id), false).await?)
    } else {
        Value::Null
    };
    Ok(())
}

/// Project CI settings shown on the single-project answers.
async fn add_ci_settings(state: &AppState, project: &Project, out: &mut Value) -> ApiResult<()> {
    let role = state
        .store
        .pipeline_variables_minimum_role(project.id)
        .await?
        .unwrap_or_else(|| DEFAULT_PIPELINE_VARIABLES_ROLE.to_string());
    out["ci_pipeline_variables_minimum_override_role"] = json!(role);
    out["ci_job_token_scope_enabled"] =
        json!(state.store.job_token_scope_enabled(project.id).await?);
    out["build_timeout"] = json!(
        state
            .store
            .project_build_timeout(project.id)
            .await?
            .unwrap_or(DEFAULT_BUILD_TIMEOUT)
    );
    // `ci_config_path`: `null` until set, as GitLab's project entity shows it.
    out["ci_config_path"] = json!(state.store.project_ci_config_path(project.id).await?);
    Ok(())
}

/// `ci_config_path` as given (`Some("")` clears it), checked as GitLab's `Project` model
/// validates it (`app/models/project.rb`: no leading slash, no `..`, at most 255
/// characters). A config in another project (`path@group/project`) or at a URL is GitLab's
/// too, but not supported here: refused rather than stored and failing every pipeline.
fn ci_config_path_param(
    params: &Params,
    errors: &mut validate::Errors,
) -> ApiResult<Option<String>> {
    let Some(path) = params.str("ci_config_path")? else {
        return Ok(None);
    };
    let path = path.trim().to_string();
    if path.starts_with('/') || path.contains("..") {
        errors.add(
            "ci_config_path",
            "cannot include leading slash or directory traversal.",
        );
    } else if path.chars().count() > 255 {
        errors.add("ci_config_path", "is too long (maximum is 255 characters)");
    } else if path.contains('@') || path.contains("://") {
        errors.add(
            "ci_config_path",
            "a config file in another project or at a URL is not supported",
        );
    }
    Ok(Some(path))
}

/// Stores a checked `ci_config_path` (an empty one clears the setting).
async fn save_ci_config_path(state: &AppState, project: &Project, path: &str) -> ApiResult<()> {
    let value = Some(path).filter(|p| !p.is_empty());
    crate::domain::projects::set_ci_config_path(state, project.id, value).await?;
    Ok(())
}

/// GitLab's roles for `ci_pipeline_variables_minimum_override_role`, and the default this
/// server keeps for compatibility (anyone who may run a pipeline may pass variables).
pub const PIPELINE_VARIABLES_ROLES: &[&str] =
    &["no_one_allowed", "owner", "maintainer", "developer"];
pub const DEFAULT_PIPELINE_VARIABLES_ROLE: &str = "developer";
/// GitLab's default job timeout (one hour) and the bounds of `build_timeout`.
pub const DEFAULT_BUILD_TIMEOUT: i64 = 3600;
const MIN_BUILD_TIMEOUT: i64 = 600;
const MAX_BUILD_TIMEOUT: i64 = 30 * 24 * 3600;

/// GitLab: app/models/project.rb, `validates :description, length: { maximum: 2000 }`.
fn description_length(params: &Params, errors: &mut validate::Errors) -> ApiResult<()> {
    if params
        .str("description")?
        .is_some_and(|d| d.chars().count() > 2000)
    {
        errors.add("description", "is too long (maximum is 2000 characters)");
    }
    Ok(())
}

fn parse_visibility(params: &Params) -> ApiResult<Option<Visibility>> {
    match params.str("visibility")? {
        None => Ok(None),
        Some(v) => Visibility::parse(&v)
            .map(Some)
            .ok_or_else(|| ApiError::InvalidParam("visibility".into())),
    }
}

/// Derives a path from a name the way GitLab does: lower-case, separators to dashes.
fn path_from_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c| c == '-' || c == '.').to_string()
}

fn branch_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.ends_with(".lock")
        && !name
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c))
}

/// Where a new project goes: `namespace_id` or `namespace_path`, else the caller's own
/// namespace. A namespace the caller may not create projects in — a group whose
/// `project_creation_level` their role does not reach, one they cannot even see, another
/// user's namespace (an admin's only), or one that does not exist — is GitLab's 400
/// `{"message":{"namespace":["is not valid"]}}` (app/services/projects/create_service.rb
/// `validate_create_permissions`, whose `can?(:create_projects, …)` is false for all of them).
/// For an id that does not exist GitLab's service falls back to the caller's namespace for the
/// check and then fails on the missing namespace with a 400 of its own; ours says "is not
/// valid" too, so that a private group and a missing one answer alike.
async fn target_namespace(
    state: &AppState,
    caller: &Caller,
    params: &Params,
) -> ApiResult<pipewright_store::Namespace> {
    use crate::permissions::GroupAction;
    let actor = caller.required()?;
    let not_valid = || ApiError::validation("namespace", "is not valid");
    // GitLab: `namespace_id` is an Integer parameter (lib/api/projects.rb), `namespace_path`
    // a full path.
    let namespace = match (params.i64("namespace_id")?, params.str("namespace_path")?) {
        (Some(id), _) => state.store.namespace(id).await?,
        (None, Some(path)) if !path.is_empty() => state.store.namespace_by_full_path(&path).await?,
        (None, _) => {
            return state
                .store
                .user_namespace(actor.user.id)
                .await?
                .ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("user {} has no namespace", actor.user.id))
                });
        }
    }
    .ok_or_else(not_valid)?;
    let allowed = if namespace.is_group() {
        let user = Some(&actor.user);
        let access = crate::domain::groups::group_access(state, user, &namespace).await?;
        access.can(GroupAction::CreateProjects)
    } else {
        namespace.owner_id == Some(actor.user.id) || actor.is_admin()
    };
    if !allowed {
        return Err(not_valid());
    }
    Ok(namespace)
}

pub(crate) async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?;
    let name = params.str("name")?;
    let path = params.str("path")?;
    let (name, path) = match (name, path) {
        (None, None) => {
            return Err(ApiError::ParamError(
                "name, path are missing, at least one parameter must be provided".into(),
            ));
        }
        (Some(n), Some(p)) => (n, p),
        (Some(n), None) => {
            let p = path_from_name(&n);
            (n, p)
        }
        (None, Some(p)) => (p.clone(), p),
    };
    let namespace = target_namespace(&state, &caller, &params).await?;
    let default_branch = params
        .str("default_branch")?
        .unwrap_or_else(|| "main".into());
    let mut errors = validate::Errors::default();
    validate::name(&mut errors, "name", &name);
    validate::project_path(&mut errors, &path);
    if !branch_name_is_valid(&default_branch) {
        errors.add("default_branch", "is invalid");
    }
    let ci_config_path = ci_config_path_param(&params, &mut errors)?;
    description_length(&params, &mut errors)?;
    let visibility = parse_visibility(&params)?.unwrap_or(Visibility::Private);
    crate::domain::groups::check_project_visibility(&mut errors, visibility, &namespace);
    errors.into_result()?;
    let new = NewProject {
        namespace_id: namespace.id,
        name: name.clone(),
        path,
        description: params.str("description")?,
        visibility,
        default_branch: default_branch.clone(),
        creator_id: actor.user.id,
    };
    let project = state
        .store
        .create_project(&new)
        .await
        .map_err(|e| match e {
            pipewright_store::StoreError::Conflict(_) => {
                let mut map = std::collections::BTreeMap::new();
                map.insert(
                    "name".to_string(),
                    vec!["has already been taken".to_string()],
                );
                map.insert(
                    "path".to_string(),
                    vec!["has already been taken".to_string()],
                );
                ApiError::Validation(map)
            }
            other => other.into(),
        })?;
    if let Err(err) = state.repos.create_async(project.id, &default_branch).await {
        // Keep database and disk in step: no project without its repository.
        let _ = state.store.delete_project(project.id).await;
        return Err(ApiError::Internal(
            anyhow::Error::new(err).context("creating repository"),
        ));
    }
    if let Some(path) = &ci_config_path {
        save_ci_config_path(&state, &project, path).await?;
    }
    if params.bool("initialize_with_readme")?.unwrap_or(false) {
        crate::domain::projects::initialize_with_readme(&state, &project, &actor.user).await?;
    }
    let access = project_access(&state, &caller, &project).await?;
    let mut out = render(&state, &project, &access).await?;
    add_ci_settings(&state, &project, &mut out).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

pub(crate) async fn update_project(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::UpdateProject).await?;
    let visibility = parse_visibility(&params)?;
    if visibility.is_some_and(|v| v != project.visibility) && !access.can(Action::ChangeVisibility)
    {
        return Err(ApiError::forbidden());
    }
    let name = params.str("name")?;
    let path = params.str("path")?;
    let default_branch = params.str("default_branch")?;
    let mut errors = validate::Errors::default();
    if let Some(n) = &name {
        validate::name(&mut errors, "name", n);
    }
    // GitLab checks a path's format only when it changes (app/models/project.rb
    // `if: :path_changed?`): a project from before today's rules keeps its path.
    if let Some(p) = path.as_ref().filter(|p| **p != project.path) {
        validate::project_path(&mut errors, p);
    }
    if let Some(b) = &default_branch
        && !branch_name_is_valid(b)
    {
        errors.add("default_branch", "is invalid");
    }
    if let Some(v) = visibility {
        crate::domain::groups::check_project_visibility(&mut errors, v, &project.namespace);
    }
    let variables_role = params.str("ci_pipeline_variables_minimum_override_role")?;
    if let Some(role) = &variables_role
        && !PIPELINE_VARIABLES_ROLES.contains(&role.as_str())
    {
        return Err(ApiError::ParamError(
            "ci_pipeline_variables_minimum_override_role does not have a valid value".into(),
        ));
    }
    let build_timeout = params.i64("build_timeout")?;
    match build_timeout {
        Some(t) if t < MIN_BUILD_TIMEOUT => {
            errors.add("build_timeout", "is too short (minimum is 10 minutes)")
        }
        Some(t) if t > MAX_BUILD_TIMEOUT => {
            errors.add("build_timeout", "is too long (maximum is one month)")
        }
        _ => {}
    }
    let ci_config_path = ci_config_path_param(&params, &mut errors)?;
    description_length(&params, &mut errors)?;
    errors.into_result()?;
    if let Some(path) = &ci_config_path {
        save_ci_config_path(&state, &project, path).await?;
    }
    if let Some(seconds) = build_timeout {
        if !access.can(Action::ManageVariables) {
            return Err(ApiError::forbidden());
        }
        state
            .store
            .set_project_build_timeout(project.id, seconds)
            .await?;
    }
    if let Some(role) = &variables_role {
        if !access.can(Action::ManageVariables) {
            return Err(ApiError::forbidden());
        }
        state
            .store
            .set_pipeline_variables_minimum_role(project.id, role)
            .await?;
    }
    let update = ProjectUpdate {
        name,
        path,
        description: if params.contains("description") {
            Some(params.str("description")?)
        } else {
            None
        },
        visibility,
        default_branch: default_branch.clone(),
    };
    let updated = state
        .store
        .update_project(project.id, &update)
        .await
        .map_err(|e| match e {
            pipewright_store::StoreError::Conflict(_) => {
                ApiError::validation("path", "has already been taken")
            }
            other => other.into(),
        })?;
    if let Some(branch) = default_branch {
        state
            .repos
            .set_default_branch_async(project.id, &branch)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let mut out = render(&state, &updated, &access).await?;
    add_ci_settings(&state, &updated, &mut out).await?;
    add_runners_token(&state, &updated, &access, &mut out).await?;
    Ok(Json(out))
}

pub(crate) async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::DeleteProject).await?;
    state.store.delete_project(project.id).await?;
    remove_repository(&state, project.id).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "202 Accepted"})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_names() {
        assert_eq!(path_from_name("My Project"), "my-project");
        assert_eq!(path_from_name("demo"), "demo");
        assert_eq!(path_from_name("  a  b "), "a-b");
    }

    #[test]
    fn branch_names() {
        assert!(branch_name_is_valid("main"));
        assert!(branch_name_is_valid("feature/x"));
        for bad in ["", "-x", "a..b", "a b", "x.lock", "a~b", "/a"] {
            assert!(!branch_name_is_valid(bad), "{bad}");
        }
    }
}
