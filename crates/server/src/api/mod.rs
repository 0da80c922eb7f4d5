//! GitLab API v4, by feature. Each module owns its routes and handlers; shared lookups (path
//! segments, project resolution) live here.

pub mod artifacts;
pub mod ci_lint;
pub mod hooks;
pub mod job_token_scope;
pub mod jobs;
pub mod members;
pub mod pipelines;
pub mod projects;
pub mod protected_branches;
pub mod repository;
pub mod runner_jobs;
pub mod runners;
pub mod tokens;
pub mod trigger_pipeline;
pub mod trigger_tokens;
pub mod users;
pub mod variables;

use std::collections::HashMap;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::{Access, Route};
use crate::state::AppState;

/// Every API route, by feature.
pub fn routes(max_artifacts_bytes: usize) -> Vec<Route> {
    let mut table = vec![Route::get("/api/v4/version", version, Access::SignedIn)];
    table.extend(users::routes());
    table.extend(tokens::routes());
    table.extend(projects::routes());
    table.extend(members::routes());
    table.extend(protected_branches::routes());
    table.extend(repository::routes());
    table.extend(trigger_tokens::routes());
    table.extend(pipelines::routes());
    table.extend(trigger_pipeline::routes());
    table.extend(ci_lint::routes());
    table.extend(runners::routes());
    table.extend(runner_jobs::routes());
    table.extend(jobs::routes());
    table.extend(job_token_scope::routes());
    table.extend(variables::routes());
    table.extend(hooks::routes());
    table.extend(artifacts::routes(max_artifacts_bytes));
    table
}

/// An API path no route matched: Grape's `{"error":"404 Not Found"}`.
pub fn no_route() -> ApiError {
    ApiError::Custom(
        axum::http::StatusCode::NOT_FOUND,
        json!({"error": "404 Not Found"}),
    )
}

/// `GET /version`: for signed-in callers only, as in GitLab (`before { authenticate! }`,
/// GitLab: lib/api/version.rb), so a stranger cannot read which release to attack.
async fn version(caller: Caller) -> ApiResult<axum::Json<serde_json::Value>> {
    caller.required()?;
    Ok(axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("PIPEWRIGHT_REVISION").unwrap_or("unknown"),
        "kas": {"enabled": false, "externalUrl": null, "version": null},
        "enterprise": false,
    })))
}

/// Path parameters, percent-decoded. A malformed one (invalid UTF-8, a NUL byte) is GitLab's
/// plain-text 400; the `malformed` layer normally refuses it before any handler runs.
pub struct Segments(HashMap<String, String>);

impl Segments {
    /// Path parameters for calling a handler from elsewhere (the web UI reuses the API's
    /// operations, so both apply the same checks).
    pub fn from_pairs(pairs: &[(&str, String)]) -> Self {
        Segments(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> ApiResult<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::MissingParam(name.to_string()))
    }

    /// A numeric id segment; anything else is a 404 (GitLab's routes only match digits).
    pub fn id(&self, name: &str, what: &'static str) -> ApiResult<i64> {
        self.get(name)?
            .parse::<i64>()
            .map_err(|_| ApiError::NotFound(what))
    }
}

impl FromRequestParts<AppState> for Segments {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| match e {
                axum::extract::rejection::RawPathParamsRejection::InvalidUtf8InPathParam(_) => {
                    ApiError::MalformedRequest
                }
                _ => ApiError::NotFound(""),
            })?;
        let mut map = HashMap::new();
        for (key, value) in &raw {
            // axum has percent-decoded the value once already (decoding again would turn a
            // file named `100%25.txt` into `100%.txt`).
            if value.contains('\0') {
                return Err(ApiError::MalformedRequest);
            }
            map.insert(key.to_string(), value.to_string());
        }
        Ok(Segments(map))
    }
}
