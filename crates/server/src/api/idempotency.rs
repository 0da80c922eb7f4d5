//! The HTTP side of `Idempotency-Key` (issue 14 §4) for the endpoints that create pipelines
//! (`…/trigger/pipeline` in all its forms, `POST /projects/:id/pipeline`): reading the header,
//! replaying a recorded answer with `Idempotent-Replayed: true`, and recording the answer of a
//! request that created. The decisions (claims, fingerprints, waiting) are
//! [`crate::domain::idempotency`]'s.
//!
//! What is recorded: a 2xx (a pipeline was created) and a 422 (a pipeline that failed on its
//! config was saved). Any other answer created nothing and releases the key, so the client may
//! retry with it once the cause is fixed.

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use pipewright_store::IdempotencyScope;

use crate::domain::idempotency::{self, Begin, Claim};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// The largest answer recorded (a pipeline's JSON is a few kilobytes).
const MAX_RECORDED_BYTES: usize = 256 * 1024;

/// The request's `Idempotency-Key`, if any (400 when it is empty, too long or not printable).
pub fn key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be given once".into(),
        ));
    }
    idempotency::validate_key(value.as_bytes()).map(Some)
}

/// Runs `create` once per key: without a key it just runs; with one, the first request runs it
/// and records its answer, a repeat replays that answer. `create` runs in its own task, so a
/// client that hangs up mid-way does not leave the key claimed by a request that was dropped.
pub async fn guard<F>(
    state: &AppState,
    key: Option<String>,
    project_id: i64,
    credential: String,
    fingerprint: &str,
    create: F,
) -> ApiResult<Response>
where
    F: Future<Output = ApiResult<Response>> + Send + 'static,
{
    let Some(key) = key else {
        return create.await;
    };
    let scope = IdempotencyScope {
        project_id,
        credential,
        key,
    };
    let claim = match idempotency::begin(state, scope, fingerprint).await? {
        Begin::Replay { status, body } => return Ok(replayed(status, body)),
        Begin::Create(claim) => claim,
    };
    let state = state.clone();
    tokio::spawn(async move {
        let result = create.await;
        settle(&state, &claim, result).await
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
}

/// Records `result` under the claim (or releases it) and hands it back.
async fn settle(
    state: &AppState,
    claim: &Claim,
    result: ApiResult<Response>,
) -> ApiResult<Response> {
    let outcome = match result {
        Ok(response) if response.status().is_success() => {
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_RECORDED_BYTES)
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading a response: {e}")))?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let recorded = idempotency::finish(state, claim, parts.status.as_u16(), &text).await;
            (recorded, Ok(Response::from_parts(parts, Body::from(bytes))))
        }
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let recorded =
                idempotency::finish(state, claim, e.status().as_u16(), &e.body().to_string()).await;
            (recorded, Err(e))
        }
        other => (idempotency::release(state, claim).await, other),
    };
    if let (Err(err), _) = &outcome {
        // The answer stands; the key stays claimed until it is taken over as abandoned.
        tracing::warn!(error = %err, "recording an idempotency key failed");
    }
    outcome.1
}

/// A recorded answer, marked as a replay.
fn replayed(status: u16, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
