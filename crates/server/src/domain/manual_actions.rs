//! Changing jobs and pipelines by hand — cancel, retry, play, erase, keep artifacts — from the
//! API and the pages alike: whether the caller may, beyond the role `permissions.rs` asks for,
//! and the changes [`dispatch`](crate::domain::dispatch) does not make. A protected branch's
//! jobs and pipelines are changed only by those who may update the branch, and a bridge is
//! started by hand only by those who may update the branch its downstream pipeline runs on.
//! GitLab: app/policies/ci/build_policy.rb (`protected_ref` prevents every job write ability),
//! app/policies/ci/pipeline_policy.rb, app/policies/ci/bridge_policy.rb.

use pipewright_store::{Job, Pipeline, User};

use crate::domain::{bridges, job_spec, protected_refs};
use crate::error::{ApiError, ApiResult};
use crate::permissions::ProjectAccess;
use crate::state::AppState;

/// What can be done to a job by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    Cancel,
    Retry,
    Play,
    Erase,
    KeepArtifacts,
}

/// What can be done to a pipeline by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineAction {
    Cancel,
    Retry,
}

/// Whether `user`, with `access` in the project, may do `action` to `job` of `pipeline` as far
/// as refs and bridges are concerned (the role the action needs is the caller's to check).
pub async fn may_change_job(
    state: &AppState,
    access: &ProjectAccess,
    user: Option<&User>,
    pipeline: &Pipeline,
    job: &Job,
    action: JobAction,
) -> ApiResult<bool> {
    if !protected_refs::may_update(state, access, pipeline).await? {
        return Ok(false);
    }
    if matches!(action, JobAction::Retry | JobAction::Play) && job_spec::is_bridge(job) {
        return bridges::user_may_start(state, user, job)
            .await
            .map_err(ApiError::Internal);
    }
    Ok(true)
}

/// Whether `user`, with `access` in the project, may do `action` to `pipeline` as far as refs
/// and bridges are concerned: a retry starts its failed and canceled bridges again.
pub async fn may_change_pipeline(
    state: &AppState,
    access: &ProjectAccess,
    user: Option<&User>,
    pipeline: &Pipeline,
    action: PipelineAction,
) -> ApiResult<bool> {
    if !protected_refs::may_update(state, access, pipeline).await? {
        return Ok(false);
    }
    if action == PipelineAction::Retry {
        return bridges::user_may_restart_bridges(state, user, pipeline.id)
            .await
            .map_err(ApiError::Internal);
    }
    Ok(true)
}

/// Erases a finished job: its artifacts, its log, and the job marked erased. False when it has
/// not finished.
pub async fn erase_job(state: &AppState, job: &Job) -> ApiResult<bool> {
    if !job.status.is_complete() {
        return Ok(false);
    }
    crate::domain::artifacts::remove(state, job)
        .await
        .map_err(ApiError::Internal)?;
    crate::domain::job_logs::erase(state, job.id).await?;
    state.store.erase_job(job.id).await?;
    Ok(true)
}
