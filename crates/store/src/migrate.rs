//! Schema migrations, embedded in the binary and applied at start-up, and the one runner that
//! applies them on either database. Each backend has its own folder of SQL files (their DDL
//! differs: identity columns, BLOB/BYTEA); both must list the same versions so that a feature
//! never exists on one database only (a test compares the lists). We run them ourselves
//! instead of through sqlx's migrator so the binary needs no proc-macro crates and the
//! bookkeeping table is identical on both backends.
//!
//! Each migration is applied in its own write transaction that first checks it was not
//! applied meanwhile: on SQLite the transaction holds the write lock from its start, on
//! PostgreSQL it takes an advisory lock, so replicas starting together apply each migration
//! exactly once.

use pipewright_core::Timestamp;

use crate::db::{Commit, Db, Exec, Tx, query};
use crate::{Backend, Result, StoreError};

/// One migration: a version (the file's numeric prefix), a name and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Both backends' lists from one list of versions: a migration cannot be listed for one
/// database only (and a test checks that each folder holds exactly the listed files).
macro_rules! migrations {
    ($($version:literal => $file:literal),* $(,)?) => {
        /// SQLite's migrations, oldest first.
        pub const MIGRATIONS_SQLITE: &[Migration] = &[$(Migration {
            version: $version,
            name: $file,
            sql: include_str!(concat!("../migrations/sqlite/", $file)),
        }),*];
        /// PostgreSQL's migrations, oldest first.
        pub const MIGRATIONS_POSTGRES: &[Migration] = &[$(Migration {
            version: $version,
            name: $file,
            sql: include_str!(concat!("../migrations/postgres/", $file)),
        }),*];
    };
}

migrations! {
    1 => "0001_foundation.sql",
    2 => "0002_triggers.sql",
    3 => "0003_pipelines.sql",
    4 => "0004_runners.sql",
    5 => "0005_job_execution.sql",
    6 => "0006_job_lifecycle.sql",
    7 => "0007_trace_chunks.sql",
    8 => "0008_job_token_scope.sql",
    9 => "0009_ci_variables.sql",
    10 => "0010_bridges.sql",
    11 => "0011_webhooks.sql",
    12 => "0012_build_timeout.sql",
    13 => "0013_web_ui.sql",
    17 => "0017_runner_compat.sql",
}

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// The migrations of a backend.
pub(crate) fn for_backend(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => MIGRATIONS_SQLITE,
        Backend::Postgres => MIGRATIONS_POSTGRES,
    }
}

/// Applies the backend's migrations up to `version` (all of them with `None`) that this
/// database has not applied yet.
pub(crate) async fn run(db: &Db, version: Option<i64>) -> Result<()> {
    let mut tx = begin(db).await?;
    tx.execute(&query(BOOKKEEPING)).await?;
    tx.commit().await?;
    let wanted = for_backend(db.backend())
        .iter()
        .filter(|m| version.is_none_or(|v| m.version <= v));
    for migration in wanted {
        apply(db, migration).await?;
    }
    Ok(())
}

/// A write transaction that no other migrating replica is inside.
async fn begin(db: &Db) -> Result<Tx> {
    let mut tx = db.begin_write().await?;
    if db.backend() == Backend::Postgres {
        crate::db::postgres::lock_for_migration(&mut tx).await?;
    }
    Ok(tx)
}

async fn apply(db: &Db, m: &Migration) -> Result<()> {
    let mut tx = begin(db).await?;
    let applied = query("SELECT version FROM schema_migrations WHERE version = $1").bind(m.version);
    if tx.fetch_optional(&applied, |_| Ok(())).await?.is_some() {
        return Ok(());
    }
    tracing::info!(version = m.version, name = m.name, "applying migration");
    tx.execute_script(m.sql)
        .await
        .map_err(|source| StoreError::Migration {
            version: m.version,
            source,
        })?;
    let record =
        query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(Timestamp::now());
    tx.execute(&record).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feature must never exist on one database only.
    #[test]
    fn both_backends_list_the_same_migration_versions() {
        let sqlite: Vec<(i64, &str)> = MIGRATIONS_SQLITE
            .iter()
            .map(|m| (m.version, m.name))
            .collect();
        let postgres: Vec<(i64, &str)> = MIGRATIONS_POSTGRES
            .iter()
            .map(|m| (m.version, m.name))
            .collect();
        assert_eq!(sqlite, postgres);
        let mut sorted = sqlite.clone();
        sorted.sort();
        sorted.dedup_by_key(|m| m.0);
        assert_eq!(sorted, sqlite, "versions must be unique and ascending");
    }

    /// Every file in the migration folders is listed (nothing written and forgotten).
    #[test]
    fn every_migration_file_is_listed() {
        for (dir, list) in [
            ("sqlite", MIGRATIONS_SQLITE),
            ("postgres", MIGRATIONS_POSTGRES),
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .expect("migrations dir")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let listed: Vec<String> = list.iter().map(|m| m.name.to_string()).collect();
            assert_eq!(files, listed, "{dir}");
        }
    }
}
