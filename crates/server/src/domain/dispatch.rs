//! Moving pipelines on, for everyone outside the domain: create a pipeline, finish, cancel,
//! retry or play a job, cancel or retry a pipeline — each one step of
//! [`pipeline_creation`](crate::domain::pipeline_creation) or
//! [`job_processing`](crate::domain::job_processing), then [`start`] of what that step made
//! startable.
//!
//! Starting a bridge creates a pipeline or finishes a job, which can make more bridges
//! startable, upstream or downstream: [`start`] runs each bridge in its own task and starts what
//! it returns in turn. The steps below return plain values, so no module here calls back into
//! one that called it.

use pipewright_core::Status;
use pipewright_store::{Job, Pipeline};

use crate::domain::bridges;
use crate::domain::job_processing::{self, ToStart};
use crate::domain::pipeline_creation::{self, CreateError, CreatePipeline};
use crate::state::AppState;

/// Starts what a step made startable: each bridge, and the settling of a `strategy: depend`
/// bridge upstream, in its own task (a failure is logged: the bridge's own log says why it
/// failed).
pub fn start(state: &AppState, to_start: ToStart) {
    for bridge in to_start.bridges {
        let state = state.clone();
        tokio::spawn(async move {
            match bridges::start(&state, &bridge).await {
                Ok(next) => start(&state, next),
                Err(err) => {
                    tracing::warn!(job_id = bridge.id, error = %format!("{err:#}"), "starting a bridge failed");
                }
            }
        });
    }
    if let Some(downstream) = to_start.settled_downstream {
        let state = state.clone();
        tokio::spawn(async move {
            match bridges::mirror(&state, &downstream).await {
                Ok(next) => start(&state, next),
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "updating a bridge failed");
                }
            }
        });
    }
}

/// Creates a pipeline through the creation chain and starts its first stage's bridges.
pub async fn create_pipeline(
    state: &AppState,
    request: CreatePipeline,
) -> Result<Pipeline, CreateError> {
    let (pipeline, to_start) = pipeline_creation::create_pipeline(state, request).await?;
    start(state, to_start);
    Ok(pipeline)
}

/// Re-evaluates a pipeline (the maintenance loop's due delayed jobs).
pub async fn advance_pipeline(state: &AppState, pipeline_id: i64) -> anyhow::Result<()> {
    let to_start = job_processing::advance_pipeline(state, pipeline_id).await?;
    start(state, to_start);
    Ok(())
}

/// Ends a running job with the runner's (or the server's) verdict; false when it was not
/// running. See [`job_processing::finish_job`].
pub async fn finish_job(
    state: &AppState,
    job: &Job,
    status: Status,
    failure_reason: Option<&str>,
    exit_code: Option<i64>,
) -> anyhow::Result<bool> {
    let finished =
        job_processing::finish_job(state, job, status, failure_reason, exit_code).await?;
    if finished.is_some() {
        state.metrics.job_finished(status.as_str());
    }
    Ok(started(state, finished))
}

/// Cancels one job; false when it could not be canceled.
pub async fn cancel_job(state: &AppState, job: &Job) -> anyhow::Result<bool> {
    let canceled = job_processing::cancel_job(state, job).await?;
    if canceled.is_some() {
        state
            .metrics
            .job_finished(pipewright_core::Status::Canceled.as_str());
    }
    Ok(started(state, canceled))
}

/// Cancels every job of a pipeline that has not finished.
pub async fn cancel_pipeline(state: &AppState, pipeline_id: i64) -> anyhow::Result<()> {
    let to_start = job_processing::cancel_pipeline(state, pipeline_id).await?;
    start(state, to_start);
    Ok(())
}

/// Retries one finished job: its new attempt, or `None` when it could not be retried.
pub async fn retry_job(state: &AppState, job: &Job) -> anyhow::Result<Option<Job>> {
    let Some((retried, to_start)) = job_processing::retry_job(state, job).await? else {
        return Ok(None);
    };
    start(state, to_start);
    Ok(Some(retried))
}

/// GitLab's pipeline retry (see [`job_processing::retry_pipeline`]).
pub async fn retry_pipeline(state: &AppState, pipeline_id: i64) -> anyhow::Result<()> {
    let to_start = job_processing::retry_pipeline(state, pipeline_id).await?;
    start(state, to_start);
    Ok(())
}

/// Starts a manual job; false when it was not waiting to be played.
pub async fn play_job(state: &AppState, job: &Job) -> anyhow::Result<bool> {
    let played = job_processing::play_job(state, job).await?;
    Ok(started(state, played))
}

/// Starts what a step that may not have happened made startable; whether it happened.
fn started(state: &AppState, step: Option<ToStart>) -> bool {
    match step {
        Some(to_start) => {
            start(state, to_start);
            true
        }
        None => false,
    }
}
