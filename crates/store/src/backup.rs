//! What `pipewright backup` and `restore` need from the database, without opening a store:
//! opening one migrates, and a backup must never change the database it copies (nor a restore
//! the one it unpacked before the server checks it).
//!
//! A SQLite backup is `VACUUM INTO` a new file: one read transaction, so the copy is the
//! database as of one instant, and in WAL mode the running server keeps reading and writing
//! meanwhile. Everything else the backup checks (the schema version, the commits pipelines
//! point at) is read from that copy, so it describes exactly what was saved.

use std::path::Path;

use crate::db::sqlite::{Rusqlite, vacuum_into};
use crate::db::{Db, Exec, RowExt, query, run_ready};
use crate::{Result, StoreError};

/// What a database snapshot holds that the rest of a backup depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The newest migration the database has applied (`None`: an empty database).
    pub schema_version: Option<i64>,
    /// Every pipeline's project id and commit, once each, by project: the commits the
    /// repositories saved after the snapshot must contain.
    pub pipeline_commits: Vec<(i64, String)>,
}

/// The SQLite database file a `sqlite:` URL names (`None` for an in-memory database).
pub fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>> {
    crate::db::sqlite::file(url)
}

/// Copies the SQLite database at `file` (the live one: the server may be writing) into the new
/// file `dest`, consistently, and describes the copy.
pub fn snapshot_sqlite(file: &Path, dest: &Path) -> Result<Snapshot> {
    vacuum_into(file, dest)?;
    inspect_sqlite(dest)
}

/// Describes a SQLite database file that no server is using (a snapshot, or a restored one).
pub fn inspect_sqlite(file: &Path) -> Result<Snapshot> {
    let conn = crate::db::sqlite::open_read_only(file)?;
    let mut conn = Rusqlite(&conn);
    let tables = query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1");
    let tables = tables.bind("schema_migrations");
    if run_ready(conn.fetch_optional(&tables, |row| row.get::<String>(0)))?.is_none() {
        return Ok(Snapshot::default());
    }
    let version = query("SELECT MAX(version) FROM schema_migrations");
    let schema_version = run_ready(conn.fetch_optional(&version, |row| row.get(0)))?.flatten();
    let commits = query("SELECT DISTINCT project_id, sha FROM pipelines ORDER BY project_id, sha");
    let pipeline_commits = match schema_version {
        Some(_) => run_ready(conn.fetch_all(&commits, |row| Ok((row.get(0)?, row.get(1)?))))?,
        None => Vec::new(),
    };
    Ok(Snapshot {
        schema_version,
        pipeline_commits,
    })
}

/// The newest migration the database `url` names has applied, without migrating it (for a
/// PostgreSQL backup, whose database the operator dumps with `pg_dump`, and a restore's check).
pub async fn schema_version(url: &str) -> Result<Option<i64>> {
    match crate::Backend::from_url(url) {
        Some(crate::Backend::Sqlite) => match sqlite_file(url)? {
            Some(file) => Ok(inspect_sqlite(&file)?.schema_version),
            None => Ok(None),
        },
        Some(crate::Backend::Postgres) => postgres_schema_version(url).await,
        None => Err(StoreError::InvalidUrl),
    }
}

async fn postgres_schema_version(url: &str) -> Result<Option<i64>> {
    let db = Db::connect(url).await?;
    let version = query("SELECT MAX(version) FROM schema_migrations");
    let found = db.fetch_optional(&version, |row| row.get(0)).await;
    db.close().await;
    match found {
        Ok(version) => Ok(version.flatten()),
        // 42P01, undefined table: nothing was ever migrated.
        Err(StoreError::Database(sqlx::Error::Database(e)))
            if e.code().as_deref() == Some("42P01") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
