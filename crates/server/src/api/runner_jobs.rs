//! The runner side of GitLab's runner API: `POST /jobs/request` (claim a job, long-polling),
//! `PUT /jobs/:id` (state), `PATCH /jobs/:id/trace` (append to the log), and reading a job's
//! log back (`GET /projects/:id/jobs/:job_id/trace`).
//!
//! What goes over the wire is `pipewright_runner_proto`'s types (the runner speaks the same
//! ones), read from the request's merged parameters here; which job a runner gets and what its
//! payload holds is decided in `domain::job_queue` and `domain::job_payload`, what its log
//! becomes in `domain::job_logs`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pipewright_core::Status;
use pipewright_runner_proto as proto;
use pipewright_store::{Job, TraceAppend};
use serde_json::json;

use super::runners::runner_for_token;
use crate::auth::Caller;
use crate::domain::job_payload::well_formed;
use crate::domain::projects::authorize_project;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::secrets;
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        Route::post("/api/v4/jobs/request", request_job, RunnerToken),
        Route::put("/api/v4/jobs/{id}", update_job, OwnJobToken),
        Route::patch("/api/v4/jobs/{id}/trace", append_trace, OwnJobToken),
        Route::get(
            "/api/v4/projects/{id}/jobs/{job_id}/trace",
            read_trace,
            SignedInToRead,
        ),
    ]
}

/// `POST /jobs/request`'s body as the protocol's type, from whichever of query, form or JSON
/// carried it. Only the token decides anything; `info` and `session` are kept when they are
/// well-formed and ignored otherwise, as runners differ in what they send.
fn job_request(params: &Params) -> ApiResult<proto::JobRequest> {
    let token = params.str("token")?;
    let token = token.ok_or_else(|| ApiError::MissingParam("token".into()))?;
    Ok(proto::JobRequest {
        token: token.into(),
        system_id: params.str("system_id").ok().flatten(),
        last_update: params.str("last_update").ok().flatten(),
        info: well_formed(params.get("info")),
        session: well_formed(params.get("session")),
    })
}

async fn request_job(State(state): State<AppState>, params: Params) -> ApiResult<Response> {
    let request = job_request(&params)?;
    let runner = runner_for_token(&state, Some(request.token.expose())).await?;
    match crate::domain::job_queue::next_job(&state, &runner).await? {
        crate::domain::job_queue::Offer::Job(payload) => {
            Ok((StatusCode::CREATED, Json(*payload)).into_response())
        }
        crate::domain::job_queue::Offer::Paused => Ok(StatusCode::NO_CONTENT.into_response()),
        crate::domain::job_queue::Offer::NoJob => {
            let mut res = StatusCode::NO_CONTENT.into_response();
            res.headers_mut()
                .insert(proto::LAST_UPDATE, HeaderValue::from_static("0"));
            Ok(res)
        }
    }
}

/// The running job a job token belongs to, checked against the URL's job id.
async fn running_job(state: &AppState, id: i64, token: Option<&str>) -> ApiResult<Job> {
    let token = token.ok_or(ApiError::forbidden())?;
    let job = state
        .store
        .job_by_token(&secrets::token_digest(token))
        .await?
        .ok_or_else(ApiError::forbidden)?;
    if job.id != id {
        return Err(ApiError::forbidden());
    }
    Ok(job)
}

fn job_status_header(response: &mut Response, status: Status) {
    if let Ok(v) = HeaderValue::from_str(status.as_str()) {
        response.headers_mut().insert(proto::JOB_STATUS, v);
    }
}

/// `PUT /jobs/:id`'s body as the protocol's type, from whichever of query, form or JSON carried
/// it (a form's `exit_code=2` is a number too). A missing token is an empty one, which no job
/// has. Parameters are checked before the job is looked at, as Grape checks them.
fn job_update(params: &Params) -> ApiResult<proto::JobUpdate> {
    Ok(proto::JobUpdate {
        token: params.str("token")?.unwrap_or_default().into(),
        state: params.str("state")?.map(|s| proto::JobState::parse(&s)),
        failure_reason: params
            .str("failure_reason")?
            .map(|s| proto::FailureReason::parse(&s)),
        exit_code: params.i64("exit_code")?,
        checksum: params.str("checksum").ok().flatten(),
        output: well_formed(params.get("output")),
        info: well_formed(params.get("info")),
    })
}

async fn update_job(
    State(state): State<AppState>,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let id = seg.id("id", "Job")?;
    let update = job_update(&params)?;
    let token = Some(update.token.expose()).filter(|t| !t.is_empty());
    let job = running_job(&state, id, token).await?;
    if job.status != Status::Running {
        let mut res = (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "403 Forbidden  - Job is not running"})),
        )
            .into_response();
        job_status_header(&mut res, job.status);
        return Ok(res);
    }
    let final_status = match &update.state {
        None | Some(proto::JobState::Running) => None,
        Some(proto::JobState::Success) => Some(Status::Success),
        Some(proto::JobState::Failed) => Some(Status::Failed),
        Some(_) => {
            return Err(ApiError::ParamError(
                "state does not have a valid value".into(),
            ));
        }
    };
    let mut status = job.status;
    match final_status {
        None => crate::domain::job_queue::renew_lease(&state, &job).await?,
        Some(s) => {
            // A failure without a reason is an unknown one. GitLab:
            // `build.drop!(params[:failure_reason] || :unknown_failure)` in
            // `app/services/ci/update_build_state_service.rb`.
            let reason = (s == Status::Failed).then(|| {
                update
                    .failure_reason
                    .as_ref()
                    .map_or("unknown_failure", proto::FailureReason::as_str)
            });
            if crate::domain::dispatch::finish_job(&state, &job, s, reason, update.exit_code)
                .await
                .map_err(ApiError::Internal)?
            {
                status = s;
            }
        }
    }
    let mut res = (StatusCode::OK, Json(json!({}))).into_response();
    job_status_header(&mut res, status);
    Ok(res)
}

/// What a log chunk's `Content-Range` says.
#[derive(Debug, PartialEq, Eq)]
enum ChunkRange {
    /// No header: GitLab's `400 Missing header Content-Range`.
    Missing,
    /// Not `start-end` in decimal digits (`bytes=abc`, `-5-10`, an offset past `u64`):
    /// nothing can be appended where it says.
    Invalid,
    /// The chunk's first byte's offset in the log.
    Start(u64),
}

/// `Content-Range: start-end` (inclusive, no `bytes ` prefix, as runners send it; a `bytes `
/// prefix and a `/total` suffix are tolerated). Only `start` is used: like GitLab, the end is
/// computed from the body (runners have sent it off by one).
// GitLab: lib/api/ci/runner.rb `patch '/:id/trace'` and
// app/services/ci/append_build_trace_service.rb. GitLab reads a garbage start as 0 (Ruby's
// `to_i`) and then refuses it with 416 unless the log is empty; Pipewright refuses it always.
fn content_range(headers: &HeaderMap) -> ChunkRange {
    let Some(value) = headers.get(proto::CONTENT_RANGE) else {
        return ChunkRange::Missing;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parsed = value.to_str().ok().and_then(|value| {
        let value = value.trim();
        let value = value.strip_prefix("bytes ").unwrap_or(value);
        let (start, end) = value.split_once('-')?;
        let end = end.split_once('/').map_or(end, |(end, _)| end);
        if !digits(start) || !digits(end) {
            return None;
        }
        start.parse::<u64>().ok()
    });
    parsed.map_or(ChunkRange::Invalid, ChunkRange::Start)
}

/// GitLab's 416 for a chunk that does not start where the log ends, with the log's range.
fn range_not_satisfiable(size: u64) -> Response {
    let mut res = (
        StatusCode::RANGE_NOT_SATISFIABLE,
        Json(json!({"message": "416 Range Not Satisfiable"})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("0-{size}")) {
        res.headers_mut().insert("range", v);
    }
    res
}

async fn append_trace(
    State(state): State<AppState>,
    seg: Segments,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let id = seg.id("id", "Job")?;
    let token = headers
        .get("job-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let job = running_job(&state, id, token.as_deref()).await?;
    if job.status != Status::Running {
        let mut res = (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "403 Forbidden  - Job is not running"})),
        )
            .into_response();
        job_status_header(&mut res, job.status);
        return Ok(res);
    }
    let start = match content_range(&headers) {
        ChunkRange::Start(start) => start,
        ChunkRange::Missing => {
            return Err(ApiError::Custom(
                StatusCode::BAD_REQUEST,
                json!({"message": "400 Missing header Content-Range"}),
            ));
        }
        ChunkRange::Invalid => return Ok(range_not_satisfiable(job.trace_size.max(0) as u64)),
    };
    let size =
        match crate::domain::job_logs::append_chunk(&state, &job, start, body, token.as_deref())
            .await?
        {
            TraceAppend::Appended { size } => size,
            TraceAppend::Mismatch { size } => return Ok(range_not_satisfiable(size)),
        };
    let mut res = StatusCode::ACCEPTED.into_response();
    let h = res.headers_mut();
    h.insert(
        "x-gitlab-trace-update-interval",
        HeaderValue::from_static("3"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("0-{size}")) {
        h.insert("range", v);
    }
    job_status_header(&mut res, job.status);
    Ok(res)
}

async fn read_trace(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    // GitLab's jobs API is for signed-in callers only (lib/api/ci/jobs.rb).
    caller.required()?;
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let id = seg.id("job_id", "")?;
    let job = state
        .store
        .job(project.id, id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    let text = state.store.job_trace(job.id).await?;
    let mut res = (StatusCode::OK, text).into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &[u8]) -> ChunkRange {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert("content-range", v);
        }
        content_range(&headers)
    }

    #[test]
    fn content_ranges_are_decimal_start_end() {
        assert_eq!(content_range(&HeaderMap::new()), ChunkRange::Missing);
        assert_eq!(range(b"0-9"), ChunkRange::Start(0));
        assert_eq!(range(b"10-19"), ChunkRange::Start(10));
        assert_eq!(range(b"bytes 10-19/20"), ChunkRange::Start(10));
        for garbage in [
            &b"bytes=abc"[..],
            b"-5-10",
            b"abc",
            b"5",
            b"5-",
            b"-",
            b"+5-10",
            b"12345678901234567890123-12345678901234567890124",
            "５-６".as_bytes(),
            b"\xff-\xfe",
        ] {
            assert_eq!(range(garbage), ChunkRange::Invalid, "{garbage:?}");
        }
    }
}
