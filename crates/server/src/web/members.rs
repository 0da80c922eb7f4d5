//! `/<ns>/<project>/-/project_members`: who is in the project and with which role; Maintainers
//! add people by username (a role, an optional expiry), change roles and remove members —
//! through the members API's own operations, so GitLab's rules hold here too (only Owners
//! grant or take the Owner role; the last Owner stays). GitLab:
//! app/controllers/projects/project_members_controller.rb, app/services/members/*.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_core::AccessLevel;
use pipewright_store::Page;

use super::access::{project_for, project_form};
use super::error::{WebError, WebResult};
use super::forms::{field, finish};
use super::session::Viewer;
use super::view::{self, Layout, ProjectNav, Window};
use crate::api;
use crate::params::{Params, Segments};
use crate::permissions::Action;
use crate::state::AppState;

/// Members listed on one page.
const PER_PAGE: u32 = Window::PER_PAGE as u32;

pub struct MemberRow {
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub role: &'static str,
    pub level: i64,
    pub expires: String,
    pub since: String,
    /// Whether the viewer may change or remove this member (an Owner only by an Owner).
    pub editable: bool,
}

pub struct RoleOption {
    pub level: i64,
    pub name: &'static str,
}

#[derive(Template)]
#[template(path = "project_members.html")]
struct MembersPage {
    layout: Layout,
    full_path: String,
    members: Vec<MemberRow>,
    total: i64,
    can_manage: bool,
    roles: Vec<RoleOption>,
    page: u32,
    prev_url: Option<String>,
    next_url: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
}

/// `GET …/-/project_members`: whoever can see the project sees its members (GitLab's
/// `read_project_member`).
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> WebResult<Response> {
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadProject).await?;
    let can_manage = access.can(Action::ManageMembers);
    let can_owners = access.can(Action::ManageOwners);
    let number = view::page_number(query.page.as_deref());
    let page = Page {
        page: number,
        per_page: PER_PAGE,
    };
    let found = state.store.members(project.id, page).await?;
    let total = found.total;
    let members = found
        .items
        .into_iter()
        .map(|m| MemberRow {
            user_id: m.user.id,
            username: m.user.username,
            name: m.user.name,
            role: m.access_level.name(),
            level: m.access_level.as_i64(),
            expires: m.expires_at.map(|t| t.to_date_string()).unwrap_or_default(),
            since: view::time_ago(m.created_at),
            editable: can_manage && (can_owners || m.access_level != AccessLevel::Owner),
        })
        .collect();
    // A Maintainer is not offered the Owner role (GitLab's role dropdown leaves it out).
    let roles = AccessLevel::ALL
        .into_iter()
        .filter(|l| can_owners || *l != AccessLevel::Owner)
        .map(|l| RoleOption {
            level: l.as_i64(),
            name: l.name(),
        })
        .collect();
    let base = format!("/{}/-/project_members", project.full_path());
    let more = i64::from(number) * i64::from(PER_PAGE) < total;
    let (prev_url, next_url) = view::page_links(&base, number, more);
    let page = MembersPage {
        layout: Layout::new(&viewer, &headers, format!("Members · {}", project.name))
            .with_project(ProjectNav::new(&project, &access, "members")),
        full_path: project.full_path(),
        members,
        total,
        can_manage,
        roles,
        page: number,
        prev_url,
        next_url,
    };
    view::render(&state, &page.layout, &page)
}

/// The member fields the API reads, from the form (`access_level`, `expires_at`).
fn member_params(params: &Params) -> Params {
    let mut p = Params::default();
    for key in ["access_level", "expires_at"] {
        let value = field(params, key);
        if !value.trim().is_empty() {
            p.set_path(key, value.trim().to_string());
        }
    }
    p
}

/// `POST …/-/project_members`: adds a user by username.
pub async fn create(
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
        Action::ManageMembers,
    )
    .await?;
    let back = format!("/{}/-/project_members", project.full_path());
    let username = field(&params, "username")
        .trim()
        .trim_start_matches('@')
        .to_string();
    let mut p = member_params(&params);
    p.set_path("username", username.clone());
    let seg = Segments::from_pairs(&[("id", project.id.to_string())]);
    let result = api::members::add_member(State(state.clone()), viewer.caller(), seg, p).await;
    let done = |_| format!("{username} was added to the project.");
    finish(&state, &back, done, result)
}

/// `POST …/-/project_members/:user_id/update` (a new role or expiry) and `…/remove`.
pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, user_id, action)): Path<(String, String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::ManageMembers,
    )
    .await?;
    if user_id.parse::<i64>().is_err() {
        return Err(WebError::NotFound);
    }
    let back = format!("/{}/-/project_members", project.full_path());
    let seg = Segments::from_pairs(&[("id", project.id.to_string()), ("user_id", user_id)]);
    let st = State(state.clone());
    match action.as_str() {
        "update" => {
            let p = member_params(&params);
            let result = api::members::update_member(st, viewer.caller(), seg, p).await;
            finish(&state, &back, |_| "The member was updated.".into(), result)
        }
        "remove" => {
            let result = api::members::remove_member(st, viewer.caller(), seg).await;
            finish(&state, &back, |_| "The member was removed.".into(), result)
        }
        _ => Err(WebError::NotFound),
    }
}
