//! Triggering pipelines: `POST /projects/:id/trigger/pipeline` and the webhook form
//! `POST /projects/:id/ref/:ref/trigger/pipeline`, as GitLab's `API::Ci::Triggers` answers them.
//!
//! The order of checks is GitLab's, because clients and users rely on which error wins:
//! parameter validation (`token`, `ref`, `variables` and `inputs` shapes) → `X-Gitlab-Event: Pipeline Hook`
//! (403, loop protection) → variable values → project (404) → token (404 for anything that is
//! not this project's live trigger token) → `Idempotency-Key` (a replay, or 422 for other
//! parameters; see [`super::idempotency`]) → the pipeline creation chain (400/422) → 201.
//! `dry_run=true` runs the same checks and chain up to the write and answers 200 with what the
//! pipeline would be (see [`respond_dry_run`]).
//! Authentication is the `token` parameter only; a `PRIVATE-TOKEN` header is ignored. Who runs
//! the pipeline and with which variables is decided in [`crate::domain::triggers`].

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::pipelines::{respond, respond_dry_run};
use crate::domain::{idempotency, triggers};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::params::Segments;
use crate::routes::{Access, Route};
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
    // CI/CD inputs for a `.gitlab-ci.yml` with a `spec:inputs` header (GitLab 17.x).
    let inputs = params.hash("inputs").unwrap_or_else(|_| {
        problems.push("inputs is invalid".to_string());
        Map::new()
    });
    if !problems.is_empty() {
        return Err(ApiError::ParamError(problems.join(", ")));
    }
    let (Some(ref_name), Some(token)) = (ref_name, token) else {
        return Err(ApiError::MissingParam("token".into()));
    };
    let key = super::idempotency::key(&headers)?;
    let dry_run = params.bool("dry_run")?.unwrap_or(false);
    // A pipeline event hook pointed at a trigger URL would loop forever.
    if headers
        .get("x-gitlab-event")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("Pipeline Hook"))
    {
        return Err(ApiError::forbidden());
    }
    let variables = trigger_variables(&params)?;
    // TRIGGER_PAYLOAD: every parameter but the token, with the project id as given, the
    // effective ref, and `variables` always present.
    params.set_path("ref", ref_name.clone());
    params.set_path("id", id.clone());
    let mut payload: Map<String, Value> = params.to_json_object();
    payload.remove("token");
    payload
        .entry("variables")
        .or_insert_with(|| Value::Object(Map::new()));
    // Idempotency-Key: the token is checked first, so a key is only ever claimed by a
    // credential that may trigger here (see `super::idempotency`).
    let authorized = triggers::authorize(&state, &id, &token)
        .await
        .inspect_err(|e| {
            if e.status() == StatusCode::NOT_FOUND {
                state.metrics.trigger_request("not_found");
            }
        })?;
    if dry_run {
        let payload = Value::Object(payload).to_string();
        let checked =
            triggers::dry_run(&state, authorized, ref_name, variables, inputs, payload).await?;
        return respond_dry_run(checked);
    }
    // The request's fingerprint matters only under an Idempotency-Key (hashing costs).
    let fingerprint = match key {
        Some(_) => idempotency::fingerprint(
            &ref_name,
            &variables
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), String::new()))
                .collect::<Vec<_>>(),
            params.get("inputs"),
        ),
        None => String::new(),
    };
    let (project_id, credential) = (authorized.project.id, authorized.credential.clone());
    let payload = Value::Object(payload).to_string();
    let create = create_and_respond(
        state.clone(),
        authorized,
        ref_name,
        variables,
        inputs,
        payload,
    );
    super::idempotency::guard(&state, key, project_id, credential, &fingerprint, create).await
}

/// The triggered pipeline (or its creation error) as the endpoint answers it.
pub(super) async fn create_and_respond(
    state: AppState,
    authorized: triggers::Authorized,
    ref_name: String,
    variables: Vec<(String, String)>,
    inputs: pipewright_config::Inputs,
    payload: String,
) -> ApiResult<Response> {
    let triggered =
        triggers::create(&state, authorized, ref_name, variables, inputs, payload).await?;
    state.metrics.trigger_request(match &triggered.result {
        Ok(_) => "created",
        Err(e) => e.outcome(),
    });
    respond(
        &state,
        &triggered.project,
        triggered.result,
        triggered.user.as_ref(),
    )
    .await
}
