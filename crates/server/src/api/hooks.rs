//! Project webhooks (Maintainer+): `GET/POST /projects/:id/hooks`,
//! `GET/PUT/DELETE /projects/:id/hooks/:hook_id`, `POST …/hooks/:hook_id/test/:trigger`, and
//! the recent deliveries at `GET …/hooks/:hook_id/events`; plus the instance setting
//! `allow_local_requests_from_web_hooks_and_services` under `/application/settings` (admins).
//! Queueing and sending live in [`crate::domain::webhooks`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pipewright_core::{ProjectCreationLevel, Timestamp};
use pipewright_store::{NewHookDelivery, Project, ProjectHook, PushEvent};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::accounts;
use crate::domain::groups::{CAN_CREATE_GROUP_SETTING, DEFAULT_PROJECT_CREATION_SETTING};
use crate::domain::projects::authorize_project;
use crate::domain::runner_registration;
use crate::domain::webhooks;
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::sealing::Purpose;
use crate::state::AppState;
use crate::webhook_delivery;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let hook = "/api/v4/projects/{id}/hooks/{hook_id}";
    vec![
        Route::get("/api/v4/projects/{id}/hooks", list, Maintainer),
        Route::post("/api/v4/projects/{id}/hooks", create, Maintainer),
        Route::get(hook, show, Maintainer),
        Route::put(hook, update, Maintainer),
        Route::delete(hook, destroy, Maintainer),
        Route::post(format!("{hook}/test/{{trigger}}"), test, Maintainer),
        Route::get(format!("{hook}/events"), events, Maintainer),
        Route::get("/api/v4/application/settings", settings, Admin),
        Route::put("/api/v4/application/settings", update_settings, Admin),
    ]
}

fn render(h: &ProjectHook) -> Value {
    json!({
        "id": h.id,
        "url": h.url,
        "project_id": h.project_id,
        "push_events": h.push_events,
        "push_events_branch_filter": h.push_events_branch_filter,
        "tag_push_events": h.tag_push_events,
        "pipeline_events": h.pipeline_events,
        "job_events": h.job_events,
        "issues_events": false,
        "merge_requests_events": false,
        "note_events": false,
        "wiki_page_events": false,
        "deployment_events": false,
        "releases_events": false,
        "enable_ssl_verification": h.enable_ssl_verification,
        "alert_status": "executable",
        "created_at": entities::time(h.created_at),
    })
}

async fn project(state: &AppState, caller: &Caller, seg: &Segments) -> ApiResult<Project> {
    let (project, _) =
        authorize_project(state, caller, seg.get("id")?, Action::ManageHooks).await?;
    Ok(project)
}

async fn hook(state: &AppState, project: &Project, seg: &Segments) -> ApiResult<ProjectHook> {
    let id = seg.id("hook_id", "")?;
    state
        .store
        .project_hook(project.id, id)
        .await?
        .ok_or(ApiError::NotFound(""))
}

/// GitLab's `save_hook`: any problem with the URL is `422 {"error":"Invalid url given"}`
/// (the reason, e.g. a local-network address, is only in the web UI).
fn invalid_url() -> ApiError {
    ApiError::Custom(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"error": INVALID_URL}),
    )
}

const INVALID_URL: &str = "Invalid url given";

/// Whether a hook operation failed on its URL (the web UI then explains why).
pub fn is_invalid_url(err: &ApiError) -> bool {
    matches!(err, ApiError::Custom(StatusCode::UNPROCESSABLE_ENTITY, body) if body["error"] == INVALID_URL)
}

/// Applies parameters; the URL is checked against the local-network rule now, and again
/// (resolved afresh) at every delivery.
async fn apply(
    state: &AppState,
    params: &Params,
    h: &mut ProjectHook,
    creating: bool,
) -> ApiResult<()> {
    match params.str("url")? {
        Some(url) => {
            let allow_local = webhook_delivery::allow_local(state)
                .await
                .map_err(ApiError::Internal)?;
            if webhook_delivery::resolve(&url, allow_local).await.is_err() {
                return Err(invalid_url());
            }
            h.url = url;
        }
        None if creating => return Err(ApiError::MissingParam("url".into())),
        None => {}
    }
    if let Some(token) = params.str("token")? {
        h.token_sealed = if token.is_empty() {
            None
        } else {
            Some(
                state
                    .sealer
                    .seal(Purpose::HookToken, &token)
                    .map_err(ApiError::Internal)?,
            )
        };
    }
    for (key, field) in [
        ("push_events", &mut h.push_events),
        ("tag_push_events", &mut h.tag_push_events),
        ("pipeline_events", &mut h.pipeline_events),
        ("job_events", &mut h.job_events),
        ("enable_ssl_verification", &mut h.enable_ssl_verification),
    ] {
        if let Some(b) = params.bool(key)? {
            *field = b;
        }
    }
    if params.contains("push_events_branch_filter") {
        h.push_events_branch_filter = params
            .str("push_events_branch_filter")?
            .filter(|f| !f.is_empty());
    }
    Ok(())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let project = project(&state, &caller, &seg).await?;
    let hooks = state.store.project_hooks(project.id).await?;
    Ok(Json(Value::Array(hooks.iter().map(render).collect())))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project = project(&state, &caller, &seg).await?;
    let mut h = ProjectHook {
        id: 0,
        project_id: project.id,
        url: String::new(),
        token_sealed: None,
        push_events: true,
        push_events_branch_filter: None,
        tag_push_events: false,
        pipeline_events: false,
        job_events: false,
        enable_ssl_verification: true,
        created_at: Timestamp::now(),
    };
    apply(&state, &params, &mut h, true).await?;
    let created = state.store.create_project_hook(&h).await?;
    state.hooks_cache.invalidate(project.id);
    Ok((StatusCode::CREATED, Json(render(&created))))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let project = project(&state, &caller, &seg).await?;
    Ok(Json(render(&hook(&state, &project, &seg).await?)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let project = project(&state, &caller, &seg).await?;
    let mut h = hook(&state, &project, &seg).await?;
    apply(&state, &params, &mut h, false).await?;
    let updated = state.store.update_project_hook(&h).await?;
    state.hooks_cache.invalidate(project.id);
    Ok(Json(render(&updated)))
}

pub(crate) async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let project = project(&state, &caller, &seg).await?;
    let h = hook(&state, &project, &seg).await?;
    state.store.delete_project_hook(h.id).await?;
    state.hooks_cache.invalidate(project.id);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/test/:trigger`: queues a sample event (the default branch's head as a push, the
/// latest pipeline, its latest job).
pub(crate) async fn test(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project = project(&state, &caller, &seg).await?;
    let h = hook(&state, &project, &seg).await?;
    let trigger = seg.get("trigger")?;
    let sample = match trigger {
        "push_events" | "tag_push_events" => {
            let head = state
                .repos
                .resolve_ref_async(project.id, &project.default_branch)
                .await
                .ok();
            let Some(head) = head else {
                return Err(ApiError::BadRequest(
                    "Ensure the project has at least one commit.".into(),
                ));
            };
            let event = PushEvent {
                id: 0,
                project_id: project.id,
                user_id: caller.user_id(),
                ref_name: if trigger == "tag_push_events" {
                    format!("refs/tags/{}", head.name)
                } else {
                    format!("refs/heads/{}", head.name)
                },
                before_sha: pipewright_git::ZERO_SHA.to_string(),
                after_sha: head.sha,
                push_options: Vec::new(),
                created_at: Timestamp::now(),
            };
            webhooks::sample_push(&state, &project, &event)
                .await
                .map_err(ApiError::Internal)?
        }
        "pipeline_events" | "job_events" => {
            let latest = state
                .store
                .pipelines(
                    project.id,
                    &Default::default(),
                    pipewright_store::Page {
                        page: 1,
                        per_page: 1,
                    },
                )
                .await?;
            let Some(pipeline) = latest.items.first() else {
                return Err(ApiError::BadRequest(
                    "Ensure the project has CI pipelines.".into(),
                ));
            };
            webhooks::sample_pipeline_or_job(&state, &project, pipeline, trigger == "job_events")
                .await
                .map_err(ApiError::Internal)?
        }
        _ => {
            return Err(ApiError::ParamError(
                "trigger does not have a valid value".into(),
            ));
        }
    };
    let (event, payload) = sample;
    state
        .store
        .enqueue_hook_deliveries(&[NewHookDelivery {
            hook_id: h.id,
            event,
            uuid: webhook_delivery::new_uuid(),
            payload: payload.to_string(),
        }])
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"message": "201 Created"}))))
}

/// `GET …/hooks/:hook_id/events`: recent deliveries with what was sent and answered.
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let project = project(&state, &caller, &seg).await?;
    let h = hook(&state, &project, &seg).await?;
    let deliveries = state.store.hook_deliveries(h.id, 100).await?;
    Ok(Json(Value::Array(
        deliveries
            .iter()
            .map(|d| {
                json!({
                    "id": d.id,
                    "url": h.url,
                    "trigger": d.event,
                    "uuid": d.uuid,
                    "state": d.state,
                    "attempts": d.attempts,
                    "request_headers": {"X-Gitlab-Event": d.event, "X-Gitlab-Event-UUID": d.uuid},
                    "request_data": serde_json::from_str::<Value>(&d.payload).unwrap_or(Value::Null),
                    "response_status": d.response_status.map(|s| s.to_string()).or_else(|| d.error.clone()),
                    "response_body": d.response_body,
                    "execution_duration": d.duration_ms.map(|ms| ms as f64 / 1000.0),
                    "internal_error_message": d.error,
                    "created_at": entities::time(d.created_at),
                    "updated_at": entities::time(d.updated_at),
                })
            })
            .collect(),
    )))
}

pub(crate) async fn settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.admin()?;
    let allow = webhook_delivery::allow_local(&state)
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(json!({
        webhook_delivery::ALLOW_LOCAL_SETTING: allow,
        "allow_local_requests_from_system_hooks": allow,
        runner_registration::ALLOW_SETTING: runner_registration::allowed(&state).await?,
        accounts::SIGNUP_SETTING: accounts::signup_enabled(&state).await?,
        CAN_CREATE_GROUP_SETTING: crate::domain::groups::creation_allowed(&state).await?,
        DEFAULT_PROJECT_CREATION_SETTING:
            crate::domain::groups::default_project_creation(&state).await?.as_i64(),
    })))
}

pub(crate) async fn update_settings(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    caller.admin()?;
    // GitLab 17: `allow_runner_registration_token` (default off) lets runners register with
    // registration tokens (`POST /runners`).
    if let Some(allow) = params.bool(runner_registration::ALLOW_SETTING)? {
        state
            .store
            .set_setting(
                runner_registration::ALLOW_SETTING,
                if allow { "true" } else { "false" },
            )
            .await?;
    }
    // GitLab's `signup_enabled` (off by default here): the sign-up page exists only when on.
    if let Some(on) = params.bool(accounts::SIGNUP_SETTING)? {
        let value = if on { "true" } else { "false" };
        state
            .store
            .set_setting(accounts::SIGNUP_SETTING, value)
            .await?;
    }
    // GitLab's `can_create_group`: whether non-admins may create top-level groups.
    if let Some(allow) = params.bool(CAN_CREATE_GROUP_SETTING)? {
        let value = if allow { "true" } else { "false" };
        state
            .store
            .set_setting(CAN_CREATE_GROUP_SETTING, value)
            .await?;
    }
    // GitLab's `default_project_creation` (an Integer of `project_creation_values`,
    // lib/api/settings.rb): the project creation level of groups without their own.
    if let Some(level) = params.i64(DEFAULT_PROJECT_CREATION_SETTING)? {
        let level = ProjectCreationLevel::from_i64(level).ok_or_else(|| {
            ApiError::ParamError(format!(
                "{DEFAULT_PROJECT_CREATION_SETTING} does not have a valid value"
            ))
        })?;
        state
            .store
            .set_setting(
                DEFAULT_PROJECT_CREATION_SETTING,
                &level.as_i64().to_string(),
            )
            .await?;
    }
    if let Some(allow) = params.bool(webhook_delivery::ALLOW_LOCAL_SETTING)? {
        state
            .store
            .set_setting(
                webhook_delivery::ALLOW_LOCAL_SETTING,
                if allow { "true" } else { "false" },
            )
            .await?;
    }
    settings(State(state), caller).await
}
