//! [`SqlStore`]: the one implementation of [`Store`], on either database. Opening it applies
//! pending migrations and starts its two group-commit writers; the entity modules implement
//! their part of the trait on it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::db::sqlite::{InlineReads, WriterConnection};
use crate::db::{Db, Decode, Query, RowExt, query};
use crate::group_commit;
use crate::pipelines::{NewPipelines, PipelineWriter};
use crate::projects::ProtectedCache;
use crate::queue::{JobChanges, JobWriter};
use crate::{Backend, Result, Store, StoreError, migrate};

pub(crate) struct SqlStore {
    pub(crate) db: Db,
    /// The group-commit writer for pipeline creations (see `pipelines.rs`).
    pub(crate) pipeline_writer: NewPipelines,
    /// The group-commit writer for job claims, results and log chunks (see `queue.rs`): a
    /// task on the pool, or on SQLite its own thread with its own connection.
    pub(crate) job_writer: JobChanges,
    /// Protected-branch rules by project, on SQLite only (see `projects.rs`).
    pub(crate) protected: Option<ProtectedCache>,
    /// The job queue's point reads on SQLite's read-only connections, when the database is a
    /// file (see `db/sqlite.rs`).
    pub(crate) reads: Option<InlineReads>,
}

impl SqlStore {
    /// Opens the database a URL names and applies pending migrations.
    pub(crate) async fn open(url: &str) -> Result<SqlStore> {
        let db = Db::connect(url).await?;
        migrate::run(&db, None).await?;
        let file = match db.backend() {
            Backend::Sqlite => crate::db::sqlite::file(url)?,
            Backend::Postgres => None,
        };
        let job_writer = match &file {
            Some(path) => spawn_sqlite_job_writer(path)?,
            None => {
                let (sender, requests) = group_commit::channel();
                tokio::spawn(group_commit::serve(JobWriter::new(db.clone()), requests));
                sender
            }
        };
        let (pipeline_writer, requests) = group_commit::channel();
        tokio::spawn(group_commit::serve(
            PipelineWriter::new(db.clone()),
            requests,
        ));
        Ok(SqlStore {
            protected: (db.backend() == Backend::Sqlite).then(ProtectedCache::default),
            reads: file.map(InlineReads::new),
            db,
            pipeline_writer,
            job_writer,
        })
    }

    /// A read on the job queue's hot path: inline where the store has SQLite read
    /// connections, otherwise through the pool.
    pub(crate) async fn hot_read<T>(&self, q: &Query<'_>, decode: Decode<T>) -> Result<Vec<T>> {
        match &self.reads {
            Some(reads) => reads.fetch_all(q, decode),
            None => self.db.fetch_all(q, decode).await,
        }
    }

    /// [`SqlStore::hot_read`] of at most one row.
    pub(crate) async fn hot_read_one<T>(
        &self,
        q: &Query<'_>,
        decode: Decode<T>,
    ) -> Result<Option<T>> {
        Ok(self.hot_read(q, decode).await?.into_iter().next())
    }
}

/// The SQLite job writer on its own thread (see `db/sqlite.rs`).
fn spawn_sqlite_job_writer(path: &std::path::Path) -> Result<JobChanges> {
    let writer = JobWriter::new(WriterConnection::open(path)?);
    let (sender, requests) = group_commit::channel();
    std::thread::Builder::new()
        .name("job-writer".into())
        .spawn(move || group_commit::serve_blocking(writer, requests))
        .map_err(|e| StoreError::GroupCommit(format!("starting the job writer: {e}")))?;
    Ok(sender)
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.db.backend()
    }

    async fn ping(&self) -> Result<()> {
        self.db.execute(&query("SELECT 1")).await?;
        Ok(())
    }

    async fn gauges(&self) -> Result<crate::Gauges> {
        // Both counts walk an index (`jobs_status`, `hook_deliveries_due`) over the rows
        // waiting, not the tables.
        let q = query(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'pending'), \
                    (SELECT COUNT(*) FROM hook_deliveries WHERE state IN ('pending', 'sending'))",
        );
        self.db
            .fetch_one(&q, |row| {
                Ok(crate::Gauges {
                    pending_jobs: row.get(0)?,
                    queued_deliveries: row.get(1)?,
                })
            })
            .await
    }

    fn pool_status(&self) -> (u32, u32) {
        match &self.db {
            Db::Sqlite(pool) => (
                pool.size(),
                u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            ),
            Db::Postgres(pool) => (
                pool.size(),
                u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            ),
        }
    }

    async fn close(&self) {
        self.db.close().await;
    }

    async fn announce_jobs(&self) -> Result<()> {
        match &self.db {
            Db::Postgres(pool) => crate::db::postgres::announce_jobs(pool).await,
            // One server per SQLite file: its in-process wake-up is all there is.
            Db::Sqlite(_) => Ok(()),
        }
    }

    fn watch_jobs(&self, wake: Arc<tokio::sync::Notify>) -> Option<tokio::task::JoinHandle<()>> {
        match &self.db {
            Db::Postgres(pool) => Some(crate::db::postgres::watch_jobs(pool.clone(), wake)),
            Db::Sqlite(_) => None,
        }
    }
}
