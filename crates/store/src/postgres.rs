//! The PostgreSQL backend: the scale-out store that several `serve` replicas share.
//!
//! Migrations take a session-level advisory lock so that replicas starting together apply
//! each migration exactly once.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Transaction};

use crate::migrate::{BOOKKEEPING, MIGRATIONS_POSTGRES};

type Db = sqlx::Postgres;
type StoreImpl = PostgresStore;
const BACKEND: Backend = Backend::Postgres;

/// The `LISTEN/NOTIFY` channel on which replicas announce pending jobs.
const JOBS_CHANNEL: &str = "pipewright_jobs";

/// Any constant works; it only has to be the same in every replica.
const MIGRATION_LOCK_KEY: i64 = 0x7069_7065_7772_6967; // "pipewrig"

/// The PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    /// The group-commit writer for pipeline creations (see `queries.rs`).
    writer: tokio::sync::mpsc::Sender<PipelineRequest>,
    /// The group-commit writer for job claims and results (see `queries.rs`).
    job_writer: tokio::sync::mpsc::Sender<JobRequest>,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(crate::ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        let store = PostgresStore {
            pool: pool.clone(),
            job_writer: spawn_job_writer(pool.clone()),
            writer: spawn_pipeline_writer(pool),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Replicas share the database, so nothing is cached here.
    fn cached_protected_branches(
        &self,
        _project_id: ProjectId,
    ) -> (Option<Vec<ProtectedBranch>>, u64) {
        (None, 0)
    }

    fn cache_protected_branches(
        &self,
        _project_id: ProjectId,
        _rules: &[ProtectedBranch],
        _generation: u64,
    ) {
    }

    fn invalidate_protected_branches(&self, _project_id: ProjectId) {}

    // The SQLite store's inline reads; here every read goes through the pool.
    fn inline_jobs(&self, _sql: &str, _arg: InlineArg<'_>) -> Option<Result<Vec<Job>>> {
        None
    }

    fn inline_pipeline(&self, _sql: &str, _arg: InlineArg<'_>) -> Option<Result<Option<Pipeline>>> {
        None
    }

    fn inline_runner(&self, _sql: &str, _arg: InlineArg<'_>) -> Option<Result<Option<Runner>>> {
        None
    }

    async fn announce_jobs_impl(&self) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(JOBS_CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn watch_jobs_impl(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let pool = self.pool.clone();
        Some(tokio::spawn(async move {
            loop {
                let listening: std::result::Result<(), sqlx::Error> = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen(JOBS_CHANNEL).await?;
                    loop {
                        listener.recv().await?;
                        wake.notify_waiters();
                    }
                }
                .await;
                if let Err(err) = listening {
                    tracing::warn!(error = %err, "listening for job announcements failed; retrying");
                }
                // Whatever was announced meanwhile is found by the runners' periodic look.
                wake.notify_waiters();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }))
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Db>> {
        begin_write_on(&self.pool).await
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        let result = async {
            sqlx::query(BOOKKEEPING).execute(&mut *conn).await?;
            for m in MIGRATIONS_POSTGRES {
                let done = sqlx::query("SELECT 1 FROM schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *conn)
                    .await?;
                if done.is_some() {
                    continue;
                }
                tracing::info!(version = m.version, name = m.name, "applying migration");
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
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
            Ok::<(), StoreError>(())
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        result
    }
}

async fn begin_write_on(pool: &sqlx::Pool<Db>) -> Result<Transaction<'static, Db>> {
    Ok(pool.begin().await?)
}

include!("queries.rs");
