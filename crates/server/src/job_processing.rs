//! Moving pipelines forward: after a job finishes (or a pipeline is created), decide which
//! waiting jobs may start, which are skipped, and what the pipeline's status is now — GitLab's
//! stage ordering and `needs`, with `when` and `allow_failure`, derived through
//! [`pipewright_core::status::composite`].

use pipewright_core::Status;
use pipewright_core::status::composite;
use pipewright_store::Job;

use crate::state::AppState;

/// What a waiting job becomes once what it waits on is known.
fn decide(job: &Job, prior: Option<Status>) -> Option<Status> {
    let when = job.when.as_str();
    match prior {
        // Nothing before it, or everything before it succeeded (or was skipped).
        None | Some(Status::Success) | Some(Status::Skipped) => Some(match when {
            "on_failure" => Status::Skipped,
            "manual" => Status::Manual,
            "delayed" => Status::Scheduled,
            _ => Status::Pending,
        }),
        Some(Status::Failed) => Some(match when {
            "on_failure" | "always" => Status::Pending,
            _ => Status::Skipped,
        }),
        Some(Status::Canceled) => Some(match when {
            "always" => Status::Pending,
            _ => Status::Skipped,
        }),
        // Still running, pending, created, manual or scheduled: keep waiting.
        _ => None,
    }
}

/// Re-evaluates a pipeline's waiting jobs and its status.
pub async fn advance_pipeline(state: &AppState, pipeline_id: i64) -> anyhow::Result<()> {
    // Deciding a stage can unblock the next one (skips complete at once), so repeat until stable.
    for _ in 0..64 {
        let jobs = state.store.pipeline_all_jobs(pipeline_id).await?;
        let mut changes: Vec<(i64, Status)> = Vec::new();
        for job in jobs.iter().filter(|j| j.status == Status::Created) {
            let needs = job_needs(job);
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
                changes.push((job.id, status));
            }
        }
        if changes.is_empty() {
            let status = composite(jobs.iter().map(|j| (j.status, j.allow_failure)), false)
                .map(|c| c.status)
                .unwrap_or(Status::Skipped);
            // A pipeline with jobs waiting for a runner is `pending`, as GitLab shows it.
            state.store.set_pipeline_status(pipeline_id, status).await?;
            if jobs.iter().any(|j| j.status == Status::Pending) {
                state.job_available.notify_waiters();
            }
            return Ok(());
        }
        state.store.set_job_statuses(&changes).await?;
    }
    Ok(())
}

/// The job's `needs` names from its planned spec, if it has `needs`.
fn job_needs(job: &Job) -> Option<Vec<String>> {
    let spec: serde_json::Value = serde_json::from_str(&job.spec).ok()?;
    let needs = spec.get("needs")?.as_array()?;
    Some(
        needs
            .iter()
            .filter_map(|n| n.get("job").and_then(|j| j.as_str()).map(str::to_string))
            .collect(),
    )
}
