//! The SQLite backend: the embedded default, one file in the data dir.
//!
//! Settings and why: WAL so readers never block the writer; `synchronous = FULL` because an
//! acknowledged API write must survive power loss, not only a crash; foreign keys on (SQLite
//! leaves them off by default); a busy timeout so concurrent writers queue instead of failing;
//! write transactions start with `BEGIN IMMEDIATE` so two transactions that both read then
//! write cannot deadlock on the lock upgrade.
//!
//! Group commit: SQLite has one writer and every durable commit costs an fsync, so pipeline
//! creations (the trigger endpoint's hot path) go through one writer task that takes every
//! request waiting at that moment, writes each inside one transaction, and
//! commits once. Each caller still gets its answer only after that commit, so a 201 is durable;
//! if one request fails (say, its project was just deleted), the batch is retried one by one.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::migrate::{BOOKKEEPING, MIGRATIONS_SQLITE};

type Db = sqlx::Sqlite;
type StoreImpl = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;

/// The most pipelines one group commit writes.
const MAX_BATCH: usize = 256;

type PipelineRequest = (NewPipeline, oneshot::Sender<Result<Pipeline>>);

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    writer: mpsc::Sender<PipelineRequest>,
    /// Protected-branch rules by project, read on every trigger and push. The embedded SQLite
    /// store is only ever written by this process, so invalidating on our own writes keeps the
    /// cache exact (the PostgreSQL store, shared by replicas, does not cache).
    protected: std::sync::Mutex<ProtectedCache>,
}

/// Cached rules plus a generation that every write bumps, so a read that raced a write never
/// stores what it read.
#[derive(Default)]
struct ProtectedCache {
    rules: std::collections::HashMap<ProjectId, Vec<ProtectedBranch>>,
    generation: u64,
}

async fn pipeline_writer(pool: SqlitePool, mut requests: mpsc::Receiver<PipelineRequest>) {
    let mut batch: Vec<PipelineRequest> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match write_batch(&pool, &batch).await {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                let message = err.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::GroupCommit(message.clone())));
                }
            }
        }
    }
}

/// Writes a batch in one transaction. If any pipeline fails (its project was just deleted,
/// say), the batch is rolled back and each pipeline is written on its own, so one bad request
/// never costs the others theirs. (A savepoint per pipeline would cost two more statements
/// each on the fast path.)
async fn write_batch(
    pool: &SqlitePool,
    batch: &[PipelineRequest],
) -> Result<Vec<Result<Pipeline>>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let written: Vec<&NewPipeline> = batch.iter().map(|(p, _)| p).collect();
    if let Ok(created) = insert_pipelines(&mut tx, &written).await {
        touch_triggers(&mut tx, &written).await?;
        tx.commit().await?;
        return Ok(created.into_iter().map(Ok).collect());
    }
    tx.rollback().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (pipeline, _) in batch {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        match insert_pipeline(&mut tx, pipeline).await {
            Ok(p) => {
                touch_triggers(&mut tx, &[pipeline]).await?;
                tx.commit().await?;
                results.push(Ok(p));
            }
            Err(err) => {
                tx.rollback().await?;
                results.push(Err(err));
            }
        }
    }
    Ok(results)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let (writer, requests) = mpsc::channel(4 * MAX_BATCH);
        let store = SqliteStore {
            pool: pool.clone(),
            writer,
            protected: Default::default(),
        };
        store.migrate().await?;
        tokio::spawn(pipeline_writer(pool, requests));
        Ok(store)
    }

    /// Hands the pipeline to the group-commit writer and waits for its commit.
    async fn create_pipeline_durably(&self, pipeline: &NewPipeline) -> Result<Pipeline> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send((pipeline.clone(), reply))
            .await
            .map_err(|_| StoreError::GroupCommit("the pipeline writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::GroupCommit("the pipeline writer has stopped".into()))?
    }

    fn cached_protected_branches(
        &self,
        project_id: ProjectId,
    ) -> (Option<Vec<ProtectedBranch>>, u64) {
        match self.protected.lock() {
            Ok(cache) => (cache.rules.get(&project_id).cloned(), cache.generation),
            Err(_) => (None, u64::MAX),
        }
    }

    fn cache_protected_branches(
        &self,
        project_id: ProjectId,
        rules: &[ProtectedBranch],
        generation: u64,
    ) {
        if let Ok(mut cache) = self.protected.lock()
            && cache.generation == generation
        {
            if cache.rules.len() > 10_000 {
                cache.rules.clear();
            }
            cache.rules.insert(project_id, rules.to_vec());
        }
    }

    fn invalidate_protected_branches(&self, project_id: ProjectId) {
        if let Ok(mut cache) = self.protected.lock() {
            cache.generation += 1;
            cache.rules.remove(&project_id);
        }
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Db>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query(BOOKKEEPING).execute(&self.pool).await?;
        for m in MIGRATIONS_SQLITE {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query("SELECT 1 FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            tracing::info!(version = m.version, name = m.name, "applying migration");
            sqlx::raw_sql(m.sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migration {
                    version: m.version,
                    source,
                })?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(Timestamp::now().millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

include!("queries.rs");
