//! Triggering pipelines: `POST /projects/:id/trigger/pipeline` and the webhook form
//! `POST /projects/:id/ref/:ref/trigger/pipeline`, as GitLab's `API::Ci::Triggers` answers them.
//!
//! The order of checks is GitLab's, because clients and users rely on which error wins:
//! parameter validation (`token`, `ref`, `variables` shape) → `X-Gitlab-Event: Pipeline Hook`
//! (403, loop protection) → variable values → project (404) → token (404 for anything that is
//! not this project's live trigger token) → the pipeline creation chain (400/422) → 201.
//! Authentication is the `token` parameter only; a `PRIVATE-TOKEN` header is ignored.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use pipewright_core::{PipelineSource, Timestamp};
use pipewright_store::{Project, VariableType};
use serde_json::{Map, Value, json};

use super::pipelines::{base_error, respond};
use crate::domain::pipeline_creation::{CreatePipeline, PipelineUser};
use crate::domain::pipeline_variables::{
    MAX_TRIGGER_PAYLOAD_BYTES, PipelineVariable, TRIGGER_PAYLOAD,
};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::params::Segments;
use crate::routes::{Access, Route};
use crate::secrets;
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/api/v4/projects/{id}/trigger/pipeline",
            trigger,
            Access::TriggerToken,
        ),
        Route::post(
            "/api/v4/projects/{id}/ref/{*rest}",
            trigger_webhook,
            Access::TriggerToken,
        ),
    ]
}

async fn trigger(
    State(state): State<AppState>,
    headers: HeaderMap,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    run(state, headers, seg.get("id")?.to_string(), None, params).await
}

/// `…/ref/<ref>/trigger/pipeline`: the ref comes from the URL (encoded or with raw slashes)
/// and wins over any `ref` in the body (a push hook's `refs/heads/…`).
async fn trigger_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let rest = seg.get("rest")?;
    let ref_name = rest
        .strip_suffix("/trigger/pipeline")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::Custom(StatusCode::NOT_FOUND, json!({"error": "404 Not Found"}))
        })?;
    run(
        state,
        headers,
        seg.get("id")?.to_string(),
        Some(ref_name.to_string()),
        params,
    )
    .await
}

/// Grape's validation of `variables` (a hash) and the handler's check of its values.
fn trigger_variables(params: &Params) -> ApiResult<Vec<(String, String)>> {
    match params.get("variables") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(ApiError::Custom(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "variables needs to be a map of key-valued strings"}),
                )),
            })
            .collect(),
        // python-gitlab sends `"variables": {}`; an empty form value is an empty hash too.
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(_) => Err(ApiError::InvalidParam("variables".into())),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("")
}

async fn run(
    state: AppState,
    headers: HeaderMap,
    id: String,
    url_ref: Option<String>,
    mut params: Params,
) -> ApiResult<Response> {
    // Parameter validation comes first, as Grape's does, in declaration order.
    let mut problems = Vec::new();
    let ref_name = match url_ref {
        Some(r) => Some(r),
        None => match params.str("ref")? {
            None => {
                problems.push("ref is missing".to_string());
                None
            }
            Some(r) if r.trim().is_empty() => {
                problems.push("ref is empty".to_string());
                None
            }
            Some(r) => Some(r),
        },
    };
    let token = params.str("token")?;
    if token.is_none() {
        problems.push("token is missing".to_string());
    }
    let variables_shape_ok = matches!(
        params.get("variables"),
        None | Some(Value::Null) | Some(Value::Object(_))
    ) || matches!(params.get("variables"), Some(Value::String(s)) if s.is_empty());
    if !variables_shape_ok {
        problems.push("variables is invalid".to_string());
    }
    if !problems.is_empty() {
        return Err(ApiError::ParamError(problems.join(", ")));
    }
    let (Some(ref_name), Some(token)) = (ref_name, token) else {
        return Err(ApiError::MissingParam("token".into()));
    };
    // A pipeline event hook pointed at a trigger URL would loop forever.
    if headers
        .get("x-gitlab-event")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("Pipeline Hook"))
    {
        return Err(ApiError::forbidden());
    }
    let variables = trigger_variables(&params)?;
    let (project, run_as, origin) = if token.starts_with(crate::domain::job_token::JOB_TOKEN_PREFIX)
    {
        by_job_token(&state, &id, &token).await?
    } else {
        by_trigger_token(&state, &id, &token).await?
    };

    // TRIGGER_PAYLOAD: every parameter but the token, with the project id as given, the
    // effective ref, and `variables` always present.
    params.set_path("ref", ref_name.clone());
    params.set_path("id", id.clone());
    let mut payload: Map<String, Value> = params.to_json_object();
    payload.remove("token");
    payload
        .entry("variables")
        .or_insert_with(|| Value::Object(Map::new()));
    let payload = Value::Object(payload).to_string();
    if payload.len() > MAX_TRIGGER_PAYLOAD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "{TRIGGER_PAYLOAD} is larger than {} bytes",
            MAX_TRIGGER_PAYLOAD_BYTES
        )));
    }
    let mut inputs: Vec<PipelineVariable> = Vec::with_capacity(variables.len() + 1);
    for (key, value) in variables {
        if key == TRIGGER_PAYLOAD {
            return Err(base_error(&format!(
                "Duplicate variable name: {TRIGGER_PAYLOAD}"
            )));
        }
        if key.is_empty() || key.len() > 255 || !crate::validate::variable_key_chars(&key) {
            return Err(base_error(
                "Failed to build pipeline variables: variable keys can contain only letters, digits and '_' (at most 255)",
            ));
        }
        inputs.push(PipelineVariable {
            key,
            value,
            variable_type: VariableType::EnvVar,
        });
    }
    inputs.push(PipelineVariable {
        key: TRIGGER_PAYLOAD.into(),
        value: payload,
        variable_type: VariableType::File,
    });

    let user = match &run_as {
        PipelineUser::User { user, .. } => Some(user.clone()),
        PipelineUser::Nobody => None,
    };
    let (source, trigger, upstream) = match origin {
        Origin::Trigger(trigger) => (PipelineSource::Trigger, Some(trigger), None),
        Origin::Job(upstream) => (PipelineSource::Pipeline, None, Some(upstream)),
    };
    let request = CreatePipeline {
        project: project.clone(),
        ref_name,
        source,
        run_as,
        trigger,
        variables: inputs,
        upstream,
        before_sha: None,
        config_path: None,
        at_sha: None,
        ignore_skip_ci: true,
    };
    respond(
        &state,
        &project,
        crate::domain::dispatch::create_pipeline(&state, request).await,
        user.as_ref(),
    )
    .await
}

/// Where a triggered pipeline comes from: a trigger token, or a running job's `CI_JOB_TOKEN`
/// (a multi-project pipeline, linked to the job that started it).
enum Origin {
    Trigger(pipewright_store::Trigger),
    Job(pipewright_store::Upstream),
}

async fn by_trigger_token(
    state: &AppState,
    id: &str,
    token: &str,
) -> ApiResult<(Project, PipelineUser, Origin)> {
    // One statement finds the token with its project, owner and the owner's role. Only this
    // project's live trigger token is accepted; an unknown project, an unknown, revoked or
    // expired token and another project's token are the same 404, so the answer reveals
    // neither the project nor the token.
    let context = state
        .store
        .trigger_run_context(&secrets::token_digest(token))
        .await?
        .ok_or_else(not_found)?;
    if !names_project(&context.project, id)
        || context
            .trigger
            .expires_at
            .is_some_and(|t| t <= Timestamp::now())
    {
        return Err(not_found());
    }
    let pipewright_store::TriggerContext {
        trigger,
        project,
        owner,
        owner_role,
    } = context;
    let run_as = match (owner, trigger.legacy) {
        (Some(user), _) => PipelineUser::User {
            user,
            role: owner_role,
        },
        (None, true) => PipelineUser::Nobody,
        // An owner that was deleted leaves a trigger that may no longer run.
        (None, false) => {
            return Err(base_error(
                "Insufficient permissions to create a new pipeline",
            ));
        }
    };
    Ok((project, run_as, Origin::Trigger(trigger)))
}

/// `token=$CI_JOB_TOKEN`: the job must be running (401 `Job is not running`), and the target
/// project must let the job's project in and be visible to the job's user (404 otherwise).
/// The pipeline runs as the job's user.
async fn by_job_token(
    state: &AppState,
    id: &str,
    token: &str,
) -> ApiResult<(Project, PipelineUser, Origin)> {
    let job = crate::domain::job_token::running_job(state, token).await?;
    let project = crate::domain::projects::lookup(state, id)
        .await?
        .ok_or(ApiError::NotFound("Project"))?;
    let (user, access) = crate::domain::job_token::job_access(state, &job, &project).await?;
    let Some(user) = user else {
        return Err(ApiError::NotFound("Project"));
    };
    let upstream = pipewright_store::Upstream {
        job_id: job.id,
        pipeline_id: job.pipeline_id,
        project_id: job.project_id,
    };
    Ok((
        project,
        PipelineUser::User {
            user,
            role: access.role(),
        },
        Origin::Job(upstream),
    ))
}

/// Whether the URL's `:id` (a number or `namespace/path`) names this project.
fn names_project(project: &Project, id: &str) -> bool {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        return id.parse::<i64>().is_ok_and(|n| n == project.id);
    }
    id.eq_ignore_ascii_case(&project.full_path())
}
