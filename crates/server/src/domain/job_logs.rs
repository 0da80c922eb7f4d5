//! A job's log as the server writes it: runners' chunks appended at their offset (masked
//! again on ingest, cut at the size limit), the lines the server writes itself (what a bridge
//! did, why the server failed a job), and erasing it. The bytes live in the store.

use bytes::Bytes;
use pipewright_store::{Job, TraceAppend};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Appends a plain line the server writes itself (what a bridge did) to a job's log.
pub async fn append_system_note(state: &AppState, job_id: i64, line: &str) {
    append_text(state, job_id, &format!("{line}\n")).await;
}

/// Appends a line the server writes itself (a system failure) to a job's log.
pub async fn append_system_line(state: &AppState, job_id: i64, line: &str) {
    append_text(state, job_id, &format!("\n\x1b[31;1m{line}\x1b[0;m\n")).await;
}

async fn append_text(state: &AppState, job_id: i64, text: &str) {
    let Ok(Some(job)) = state.store.job_by_id(job_id).await else {
        return;
    };
    let limit = state.config.max_trace_bytes;
    if let Err(err) = state
        .store
        .append_trace(
            job.id,
            job.trace_size.max(0) as u64,
            text.as_bytes(),
            limit,
            b"",
        )
        .await
    {
        tracing::warn!(job_id, error = %err, "could not append to a job's log");
    }
}

/// Removes a job's log (erase).
pub async fn erase(state: &AppState, job_id: i64) -> ApiResult<()> {
    Ok(state.store.erase_trace(job_id).await?)
}

/// `body` with every secret replaced by `[MASKED]` (left as is when none occurs).
pub fn mask<'a>(body: Bytes, secrets: impl Iterator<Item = &'a str>) -> Bytes {
    let present: Vec<&str> = secrets
        .filter(|s| !s.is_empty() && body.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect();
    if present.is_empty() {
        return body;
    }
    let mut text = String::from_utf8_lossy(&body).into_owned();
    for secret in present {
        text = text.replace(secret, "[MASKED]");
    }
    Bytes::from(text.into_bytes())
}

/// Appends a runner's chunk at `start` (its `Content-Range`) to a running job's log, and keeps
/// the job's lease. The chunk is masked again on ingest — a runner that does not mask must not
/// leak the job token or a masked variable — and the log is cut at `max_trace_bytes` with
/// GitLab's note.
pub async fn append_chunk(
    state: &AppState,
    job: &Job,
    start: u64,
    body: Bytes,
    job_token: Option<&str>,
) -> ApiResult<TraceAppend> {
    let variables = crate::domain::ci_variables::opened(state, job.project_id)
        .await
        .map_err(ApiError::Internal)?;
    let body = mask(
        body,
        variables.masked.iter().map(String::as_str).chain(job_token),
    );
    let limit = state.config.max_trace_bytes;
    let note = format!(
        "\nJob's log exceeded limit of {limit} bytes.\nJob execution will continue but no more output will be collected.\n"
    );
    let appended = state
        .store
        .append_trace(job.id, start, &body, limit, note.as_bytes())
        .await?;
    if let TraceAppend::Appended { .. } = appended {
        crate::domain::job_queue::renew_lease(state, job).await?;
    }
    Ok(appended)
}
