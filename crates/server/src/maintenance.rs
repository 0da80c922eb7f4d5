//! The maintenance loop: the work nobody's request triggers. Each tick fails running jobs
//! whose runner went silent past its lease (`runner_system_failure`, retried when the job's
//! `retry` allows), starts delayed jobs that are due, deletes expired artifacts, and turns
//! recorded pushes into pipelines. Every step is a conditional update, so several servers
//! sharing one PostgreSQL can run it at once without doing anything twice.

use pipewright_core::{Status, Timestamp};

use crate::state::AppState;

/// Runs [`tick`] every `maintenance_interval` until the task is dropped.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(state.config.maintenance_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(err) = tick(&state).await {
                tracing::warn!(error = %format!("{err:#}"), "maintenance step failed");
            }
        }
    })
}

/// One pass over everything that is due.
pub async fn tick(state: &AppState) -> anyhow::Result<()> {
    let now = Timestamp::now();
    for job in state.store.expired_leases(now, 100).await? {
        crate::api::runner_jobs::append_system_line(
            state,
            job.id,
            "ERROR: Job failed (system failure): the runner stopped responding",
        )
        .await;
        crate::job_processing::finish_job(
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
            crate::job_processing::advance_pipeline(state, job.pipeline_id).await?;
        }
    }
    for job in state.store.expired_artifacts(now, 100).await? {
        crate::api::artifacts::remove(state, &job).await?;
    }
    crate::push_pipelines::process(state).await?;
    Ok(())
}
