//! Health endpoints, as GitLab names them: `/-/health` (the process serves), `/-/liveness`
//! (it is not wedged), `/-/readiness` (its dependencies, the database, answer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::routes::{Access, Route};
use crate::state::AppState;

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
    match state.store.ping().await {
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
