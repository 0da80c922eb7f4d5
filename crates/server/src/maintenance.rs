//! The maintenance loop: the work nobody's request triggers. Each tick fails running jobs
//! whose runner went silent past its lease (`runner_system_failure`, retried when the job's
//! `retry` allows), starts delayed jobs that are due, deletes expired artifacts, and turns
//! recorded pushes into pipelines and webhook deliveries, runs the pipeline schedules that are
//! due (`schedules.rs`), sends the deliveries that are due,
//! and (once a minute) removes expired web sessions and finished sign-in throttling windows. Every step is a conditional update, so
//! several servers sharing one PostgreSQL can run it at once without doing anything twice.

use std::sync::atomic::{AtomicI64, Ordering};

use pipewright_core::{Status, Timestamp};

use crate::state::AppState;

/// Runs [`tick`] every `maintenance_interval` until the task is aborted, and beside it the
/// webhook sender (a slow hook must not delay failing a silent runner's job).
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = state.config.maintenance_interval;
        let upkeep = async {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(err) = tick(&state).await {
                    tracing::warn!(error = %format!("{err:#}"), "maintenance step failed");
                }
            }
        };
        let hooks = async {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(err) = crate::webhook_delivery::deliver_due(&state).await {
                    tracing::warn!(error = %format!("{err:#}"), "webhook delivery failed");
                }
            }
        };
        tokio::join!(upkeep, hooks);
    })
}

/// One pass over everything that is due.
pub async fn tick(state: &AppState) -> anyhow::Result<()> {
    let now = Timestamp::now();
    for job in state.store.expired_leases(now, 100).await? {
        crate::domain::job_logs::append_system_line(
            state,
            job.id,
            "ERROR: Job failed (system failure): the runner stopped responding",
        )
        .await;
        crate::domain::dispatch::finish_job(
            state,
            &job,
            Status::Failed,
            Some("runner_system_failure"),
            None,
        )
        .await?;
    }
    for job in state.store.due_scheduled_jobs(now, 100).await? {
        if state
            .store
            .transition_job(job.id, &[Status::Scheduled], Status::Pending)
            .await?
        {
            crate::domain::dispatch::advance_pipeline(state, job.pipeline_id).await?;
        }
    }
    for job in state.store.expired_artifacts(now, 100).await? {
        crate::domain::artifacts::remove(state, &job).await?;
    }
    crate::domain::push_pipelines::process(state).await?;
    crate::domain::schedules::run_due(state).await?;
    sweep_sessions(state, now).await?;
    Ok(())
}

/// When expired sessions were last removed (per process; a sweep is idempotent).
static LAST_SESSION_SWEEP: AtomicI64 = AtomicI64::new(0);
const SESSION_SWEEP_EVERY_MS: i64 = 60_000;

/// Expired sessions (and idempotency keys) no longer do anything; removing them only keeps the
/// tables small, so once a minute is enough (and spares SQLite a write lock per tick).
async fn sweep_sessions(state: &AppState, now: Timestamp) -> anyhow::Result<()> {
    let last = LAST_SESSION_SWEEP.load(Ordering::Relaxed);
    if now.millis() - last < SESSION_SWEEP_EVERY_MS {
        return Ok(());
    }
    LAST_SESSION_SWEEP.store(now.millis(), Ordering::Relaxed);
    state.store.delete_expired_web_sessions(now).await?;
    crate::sign_in::throttle::sweep(state, now).await?;
    // Idempotency keys past their 24 hours (an expired one is taken over on use anyway).
    state.store.delete_expired_idempotency_keys(now).await?;
    Ok(())
}
