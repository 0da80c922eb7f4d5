//! `/admin`: instance administration for admins (everyone else gets 404): users (create,
//! block, unblock), every runner, the embedded runner's job isolation, and instance settings
//! (the webhooks' local-network switch; whether runners may register with registration
//! tokens, and the instance's token).
//! Changes go through the API's own operations.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_core::ProjectCreationLevel;
use pipewright_store::{Page, RunnerScope, RunnerType};

use super::error::{WebError, WebResult};
use super::forms::field;
use super::session::Viewer;
use super::settings::outcome;
use super::view::{self, Layout};
use crate::api;
use crate::domain::runner_registration;
use crate::params::Params;
use crate::params::Segments;
use crate::state::AppState;
use crate::webhook_delivery;

fn admin(viewer: &Viewer) -> WebResult<()> {
    viewer.required()?;
    if viewer.is_admin() {
        Ok(())
    } else {
        Err(WebError::NotFound)
    }
}

pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub name: String,
    pub email: String,
    pub is_admin: bool,
    pub state: String,
    pub created: String,
}

pub struct RunnerRow {
    pub id: i64,
    pub description: String,
    pub kind: &'static str,
    pub project: String,
    pub status: &'static str,
    pub tags: String,
    pub contacted: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    users: Vec<UserRow>,
    runners: Vec<RunnerRow>,
    /// Whether the embedded runner runs, and which job isolation is in force.
    embedded_runner: String,
    allow_local: bool,
    signup_enabled: bool,
    /// Whether runners may register with registration tokens, and the instance's token then.
    allow_registration_tokens: bool,
    can_create_group: bool,
    /// GitLab's `default_project_creation` choices, the instance's selected.
    project_creation: Vec<CreationOption>,
    registration_token: String,
    page: u32,
    next: bool,
}

/// One choice of the instance's default project creation level.
pub struct CreationOption {
    pub value: i64,
    pub label: &'static str,
    pub selected: bool,
}

/// The choices with GitLab's labels (lib/gitlab/access.rb `project_creation_options`).
fn project_creation_options(current: ProjectCreationLevel) -> Vec<CreationOption> {
    use ProjectCreationLevel::*;
    [
        (NoOne, "No one"),
        (Owner, "Owners"),
        (Maintainer, "Maintainers"),
        (Developer, "Developers + Maintainers"),
        (Administrator, "Administrators"),
    ]
    .into_iter()
    .map(|(level, label)| CreationOption {
        value: level.as_i64(),
        label,
        selected: level == current,
    })
    .collect()
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Query(query): Query<super::projects::PageQuery>,
) -> WebResult<Response> {
    admin(&viewer)?;
    let page = query.page();
    let per_page = 50;
    let found = state.store.users(Page { page, per_page }, None).await?;
    let users = found
        .items
        .iter()
        .map(|u| UserRow {
            id: u.id,
            username: u.username.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            is_admin: u.is_admin,
            state: u.state.as_str().to_string(),
            created: view::time_ago(u.created_at),
        })
        .collect();
    let mut runners = Vec::new();
    for r in state
        .store
        .runners(
            RunnerScope::All,
            Page {
                page: 1,
                per_page: 100,
            },
        )
        .await?
        .items
    {
        let project = match r.project_id {
            Some(id) => state
                .store
                .project(id)
                .await?
                .map(|p| p.full_path())
                .unwrap_or_default(),
            None => String::new(),
        };
        runners.push(RunnerRow {
            id: r.id,
            kind: if r.runner_type == RunnerType::Instance {
                "instance"
            } else {
                "project"
            },
            project,
            status: api::runners::status(&r).0,
            tags: r.tag_list.join(", "),
            contacted: r
                .contacted_at
                .map(view::time_ago)
                .unwrap_or_else(|| "never".into()),
            description: r.description,
        });
    }
    let allow_registration_tokens = runner_registration::allowed(&state).await?;
    let registration_token = if allow_registration_tokens {
        runner_registration::token(&state, None, false).await?
    } else {
        String::new()
    };
    let page_view = AdminPage {
        layout: Layout::new(&viewer, &headers, "Admin area").in_section("admin"),
        users,
        runners,
        embedded_runner: state.config.embedded_runner_status.clone(),
        allow_local: webhook_delivery::allow_local(&state).await?,
        signup_enabled: crate::domain::accounts::signup_enabled(&state).await?,
        allow_registration_tokens,
        can_create_group: crate::domain::groups::creation_allowed(&state).await?,
        project_creation: project_creation_options(
            crate::domain::groups::default_project_creation(&state).await?,
        ),
        registration_token,
        page,
        next: i64::from(page) * i64::from(per_page) < found.total,
    };
    view::render(&state, &page_view.layout, &page_view)
}

fn checked(viewer: &Viewer, params: &Params) -> WebResult<()> {
    admin(viewer)?;
    viewer.verify_form(params)
}

/// `POST /admin/users`: a new user.
pub async fn create_user(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Params,
) -> WebResult<Response> {
    checked(&viewer, &params)?;
    let result = api::users::create_user(State(state.clone()), viewer.caller(), params).await;
    outcome(&state, "/admin#users", "User was created.", result)
}

/// `POST /admin/users/:id/block` and `…/unblock`.
pub async fn user_state(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, action)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    checked(&viewer, &params)?;
    if id.parse::<i64>().is_err() {
        return Err(WebError::NotFound);
    }
    let seg = Segments::from_pairs(&[("id", id)]);
    let st = State(state.clone());
    match action.as_str() {
        "block" => {
            let result = api::users::block_user(st, viewer.caller(), seg).await;
            outcome(&state, "/admin#users", "User was blocked.", result)
        }
        "unblock" => {
            let result = api::users::unblock_user(st, viewer.caller(), seg).await;
            outcome(&state, "/admin#users", "User was unblocked.", result)
        }
        _ => Err(WebError::NotFound),
    }
}

/// `POST /admin/settings`.
pub async fn update_settings(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Params,
) -> WebResult<Response> {
    checked(&viewer, &params)?;
    let allow = params
        .bool(webhook_delivery::ALLOW_LOCAL_SETTING)
        .ok()
        .flatten()
        .unwrap_or(false);
    let registration = params
        .bool(runner_registration::ALLOW_SETTING)
        .ok()
        .flatten()
        .unwrap_or(false);
    let signup = params
        .bool(crate::domain::accounts::SIGNUP_SETTING)
        .ok()
        .flatten()
        .unwrap_or(false);
    let groups = crate::domain::groups::CAN_CREATE_GROUP_SETTING;
    let can_create_group = params.bool(groups).ok().flatten().unwrap_or(false);
    let mut p = Params::default();
    p.set_path(groups, if can_create_group { "true" } else { "false" });
    let creation = crate::domain::groups::DEFAULT_PROJECT_CREATION_SETTING;
    let level = field(&params, creation);
    if !level.trim().is_empty() {
        p.set_path(creation, level.trim().to_string());
    }
    p.set_path(
        crate::domain::accounts::SIGNUP_SETTING,
        if signup { "true" } else { "false" },
    );
    p.set_path(
        webhook_delivery::ALLOW_LOCAL_SETTING,
        if allow { "true" } else { "false" },
    );
    p.set_path(
        runner_registration::ALLOW_SETTING,
        if registration { "true" } else { "false" },
    );
    let result = api::hooks::update_settings(State(state.clone()), viewer.caller(), p).await;
    outcome(&state, "/admin#settings", "Settings were saved.", result)
}
