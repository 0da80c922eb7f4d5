//! The job queue as runners see it: which pending jobs a runner may take (not bridges; its tags
//! cover the job's; a protected runner only protected refs' jobs), claiming one with a fresh job
//! token and a lease, and keeping that lease while the runner is heard from.
//!
//! Claiming is one short conditional update (`pending` → `running` with the runner, a fresh
//! job token and a lease), so two runners — or two servers on one PostgreSQL — never get the
//! same job: the second update finds the job no longer pending and moves on.

use pipewright_core::{Status, Timestamp};
use pipewright_runner_proto as proto;
use pipewright_store::{Job, Runner};

use crate::auth::JOB_TOKEN_PREFIX;
use crate::error::{ApiError, ApiResult};
use crate::secrets;
use crate::state::AppState;

/// When a job claimed or heard from now stops being leased.
pub fn lease_until(state: &AppState) -> Timestamp {
    Timestamp(Timestamp::now().millis() + state.config.job_lease.as_millis() as i64)
}

/// Extends a running job's lease once half of it has passed (renewing on every log chunk
/// would cost a write per chunk for nothing).
pub async fn renew_lease(state: &AppState, job: &Job) -> ApiResult<()> {
    let half = state.config.job_lease.as_millis() as i64 / 2;
    let remaining = job
        .lease_expires_at
        .map_or(0, |at| at.millis() - Timestamp::now().millis());
    if remaining < half {
        state
            .store
            .renew_job_lease(job.id, lease_until(state))
            .await?;
    }
    Ok(())
}

pub async fn claim(state: &AppState, runner: &Runner) -> ApiResult<Option<(Job, String)>> {
    // A protected runner takes only jobs of protected refs, which may run with protected
    // variables. GitLab: app/services/ci/register_job_service.rb (`builds_for_protected_runner`).
    let pending = if runner.access_level == REF_PROTECTED {
        state.store.pending_protected_jobs(CLAIM_WINDOW).await?
    } else {
        state.store.pending_jobs(CLAIM_WINDOW).await?
    };
    // A group runner takes jobs of every project below its group (GitLab:
    // register_job_service.rb, `builds_for_group_runner`).
    let below = match runner.group_id {
        Some(group) => Some(state.store.projects_below(group).await?),
        None => None,
    };
    let mut candidates: Vec<i64> = pending
        .into_iter()
        .filter(|job| runner.project_id.is_none_or(|p| p == job.project_id))
        .filter(|job| {
            below
                .as_ref()
                .is_none_or(|ids| ids.contains(&job.project_id))
        })
        .filter(|job| claimable(runner, job))
        .map(|job| job.id)
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    // Runners asking at the same moment see the same oldest jobs; starting each at a different
    // place keeps them from all racing for the first one (the order stays oldest-first after).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let start = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % candidates.len().min(8);
    candidates.rotate_left(start);
    let token = secrets::random_token(JOB_TOKEN_PREFIX, 32);
    let claimed = state
        .store
        .claim_job(
            &candidates,
            runner.id,
            &secrets::token_digest(&token),
            lease_until(state),
        )
        .await?;
    if let Some(job) = &claimed {
        // Time to first runner: since the job became pending (GitLab's `queued_at`).
        let since = job.queued_at.unwrap_or(job.created_at);
        let waited = Timestamp::now()
            .millis()
            .saturating_sub(since.millis())
            .max(0);
        state
            .metrics
            .job_claimed(std::time::Duration::from_millis(waited.unsigned_abs()));
    }
    Ok(claimed.map(|job| (job, token)))
}

/// How many of the oldest pending jobs one request considers.
const CLAIM_WINDOW: i64 = 8;

/// A runner's `access_level` that limits it to jobs of protected refs.
const REF_PROTECTED: &str = "ref_protected";

/// Whether this runner may take this job: not a bridge (the server runs those), and the
/// runner's tags cover the job's.
pub fn claimable(runner: &Runner, job: &Job) -> bool {
    let routing = crate::domain::job_spec::Routing::of(job);
    !routing.is_bridge() && tags_match(runner, &routing.tags)
}

fn tags_match(runner: &Runner, job_tags: &[String]) -> bool {
    if job_tags.is_empty() {
        return runner.run_untagged;
    }
    job_tags.iter().all(|t| runner.tag_list.contains(t))
}

/// What a runner asking for a job gets.
pub enum Offer {
    /// A job, claimed for the runner: its payload.
    Job(Box<proto::JobPayload>),
    /// The runner is paused: nothing, at once.
    Paused,
    /// No job came up within the long poll.
    NoJob,
}

/// A runner asks for a job (`POST /jobs/request`): a job it may take, claimed for it, or
/// none once the long poll (`job_request_long_poll`) is over.
pub async fn next_job(state: &AppState, runner: &Runner) -> ApiResult<Offer> {
    // `contacted_at` to the minute is all anyone reads; a write per request would cost a
    // transaction per long poll.
    let now = Timestamp::now();
    if runner
        .contacted_at
        .is_none_or(|at| now.millis() - at.millis() > 60_000)
    {
        state.store.touch_runner(runner.id, now).await?;
    }
    if runner.paused {
        return Ok(Offer::Paused);
    }
    let _in_flight = state.metrics.long_poll();
    let deadline = tokio::time::Instant::now() + state.config.job_request_long_poll;
    loop {
        // Register interest before looking, so a job that appears meanwhile wakes us.
        let notified = state.job_available.notified();
        if let Some((job, token)) = claim(state, runner).await? {
            let payload = crate::domain::job_payload::payload(state, &job, &token).await?;
            // A running job makes its pipeline `running` (a no-op once it is).
            crate::domain::job_processing::set_pipeline_status(
                state,
                job.pipeline_id,
                Status::Running,
            )
            .await
            .map_err(ApiError::Internal)?;
            crate::domain::webhooks::job_changed(state, &job);
            return Ok(Offer::Job(Box::new(payload)));
        }
        // Wake-ups are pushed (in-process, and from other servers through the store); looking
        // again every couple of seconds covers a missed one.
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Offer::NoJob);
        }
        let wake = deadline.min(now + state.config.job_request_recheck);
        let _ = tokio::time::timeout_at(wake, notified).await;
    }
}
