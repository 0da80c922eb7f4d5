//! The SQLite backend: the embedded default, one file in the data dir.
//!
//! Settings and why: WAL so readers never block the writer; `synchronous = FULL` because an
//! acknowledged API write must survive power loss, not only a crash; foreign keys on (SQLite
//! leaves them off by default); a busy timeout so concurrent writers queue instead of failing;
//! write transactions start with `BEGIN IMMEDIATE` so two transactions that both read then
//! write cannot deadlock on the lock upgrade.

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
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
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
