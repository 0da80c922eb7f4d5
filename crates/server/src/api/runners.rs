//! Runner management (GitLab API v4 shapes): creating runners with a `glrt-` authentication
//! token (stored as a digest), listing, inspecting, editing and deleting them, and the runner
//! side's `POST /runners/verify` and `DELETE /runners`. Instance runners are for admins;
//! project runners for the project's Maintainers.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::Timestamp;
use pipewright_store::{NewRunner, Runner, RunnerScope, RunnerType, RunnerUpdate};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::projects::authorize_project;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::secrets;
use crate::state::AppState;

/// A runner that has not called in for this long is offline (GitLab: 2 hours).
const ONLINE_WINDOW_MS: i64 = 2 * 3600 * 1000;

/// A project runner's routes are its project's Maintainers'; an instance runner's are the
/// administrators'; a group runner is its group Owners' to change, its Maintainers' to read.
/// (The matrix test manages a project runner.)
pub fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        Route::post("/api/v4/user/runners", create, Maintainer),
        // The legacy registration-token flow: no user credentials, a registration token.
        Route::post("/api/v4/runners", register, Open),
        Route::post(
            "/api/v4/runners/reset_registration_token",
            reset_instance_registration_token,
            Admin,
        ),
        Route::post(
            "/api/v4/projects/{id}/runners/reset_registration_token",
            reset_project_registration_token,
            Maintainer,
        ),
        Route::get("/api/v4/runners", list, SignedIn),
        Route::delete("/api/v4/runners", delete_by_token, RunnerToken),
        Route::get("/api/v4/runners/all", list_all, Admin),
        Route::post("/api/v4/runners/verify", verify, RunnerToken),
        Route::get("/api/v4/runners/{id}", show, Maintainer),
        Route::get("/api/v4/groups/{id}/runners", list_group, GroupMaintainer),
        Route::put("/api/v4/runners/{id}", update, Maintainer),
        Route::delete("/api/v4/runners/{id}", destroy, Maintainer),
    ]
}

pub(crate) fn status(runner: &Runner) -> (&'static str, bool) {
    match runner.contacted_at {
        None => ("never_contacted", false),
        Some(at) if Timestamp::now().millis() - at.millis() <= ONLINE_WINDOW_MS => ("online", true),
        Some(_) => ("offline", false),
    }
}

/// `Entities::Ci::Runner`.
fn runner_json(runner: &Runner) -> Value {
    let (status, online) = status(runner);
    json!({
        "id": runner.id,
        "description": runner.description,
        "ip_address": null,
        "active": !runner.paused,
        "paused": runner.paused,
        "is_shared": runner.runner_type == RunnerType::Instance,
        "runner_type": runner.runner_type.as_str(),
        "name": null,
        "online": online,
        "status": status,
    })
}

/// `Entities::Ci::RunnerDetails`.
fn runner_details(runner: &Runner) -> Value {
    let mut v = runner_json(runner);
    if let Value::Object(map) = &mut v {
        map.insert("tag_list".into(), json!(runner.tag_list));
        map.insert("run_untagged".into(), json!(runner.run_untagged));
        map.insert("locked".into(), json!(runner.locked));
        map.insert("access_level".into(), json!(runner.access_level));
        map.insert("maximum_timeout".into(), json!(runner.maximum_timeout));
        map.insert(
            "contacted_at".into(),
            crate::entities::opt_time(runner.contacted_at),
        );
        map.insert(
            "created_at".into(),
            crate::entities::time(runner.created_at),
        );
        map.insert(
            "projects".into(),
            json!(
                runner
                    .project_id
                    .map(|id| vec![json!({"id": id})])
                    .unwrap_or_default()
            ),
        );
        map.insert(
            "groups".into(),
            json!(
                runner
                    .group_id
                    .map(|id| vec![json!({"id": id})])
                    .unwrap_or_default()
            ),
        );
        map.insert("maintenance_note".into(), Value::Null);
    }
    v
}

fn access_level(params: &Params) -> ApiResult<Option<String>> {
    match params.str("access_level")? {
        None => Ok(None),
        Some(level) if level == "not_protected" || level == "ref_protected" => Ok(Some(level)),
        Some(_) => Err(ApiError::ParamError(
            "access_level does not have a valid value".into(),
        )),
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?.clone();
    let kind = params.required_str("runner_type")?;
    let runner_type = RunnerType::parse(&kind)
        .ok_or_else(|| ApiError::ParamError("runner_type does not have a valid value".into()))?;
    let (project_id, group_id) = match runner_type {
        RunnerType::Instance => {
            caller.admin()?;
            (None, None)
        }
        // GitLab: a group runner is its group Owners' to create (`create_runner` on the group).
        RunnerType::Group => {
            let id = params
                .i64("group_id")?
                .ok_or_else(|| ApiError::MissingParam("group_id".into()))?;
            let (group, _) = crate::domain::groups::authorize_group(
                &state,
                &caller,
                &id.to_string(),
                crate::permissions::GroupAction::AdminGroup,
            )
            .await?;
            (None, Some(group.id))
        }
        RunnerType::Project => {
            let id = params
                .i64("project_id")?
                .ok_or_else(|| ApiError::MissingParam("project_id".into()))?;
            let (project, _) =
                authorize_project(&state, &caller, &id.to_string(), Action::ManageRunners).await?;
            (Some(project.id), None)
        }
    };
    let owner = RunnerOwner {
        project_id,
        group_id,
        creator_id: Some(actor.user.id),
    };
    new_runner(&state, &params, runner_type, owner).await
}

/// Whose a new runner is.
struct RunnerOwner {
    project_id: Option<i64>,
    group_id: Option<i64>,
    creator_id: Option<i64>,
}

/// Creates a runner from the request's attributes and answers GitLab's
/// `Entities::Ci::RunnerRegistrationDetails` (`id`, `token`, `token_expires_at`), 201.
async fn new_runner(
    state: &AppState,
    params: &Params,
    runner_type: RunnerType,
    owner: RunnerOwner,
) -> ApiResult<Response> {
    let mut paused = params.bool("paused")?;
    // `active` is the older name (active = !paused).
    if paused.is_none() {
        paused = params.bool("active")?.map(|a| !a);
    }
    let token = secrets::random_token(secrets::RUNNER_TOKEN_PREFIX, 24);
    let new = NewRunner {
        token_digest: secrets::token_digest(&token),
        runner_type,
        project_id: owner.project_id,
        group_id: owner.group_id,
        creator_id: owner.creator_id,
        description: params.str("description")?.unwrap_or_default(),
        tag_list: params.string_list("tag_list")?.unwrap_or_default(),
        run_untagged: params.bool("run_untagged")?.unwrap_or(true),
        paused: paused.unwrap_or(false),
        locked: params.bool("locked")?.unwrap_or(false),
        access_level: access_level(params)?.unwrap_or_else(|| "not_protected".into()),
        maximum_timeout: params.i64("maximum_timeout")?,
    };
    let runner = state.store.create_runner(&new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": runner.id, "token": token, "token_expires_at": null})),
    )
        .into_response())
}

/// `POST /runners`: registers a runner with a registration token (GitLab's legacy flow,
/// `lib/api/ci/runner.rb`): `400` without `token`, `410 Gone - runner registration
/// disallowed` while registration tokens are off (the default), `403 Forbidden - invalid
/// token supplied` for a token that is nobody's; otherwise the runner, as `POST /user/runners`
/// makes it (an instance runner for the instance's token, a project runner for a project's).
async fn register(State(state): State<AppState>, params: Params) -> ApiResult<Response> {
    let token = params.required_str("token")?;
    let (runner_type, project_id) =
        crate::domain::runner_registration::runner_scope(&state, &token).await?;
    let owner = RunnerOwner {
        project_id,
        group_id: None,
        creator_id: None,
    };
    new_runner(&state, &params, runner_type, owner).await
}

/// GitLab's `Entities::Ci::ResetTokenResult`.
fn reset_token_result(token: String) -> Response {
    (
        StatusCode::CREATED,
        Json(json!({"token": token, "token_expires_at": null})),
    )
        .into_response()
}

/// `POST /runners/reset_registration_token` (administrators): a new instance registration
/// token (GitLab: `lib/api/ci/runners.rb`).
async fn reset_instance_registration_token(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Response> {
    caller.admin()?;
    let token = crate::domain::runner_registration::token(&state, None, true).await?;
    Ok(reset_token_result(token))
}

/// `POST /projects/:id/runners/reset_registration_token` (Maintainers): a new registration
/// token for the project (GitLab: `lib/api/ci/runners.rb`).
async fn reset_project_registration_token(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageRunners).await?;
    let token = crate::domain::runner_registration::token(&state, Some(project.id), true).await?;
    Ok(reset_token_result(token))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?;
    let page = page_from(&params)?;
    let result = state
        .store
        .runners(RunnerScope::ManagedBy(actor.user.id), page)
        .await?;
    let items: Vec<Value> = result.items.iter().map(runner_json).collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

async fn list_all(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    caller.admin()?;
    let page = page_from(&params)?;
    let result = state.store.runners(RunnerScope::All, page).await?;
    let items: Vec<Value> = result.items.iter().map(runner_json).collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

/// `GET /groups/:id/runners` (GitLab: lib/api/ci/runners.rb, `authorize_read_group_runners!`,
/// `Ci::Runner.group_or_instance_wide`): the runners the group's projects can use — the
/// instance's and those of the group and its ancestors — to its Maintainers and Owners
/// (app/policies/group_policy.rb gives `read_group_runners` to `maintainer`); 403 to other
/// members, 404 to who cannot see the group. GitLab's `type`, `status`, `paused` and
/// `tag_list` filters are not implemented: they are ignored.
async fn list_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (group, _) = crate::domain::groups::authorize_group(
        &state,
        &caller,
        seg.get("id")?,
        crate::permissions::GroupAction::ReadRunners,
    )
    .await?;
    let page = page_from(&params)?;
    let scope = RunnerScope::AvailableInGroup(group.id);
    let result = state.store.runners(scope, page).await?;
    let items: Vec<Value> = result.items.iter().map(runner_json).collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

/// What a caller wants to do to one runner.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    Change,
}

/// The runner, if the caller may read or manage it: admins any; Maintainers their projects'
/// runners; a group runner's group Owners, and to read it its Maintainers too (GitLab:
/// app/policies/ci/runner_policy.rb, `read_runner` for a user whose maintained projects
/// inherit the group's runners; `admin_runner` only for the group's Owners).
async fn managed(
    state: &AppState,
    caller: &Caller,
    seg: &Segments,
    purpose: Use,
) -> ApiResult<Runner> {
    caller.required()?;
    let id = seg.id("id", "Runner")?;
    let runner = state
        .store
        .runner(id)
        .await?
        .ok_or(ApiError::NotFound("Runner"))?;
    if caller.is_admin() {
        return Ok(runner);
    }
    match (runner.project_id, runner.group_id) {
        (Some(project_id), _) => {
            authorize_project(
                state,
                caller,
                &project_id.to_string(),
                Action::ManageRunners,
            )
            .await?;
            Ok(runner)
        }
        (None, Some(group_id)) => {
            crate::domain::groups::authorize_group(
                state,
                caller,
                &group_id.to_string(),
                match purpose {
                    Use::Read => crate::permissions::GroupAction::ReadRunners,
                    Use::Change => crate::permissions::GroupAction::AdminGroup,
                },
            )
            .await?;
            Ok(runner)
        }
        (None, None) => Err(ApiError::forbidden()),
    }
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let runner = managed(&state, &caller, &seg, Use::Read).await?;
    Ok(Json(runner_details(&runner)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let runner = managed(&state, &caller, &seg, Use::Change).await?;
    let mut paused = params.bool("paused")?;
    // `active` is the older name (active = !paused).
    if paused.is_none() {
        paused = params.bool("active")?.map(|a| !a);
    }
    let update = RunnerUpdate {
        description: params.str("description")?,
        tag_list: params.string_list("tag_list")?,
        run_untagged: params.bool("run_untagged")?,
        paused,
        locked: params.bool("locked")?,
        access_level: access_level(&params)?,
        maximum_timeout: if params.contains("maximum_timeout") {
            Some(params.i64("maximum_timeout")?)
        } else {
            None
        },
    };
    let updated = state.store.update_runner(runner.id, &update).await?;
    Ok(Json(runner_details(&updated)))
}

pub(crate) async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let runner = managed(&state, &caller, &seg, Use::Change).await?;
    state.store.delete_runner(runner.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The runner an authentication token belongs to; any other token is 403, as GitLab answers.
pub async fn runner_for_token(state: &AppState, token: Option<&str>) -> ApiResult<Runner> {
    let token = token.ok_or_else(|| ApiError::MissingParam("token".into()))?;
    let digest = secrets::token_digest(token);
    let runner = state
        .store
        .runner_by_digest(&digest)
        .await?
        .ok_or_else(ApiError::forbidden)?;
    Ok(runner)
}

async fn verify(State(state): State<AppState>, params: Params) -> ApiResult<Json<Value>> {
    let token = params.str("token")?;
    let runner = runner_for_token(&state, token.as_deref()).await?;
    state
        .store
        .touch_runner(runner.id, Timestamp::now())
        .await?;
    Ok(Json(
        json!({"id": runner.id, "token": token, "token_expires_at": null}),
    ))
}

async fn delete_by_token(State(state): State<AppState>, params: Params) -> ApiResult<StatusCode> {
    let token = params.str("token")?;
    let runner = runner_for_token(&state, token.as_deref()).await?;
    state.store.delete_runner(runner.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
