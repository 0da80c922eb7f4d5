//! The store's one error type. Callers match on `NotFound` and `Conflict`; `Unavailable` (the
//! database cannot be reached or is shutting down) is a 503 the client may retry; everything
//! else is an internal failure the server turns into a logged 500.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("record not found")]
    NotFound,
    /// A uniqueness constraint failed; the payload names the constraint or column.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A row holds a value the code does not know (written by a newer version?).
    #[error("unexpected data: {0}")]
    Corrupt(String),
    /// The group commit this write was part of failed as a whole.
    #[error("group commit failed: {0}")]
    GroupCommit(String),
    /// The database did not answer: no connection within the pool's acquire timeout, the
    /// connection broke, or the server is shutting down or starting. Nothing was written
    /// (a write that failed this way was not committed).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database URL must start with sqlite: or postgres://")]
    InvalidUrl,
    /// The database was migrated by a newer Pipewright than this one: running on it could
    /// misread or damage what the newer version wrote, so the store refuses to open it.
    #[error(
        "the database's schema is at version {database}, newer than this Pipewright knows \
         (up to {supported}): a newer version of Pipewright has upgraded it. Run that version \
         (or a later one), or restore a backup taken before the upgrade; migrations only go \
         forward"
    )]
    SchemaTooNew { database: i64, supported: i64 },
    #[error("migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// From the SQLite job writer's own connection (see `sqlite.rs`).
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
}

impl StoreError {
    /// Whether the database could not be reached (worth retrying later), as opposed to a
    /// statement that failed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLSTATEs that mean the server cannot serve now: class 08 (connection exception), 53300
/// (too many connections), 57P01–57P03 (shutting down, crashed, starting up).
fn unavailable_state(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03")
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or(db.message()).to_string())
            }
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| unavailable_state(&c)) => {
                StoreError::Unavailable(err.to_string())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
            other => StoreError::Database(other),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            rusqlite::Error::SqliteFailure(e, ref message)
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Conflict(message.clone().unwrap_or_else(|| e.to_string()))
            }
            other => StoreError::Sqlite(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailable_not_a_failure() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            assert!(StoreError::from(err).is_unavailable());
        }
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::from(sqlx::Error::ColumnNotFound("x".into())).is_unavailable());
        for code in ["08006", "08001", "53300", "57P01", "57P03"] {
            assert!(unavailable_state(code), "{code}");
        }
        for code in ["23505", "42P01", "57014"] {
            assert!(!unavailable_state(code), "{code}");
        }
    }
}
