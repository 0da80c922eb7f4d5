//! Jobs outside the runner protocol: listing, conditional transitions, retries, delayed jobs,
//! artifacts and stored logs.

use pipewright_core::{Status, Timestamp};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, demo_project, new_pipeline, page, pending_jobs};

on_both!(
    jobs_are_listed_per_pipeline_and_per_project,
    a_transition_happens_only_from_the_statuses_it_names,
    only_jobs_that_have_not_started_take_new_statuses_in_bulk,
    a_finished_job_is_retried_once_as_a_new_attempt,
    a_delayed_job_is_due_at_its_time,
    artifacts_are_found_until_they_expire_or_the_job_is_erased,
    a_pipeline_has_warnings_when_a_job_allowed_to_fail_failed,
    a_page_of_pipelines_asks_for_its_warnings_at_once,
);

async fn jobs_are_listed_per_pipeline_and_per_project(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let jobs = pending_jobs(&*store, &demo, 3).await;
    let pipeline_id = jobs[0].pipeline_id;
    store
        .transition_job(jobs[2].id, &[Status::Pending], Status::Canceled)
        .await
        .unwrap();
    let pending = store
        .pipeline_jobs(pipeline_id, &[Status::Pending], page(1, 20))
        .await
        .unwrap();
    let ids: Vec<_> = pending.items.iter().map(|j| j.id).collect();
    assert_eq!((ids, pending.total), (vec![jobs[0].id, jobs[1].id], 2));
    let newest_first = store.project_jobs(demo.id, &[], page(1, 2)).await.unwrap();
    let ids: Vec<_> = newest_first.items.iter().map(|j| j.id).collect();
    assert_eq!((ids, newest_first.total), (vec![jobs[2].id, jobs[1].id], 3));
    let window = store
        .project_jobs_window(demo.id, &[Status::Pending, Status::Canceled], 1, 1)
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|j| j.id).collect::<Vec<_>>(),
        [jobs[1].id]
    );
    let found = store.job(demo.id, jobs[0].id).await.unwrap().unwrap();
    assert_eq!(
        (found.name.as_str(), found.stage.as_str()),
        ("job 0", "test")
    );
    assert!(store.job(demo.id + 1, jobs[0].id).await.unwrap().is_none());
    assert_eq!(store.job_attempts(pipeline_id, "job 1").await.unwrap(), 1);
}

async fn a_transition_happens_only_from_the_statuses_it_names(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let job = pending_jobs(&*store, &demo, 1).await.remove(0);
    let manual = [Status::Manual];
    assert!(
        !store
            .transition_job(job.id, &manual, Status::Pending)
            .await
            .unwrap()
    );
    assert!(
        !store
            .transition_job(job.id, &[], Status::Canceled)
            .await
            .unwrap()
    );
    let from = [Status::Pending, Status::Running];
    assert!(
        store
            .transition_job(job.id, &from, Status::Canceled)
            .await
            .unwrap()
    );
    assert!(
        !store
            .transition_job(job.id, &from, Status::Canceled)
            .await
            .unwrap()
    );
    let canceled = store.job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!(canceled.status, Status::Canceled);
    assert!(canceled.finished_at.is_some());
    // Back to created (a retried pipeline's later stage): no start, no end.
    let done = [Status::Canceled];
    assert!(
        store
            .transition_job(job.id, &done, Status::Created)
            .await
            .unwrap()
    );
    let created = store.job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!((created.started_at, created.finished_at), (None, None));
}

async fn only_jobs_that_have_not_started_take_new_statuses_in_bulk(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let new = new_pipeline(&demo, &["a", "b", "c"], Status::Created);
    let pipeline = store.create_pipeline(&new).await.unwrap();
    let jobs = store.pipeline_all_jobs(pipeline.id).await.unwrap();
    let running = [Status::Created];
    store
        .transition_job(jobs[2].id, &running, Status::Running)
        .await
        .unwrap();
    let changes = [
        (jobs[0].id, Status::Pending),
        (jobs[1].id, Status::Skipped),
        (jobs[2].id, Status::Skipped),
    ];
    store.set_job_statuses(&changes).await.unwrap();
    store.set_job_statuses(&[]).await.unwrap();
    let jobs = store.pipeline_all_jobs(pipeline.id).await.unwrap();
    let statuses: Vec<_> = jobs.iter().map(|j| j.status).collect();
    assert_eq!(
        statuses,
        [Status::Pending, Status::Skipped, Status::Running]
    );
    assert!(jobs[0].queued_at.is_some() && jobs[0].finished_at.is_none());
    assert!(jobs[1].finished_at.is_some());
}

async fn a_finished_job_is_retried_once_as_a_new_attempt(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let job = pending_jobs(&*store, &demo, 1).await.remove(0);
    assert!(
        store
            .retry_job(job.id, Status::Pending)
            .await
            .unwrap()
            .is_none(),
        "not finished"
    );
    let pending = [Status::Pending];
    store
        .transition_job(job.id, &pending, Status::Failed)
        .await
        .unwrap();
    let retry = store
        .retry_job(job.id, Status::Pending)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(retry.id, job.id);
    assert_eq!(
        (retry.name.as_str(), retry.position),
        ("job 0", job.position)
    );
    assert_eq!((retry.status, retry.retried), (Status::Pending, false));
    assert!(
        store
            .retry_job(job.id, Status::Pending)
            .await
            .unwrap()
            .is_none(),
        "once"
    );
    let old = store.job_by_id(job.id).await.unwrap().unwrap();
    assert!(old.retried);
    let current = store.pipeline_all_jobs(job.pipeline_id).await.unwrap();
    assert_eq!(current.iter().map(|j| j.id).collect::<Vec<_>>(), [retry.id]);
    assert_eq!(
        store.job_attempts(job.pipeline_id, "job 0").await.unwrap(),
        2
    );
}

async fn a_delayed_job_is_due_at_its_time(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let job = pending_jobs(&*store, &demo, 1).await.remove(0);
    let pending = [Status::Pending];
    store
        .transition_job(job.id, &pending, Status::Scheduled)
        .await
        .unwrap();
    store.schedule_job(job.id, Timestamp(5_000)).await.unwrap();
    assert!(
        store
            .due_scheduled_jobs(Timestamp(4_999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .due_scheduled_jobs(Timestamp(5_000), 10)
        .await
        .unwrap();
    assert_eq!(due.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
    assert_eq!(due[0].scheduled_at, Some(Timestamp(5_000)));
}

async fn artifacts_are_found_until_they_expire_or_the_job_is_erased(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let jobs = pending_jobs(&*store, &demo, 2).await;
    for job in &jobs {
        store
            .transition_job(job.id, &[Status::Pending], Status::Success)
            .await
            .unwrap();
    }
    store
        .set_pipeline_status(jobs[0].pipeline_id, Status::Success)
        .await
        .unwrap();
    let artifacts = JobArtifacts {
        filename: "artifacts.zip".into(),
        size: 1234,
        expire_at: Some(Timestamp(10_000)),
    };
    store
        .set_job_artifacts(jobs[0].id, Some(&artifacts))
        .await
        .unwrap();
    let job = store.job_by_id(jobs[0].id).await.unwrap().unwrap();
    assert_eq!(job.artifacts.as_ref(), Some(&artifacts));
    let latest = store
        .latest_successful_job_for_ref(demo.id, "main", "job 0")
        .await
        .unwrap();
    assert_eq!(latest.map(|j| j.id), Some(jobs[0].id));
    assert!(
        store
            .expired_artifacts(Timestamp(9_999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let expired = store
        .expired_artifacts(Timestamp(10_001), 10)
        .await
        .unwrap();
    assert_eq!(
        expired.iter().map(|j| j.id).collect::<Vec<_>>(),
        [jobs[0].id]
    );

    let kept = JobArtifacts {
        expire_at: None,
        ..artifacts
    };
    store
        .set_job_artifacts(jobs[0].id, Some(&kept))
        .await
        .unwrap();
    assert!(
        store
            .expired_artifacts(Timestamp(10_001), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.erase_job(jobs[0].id).await.unwrap();
    let erased = store.job_by_id(jobs[0].id).await.unwrap().unwrap();
    assert!(erased.artifacts.is_none() && erased.erased_at.is_some());
    store.set_job_artifacts(jobs[1].id, None).await.unwrap();
}

/// GitLab's `Ci::Pipeline#has_warnings?`: a current job that failed (or was canceled) while
/// allowed to fail (`failed_but_allowed`); a failure that was not allowed is no warning.
async fn a_pipeline_has_warnings_when_a_job_allowed_to_fail_failed(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let mut new = new_pipeline(&demo, &["lint", "test"], Status::Pending);
    new.jobs[0].allow_failure = true;
    let pipeline = store.create_pipeline(&new).await.unwrap();
    let jobs = store.pipeline_all_jobs(pipeline.id).await.unwrap();
    assert!(!store.pipeline_has_warnings(pipeline.id).await.unwrap());
    store
        .transition_job(jobs[1].id, &[Status::Pending], Status::Failed)
        .await
        .unwrap();
    assert!(!store.pipeline_has_warnings(pipeline.id).await.unwrap());
    store
        .transition_job(jobs[0].id, &[Status::Pending], Status::Failed)
        .await
        .unwrap();
    assert!(store.pipeline_has_warnings(pipeline.id).await.unwrap());
}

/// A list page asks once which of its pipelines have warnings; the answer is the same as
/// asking each one (a retried attempt's failure no longer counts, as it does not singly).
async fn a_page_of_pipelines_asks_for_its_warnings_at_once(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut new = new_pipeline(&demo, &["lint", "test"], Status::Pending);
        new.jobs[0].allow_failure = true;
        ids.push(store.create_pipeline(&new).await.unwrap().id);
    }
    let first_job = |jobs: Vec<Job>| jobs[0].id;
    // The first pipeline's allowed failure warns; the second's was canceled (warns too); the
    // third's failed job was retried; the fourth failed a job not allowed to.
    for (pipeline, to) in [(ids[0], Status::Failed), (ids[1], Status::Canceled)] {
        let job = first_job(store.pipeline_all_jobs(pipeline).await.unwrap());
        store
            .transition_job(job, &[Status::Pending], to)
            .await
            .unwrap();
    }
    let retried = first_job(store.pipeline_all_jobs(ids[2]).await.unwrap());
    store
        .transition_job(retried, &[Status::Pending], Status::Failed)
        .await
        .unwrap();
    store
        .retry_job(retried, Status::Pending)
        .await
        .unwrap()
        .unwrap();
    let not_allowed = store.pipeline_all_jobs(ids[3]).await.unwrap()[1].id;
    store
        .transition_job(not_allowed, &[Status::Pending], Status::Failed)
        .await
        .unwrap();
    let warned = store.pipelines_with_warnings(&ids).await.unwrap();
    let expected: std::collections::HashSet<i64> = [ids[0], ids[1]].into();
    assert_eq!(warned, expected);
    for id in &ids {
        assert_eq!(
            store.pipeline_has_warnings(*id).await.unwrap(),
            warned.contains(id)
        );
    }
    assert!(store.pipelines_with_warnings(&[]).await.unwrap().is_empty());
    let unknown = store.pipelines_with_warnings(&[i64::MAX]).await.unwrap();
    assert!(unknown.is_empty());
}
