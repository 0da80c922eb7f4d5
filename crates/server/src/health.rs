//! Health and monitoring endpoints, as GitLab names them: `/-/health` (the process serves),
//! `/-/liveness` (it is not wedged), `/-/readiness` (its dependencies, the database, answer —
//! within `READINESS_TIMEOUT`, so a load balancer sees an outage as a prompt 503, not a hung
//! probe), and `/-/metrics` (Prometheus, for the monitoring allowlist only; `metrics.rs`),
//! with the middleware that counts every request by its route template.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::routes::{Access, Route};
use crate::state::AppState;

/// How long readiness waits for the database's answer.
const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/-/health", || async { "GitLab OK" }, Access::Open),
        Route::get(
            "/-/liveness",
            || async { Json(json!({"status": "ok"})) },
            Access::Open,
        ),
        Route::get("/-/readiness", readiness, Access::Open),
        Route::get("/-/metrics", scrape, Access::Open),
    ]
}

/// Counts a request under its route's template (`MatchedPath`, set by routing; none for the
/// fallback), with its status and latency.
pub async fn count_request(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    state.metrics.http_request(
        route.as_deref(),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /-/metrics`: the metrics as OpenMetrics text, to an allowlisted address; a 404 to
/// anyone else (GitLab: app/controllers/concerns/requires_allowlisted_monitoring_client.rb).
async fn scrape(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // The client's address (behind a trusted proxy, the forwarded one; absent when served
    // without connection info: refused).
    let client = crate::client_address::client_ip(req.extensions());
    let allowed = client.is_some_and(|ip| state.config.monitoring_allowlist.allows(ip));
    if !allowed {
        return (StatusCode::NOT_FOUND, "404 Not Found").into_response();
    }
    let snapshot = store_snapshot(&state).await;
    match state.metrics.encode(&snapshot) {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The store's gauges, each within `READINESS_TIMEOUT`: a slow database leaves them out of
/// the scrape rather than hanging it.
async fn store_snapshot(state: &AppState) -> crate::metrics::Snapshot {
    let gauges = tokio::time::timeout(READINESS_TIMEOUT, state.store.gauges()).await;
    let gauges = match gauges {
        Ok(Ok(g)) => Some(g),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "metrics: reading the store's gauges failed");
            None
        }
        Err(_) => None,
    };
    crate::metrics::Snapshot {
        pending_jobs: gauges.as_ref().map(|g| g.pending_jobs),
        queued_deliveries: gauges.as_ref().map(|g| g.queued_deliveries),
        pool: Some(state.store.pool_status()),
    }
}

async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let ping = tokio::time::timeout(READINESS_TIMEOUT, state.store.ping()).await;
    match ping
        .map_err(|_| "no answer in time".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(()) => (
            StatusCode::OK,
            Json(
                json!({"status": "ok", "master_check": [{"status": "ok"}], "db_check": [{"status": "ok"}]}),
            ),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"status": "failed", "db_check": [{"status": "failed", "message": "database unavailable"}]}),
                ),
            )
        }
    }
}
