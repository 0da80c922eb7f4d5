//! A project's general and repository settings pages, through the API's own operations:
//! `/<ns>/<project>/edit` (name, description, visibility, default branch, the CI/CD general
//! options — job timeout, who may pass pipeline variables — and deletion by an Owner who types
//! the project's path) and `/<ns>/<project>/-/settings/repository` (protected branches).
//! GitLab: app/controllers/projects_controller.rb (`edit`, `update`, `destroy`),
//! app/controllers/projects/settings/repository_controller.rb,
//! app/controllers/projects/protected_branches_controller.rb.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_store::{Project, ProtectionLevel};

use super::access::{project_for, project_form};
use super::error::{WebError, WebResult};
use super::forms::{field, finish};
use super::session::Viewer;
use super::view::{self, Flash, Layout, ProjectNav};
use crate::api;
use crate::api::projects::{DEFAULT_BUILD_TIMEOUT, DEFAULT_PIPELINE_VARIABLES_ROLE};
use crate::params::{Params, Segments};
use crate::permissions::Action;
use crate::state::AppState;

fn project_segments(project: &Project) -> Segments {
    Segments::from_pairs(&[("id", project.id.to_string())])
}

#[derive(Template)]
#[template(path = "project_edit.html")]
struct EditPage {
    layout: Layout,
    full_path: String,
    name: String,
    description: String,
    visibility: String,
    default_branch: String,
    branches: Vec<String>,
    timeout_minutes: i64,
    variables_role: String,
    can_change_visibility: bool,
    can_delete: bool,
}

/// `GET /<ns>/<project>/edit`: Maintainers and Owners.
pub async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
) -> WebResult<Response> {
    viewer.required()?;
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::UpdateProject).await?;
    let mut branches: Vec<String> = state
        .repos
        .branches_async(project.id)
        .await
        .map_err(|e| WebError::Internal(e.into()))?
        .into_iter()
        .map(|b| b.name)
        .collect();
    if !branches.contains(&project.default_branch) {
        branches.insert(0, project.default_branch.clone());
    }
    let timeout = state.store.project_build_timeout(project.id).await?;
    let role = state
        .store
        .pipeline_variables_minimum_role(project.id)
        .await?;
    let page = EditPage {
        layout: Layout::new(
            &viewer,
            &headers,
            format!("General settings · {}", project.name),
        )
        .with_project(ProjectNav::new(&project, &access, "general")),
        full_path: project.full_path(),
        name: project.name.clone(),
        description: project.description.clone().unwrap_or_default(),
        visibility: project.visibility.as_str().to_string(),
        default_branch: project.default_branch.clone(),
        branches,
        timeout_minutes: timeout.unwrap_or(DEFAULT_BUILD_TIMEOUT) / 60,
        variables_role: role.unwrap_or_else(|| DEFAULT_PIPELINE_VARIABLES_ROLE.into()),
        can_change_visibility: access.can(Action::ChangeVisibility),
        can_delete: access.can(Action::DeleteProject),
    };
    view::render(&state, &page.layout, &page)
}

/// `POST /<ns>/<project>` (GitLab's `PUT`): the form's fields handed to `PUT /projects/:id`.
/// Fields the viewer may not change (visibility, for a Maintainer) are left out of the form
/// and so unchanged; a forged one is refused by the API.
pub async fn update(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::UpdateProject,
    )
    .await?;
    let mut p = Params::default();
    for key in [
        "name",
        "visibility",
        "default_branch",
        "ci_pipeline_variables_minimum_override_role",
    ] {
        let value = field(&params, key);
        if !value.trim().is_empty() {
            p.set_path(key, value.trim().to_string());
        }
    }
    if params.contains("description") {
        p.set_path("description", field(&params, "description"));
    }
    let minutes = field(&params, "build_timeout_minutes");
    if !minutes.trim().is_empty() {
        let seconds = minutes.trim().parse::<i64>().map_or_else(
            |_| minutes.trim().to_string(),
            |m| m.saturating_mul(60).to_string(),
        );
        p.set_path("build_timeout", seconds);
    }
    let result = api::projects::update_project(
        State(state.clone()),
        viewer.caller(),
        project_segments(&project),
        p,
    )
    .await;
    let back = match &result {
        Ok(json) => format!(
            "/{}/edit",
            json.get("path_with_namespace")
                .and_then(|v| v.as_str())
                .unwrap_or(&project.full_path())
        ),
        Err(_) => format!("/{}/edit", project.full_path()),
    };
    // GitLab: "Project '%{project_name}' was successfully updated."
    let done = |_| format!("Project '{}' was successfully updated.", project.name);
    finish(&state, &back, done, result)
}

/// `POST /<ns>/<project>/-/delete` (GitLab's `DELETE`): Owners, who type the project's path
/// to confirm, as GitLab's dialog asks.
pub async fn destroy(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::DeleteProject,
    )
    .await?;
    let back = format!("/{}/edit", project.full_path());
    if field(&params, "confirm_name").trim() != project.full_path() {
        let alert = Flash::alert(format!(
            "Type {} to confirm: the project was not deleted.",
            project.full_path()
        ));
        return Ok(view::redirect_with(&state, &back, alert));
    }
    let seg = project_segments(&project);
    match api::projects::delete_project(State(state.clone()), viewer.caller(), seg).await {
        Ok(_) => Ok(view::redirect_with(
            &state,
            "/",
            Flash::notice(format!(
                "Project '{}' is in the process of being deleted.",
                project.name
            )),
        )),
        Err(e) => finish(&state, &back, |()| String::new(), Err(e)),
    }
}

pub struct ProtectedRow {
    pub id: i64,
    pub name: String,
    pub push: &'static str,
    pub merge: &'static str,
    pub force_push: bool,
}

#[derive(Template)]
#[template(path = "settings_repository.html")]
struct RepositoryPage {
    layout: Layout,
    full_path: String,
    branches: Vec<String>,
    protected: Vec<ProtectedRow>,
    levels: [(i64, &'static str); 3],
}

/// `GET …/-/settings/repository`: protected branches, for Maintainers and Owners.
pub async fn repository(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
) -> WebResult<Response> {
    viewer.required()?;
    let (project, access) = project_for(
        &state,
        &viewer,
        &namespace,
        &path,
        Action::ManageProtectedBranches,
    )
    .await?;
    let branches = state
        .repos
        .branches_async(project.id)
        .await
        .map_err(|e| WebError::Internal(e.into()))?
        .into_iter()
        .map(|b| b.name)
        .collect();
    let protected = state
        .store
        .protected_branches(project.id)
        .await?
        .into_iter()
        .map(|b| ProtectedRow {
            id: b.id,
            name: b.name,
            push: b.push_access_level.description(),
            merge: b.merge_access_level.description(),
            force_push: b.allow_force_push,
        })
        .collect();
    let page = RepositoryPage {
        layout: Layout::new(
            &viewer,
            &headers,
            format!("Repository settings · {}", project.name),
        )
        .with_project(ProjectNav::new(&project, &access, "settings_repository")),
        full_path: project.full_path(),
        branches,
        protected,
        levels: level_choices(),
    };
    view::render(&state, &page.layout, &page)
}

fn repository_back(project: &Project) -> String {
    format!(
        "/{}/-/settings/repository#js-protected-branches-settings",
        project.full_path()
    )
}

/// `POST …/-/protected_branches`: protects a branch or wildcard, through the API.
pub async fn protect(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::ManageProtectedBranches,
    )
    .await?;
    let mut p = Params::default();
    for key in ["name", "push_access_level", "merge_access_level"] {
        p.set_path(key, field(&params, key).trim().to_string());
    }
    let force = params.bool("allow_force_push").ok().flatten() == Some(true);
    p.set_path("allow_force_push", if force { "true" } else { "false" });
    let name = field(&params, "name");
    let seg = project_segments(&project);
    let result =
        api::protected_branches::protect(State(state.clone()), viewer.caller(), seg, p).await;
    let done = |_| format!("Branch {} was protected.", name.trim());
    finish(&state, &repository_back(&project), done, result)
}

/// `POST …/-/protected_branches/:id/unprotect` (GitLab's `DELETE …/:id`).
pub async fn unprotect(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id)): Path<(String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::ManageProtectedBranches,
    )
    .await?;
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    let rule = state
        .store
        .protected_branches(project.id)
        .await?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or(WebError::NotFound)?;
    let seg = Segments::from_pairs(&[("id", project.id.to_string()), ("name", rule.name.clone())]);
    let result =
        api::protected_branches::unprotect(State(state.clone()), viewer.caller(), seg).await;
    let done = |_| format!("Branch {} was unprotected.", rule.name);
    finish(&state, &repository_back(&project), done, result)
}

/// The levels the form offers: GitLab's "Allowed to push and merge" choices.
fn level_choices() -> [(i64, &'static str); 3] {
    [
        (
            ProtectionLevel::AtLeast(pipewright_core::AccessLevel::Maintainer).as_i64(),
            "Maintainers",
        ),
        (
            ProtectionLevel::AtLeast(pipewright_core::AccessLevel::Developer).as_i64(),
            "Developers + Maintainers",
        ),
        (ProtectionLevel::NoOne.as_i64(), "No one"),
    ]
}
