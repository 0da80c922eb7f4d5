//! A group's page (`/groups/<full path>`, where the API's `web_url` points): its subgroups and
//! projects the viewer may see, and its members with their roles (inherited ones included).
//! A group the viewer may not see is a 404, or a sign-in redirect for a visitor, as projects.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_store::{GroupFilter, Namespace, Page, ProjectFilter, ProjectOrder};

use super::error::{WebError, WebResult};
use super::session::Viewer;
use super::view::{self, Crumb, Layout, group_crumbs};
use crate::domain::groups::find_group;
use crate::permissions::{GroupAccess, GroupAction};
use crate::state::AppState;

pub struct Entry {
    pub href: String,
    pub label: String,
    pub visibility: &'static str,
    pub description: String,
}

pub struct MemberRow {
    pub username: String,
    pub role: &'static str,
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    layout: Layout,
    name: String,
    crumbs: Vec<Crumb>,
    description: String,
    visibility: &'static str,
    subgroups: Vec<Entry>,
    projects: Vec<Entry>,
    members: Vec<MemberRow>,
    /// Where "New subgroup" goes, for Maintainers and up.
    new_subgroup: Option<String>,
    /// The CI/CD settings page, for Owners.
    settings: Option<String>,
}

/// The first page (100) of what a group holds that the viewer may see.
const SHOWN: Page = Page {
    page: 1,
    per_page: 100,
};

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> WebResult<Response> {
    let caller = viewer.caller();
    let (group, access) = match find_group(&state, &caller, &path).await {
        Ok(found) => found,
        Err(crate::error::ApiError::Internal(e)) => return Err(WebError::Internal(e)),
        Err(_) if viewer.user.is_none() => {
            return Err(WebError::SignInRequired(viewer.path.clone()));
        }
        Err(_) => return Err(WebError::NotFound),
    };
    let store_viewer = match &viewer.user {
        Some(u) if u.is_admin => pipewright_store::Viewer::Admin,
        Some(u) => pipewright_store::Viewer::User(u.id),
        None => pipewright_store::Viewer::Anonymous,
    };
    let page = GroupPage {
        name: group.name.clone(),
        crumbs: group_crumbs(&group.full_path),
        description: group.description.clone(),
        visibility: group.visibility.as_str(),
        subgroups: subgroups(&state, &group, store_viewer).await?,
        projects: projects(&state, &group, store_viewer).await?,
        members: members(&state, &group, &viewer, &access).await?,
        new_subgroup: (viewer.user.is_some() && access.can(GroupAction::CreateSubgroup))
            .then(|| format!("/groups/new?parent_id={}", group.id)),
        settings: (viewer.user.is_some() && access.can(GroupAction::AdminGroup))
            .then(|| format!("/groups/{}/-/settings/ci_cd", group.full_path)),
        layout: Layout::new(&viewer, &headers, group.full_name.clone()),
    };
    view::render(&state, &page.layout, &page)
}

async fn subgroups(
    state: &AppState,
    group: &Namespace,
    viewer: pipewright_store::Viewer,
) -> WebResult<Vec<Entry>> {
    let filter = GroupFilter {
        viewer,
        parent: Some(Some(group.id)),
        membership_of: None,
        search: None,
    };
    let found = state.store.groups(&filter, SHOWN).await?;
    Ok(found
        .items
        .iter()
        .map(|g| Entry {
            href: format!("/groups/{}", g.full_path),
            label: g.name.clone(),
            visibility: g.visibility.as_str(),
            description: g.description.clone(),
        })
        .collect())
}

async fn projects(
    state: &AppState,
    group: &Namespace,
    viewer: pipewright_store::Viewer,
) -> WebResult<Vec<Entry>> {
    let filter = ProjectFilter {
        viewer,
        membership_of: None,
        owned_by: None,
        search: None,
        namespace: Some((group.id, false)),
        order_by: ProjectOrder::Name,
        ascending: true,
    };
    let found = state.store.projects(&filter, SHOWN).await?;
    Ok(found
        .items
        .iter()
        .map(|p| Entry {
            href: format!("/{}", p.full_path()),
            label: p.name.clone(),
            visibility: p.visibility.as_str(),
            description: p.description.clone().unwrap_or_default(),
        })
        .collect())
}

/// Members are shown to signed-in viewers only, as GitLab's members API, and not to one who
/// sees a private group only for a project below it (`read_group_member`).
async fn members(
    state: &AppState,
    group: &Namespace,
    viewer: &Viewer,
    access: &GroupAccess,
) -> WebResult<Vec<MemberRow>> {
    if viewer.user.is_none() || !access.can(GroupAction::ReadMembers) {
        return Ok(Vec::new());
    }
    let found = state.store.group_members_all(group.id, SHOWN).await?;
    Ok(found
        .items
        .iter()
        .map(|m| MemberRow {
            username: m.user.username.clone(),
            role: m.access_level.name(),
        })
        .collect())
}
