//! `/groups/new`: a new top-level group or subgroup, created through the same domain function
//! as the API's `POST /groups` (so GitLab's path, nesting, visibility and `can_create_group`
//! rules are the API's). GitLab: app/controllers/groups_controller.rb `new`/`create`, whose
//! `authorize_create_group!` answers 404 to a user who may create neither.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_core::Visibility;
use pipewright_store::{GroupFilter, NewGroup, Page};

use super::error::{WebError, WebResult};
use super::forms::{field, full_message};
use super::session::Viewer;
use super::view::{self, Flash, Layout};
use crate::domain::groups::{create_group, find_group, group_access, may_create_top_level};
use crate::error::ApiError;
use crate::params::Params;
use crate::permissions::GroupAction;
use crate::state::AppState;

/// A group the new group may go under.
pub struct ParentOption {
    pub id: i64,
    pub full_path: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "new_group.html")]
struct NewGroupPage {
    layout: Layout,
    top_level: bool,
    parents: Vec<ParentOption>,
}

/// The groups (of the first hundred the viewer is a member of) where they may create
/// subgroups: Owners, and Maintainers where the group's `subgroup_creation_level` lets them.
async fn parents(
    state: &AppState,
    viewer: &Viewer,
    chosen: Option<i64>,
) -> WebResult<Vec<ParentOption>> {
    let user = viewer.required()?;
    let filter = GroupFilter {
        viewer: pipewright_store::Viewer::User(user.id),
        parent: None,
        membership_of: Some(user.id),
        search: None,
    };
    let page = Page {
        page: 1,
        per_page: 100,
    };
    let mut options = Vec::new();
    for group in state.store.groups(&filter, page).await?.items {
        let access = group_access(state, Some(user), &group).await?;
        if access.can(GroupAction::CreateSubgroup) {
            options.push(ParentOption {
                selected: chosen == Some(group.id),
                id: group.id,
                full_path: group.full_path,
            });
        }
    }
    Ok(options)
}

/// `GET /groups/new` (`?parent_id=` preselects the parent, as GitLab's "New subgroup").
pub async fn new(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> WebResult<Response> {
    let user = viewer.required()?;
    let top_level = may_create_top_level(&state, user).await?;
    let chosen = params.i64("parent_id").ok().flatten();
    let mut parents = parents(&state, &viewer, chosen).await?;
    if let Some(id) = chosen.filter(|id| !parents.iter().any(|p| p.id == *id)) {
        // "New subgroup" of a group the viewer is no member of (an admin's, or past the first
        // hundred): offered when the viewer may create subgroups there.
        if let Ok((group, access)) = find_group(&state, &viewer.caller(), &id.to_string()).await
            && access.can(GroupAction::CreateSubgroup)
        {
            parents.push(ParentOption {
                id: group.id,
                full_path: group.full_path,
                selected: true,
            });
        }
    }
    if !top_level && parents.is_empty() {
        // GitLab: `authorize_create_group!` renders 404 to whoever may not create a group.
        return Err(WebError::NotFound);
    }
    let page = NewGroupPage {
        layout: Layout::new(&viewer, &headers, "New group").in_section("new_group"),
        top_level,
        parents,
    };
    view::render(&state, &page.layout, &page)
}

/// `POST /groups`: the form's fields handed to the domain's `create_group`; a refusal comes
/// back to the form as a flash, GitLab's "Group '…' was successfully created." on success.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Params,
) -> WebResult<Response> {
    let user = viewer.required()?;
    viewer.verify_form(&params)?;
    let parent_id = match field(&params, "parent_id").trim() {
        "" => None,
        id => Some(id.parse::<i64>().map_err(|_| WebError::NotFound)?),
    };
    let back = match parent_id {
        Some(id) => format!("/groups/new?parent_id={id}"),
        None => "/groups/new".to_string(),
    };
    // Private unless chosen, as the API; anything else is refused, not guessed.
    let visibility = match field(&params, "visibility").trim() {
        "" => Visibility::Private,
        v => match Visibility::parse(v) {
            Some(v) => v,
            None => {
                let alert = Flash::alert("Visibility level is not included in the list.");
                return Ok(view::redirect_with(&state, &back, alert));
            }
        },
    };
    let new = NewGroup {
        name: field(&params, "name").trim().to_string(),
        path: field(&params, "path").trim().to_string(),
        parent_id,
        visibility,
        description: field(&params, "description"),
        project_creation_level: None,
        subgroup_creation_level: pipewright_core::SubgroupCreationLevel::Maintainer,
        creator_id: user.id,
    };
    match create_group(&state, &viewer.caller(), new).await {
        Ok(group) => {
            // GitLab: "Group '%{group_name}' was successfully created."
            let notice = Flash::notice(format!("Group '{}' was successfully created.", group.name));
            Ok(view::redirect_with(
                &state,
                &format!("/groups/{}", group.full_path),
                notice,
            ))
        }
        Err(ApiError::Internal(e)) => Err(WebError::Internal(e)),
        Err(e) => Ok(view::redirect_with(
            &state,
            &back,
            Flash::alert(full_message(&e)),
        )),
    }
}
