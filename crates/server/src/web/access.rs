//! The project a page is about: the one lookup every project page and form goes through, with
//! the API's project lookup and permission table underneath, answering as GitLab's pages do.

use pipewright_store::Project;

use super::error::{WebError, WebResult};
use super::session::Viewer;
use crate::domain::projects::find_project;
use crate::permissions::{Action, ProjectAccess};
use crate::state::AppState;

/// The project a page is about, if the viewer may do `action` there. Anything else is a 404
/// for a signed-in viewer (a Developer asking for settings, a stranger asking for a private
/// project) and a sign-in redirect for a signed-out visitor — whether the project exists or
/// not, so the answer never tells a private project from a missing one. GitLab does the same:
/// `RoutableActions#find_routable!` falls back to `ApplicationController#route_not_found`,
/// which sends a signed-out visitor to the sign-in page and answers 404 to a signed-in user.
pub async fn project_for(
    state: &AppState,
    viewer: &Viewer,
    namespace: &str,
    path: &str,
    action: Action,
) -> WebResult<(Project, ProjectAccess)> {
    let full = format!("{namespace}/{path}");
    let caller = viewer.caller();
    let found = match find_project(state, &caller, &full).await {
        Ok(found) => Some(found),
        Err(crate::error::ApiError::Internal(e)) => return Err(WebError::Internal(e)),
        Err(_) => None,
    };
    match found {
        Some((project, access)) if access.can(action) => Ok((project, access)),
        _ if viewer.user.is_none() => Err(WebError::SignInRequired(viewer.path.clone())),
        _ => Err(WebError::NotFound),
    }
}

/// A form posted to a project's page: a signed-in viewer, the form's CSRF token checked, and
/// the project if the viewer may do `action` there.
pub async fn project_form(
    state: &AppState,
    viewer: &Viewer,
    namespace: &str,
    path: &str,
    params: &crate::params::Params,
    action: Action,
) -> WebResult<(Project, ProjectAccess)> {
    viewer.required()?;
    viewer.verify_form(params)?;
    project_for(state, viewer, namespace, path, action).await
}
