//! GitLab API v4, by feature. Each module owns its routes and handlers: parameters in, a call
//! into the domain (`crate::domain`), GitLab's JSON out. This module gathers their routes.

pub mod artifacts;
pub mod ci_lint;
pub mod group_members;
pub mod groups;
pub mod hooks;
pub mod idempotency;
pub mod job_token_scope;
pub mod jobs;
pub mod members;
pub mod pipeline_schedules;
pub mod pipelines;
pub mod projects;
pub mod protected_branches;
pub mod repository;
pub mod runner_jobs;
pub mod runners;
pub mod tokens;
pub mod trigger_pipeline;
pub mod trigger_tokens;
pub mod trigger_webhook;
pub mod users;
pub mod variables;

use serde_json::json;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::{Access, Route};

/// Every API route, by feature.
pub fn routes(max_artifacts_bytes: usize) -> Vec<Route> {
    let mut table = vec![Route::get("/api/v4/version", version, Access::SignedIn)];
    table.extend(users::routes());
    table.extend(tokens::routes());
    table.extend(projects::routes());
    table.extend(members::routes());
    table.extend(groups::routes());
    table.extend(group_members::routes());
    table.extend(protected_branches::routes());
    table.extend(repository::routes());
    table.extend(trigger_tokens::routes());
    table.extend(pipelines::routes());
    table.extend(pipeline_schedules::routes());
    table.extend(trigger_pipeline::routes());
    table.extend(trigger_webhook::routes());
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
