//! `/projects/new`: a new project in the viewer's own namespace, through the API's own
//! `POST /projects` (so the validations, the repository and "Initialize repository with a
//! README" are the API's). GitLab: app/controllers/projects_controller.rb `new`/`create`.
//! The namespace is the viewer's personal one or a group where they may create projects.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::{WebError, WebResult};
use super::forms::{field, full_message};
use super::session::Viewer;
use super::view::{self, Flash, Layout};
use crate::api;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// A namespace the project may go in.
pub struct NamespaceOption {
    pub id: i64,
    pub path: String,
}

#[derive(Template)]
#[template(path = "new_project.html")]
struct NewProjectPage {
    layout: Layout,
    namespaces: Vec<NamespaceOption>,
}

/// The namespaces the viewer may create projects in: their own, then the groups (of the first
/// hundred they are related to) whose `project_creation_level` lets them in.
async fn namespaces(state: &AppState, viewer: &Viewer) -> WebResult<Vec<NamespaceOption>> {
    use crate::permissions::GroupAction;
    let user = viewer.required()?;
    let mut options: Vec<NamespaceOption> = state
        .store
        .user_namespace(user.id)
        .await?
        .into_iter()
        .map(|ns| NamespaceOption {
            id: ns.id,
            path: ns.path,
        })
        .collect();
    let filter = pipewright_store::GroupFilter {
        viewer: pipewright_store::Viewer::User(user.id),
        parent: None,
        membership_of: Some(user.id),
        search: None,
    };
    let page = pipewright_store::Page {
        page: 1,
        per_page: 100,
    };
    for group in state.store.groups(&filter, page).await?.items {
        let access = crate::domain::groups::group_access(state, Some(user), &group).await?;
        if access.can(GroupAction::CreateProjects) {
            options.push(NamespaceOption {
                id: group.id,
                path: group.full_path,
            });
        }
    }
    Ok(options)
}

/// `GET /projects/new`.
pub async fn new(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> WebResult<Response> {
    viewer.required()?;
    let page = NewProjectPage {
        layout: Layout::new(&viewer, &headers, "New project").in_section("new_project"),
        namespaces: namespaces(&state, &viewer).await?,
    };
    view::render(&state, &page.layout, &page)
}

/// `POST /projects`: the form's fields handed to the API's `POST /projects`; an empty path is
/// derived from the name there, as GitLab does.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Params,
) -> WebResult<Response> {
    viewer.required()?;
    viewer.verify_form(&params)?;
    let mut p = Params::default();
    for key in ["name", "path", "description", "visibility", "namespace_id"] {
        let value = field(&params, key);
        if !value.trim().is_empty() {
            p.set_path(key, value.trim().to_string());
        }
    }
    let readme = params.bool("initialize_with_readme").ok().flatten();
    p.set_path(
        "initialize_with_readme",
        if readme == Some(true) {
            "true"
        } else {
            "false"
        },
    );
    let name = field(&params, "name");
    let created = api::projects::create_project(State(state.clone()), viewer.caller(), p).await;
    let response = match created {
        Ok(response) => response,
        Err(ApiError::Internal(e)) => return Err(WebError::Internal(e)),
        Err(e) => {
            let alert = Flash::alert(full_message(&e));
            return Ok(view::redirect_with(&state, "/projects/new", alert));
        }
    };
    let body = axum::body::to_bytes(response.into_response().into_body(), 256 * 1024)
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("project response: {e}")))?;
    let json: Value = serde_json::from_slice(&body).map_err(|e| WebError::Internal(e.into()))?;
    let full_path = json
        .get("path_with_namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // GitLab: "Project '%{project_name}' was successfully created."
    let notice = Flash::notice(format!(
        "Project '{}' was successfully created.",
        name.trim()
    ));
    Ok(view::redirect_with(
        &state,
        &format!("/{full_path}"),
        notice,
    ))
}
