//! Schema migrations, embedded in the binary and applied at start-up. Each backend has its own
//! folder of SQL files; both must list the same versions so that a feature never exists on one
//! database only (a test compares the lists). We run them ourselves instead of through sqlx's
//! migrator so the binary needs no proc-macro crates and the bookkeeping table is identical on
//! both backends.

/// One migration: a version (the file's numeric prefix), a name and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($version:literal => $file:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $file,
            sql: include_str!(concat!("../migrations/", $dir, "/", $file)),
        }),*]
    };
}

pub const MIGRATIONS_SQLITE: &[Migration] = migrations!("sqlite":
    1 => "0001_foundation.sql",
);

pub const MIGRATIONS_POSTGRES: &[Migration] = migrations!("postgres":
    1 => "0001_foundation.sql",
);

pub(crate) const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";
