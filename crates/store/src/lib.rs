//! Durable storage for Pipewright. This crate owns the schema, every SQL statement and the two
//! backends: SQLite (the embedded default: one file in the data dir, WAL, foreign keys on) and
//! PostgreSQL (the scale-out store several servers share). Nothing outside this crate writes
//! SQL or sees a connection; the rest of the system talks to [`Store`], an object-safe trait
//! made of one sub-trait per entity.
//!
//! How it is laid out:
//!
//! - One module per entity (`users`, `projects`, `job_token_scope`, `triggers`, `pipelines`,
//!   `groups`, `jobs`, `queue`, `runners`, `variables`, `hooks`, `push_events`, `sessions`, `schedules`)
//!   holds its sub-trait, its SQL, its row decoders and its implementation, once for both databases.
//! - `db` runs those statements: SQL text with `$N` placeholders (which SQLite and PostgreSQL
//!   both accept) and typed arguments, on the sqlx pool of either backend, or on SQLite's job
//!   queue hot path on rusqlite connections (see `db/sqlite.rs`). Rows are read by position
//!   through one `Row` trait that every driver's row implements. Dialect-only code lives in
//!   `db/sqlite.rs` and `db/postgres.rs`, never in an entity module.
//! - `backup` snapshots a SQLite database for `pipewright backup` (`VACUUM INTO`) and reads
//!   a database's schema version without migrating it.
//! - `group_commit` batches pipeline creations and job changes into one transaction each;
//!   `migrate` holds the per-backend migration lists and the one runner.
//!
//! Why not one SQL file compiled per backend (as before): the entity code would be generic
//! over sqlx's database type or `include!`d twice; with backend-neutral statements and one
//! row trait, each statement, decoder and job-queue step is written and compiled once, and
//! rustfmt and editors see every file.

pub mod backup;
mod db;
mod error;
mod group_commit;
mod groups;
mod hooks;
mod idempotency;
mod job_token_scope;
mod jobs;
mod migrate;
pub mod model;
mod pipelines;
mod projects;
mod push_events;
mod queue;
mod runners;
mod schedules;
mod sessions;
mod store;
mod triggers;
mod users;
mod variables;

use async_trait::async_trait;

pub use error::StoreError;
pub use groups::GroupStore;
pub use hooks::HookStore;
pub use idempotency::{IdempotencyRecord, IdempotencyScope, IdempotencyStore};
pub use job_token_scope::JobTokenScopeStore;
pub use jobs::JobStore;
pub use migrate::{MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE, Migration, latest_version};
pub use model::*;
pub use pipelines::PipelineStore;
pub use projects::ProjectStore;
pub use push_events::PushEventStore;
pub use queue::QueueStore;
pub use runners::RunnerStore;
pub use schedules::{
    PipelineSchedule, PipelineScheduleFields, PipelineScheduleStore, ScheduleInput,
    ScheduleInputChange, ScheduleVariable,
};
pub use sessions::SessionStore;
pub use triggers::TriggerStore;
pub use users::UserStore;
pub use variables::VariableStore;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How long a statement waits for a pooled connection before the store answers
/// [`StoreError::Unavailable`]. With the database down every connection attempt is refused and
/// retried until this passes, so it is how long a request takes to fail in an outage: a few
/// seconds, so clients and load balancers can react (sqlx's default is 30 s).
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// Opens the database a URL names and applies pending migrations.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(store::SqlStore::open(url).await?))
}

/// Brings the database a URL names to exactly the schema of migration `version` (applying
/// what it lacks up to there, nothing after), without opening a store: for tests that upgrade
/// a database holding rows written by an older version.
pub async fn migrate_to(url: &str, version: i64) -> Result<()> {
    let db = db::Db::connect(url).await?;
    let migrated = migrate::run(&db, Some(version)).await;
    db.close().await;
    migrated
}

/// Everything the server persists: one sub-trait per entity (each method is one statement or
/// one short transaction, so a returned `Ok` means the change is durable), plus the store's
/// own life.
#[async_trait]
pub trait Store:
    UserStore
    + ProjectStore
    + GroupStore
    + JobTokenScopeStore
    + TriggerStore
    + PipelineStore
    + JobStore
    + QueueStore
    + RunnerStore
    + VariableStore
    + HookStore
    + PushEventStore
    + SessionStore
    + PipelineScheduleStore
    + IdempotencyStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;
    /// The database's part of the server's metrics (`/-/metrics`): jobs waiting for a runner
    /// and webhook deliveries waiting to be sent, as one statement.
    async fn gauges(&self) -> Result<Gauges>;
    /// The connection pool right now: (connections open, of which idle).
    fn pool_status(&self) -> (u32, u32);
    /// Waits for in-flight statements and closes every connection.
    async fn close(&self);

    /// Tells every server sharing this database that jobs became pending (PostgreSQL
    /// `NOTIFY`; a no-op on SQLite, which has one server).
    async fn announce_jobs(&self) -> Result<()>;
    /// Wakes `wake` whenever any server announces jobs (PostgreSQL `LISTEN`, reconnecting
    /// on failure); a no-op on SQLite. Returns the background task, if one was started.
    fn watch_jobs(
        &self,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>>;
}
