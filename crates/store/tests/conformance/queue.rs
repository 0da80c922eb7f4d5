//! The job queue's invariants: a job is claimed by one runner however many race for it (on
//! one server or on two sharing the database), results apply only to running jobs, leases
//! expire, and a log grows only at its end.

use std::collections::HashMap;

use pipewright_core::{Status, Timestamp};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, demo_project, new_pipeline, pending_jobs, project, runner, user};

on_both!(
    racing_runners_on_two_servers_claim_each_job_once,
    a_claimed_job_is_found_by_its_job_token,
    a_protected_runner_is_offered_only_jobs_of_protected_refs,
    a_result_applies_once_and_only_to_a_running_job,
    a_lease_runs_out_unless_renewed,
    a_log_grows_only_where_it_ends_and_stops_at_its_limit,
    the_metrics_gauges_count_pending_jobs_until_one_is_claimed,
);

const LEASE: Timestamp = Timestamp(4_000_000_000_000);

async fn racing_runners_on_two_servers_claim_each_job_once(db: Fresh) {
    let servers = [db.open().await, db.open().await];
    let alice = user(&*servers[0], "alice").await;
    let demo = project(&*servers[0], &alice, "demo").await;
    let jobs = pending_jobs(&*servers[0], &demo, 30).await;
    let mut runners = Vec::new();
    for i in 0..8 {
        runners.push(runner(&*servers[0], &format!("runner-{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, runner) in runners.into_iter().enumerate() {
        let store = servers[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            for attempt in 0.. {
                let candidates: Vec<i64> = store
                    .pending_jobs(10)
                    .await
                    .unwrap()
                    .iter()
                    .map(|j| j.id)
                    .collect();
                if candidates.is_empty() {
                    break;
                }
                let token = format!("token-{}-{attempt}", runner.id);
                let job = store.claim_job(&candidates, runner.id, &token, LEASE).await;
                if let Some(job) = job.unwrap() {
                    assert_eq!(
                        (job.status, job.runner_id),
                        (Status::Running, Some(runner.id))
                    );
                    claimed.push(job.id);
                }
            }
            claimed
        }));
    }
    let mut claims: HashMap<i64, usize> = HashMap::new();
    for task in tasks {
        for id in task.await.unwrap() {
            *claims.entry(id).or_default() += 1;
        }
    }
    assert_eq!(claims.len(), jobs.len(), "every job was claimed");
    assert!(
        claims.values().all(|n| *n == 1),
        "no job was claimed twice: {claims:?}"
    );
    let stored = servers[1]
        .pipeline_all_jobs(jobs[0].pipeline_id)
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|j| j.status == Status::Running && j.lease_expires_at == Some(LEASE))
    );
    assert!(
        servers[1]
            .claim_job(&[jobs[0].id], 1, "late", LEASE)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_claimed_job_is_found_by_its_job_token(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let jobs = pending_jobs(&*store, &demo, 2).await;
    let runner = runner(&*store, "r1").await;
    assert_eq!(
        store.pending_jobs(1).await.unwrap()[0].id,
        jobs[0].id,
        "oldest first"
    );
    // The first candidate is taken: the claim moves on to the next.
    let taken = store
        .claim_job(&[jobs[0].id], runner.id, "digest-0", LEASE)
        .await;
    assert!(taken.unwrap().is_some());
    let both = [jobs[0].id, jobs[1].id];
    let next = store
        .claim_job(&both, runner.id, "digest-1", LEASE)
        .await
        .unwrap();
    assert_eq!(next.map(|j| j.id), Some(jobs[1].id));
    let found = store.job_by_token("digest-1").await.unwrap().unwrap();
    assert_eq!((found.id, found.started_at.is_some()), (jobs[1].id, true));
    assert!(store.job_by_token("unknown").await.unwrap().is_none());
    let found = store.runner_by_digest("r1").await.unwrap().unwrap();
    assert_eq!(found.tag_list, ["docker", "linux"]);
    assert!(store.pending_jobs(10).await.unwrap().is_empty());
}

async fn a_protected_runner_is_offered_only_jobs_of_protected_refs(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let mut feature = new_pipeline(&demo, &["unprotected"], Status::Pending);
    feature.ref_name = "feature".into();
    feature.protected_ref = false;
    store.create_pipeline(&feature).await.unwrap();
    let protected = pending_jobs(&*store, &demo, 2).await;
    let names = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.pending_jobs(10).await.unwrap()),
        ["unprotected", "job 0", "job 1"]
    );
    assert_eq!(
        names(store.pending_protected_jobs(10).await.unwrap()),
        ["job 0", "job 1"],
        "only the protected pipeline's, oldest first"
    );
    assert_eq!(
        names(store.pending_protected_jobs(1).await.unwrap()),
        ["job 0"]
    );
    // A claimed job is no longer pending.
    let runner = runner(&*store, "r1").await;
    store
        .claim_job(&[protected[0].id], runner.id, "d0", LEASE)
        .await
        .unwrap();
    assert_eq!(
        names(store.pending_protected_jobs(10).await.unwrap()),
        ["job 1"]
    );
}

async fn a_result_applies_once_and_only_to_a_running_job(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let jobs = pending_jobs(&*store, &demo, 2).await;
    let runner = runner(&*store, "r1").await;
    let failed = Some("script_failure");
    assert!(
        !store
            .finish_job(jobs[0].id, Status::Failed, failed, Some(1))
            .await
            .unwrap()
    );
    store
        .claim_job(&[jobs[0].id], runner.id, "d0", LEASE)
        .await
        .unwrap();
    assert!(
        store
            .finish_job(jobs[0].id, Status::Failed, failed, Some(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_job(jobs[0].id, Status::Success, None, Some(0))
            .await
            .unwrap()
    );
    let job = store.job_by_id(jobs[0].id).await.unwrap().unwrap();
    assert_eq!((job.status, job.exit_code), (Status::Failed, Some(1)));
    assert_eq!(job.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(job.lease_expires_at, None);
    assert!(job.finished_at.is_some());
    let untouched = store.job_by_id(jobs[1].id).await.unwrap().unwrap();
    assert_eq!(untouched.status, Status::Pending);
}

async fn a_lease_runs_out_unless_renewed(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let jobs = pending_jobs(&*store, &demo, 3).await;
    let runner = runner(&*store, "r1").await;
    for job in &jobs {
        let digest = format!("d{}", job.id);
        store
            .claim_job(&[job.id], runner.id, &digest, Timestamp(1_000))
            .await
            .unwrap();
    }
    let expired = store.expired_leases(Timestamp(1_001), 10).await.unwrap();
    assert_eq!(expired.len(), 3);
    store
        .renew_job_lease(jobs[0].id, Timestamp(5_000))
        .await
        .unwrap();
    store
        .finish_job(jobs[1].id, Status::Success, None, Some(0))
        .await
        .unwrap();
    let expired = store.expired_leases(Timestamp(1_001), 10).await.unwrap();
    assert_eq!(
        expired.iter().map(|j| j.id).collect::<Vec<_>>(),
        [jobs[2].id]
    );
    // A finished job's lease is not renewed.
    store
        .renew_job_lease(jobs[1].id, Timestamp(5_000))
        .await
        .unwrap();
    let finished = store.job_by_id(jobs[1].id).await.unwrap().unwrap();
    assert_eq!(finished.lease_expires_at, None);
    // The runner restarted: its running jobs' leases end now.
    assert_eq!(store.expire_runner_leases(runner.id).await.unwrap(), 2);
    assert_eq!(
        store.expired_leases(Timestamp(1), 10).await.unwrap().len(),
        2
    );
}

async fn a_log_grows_only_where_it_ends_and_stops_at_its_limit(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let job = pending_jobs(&*store, &demo, 1).await.remove(0);
    let note = b"[cut]";
    let append = |start, data: &'static [u8]| {
        let store = store.clone();
        async move {
            store
                .append_trace(job.id, start, data, 12, note)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        append(0, b"hello ").await,
        TraceAppend::Appended { size: 6 }
    );
    assert_eq!(append(3, b"lo ").await, TraceAppend::Mismatch { size: 6 });
    assert_eq!(append(6, b"").await, TraceAppend::Appended { size: 6 });
    assert_eq!(
        append(6, b"world, and more").await,
        TraceAppend::Appended { size: 17 }
    );
    assert_eq!(
        append(17, b"dropped").await,
        TraceAppend::Appended { size: 17 }
    );
    assert_eq!(store.job_trace(job.id).await.unwrap(), b"hello world,[cut]");
    assert_eq!(store.job_trace_from(job.id, 8).await.unwrap(), b"rld,[cut]");
    assert_eq!(store.job_trace_from(job.id, 99).await.unwrap(), b"");
    let job_now = store.job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!(job_now.trace_size, 17);
    store.erase_trace(job.id).await.unwrap();
    assert_eq!(store.job_trace(job.id).await.unwrap(), b"");
    assert_eq!(append(0, b"again").await, TraceAppend::Appended { size: 5 });
}

/// `/-/metrics`' queue depth: pending jobs, one fewer once a runner claims one; the pool
/// reports the connection it just used.
async fn the_metrics_gauges_count_pending_jobs_until_one_is_claimed(db: Fresh) {
    let store = db.open().await;
    assert_eq!(store.gauges().await.unwrap(), Gauges::default());
    let alice = user(&*store, "alice").await;
    let demo = project(&*store, &alice, "demo").await;
    let jobs = pending_jobs(&*store, &demo, 3).await;
    assert_eq!(store.gauges().await.unwrap().pending_jobs, 3);
    let runner = runner(&*store, "r").await;
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let claimed = store.claim_job(&ids, runner.id, "t", LEASE).await.unwrap();
    assert!(claimed.is_some());
    assert_eq!(store.gauges().await.unwrap().pending_jobs, 2);
    assert_eq!(store.gauges().await.unwrap().queued_deliveries, 0);
    let (open, idle) = store.pool_status();
    assert!(open >= 1 && idle <= open, "{open} open, {idle} idle");
}
