//! Schema migrations, embedded in the binary and applied at start-up, and the one runner that
//! applies them on either database. Each backend has its own folder of SQL files (their DDL
//! differs: identity columns, BLOB/BYTEA); both must list the same versions so that a feature
//! never exists on one database only (a test compares the lists). We run them ourselves
//! instead of through sqlx's migrator so the binary needs no proc-macro crates and the
//! bookkeeping table is identical on both backends.
//!
//! Migrations only go forward: there are no down migrations, and a released migration is never
//! edited (a fix is a new migration). So an upgrade is "start the new version"; a downgrade is
//! "restore a backup taken before the upgrade" (`pipewright backup`).
//!
//! One write transaction holds the whole run: the check that the database is not newer than
//! this binary, then every pending migration. On SQLite the transaction holds the write lock
//! from its start; on PostgreSQL it first takes an advisory lock (`pg_advisory_xact_lock`,
//! released when the transaction ends, even if the process dies). So replicas starting
//! together, even of different versions, migrate one after the other, never both at once: the
//! second finds the work done, or, if it is the older one, a schema newer than it knows, and
//! refuses to start ([`StoreError::SchemaTooNew`]) instead of running on it. A failed migration
//! rolls the whole run back, so the database is never left between two versions.

use pipewright_core::Timestamp;

use crate::db::{Commit, Db, Exec, RowExt, Tx, query};
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
    14 => "0014_pipeline_schedules.sql",
    15 => "0015_trigger_rotation.sql",
    16 => "0016_idempotency_keys.sql",
    17 => "0017_runner_compat.sql",
    18 => "0018_groups.sql",
    19 => "0019_group_ci.sql",
    20 => "0020_token_families.sql",
    21 => "0021_repository_pages.sql",
    22 => "0022_schedule_inputs.sql",
    23 => "0023_creation_levels.sql",
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

/// The newest schema version this binary knows.
pub fn latest_version() -> i64 {
    // Both lists hold the same versions (a test checks it).
    MIGRATIONS_SQLITE.last().map_or(0, |m| m.version)
}

/// Applies the backend's migrations up to `version` (all of them with `None`) that this
/// database has not applied yet, all in one transaction under the migration lock; refuses a
/// database that a newer version has migrated further than this binary knows.
pub(crate) async fn run(db: &Db, version: Option<i64>) -> Result<()> {
    let mut tx = begin(db).await?;
    tx.execute(&query(BOOKKEEPING)).await?;
    let applied = applied_versions(&mut tx).await?;
    let latest = latest_version();
    if let Some(&newest) = applied.last()
        && newest > latest
    {
        return Err(StoreError::SchemaTooNew {
            database: newest,
            supported: latest,
        });
    }
    let pending = for_backend(db.backend()).iter().filter(|m| {
        version.is_none_or(|v| m.version <= v) && applied.binary_search(&m.version).is_err()
    });
    for migration in pending {
        apply(&mut tx, migration).await?;
    }
    tx.commit().await
}

/// The versions this database has applied, in ascending order.
async fn applied_versions(tx: &mut Tx) -> Result<Vec<i64>> {
    let versions = query("SELECT version FROM schema_migrations ORDER BY version");
    tx.fetch_all(&versions, |row| row.get(0)).await
}

/// A write transaction that no other migrating replica is inside.
async fn begin(db: &Db) -> Result<Tx> {
    let mut tx = db.begin_write().await?;
    if db.backend() == Backend::Postgres {
        crate::db::postgres::lock_for_migration(&mut tx).await?;
    }
    Ok(tx)
}

async fn apply(tx: &mut Tx, m: &Migration) -> Result<()> {
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
    Ok(())
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
