//! `/<ns>/<project>/-/hooks`: the project's webhooks and their recent deliveries; add and
//! remove hooks (through the API's own operations, so the local-network guard applies).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::access::{project_for, project_form};
use super::error::{WebError, WebResult};
use super::session::Viewer;
use super::settings::outcome;
use super::view::{self, Flash, Layout, ProjectNav};
use crate::api;
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::state::AppState;
use crate::webhook_delivery;

/// Deliveries listed per hook.
const RECENT: i64 = 10;

pub struct DeliveryRow {
    pub event: String,
    pub state: String,
    pub status: String,
    pub attempts: i64,
    pub duration: String,
    pub when: String,
    pub error: String,
}

pub struct HookRow {
    pub id: i64,
    pub url: String,
    pub events: Vec<&'static str>,
    pub ssl: bool,
    pub deliveries: Vec<DeliveryRow>,
}

#[derive(Template)]
#[template(path = "hooks.html")]
struct HooksPage {
    layout: Layout,
    full_path: String,
    hooks: Vec<HookRow>,
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
) -> WebResult<Response> {
    viewer.required()?;
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::ManageHooks).await?;
    let mut hooks = Vec::new();
    for h in state.store.project_hooks(project.id).await? {
        let deliveries = state
            .store
            .hook_deliveries(h.id, RECENT)
            .await?
            .into_iter()
            .map(|d| DeliveryRow {
                event: d.event,
                state: d.state,
                status: d.response_status.map(|s| s.to_string()).unwrap_or_default(),
                attempts: d.attempts,
                duration: d
                    .duration_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_default(),
                when: view::time_ago(d.updated_at),
                error: d.error.unwrap_or_default(),
            })
            .collect();
        let mut events = Vec::new();
        if h.push_events {
            events.push("Push events");
        }
        if h.tag_push_events {
            events.push("Tag push events");
        }
        if h.pipeline_events {
            events.push("Pipeline events");
        }
        if h.job_events {
            events.push("Job events");
        }
        hooks.push(HookRow {
            id: h.id,
            url: h.url,
            events,
            ssl: h.enable_ssl_verification,
            deliveries,
        });
    }
    let page = HooksPage {
        layout: Layout::new(&viewer, &headers, format!("Webhooks · {}", project.name))
            .with_project(ProjectNav::new(&project, &access, "hooks")),
        full_path: project.full_path(),
        hooks,
    };
    view::render(&state, &page.layout, &page)
}

/// `POST …/-/hooks`: a new webhook, through the API's own operation.
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
        Action::ManageHooks,
    )
    .await?;
    let back = format!("/{}/-/hooks", project.full_path());
    let url = params.str("url").ok().flatten().unwrap_or_default();
    let seg = Segments::from_pairs(&[("id", project.id.to_string())]);
    let result = api::hooks::create(State(state.clone()), viewer.caller(), seg, params).await;
    if let Err(err) = &result
        && api::hooks::is_invalid_url(err)
    {
        // The API says only "Invalid url given"; the page says why, as GitLab's UI does.
        let allow_local = webhook_delivery::allow_local(&state).await?;
        if let Err(blocked) = webhook_delivery::resolve(&url, allow_local).await {
            return Ok(view::redirect_with(
                &state,
                &back,
                Flash::alert(format!("Url {}", blocked.message())),
            ));
        }
    }
    outcome(&state, &back, "Webhook was created.", result)
}

/// `POST …/-/hooks/:id/remove`, and `…/test` (queues a sample event — `trigger`:
/// `push_events`, `tag_push_events`, `pipeline_events`, `job_events` — whose delivery shows
/// under "Recent events"), through the API's own operations.
pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id, action)): Path<(String, String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::ManageHooks,
    )
    .await?;
    if id.parse::<i64>().is_err() {
        return Err(WebError::NotFound);
    }
    let back = format!("/{}/-/hooks", project.full_path());
    let mut seg = vec![("id", project.id.to_string()), ("hook_id", id)];
    let st = State(state.clone());
    match action.as_str() {
        "remove" => {
            let seg = Segments::from_pairs(&seg);
            let result = api::hooks::destroy(st, viewer.caller(), seg).await;
            outcome(&state, &back, "Webhook was deleted.", result)
        }
        "test" => {
            let trigger = params.str("trigger").ok().flatten().unwrap_or_default();
            seg.push(("trigger", trigger));
            let result = api::hooks::test(st, viewer.caller(), Segments::from_pairs(&seg)).await;
            outcome(
                &state,
                &back,
                "A test event was queued; its delivery appears under Recent events.",
                result,
            )
        }
        _ => Err(WebError::NotFound),
    }
}
