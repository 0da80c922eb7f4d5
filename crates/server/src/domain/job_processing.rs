//! Moving pipelines forward: after a job finishes (or a pipeline is created), decide which
//! waiting jobs may start, which are skipped, and what the pipeline's status is now — GitLab's
//! stage ordering and `needs`, with `when` and `allow_failure`, derived through
//! [`pipewright_core::status::composite`].
//!
//! Nothing here starts a bridge or settles one: each step returns what it made startable
//! ([`ToStart`]), and [`crate::domain::dispatch`] starts it (bridges create pipelines, which
//! advance in turn). So this module never calls back into `bridges` and needs no boxed futures.
//! The steps are visible to the domain only: from `api/`, `web/` and the maintenance loop they
//! are reached through `dispatch`, so nothing a step made startable is forgotten.

use pipewright_config::PlannedJob;
use pipewright_core::status::composite;
use pipewright_core::{Status, Timestamp};
use pipewright_store::{Job, Pipeline};

use crate::state::AppState;

/// What a step of pipeline processing made startable, for [`crate::domain::dispatch`] to start.
/// (Jobs for runners need nothing more: runners are woken when a step leaves jobs pending.)
#[must_use = "bridges and upstream bridges wait until dispatch::start starts them"]
#[derive(Debug, Default)]
pub struct ToStart {
    /// Pending bridges (`trigger:` jobs): the server runs them, not runners. Starting one twice
    /// is harmless (the first start moves it out of `pending`).
    pub bridges: Vec<Job>,
    /// A finished downstream pipeline whose `strategy: depend` bridge upstream it now settles.
    pub settled_downstream: Option<Pipeline>,
}

impl ToStart {
    /// The pending bridges among `jobs`, wherever they stand — the first stage of a new
    /// pipeline or one a finished stage unblocked.
    pub fn bridges_among(jobs: &[Job]) -> ToStart {
        ToStart {
            bridges: jobs
                .iter()
                .filter(|j| j.status == Status::Pending && crate::domain::job_spec::is_bridge(j))
                .cloned()
                .collect(),
            settled_downstream: None,
        }
    }

    /// Both steps' startable work.
    pub fn and(mut self, other: ToStart) -> ToStart {
        self.bridges.extend(other.bridges);
        self.settled_downstream = self.settled_downstream.or(other.settled_downstream);
        self
    }
}

/// What a waiting job becomes once what it waits on is known (the rule lives in core, shared
/// with the config engine's planning).
fn decide(job: &Job, prior: Option<Status>) -> Option<Status> {
    pipewright_core::status::next_status(job.when.as_str(), prior)
}

/// Re-evaluates a pipeline's waiting jobs and its status, and returns what that made
/// startable: its pending bridges, and the pipeline itself when it finished as a downstream
/// pipeline (its bridge upstream may mirror it).
pub(in crate::domain) async fn advance_pipeline(
    state: &AppState,
    pipeline_id: i64,
) -> anyhow::Result<ToStart> {
    // Deciding a stage can unblock the next one (skips complete at once), so repeat until stable.
    for _ in 0..64 {
        let jobs = state.store.pipeline_all_jobs(pipeline_id).await?;
        let mut changes: Vec<(i64, Status)> = Vec::new();
        for job in jobs.iter().filter(|j| j.status == Status::Created) {
            let needs = crate::domain::job_spec::job_needs(job);
            let prior = match needs {
                Some(needs) => {
                    let needed = jobs
                        .iter()
                        .filter(|j| needs.contains(&j.name))
                        .map(|j| (j.status, j.allow_failure));
                    composite(needed, true).map(|c| c.status)
                }
                None => {
                    let earlier = jobs
                        .iter()
                        .filter(|j| j.stage_idx < job.stage_idx)
                        .map(|j| (j.status, j.allow_failure));
                    composite(earlier, false).map(|c| c.status)
                }
            };
            if let Some(status) = decide(job, prior) {
                if status == Status::Scheduled {
                    schedule(state, job).await?;
                }
                changes.push((job.id, status));
            }
        }
        if changes.is_empty() {
            let status = composite(jobs.iter().map(|j| (j.status, j.allow_failure)), false)
                .map(|c| c.status)
                .unwrap_or(Status::Skipped);
            // A pipeline with jobs waiting for a runner is `pending`, as GitLab shows it.
            set_pipeline_status(state, pipeline_id, status).await?;
            // Several jobs of one pipeline finish at once (bridges, parallel jobs, other
            // replicas): a status computed from jobs that changed before it was written is
            // stale and may have overwritten a fresher one. Whoever writes last looks again, so
            // the last write always matches the jobs as they ended.
            if !same_statuses(&jobs, &state.store.pipeline_all_jobs(pipeline_id).await?) {
                continue;
            }
            let mut to_start = ToStart::bridges_among(&jobs);
            // A finished downstream pipeline settles a `strategy: depend` bridge upstream.
            if status.is_complete()
                && let Some(pipeline) = state.store.pipeline_by_id(pipeline_id).await?
                && pipeline.upstream.is_some()
            {
                to_start.settled_downstream = Some(pipeline);
            }
            if jobs.iter().any(|j| j.status == Status::Pending) {
                state.job_available.notify_waiters();
                // Runners long-polling other servers on the same database hear it too.
                if let Err(err) = state.store.announce_jobs().await {
                    tracing::warn!(error = %err, "announcing pending jobs failed");
                }
            }
            return Ok(to_start);
        }
        state.store.set_job_statuses(&changes).await?;
    }
    Ok(ToStart::default())
}

/// Whether two reads of a pipeline's jobs saw the same statuses.
fn same_statuses(before: &[Job], after: &[Job]) -> bool {
    before.len() == after.len()
        && before
            .iter()
            .zip(after)
            .all(|(a, b)| a.id == b.id && a.status == b.status)
}

/// Sets a pipeline's status when it differs. The check is a read, so the common no-change
/// case costs the single job writer nothing.
pub async fn set_pipeline_status(
    state: &AppState,
    pipeline_id: i64,
    status: Status,
) -> anyhow::Result<bool> {
    if state
        .store
        .pipeline_by_id(pipeline_id)
        .await?
        .is_some_and(|p| p.status == status)
    {
        return Ok(false);
    }
    let changed = state.store.set_pipeline_status(pipeline_id, status).await?;
    if changed {
        crate::domain::webhooks::pipeline_changed(state, pipeline_id);
    }
    Ok(changed)
}

/// Sets when a `delayed` job becomes pending: its `start_in` from now.
pub async fn schedule(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let delay = planned(job)
        .and_then(|spec| spec.start_in)
        .and_then(|s| pipewright_config::duration_seconds(&s))
        .unwrap_or(0);
    let at = Timestamp(Timestamp::now().millis() + delay as i64 * 1000);
    state.store.schedule_job(job.id, at).await?;
    Ok(())
}

fn planned(job: &Job) -> Option<PlannedJob> {
    serde_json::from_str(&job.spec).ok()
}

/// Statuses a job can be canceled from.
pub const CANCELABLE: &[Status] = &[
    Status::Created,
    Status::WaitingForResource,
    Status::Preparing,
    Status::Pending,
    Status::Running,
    Status::Manual,
    Status::Scheduled,
];

/// Ends a running job with the runner's (or the server's) verdict, retries it when its
/// `retry` allows, and moves the pipeline on. `None` when the job was not running.
pub(in crate::domain) async fn finish_job(
    state: &AppState,
    job: &Job,
    status: Status,
    failure_reason: Option<&str>,
    exit_code: Option<i64>,
) -> anyhow::Result<Option<ToStart>> {
    if !state
        .store
        .finish_job(job.id, status, failure_reason, exit_code)
        .await?
    {
        return Ok(None);
    }
    crate::domain::webhooks::job_changed(state, job);
    if status == Status::Failed {
        auto_retry(state, job, failure_reason.unwrap_or("unknown_failure")).await?;
    }
    Ok(Some(advance_pipeline(state, job.pipeline_id).await?))
}

/// GitLab's `retry: {max, when}`: a failed job runs again, up to `max` more times, when its
/// failure reason is listed (or `always`).
async fn auto_retry(state: &AppState, job: &Job, reason: &str) -> anyhow::Result<()> {
    let Some(retry) = planned(job).and_then(|spec| spec.retry) else {
        return Ok(());
    };
    let matches = retry.when.iter().any(|w| {
        w == "always"
            || w == reason
            || (w == "stuck_or_timeout_failure" && reason == "job_execution_timeout")
    });
    if !matches {
        return Ok(());
    }
    let attempts = state.store.job_attempts(job.pipeline_id, &job.name).await?;
    if attempts <= i64::from(retry.max) {
        state.store.retry_job(job.id, Status::Pending).await?;
    }
    Ok(())
}

/// Cancels one job; a running one is told through `Job-Status` on its runner's next update.
/// `None` when it could not be canceled.
pub(in crate::domain) async fn cancel_job(
    state: &AppState,
    job: &Job,
) -> anyhow::Result<Option<ToStart>> {
    let canceled = state
        .store
        .transition_job(job.id, CANCELABLE, Status::Canceled)
        .await?;
    if !canceled {
        return Ok(None);
    }
    Ok(Some(advance_pipeline(state, job.pipeline_id).await?))
}

/// Cancels every job of a pipeline that has not finished.
pub(in crate::domain) async fn cancel_pipeline(
    state: &AppState,
    pipeline_id: i64,
) -> anyhow::Result<ToStart> {
    for job in state.store.pipeline_all_jobs(pipeline_id).await? {
        if state
            .store
            .transition_job(job.id, CANCELABLE, Status::Canceled)
            .await?
        {
            state.metrics.job_finished(Status::Canceled.as_str());
        }
    }
    advance_pipeline(state, pipeline_id).await
}

/// Retries one finished job now: a new attempt, pending. `None` when it could not be retried.
pub(in crate::domain) async fn retry_job(
    state: &AppState,
    job: &Job,
) -> anyhow::Result<Option<(Job, ToStart)>> {
    let Some(retried) = state.store.retry_job(job.id, Status::Pending).await? else {
        return Ok(None);
    };
    let to_start = advance_pipeline(state, job.pipeline_id).await?;
    Ok(Some((retried, to_start)))
}

/// GitLab retries only failed and canceled pipelines.
pub fn pipeline_retryable(status: Status) -> bool {
    matches!(status, Status::Failed | Status::Canceled)
}

/// GitLab's pipeline retry: failed and canceled jobs get new attempts, and the jobs they
/// had skipped wait again, so the pipeline runs on from where it failed.
pub(in crate::domain) async fn retry_pipeline(
    state: &AppState,
    pipeline_id: i64,
) -> anyhow::Result<ToStart> {
    for job in state.store.pipeline_all_jobs(pipeline_id).await? {
        match job.status {
            Status::Failed | Status::Canceled => {
                state.store.retry_job(job.id, Status::Created).await?;
            }
            Status::Skipped => {
                state
                    .store
                    .transition_job(job.id, &[Status::Skipped], Status::Created)
                    .await?;
            }
            _ => {}
        }
    }
    advance_pipeline(state, pipeline_id).await
}

/// Starts a manual job. `None` when it was not waiting to be played.
pub(in crate::domain) async fn play_job(
    state: &AppState,
    job: &Job,
) -> anyhow::Result<Option<ToStart>> {
    let played = state
        .store
        .transition_job(
            job.id,
            &[Status::Manual, Status::Scheduled],
            Status::Pending,
        )
        .await?;
    if !played {
        return Ok(None);
    }
    Ok(Some(advance_pipeline(state, job.pipeline_id).await?))
}
