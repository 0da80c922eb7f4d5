//! What `pipewright backup` reads from a database: its schema version without migrating it (both
//! databases), and, on SQLite, a snapshot taken while pipelines are being written that is the
//! database at one instant — every pipeline acknowledged before it began, each with all its
//! jobs, and a store opens on it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pipewright_core::Status;
use pipewright_store::backup::{schema_version, snapshot_sqlite};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Db, Fresh, new_pipeline, page, project, user};

on_both!(the_schema_version_is_read_without_migrating);

async fn the_schema_version_is_read_without_migrating(db: Fresh) {
    if db.db == Db::Sqlite {
        // No file yet: nothing to read, and none is created.
        assert!(schema_version(&db.url).await.is_err());
    } else {
        assert_eq!(schema_version(&db.url).await.unwrap(), None);
    }
    pipewright_store::migrate_to(&db.url, 3).await.unwrap();
    assert_eq!(schema_version(&db.url).await.unwrap(), Some(3));
    assert_eq!(schema_version(&db.url).await.unwrap(), Some(3), "unchanged");
    db.open().await.close().await;
    assert_eq!(
        schema_version(&db.url).await.unwrap(),
        Some(latest_version())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_while_pipelines_are_written_is_the_database_at_one_instant() {
    let db = Fresh::new(Db::Sqlite).await;
    let store = db.open().await;
    let owner = user(&*store, "owner").await;
    let demo = project(&*store, &owner, "demo").await;
    let writing = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (store, demo, writing) = (store.clone(), demo.clone(), writing.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            while writing.load(Ordering::Relaxed) {
                let next = new_pipeline(&demo, &["build", "test"], Status::Pending);
                acknowledged.push(store.create_pipeline(&next).await.unwrap().id);
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = store
        .pipelines(demo.id, &PipelineFilter::default(), page(1, 1))
        .await
        .unwrap()
        .total;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.sqlite3");
    let file = pipewright_store::backup::sqlite_file(&db.url)
        .unwrap()
        .unwrap();
    let snapshot = tokio::task::spawn_blocking({
        let copy = copy.clone();
        move || snapshot_sqlite(&file, &copy)
    })
    .await
    .unwrap()
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    writing.store(false, Ordering::Relaxed);
    let mut written = 0;
    for writer in writers {
        written += writer.await.unwrap().len() as i64;
    }
    store.close().await;

    assert_eq!(snapshot.schema_version, Some(latest_version()));
    assert_eq!(snapshot.pipeline_commits, vec![(demo.id, "a".repeat(40))]);
    let copy = pipewright_store::connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    let saved = copy
        .pipelines(demo.id, &PipelineFilter::default(), page(1, 100))
        .await
        .unwrap();
    assert!(
        saved.total >= before && saved.total < written,
        "the copy holds what was written before it began ({before}), not what came after \
         ({written} in all): {}",
        saved.total
    );
    for pipeline in &saved.items {
        let jobs = copy.pipeline_all_jobs(pipeline.id).await.unwrap();
        assert_eq!(
            jobs.len(),
            2,
            "a pipeline is copied with all its jobs or not at all"
        );
    }
    copy.close().await;
}
