//! Health endpoints, as GitLab names them: `/-/health` (the process serves), `/-/liveness`
//! (it is not wedged), `/-/readiness` (its dependencies, the database, answer — within
//! `READINESS_TIMEOUT`, so a load balancer sees an outage as a prompt 503, not a hung probe).

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
    ]
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
