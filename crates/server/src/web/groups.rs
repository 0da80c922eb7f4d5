//! A group's page (`/groups/<full path>`, where the API's `web_url` points): its subgroups and
//! projects the viewer may see, and its members with their roles (inherited ones included).
//! A group the viewer may not see is a 404, or a sign-in redirect for a visitor, as projects.
//! Both lists are paged, twenty at a time: subgroups then projects as one list (`?page=`, as
//! GitLab's "Subgroups and projects", app/finders/group_descendants_finder.rb), members on
//! their own (`?members_page=`); each list's links keep the other's page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_store::{GroupFilter, Namespace, Page, ProjectFilter, ProjectOrder};

use super::error::{WebError, WebResult};
use super::session::Viewer;
use super::view::{self, Crumb, Layout, Window, group_crumbs};
use crate::domain::groups::find_group;
use crate::permissions::{GroupAccess, GroupAction};
use crate::state::AppState;

pub struct Entry {
    pub is_group: bool,
    pub href: String,
    pub label: String,
    pub visibility: &'static str,
    pub description: String,
}

pub struct MemberRow {
    pub username: String,
    pub role: &'static str,
}

/// One list's page and the links to its neighbours.
pub struct Pager {
    pub page: u32,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    layout: Layout,
    name: String,
    crumbs: Vec<Crumb>,
    description: String,
    visibility: &'static str,
    /// This page of the subgroups, then the projects.
    children: Vec<Entry>,
    children_pager: Pager,
    members: Vec<MemberRow>,
    members_pager: Pager,
    /// Where "New subgroup" goes, for whoever the group's `subgroup_creation_level` lets in.
    new_subgroup: Option<String>,
    /// The CI/CD settings page, for Owners.
    settings: Option<String>,
}

/// Rows a list shows at a time.
const PER_PAGE: u32 = Window::PER_PAGE as u32;

/// Page `number` of a list, twenty rows.
fn page_of(number: u32) -> Page {
    Page {
        page: number,
        per_page: PER_PAGE,
    }
}

#[derive(serde::Deserialize)]
pub struct GroupQuery {
    pub page: Option<String>,
    pub members_page: Option<String>,
}

/// The group page's address with the two lists at these pages (page 1 left out).
fn page_url(full_path: &str, children: u32, members: u32) -> String {
    let mut url = format!("/groups/{full_path}");
    let mut sep = '?';
    for (name, page) in [("page", children), ("members_page", members)] {
        if page > 1 {
            url.push_str(&format!("{sep}{name}={page}"));
            sep = '&';
        }
    }
    url
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(path): Path<String>,
    Query(query): Query<GroupQuery>,
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
    let children_page = view::page_number(query.page.as_deref());
    let members_page = view::page_number(query.members_page.as_deref());
    let (children, children_more) = children(&state, &group, store_viewer, children_page).await?;
    let (members, members_more) = members(&state, &group, &viewer, &access, members_page).await?;
    let full_path = &group.full_path;
    let pager = |page: u32, more: bool, link: &dyn Fn(u32) -> String| Pager {
        page,
        prev_url: (page > 1).then(|| link(page - 1)),
        next_url: more.then(|| link(page + 1)),
    };
    let page = GroupPage {
        name: group.name.clone(),
        crumbs: group_crumbs(full_path),
        description: group.description.clone(),
        visibility: group.visibility.as_str(),
        children,
        children_pager: pager(children_page, children_more, &|p| {
            page_url(full_path, p, members_page)
        }),
        members,
        members_pager: pager(members_page, members_more, &|p| {
            page_url(full_path, children_page, p)
        }),
        new_subgroup: (viewer.user.is_some() && access.can(GroupAction::CreateSubgroup))
            .then(|| format!("/groups/new?parent_id={}", group.id)),
        settings: (viewer.user.is_some() && access.can(GroupAction::AdminGroup))
            .then(|| format!("/groups/{full_path}/-/settings/ci_cd")),
        layout: Layout::new(&viewer, &headers, group.full_name.clone()),
    };
    view::render(&state, &page.layout, &page)
}

/// Page `number` of the group's subgroups then its projects, and whether more follow: the
/// subgroups' page as it falls, topped up with projects from where the subgroups end.
async fn children(
    state: &AppState,
    group: &Namespace,
    viewer: pipewright_store::Viewer,
    number: u32,
) -> WebResult<(Vec<Entry>, bool)> {
    let page = page_of(number);
    let (mut entries, subgroups) = subgroups(state, group, viewer, page).await?;
    let start = page.offset();
    let wanted = (PER_PAGE as usize).saturating_sub(entries.len());
    let (projects, total_projects) =
        projects(state, group, viewer, (start - subgroups).max(0), wanted).await?;
    entries.extend(projects);
    Ok((
        entries,
        start + i64::from(PER_PAGE) < subgroups + total_projects,
    ))
}

/// A page of the subgroups the viewer may see, and how many there are.
async fn subgroups(
    state: &AppState,
    group: &Namespace,
    viewer: pipewright_store::Viewer,
    page: Page,
) -> WebResult<(Vec<Entry>, i64)> {
    let filter = GroupFilter {
        viewer,
        parent: Some(Some(group.id)),
        membership_of: None,
        search: None,
    };
    let found = state.store.groups(&filter, page).await?;
    let entries = found
        .items
        .iter()
        .map(|g| Entry {
            is_group: true,
            href: format!("/groups/{}", g.full_path),
            label: g.name.clone(),
            visibility: g.visibility.as_str(),
            description: g.description.clone(),
        })
        .collect();
    Ok((entries, found.total))
}

/// Up to `count` of the projects the viewer may see, from the `from`th on, and how many
/// there are: read as the one or two store pages of twenty that hold them.
async fn projects(
    state: &AppState,
    group: &Namespace,
    viewer: pipewright_store::Viewer,
    from: i64,
    count: usize,
) -> WebResult<(Vec<Entry>, i64)> {
    let filter = ProjectFilter {
        viewer,
        membership_of: None,
        owned_by: None,
        search: None,
        namespace: Some((group.id, false)),
        order_by: ProjectOrder::Name,
        ascending: true,
    };
    let per_page = i64::from(PER_PAGE);
    let first = u32::try_from(from / per_page + 1).unwrap_or(u32::MAX);
    let skip = usize::try_from(from % per_page).unwrap_or(0);
    let mut found = state.store.projects(&filter, page_of(first)).await?;
    let total = found.total;
    if count > 0 && skip + count > PER_PAGE as usize && i64::from(first) * per_page < total {
        let next = page_of(first.saturating_add(1));
        found
            .items
            .extend(state.store.projects(&filter, next).await?.items);
    }
    let entries = found
        .items
        .iter()
        .skip(skip)
        .take(count)
        .map(|p| Entry {
            is_group: false,
            href: format!("/{}", p.full_path()),
            label: p.name.clone(),
            visibility: p.visibility.as_str(),
            description: p.description.clone().unwrap_or_default(),
        })
        .collect();
    Ok((entries, total))
}

/// Members are shown to signed-in viewers only, as GitLab's members API, and not to one who
/// sees a private group only for a project below it (`read_group_member`).
async fn members(
    state: &AppState,
    group: &Namespace,
    viewer: &Viewer,
    access: &GroupAccess,
    number: u32,
) -> WebResult<(Vec<MemberRow>, bool)> {
    if viewer.user.is_none() || !access.can(GroupAction::ReadMembers) {
        return Ok((Vec::new(), false));
    }
    let page = page_of(number);
    let found = state.store.group_members_all(group.id, page).await?;
    let rows = found
        .items
        .iter()
        .map(|m| MemberRow {
            username: m.user.username.clone(),
            role: m.access_level.name(),
        })
        .collect();
    Ok((rows, page.offset() + i64::from(PER_PAGE) < found.total))
}
