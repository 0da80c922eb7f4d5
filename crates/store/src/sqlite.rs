//! The SQLite backend: the embedded default, one file in the data dir.
//!
//! Settings and why: WAL so readers never block the writer; `synchronous = FULL` because an
//! acknowledged API write must survive power loss, not only a crash; foreign keys on (SQLite
//! leaves them off by default); a busy timeout so concurrent writers queue instead of failing;
//! write transactions start with `BEGIN IMMEDIATE` so two transactions that both read then
//! write cannot deadlock on the lock upgrade.
//!
//! Group commit (shared with PostgreSQL, see `queries.rs`): SQLite has one writer and every
//! durable commit costs an fsync, so pipeline creations (the trigger endpoint's hot path) go
//! through one writer task that takes every request waiting at that moment, writes them in one
//! transaction, and commits once. Each caller still gets its answer only after that commit, so a 201 is durable;
//! if one request fails (say, its project was just deleted), the batch is retried one by one.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};

use crate::migrate::{BOOKKEEPING, MIGRATIONS_SQLITE};

type Db = sqlx::Sqlite;
type StoreImpl = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    writer: tokio::sync::mpsc::Sender<PipelineRequest>,
    /// The group-commit writer for job claims and results (see `queries.rs`).
    job_writer: tokio::sync::mpsc::Sender<JobRequest>,
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
        let store = SqliteStore {
            pool: pool.clone(),
            job_writer: spawn_job_writer(pool.clone()),
            writer: spawn_pipeline_writer(pool),
            protected: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
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

    /// One server per SQLite file: its in-process wake-up is all there is.
    async fn announce_jobs_impl(&self) -> Result<()> {
        Ok(())
    }

    fn watch_jobs_impl(
        &self,
        _wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }

    fn invalidate_protected_branches(&self, project_id: ProjectId) {
        if let Ok(mut cache) = self.protected.lock() {
            cache.generation += 1;
            cache.rules.remove(&project_id);
        }
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Db>> {
        begin_write_on(&self.pool).await
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

/// Write transactions take the write lock up front (see the module docs).
async fn begin_write_on(pool: &sqlx::Pool<Db>) -> Result<Transaction<'static, Db>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

include!("queries.rs");
