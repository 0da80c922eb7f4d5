//! What a running job's `CI_JOB_TOKEN` may do in a project: act as the job's user in its own
//! project, and in another only when that project's job token scope lets the job's project in
//! — the one check behind triggers, artifacts and git. (Which job a token belongs to is
//! `auth.rs`'s [`JobTokenCaller`](crate::auth::JobTokenCaller).)

use pipewright_store::{Job, Project, User};

use crate::error::{ApiError, ApiResult};
use crate::permissions::ProjectAccess;
use crate::state::AppState;

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
