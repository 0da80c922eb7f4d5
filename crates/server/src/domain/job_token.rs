//! `CI_JOB_TOKEN` as a credential: the `JOB-TOKEN` header or the `job_token` parameter
//! resolves to the running job it was issued to. A token stays attached to its job after the
//! job finishes (the digest is kept), so a late use gets GitLab's 401 `Job is not running`
//! rather than a generic 401. Tokens are looked up by digest only.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use pipewright_core::Status;
use pipewright_store::{Job, Project, User};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::permissions::ProjectAccess;
use crate::secrets;
use crate::state::AppState;

pub const JOB_TOKEN_PREFIX: &str = "glcbt-";

/// The job a request's job token belongs to, when one was sent.
#[derive(Debug, Clone)]
pub struct JobTokenCaller(pub Option<Job>);

impl FromRequestParts<AppState> for JobTokenCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = match parts.headers.get("job-token") {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| ApiError::Unauthorized)?
                    .trim()
                    .to_string(),
            ),
            None => Params::from_query(parts.uri.query())?.str("job_token")?,
        };
        match token {
            None => Ok(JobTokenCaller(None)),
            Some(token) => Ok(JobTokenCaller(Some(running_job(state, &token).await?))),
        }
    }
}

/// The running job `token` was issued to: 401 for an unknown token, 401 `Job is not running`
/// once its job has finished.
pub async fn running_job(state: &AppState, token: &str) -> ApiResult<Job> {
    let job = state
        .store
        .job_by_token(&secrets::token_digest(token))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if job.status != Status::Running {
        return Err(not_running());
    }
    Ok(job)
}

pub fn not_running() -> ApiError {
    ApiError::Custom(
        StatusCode::UNAUTHORIZED,
        json!({"message": "Job is not running"}),
    )
}

/// What a running job's token may do in `target`: act as the job's user, and — for another
/// project — only when `target`'s job token scope lets the job's project in. Anything else is
/// `404 Project Not Found`, so a token learns nothing about projects it cannot reach.
pub async fn job_access(
    state: &AppState,
    job: &Job,
    target: &Project,
) -> ApiResult<(Option<User>, ProjectAccess)> {
    if target.id != job.project_id
        && !state
            .store
            .job_token_allowed(target.id, job.project_id)
            .await?
    {
        return Err(ApiError::NotFound("Project"));
    }
    let user = match state.store.pipeline_by_id(job.pipeline_id).await? {
        Some(pipeline) => match pipeline.user_id {
            Some(id) => state.store.user(id).await?,
            None => None,
        },
        None => None,
    };
    let mut access = crate::domain::projects::user_access(state, user.as_ref(), target).await?;
    if target.id == job.project_id {
        // A job can always read its own project (an owner-less legacy trigger has no user).
        access.role = access
            .role
            .max(Some(pipewright_core::AccessLevel::Reporter));
        access.authenticated = true;
    }
    if !access.can_see() {
        return Err(ApiError::NotFound("Project"));
    }
    Ok((user, access))
}
