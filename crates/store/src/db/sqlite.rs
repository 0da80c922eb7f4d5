//! SQLite: the embedded default, one file in the data dir.
//!
//! Settings and why: WAL so readers never block the writer; `synchronous = FULL` because an
//! acknowledged API write must survive power loss, not only a crash; foreign keys on (SQLite
//! leaves them off by default); a busy timeout so concurrent writers queue instead of failing;
//! write transactions start with `BEGIN IMMEDIATE` so two transactions that both read then
//! write cannot deadlock on the lock upgrade.
//!
//! The job queue's hot path avoids sqlx here. sqlx's SQLite driver runs every statement on a
//! per-connection worker thread, so each statement costs two thread hand-offs; the job writer
//! (claims, results, log chunks; see `queue.rs`) instead runs on its own OS thread with its own
//! rusqlite connection ([`WriterConnection`]), and the path's point reads run inline on pooled
//! read-only connections ([`InlineReads`]). Both run the same [`Query`] as every other
//! connection, through [`Rusqlite`]: same SQL, same settings, same one commit per batch before
//! anyone is answered. rusqlite links the same `libsqlite3-sys` as sqlx.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Arg, Commit, Decode, Exec, Query, Row, Transactional, run_ready};
use crate::{Result, StoreError};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The connect options every pool connection gets (see the module docs).
fn options(url: &str) -> Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT))
}

pub(crate) async fn pool(url: &str) -> Result<sqlx::SqlitePool> {
    Ok(SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(crate::ACQUIRE_TIMEOUT)
        .connect_with(options(url)?)
        .await?)
}

/// The database file a URL names; `None` for an in-memory database, where other connections
/// would open other databases (so everything must go through the pool).
pub(crate) fn file(url: &str) -> Result<Option<std::path::PathBuf>> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    Ok(Some(options(url)?.get_filename().to_path_buf()))
}

/// Opens an existing database file for reading only (it is never created).
pub(crate) fn open_read_only(path: &std::path::Path) -> Result<rusqlite::Connection> {
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Writes a consistent copy of the database at `path` into the new file `dest` (`VACUUM INTO`:
/// one read transaction, so writers carry on in WAL mode; the copy is compact and has no WAL).
pub(crate) fn vacuum_into(path: &std::path::Path, dest: &std::path::Path) -> Result<()> {
    let dest = dest
        .to_str()
        .ok_or_else(|| StoreError::Corrupt(format!("not a UTF-8 path: {}", dest.display())))?;
    open_read_only(path)?.execute("VACUUM INTO ?1", [dest])?;
    Ok(())
}

/// Write transactions take the write lock up front (see the module docs).
pub(crate) async fn begin_write(
    pool: &sqlx::SqlitePool,
) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// A rusqlite connection (or transaction) as an [`Exec`]. Its futures never wait: each
/// statement runs to completion when polled (see [`run_ready`]).
pub(crate) struct Rusqlite<'c>(pub(crate) &'c rusqlite::Connection);

impl Rusqlite<'_> {
    /// The statement, prepared (cached) and with its parameters bound. SQLite numbers named
    /// parameters (`$N`) by first appearance, so each is bound by its name's number.
    fn prepare(&self, q: &Query<'_>) -> Result<rusqlite::CachedStatement<'_>> {
        let mut stmt = self.0.prepare_cached(&q.text(crate::Backend::Sqlite))?;
        for index in 1..=stmt.parameter_count() {
            // Anonymous `?`s (see `Query::text`) are bound by position.
            let number = match stmt.parameter_name(index) {
                Some(name) => name.strip_prefix(['$', '?']).and_then(|n| n.parse().ok()),
                None => Some(index),
            };
            let arg = number
                .and_then(|n: usize| q.args().get(n.checked_sub(1)?))
                .ok_or_else(|| StoreError::Corrupt(format!("unbound parameter in {}", q.sql())))?;
            match arg {
                Arg::Int(v) => stmt.raw_bind_parameter(index, v)?,
                Arg::Text(v) => stmt.raw_bind_parameter(index, v.as_deref())?,
                Arg::Bool(v) => stmt.raw_bind_parameter(index, v)?,
                Arg::Bytes(v) => stmt.raw_bind_parameter(index, v.as_deref())?,
            }
        }
        Ok(stmt)
    }

    fn rows<T>(&self, q: &Query<'_>, decode: Decode<T>, limit: usize) -> Result<Vec<T>> {
        let mut stmt = self.prepare(q)?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(row) = rows.next()?
        {
            out.push(decode(row)?);
        }
        Ok(out)
    }
}

impl Exec for Rusqlite<'_> {
    async fn execute(&mut self, q: &Query<'_>) -> Result<u64> {
        Ok(self.prepare(q)?.raw_execute()? as u64)
    }

    async fn fetch_all<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<Vec<T>> {
        self.rows(q, decode, usize::MAX)
    }

    async fn fetch_optional<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<Option<T>> {
        Ok(self.rows(q, decode, 1)?.pop())
    }
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, index: usize) -> Result<Option<i64>> {
        Ok(self.get(index)?)
    }
    fn text(&self, index: usize) -> Result<Option<String>> {
        Ok(self.get(index)?)
    }
    fn boolean(&self, index: usize) -> Result<Option<bool>> {
        Ok(self.get(index)?)
    }
    fn bytes(&self, index: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.get(index)?)
    }
}

/// The job writer thread's own connection.
pub(crate) struct WriterConnection(rusqlite::Connection);

impl WriterConnection {
    /// Opens `path` as the pool's connections are opened: WAL (already the file's mode), full
    /// sync, foreign keys, the same busy timeout.
    pub(crate) fn open(path: &std::path::Path) -> Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(WriterConnection(conn))
    }
}

/// A `BEGIN IMMEDIATE` transaction on the writer's connection.
pub(crate) struct WriterTx<'c>(rusqlite::Transaction<'c>);

impl Exec for WriterTx<'_> {
    async fn execute(&mut self, q: &Query<'_>) -> Result<u64> {
        Rusqlite(&self.0).execute(q).await
    }

    async fn fetch_all<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<Vec<T>> {
        Rusqlite(&self.0).fetch_all(q, decode).await
    }

    async fn fetch_optional<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<Option<T>> {
        Rusqlite(&self.0).fetch_optional(q, decode).await
    }
}

impl Commit for WriterTx<'_> {
    async fn commit(self) -> Result<()> {
        Ok(self.0.commit()?)
    }
}

impl Transactional for WriterConnection {
    type Tx<'a> = WriterTx<'a>;

    async fn begin_write(&mut self) -> Result<WriterTx<'_>> {
        let behavior = rusqlite::TransactionBehavior::Immediate;
        Ok(WriterTx(self.0.transaction_with_behavior(behavior)?))
    }
}

/// Reads on the hot path (a runner's token, a job's token, a pipeline and its jobs, the
/// pending jobs), run on the calling thread: each is an index lookup of a few rows from the
/// page cache, which takes microseconds and, in WAL mode, never waits for a writer, while the
/// same read through sqlx costs two thread hand-offs to a connection worker and back.
/// Connections are kept for reuse, one per thread that reads at a time.
pub(crate) struct InlineReads {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl InlineReads {
    pub(crate) fn new(path: std::path::PathBuf) -> Self {
        InlineReads {
            path,
            idle: Default::default(),
        }
    }

    fn connection(&self) -> Result<rusqlite::Connection> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
    }

    pub(crate) fn fetch_all<T>(&self, q: &Query<'_>, decode: Decode<T>) -> Result<Vec<T>> {
        let conn = self.connection()?;
        let result = run_ready(Rusqlite(&conn).fetch_all(q, decode));
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 8
        {
            idle.push(conn);
        }
        result
    }
}
