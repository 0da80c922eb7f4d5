//! Durable storage for Pipewright. This crate owns the schema, every SQL statement and the two
//! backends: SQLite (the embedded default: one file in the data dir, WAL, foreign keys on) and
//! PostgreSQL (the scale-out store several servers share). Nothing outside this crate writes
//! SQL or sees a connection; the rest of the system talks to [`Store`], an object-safe trait
//! whose two implementations share their SQL text (see `queries.rs`, compiled once per
//! backend) and keep dialect-only features in their own module. Migrations are per backend and
//! both folders must list the same versions (a test checks it).

mod error;
mod migrate;
pub mod model;
mod postgres;
mod sqlite;

use async_trait::async_trait;

pub use error::StoreError;
pub use migrate::{MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE, Migration};
pub use model::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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

/// The one parameter (`$1`) of a read the SQLite store runs inline (see `sqlite.rs`).
#[derive(Clone, Copy)]
enum InlineArg<'a> {
    Int(i64),
    Text(&'a str),
}

/// Opens the database a URL names and applies pending migrations.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => Ok(std::sync::Arc::new(SqliteStore::connect(url).await?)),
        Some(Backend::Postgres) => Ok(std::sync::Arc::new(PostgresStore::connect(url).await?)),
        None => Err(StoreError::InvalidUrl),
    }
}

/// Everything the server persists. Methods are grouped by entity; each is one statement or one
/// short transaction, so a returned `Ok` means the change is durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;
    /// Versions of the migrations applied to this database, ascending.
    async fn applied_migrations(&self) -> Result<Vec<i64>>;
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

    // Users
    async fn create_user(&self, user: &NewUser) -> Result<User>;
    async fn user(&self, id: UserId) -> Result<Option<User>>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn users(&self, page: Page, search: Option<&str>) -> Result<Paged<User>>;
    async fn count_users(&self) -> Result<i64>;
    async fn update_user(&self, id: UserId, update: &UserUpdate) -> Result<User>;
    async fn set_user_state(&self, id: UserId, state: UserState) -> Result<()>;
    async fn delete_user(&self, id: UserId) -> Result<()>;

    // Personal access tokens
    async fn create_personal_access_token(
        &self,
        token: &NewPersonalAccessToken,
    ) -> Result<PersonalAccessToken>;
    /// The token with this digest (revoked and expired ones included: the caller decides).
    async fn personal_access_token_by_digest(
        &self,
        digest: &str,
    ) -> Result<Option<PersonalAccessToken>>;
    async fn personal_access_token(&self, id: i64) -> Result<Option<PersonalAccessToken>>;
    async fn personal_access_tokens(
        &self,
        user_id: Option<UserId>,
        page: Page,
    ) -> Result<Paged<PersonalAccessToken>>;
    async fn revoke_personal_access_token(&self, id: i64) -> Result<()>;
    async fn touch_personal_access_token(
        &self,
        id: i64,
        at: pipewright_core::Timestamp,
    ) -> Result<()>;

    // Namespaces
    async fn namespace(&self, id: NamespaceId) -> Result<Option<Namespace>>;
    async fn namespace_by_path(&self, path: &str) -> Result<Option<Namespace>>;
    async fn user_namespace(&self, user_id: UserId) -> Result<Option<Namespace>>;

    // Projects
    /// Creates the project and makes its creator an Owner, in one transaction.
    async fn create_project(&self, project: &NewProject) -> Result<Project>;
    async fn project(&self, id: ProjectId) -> Result<Option<Project>>;
    async fn project_by_full_path(&self, namespace: &str, path: &str) -> Result<Option<Project>>;
    async fn projects(&self, filter: &ProjectFilter, page: Page) -> Result<Paged<Project>>;
    async fn update_project(&self, id: ProjectId, update: &ProjectUpdate) -> Result<Project>;
    async fn delete_project(&self, id: ProjectId) -> Result<()>;

    // Members
    async fn member(&self, project_id: ProjectId, user_id: UserId) -> Result<Option<Member>>;
    async fn members(&self, project_id: ProjectId, page: Page) -> Result<Paged<Member>>;
    async fn add_member(
        &self,
        project_id: ProjectId,
        user_id: UserId,
        level: pipewright_core::AccessLevel,
        expires_at: Option<pipewright_core::Timestamp>,
    ) -> Result<Member>;
    async fn update_member(
        &self,
        project_id: ProjectId,
        user_id: UserId,
        level: pipewright_core::AccessLevel,
        expires_at: Option<pipewright_core::Timestamp>,
    ) -> Result<Member>;
    async fn remove_member(&self, project_id: ProjectId, user_id: UserId) -> Result<()>;

    // Protected branches
    async fn protected_branches(&self, project_id: ProjectId) -> Result<Vec<ProtectedBranch>>;
    async fn create_protected_branch(&self, branch: &NewProtectedBranch)
    -> Result<ProtectedBranch>;
    async fn delete_protected_branch(&self, project_id: ProjectId, name: &str) -> Result<()>;

    // Pipeline trigger tokens
    async fn create_trigger(&self, trigger: &NewTrigger) -> Result<Trigger>;
    async fn trigger(&self, project_id: ProjectId, id: i64) -> Result<Option<Trigger>>;
    /// The trigger with this token digest, in any project (the caller checks the project).
    async fn trigger_by_digest(&self, digest: &str) -> Result<Option<Trigger>>;
    /// Everything the trigger endpoint needs about a token, in one statement: the trigger, its
    /// project, its owner and the owner's current role there.
    async fn trigger_run_context(&self, digest: &str) -> Result<Option<TriggerContext>>;
    async fn triggers(&self, project_id: ProjectId, page: Page) -> Result<Paged<Trigger>>;
    async fn update_trigger_description(&self, id: i64, description: &str) -> Result<Trigger>;
    async fn delete_trigger(&self, id: i64) -> Result<()>;

    // Pipelines
    /// Creates a pipeline with its per-project iid, variables and jobs in one transaction, and
    /// records the trigger's use.
    async fn create_pipeline(&self, pipeline: &NewPipeline) -> Result<Pipeline>;
    async fn pipeline(&self, project_id: ProjectId, id: i64) -> Result<Option<Pipeline>>;
    async fn pipelines(
        &self,
        project_id: ProjectId,
        filter: &PipelineFilter,
        page: Page,
    ) -> Result<Paged<Pipeline>>;
    async fn pipeline_variables(&self, pipeline_id: i64) -> Result<Vec<StoredVariable>>;
    async fn delete_pipeline(&self, id: i64) -> Result<()>;
    async fn pipeline_jobs(
        &self,
        pipeline_id: i64,
        statuses: &[pipewright_core::Status],
        page: Page,
    ) -> Result<Paged<Job>>;
    async fn job(&self, project_id: ProjectId, id: i64) -> Result<Option<Job>>;

    // Running jobs
    /// Pending jobs, oldest first (claim candidates).
    async fn pending_jobs(&self, limit: i64) -> Result<Vec<Job>>;
    /// Pending jobs of pipelines on protected refs, oldest first: the candidates of a
    /// `ref_protected` runner (GitLab's `Ci::Build.ref_protected`).
    async fn pending_protected_jobs(&self, limit: i64) -> Result<Vec<Job>>;
    /// Claims the first of `candidates` that is still pending for a runner (status `running`,
    /// job token, lease). `None` when others claimed them all first: each update only succeeds
    /// from `pending`.
    async fn claim_job(
        &self,
        candidates: &[i64],
        runner_id: i64,
        token_digest: &str,
        lease_until: pipewright_core::Timestamp,
    ) -> Result<Option<Job>>;
    /// Appends a log chunk that must start where the log ends; past `limit` bytes the log is
    /// cut (with `note` once) and further chunks are dropped. Group-committed.
    async fn append_trace(
        &self,
        job_id: i64,
        start: u64,
        data: &[u8],
        limit: u64,
        note: &[u8],
    ) -> Result<TraceAppend>;
    /// A job's whole log.
    async fn job_trace(&self, job_id: i64) -> Result<Vec<u8>>;
    /// The log from byte `offset` on (empty past its end).
    async fn job_trace_from(&self, job_id: i64, offset: i64) -> Result<Vec<u8>>;
    async fn erase_trace(&self, job_id: i64) -> Result<()>;
    async fn job_by_id(&self, id: i64) -> Result<Option<Job>>;
    async fn job_by_token(&self, token_digest: &str) -> Result<Option<Job>>;
    async fn renew_job_lease(&self, job_id: i64, until: pipewright_core::Timestamp) -> Result<()>;
    /// Moves a running job to a final status; false when it was not running any more.
    async fn finish_job(
        &self,
        job_id: i64,
        status: pipewright_core::Status,
        failure_reason: Option<&str>,
        exit_code: Option<i64>,
    ) -> Result<bool>;
    async fn pipeline_all_jobs(&self, pipeline_id: i64) -> Result<Vec<Job>>;
    /// Sets statuses of jobs that have not started (pending/skipped/manual/scheduled/canceled).
    async fn set_job_statuses(&self, changes: &[(i64, pipewright_core::Status)]) -> Result<()>;
    /// Sets a pipeline's status; true when it changed.
    async fn set_pipeline_status(
        &self,
        pipeline_id: i64,
        status: pipewright_core::Status,
    ) -> Result<bool>;
    async fn pipeline_by_id(&self, id: i64) -> Result<Option<Pipeline>>;

    // A job's life after creation: listing, transitions, retries, leases, artifacts.
    /// A project's jobs, newest first (retried attempts included, as GitLab lists them).
    async fn project_jobs(
        &self,
        project_id: ProjectId,
        statuses: &[pipewright_core::Status],
        page: Page,
    ) -> Result<Paged<Job>>;
    /// Moves a job from one of `from` to `to` (stamping queued/finished times); false when it
    /// was in none of them, so two racing callers cannot both win.
    async fn transition_job(
        &self,
        job_id: i64,
        from: &[pipewright_core::Status],
        to: pipewright_core::Status,
    ) -> Result<bool>;
    async fn schedule_job(&self, job_id: i64, at: pipewright_core::Timestamp) -> Result<()>;
    async fn due_scheduled_jobs(
        &self,
        now: pipewright_core::Timestamp,
        limit: i64,
    ) -> Result<Vec<Job>>;
    /// Running jobs whose runner has not been heard from since their lease ran out.
    async fn expired_leases(&self, now: pipewright_core::Timestamp, limit: i64)
    -> Result<Vec<Job>>;
    /// Ends the leases of a runner's running jobs now (its process restarted).
    async fn expire_runner_leases(&self, runner_id: i64) -> Result<u64>;
    /// Marks a finished job `retried` and inserts a fresh attempt in `status`; `None` when the
    /// job was already retried or has not finished.
    async fn retry_job(&self, job_id: i64, status: pipewright_core::Status) -> Result<Option<Job>>;
    /// The pipeline a `trigger:` job (or a job's `CI_JOB_TOKEN`) started, newest first.
    async fn downstream_pipeline(&self, job_id: i64) -> Result<Option<Pipeline>>;
    /// How many attempts of a job a pipeline has had.
    async fn job_attempts(&self, pipeline_id: i64, name: &str) -> Result<i64>;
    async fn set_job_artifacts(&self, job_id: i64, artifacts: Option<&JobArtifacts>) -> Result<()>;
    async fn erase_job(&self, job_id: i64) -> Result<()>;
    async fn expired_artifacts(
        &self,
        now: pipewright_core::Timestamp,
        limit: i64,
    ) -> Result<Vec<Job>>;
    /// The successful job `job_name` of the latest successful pipeline for `ref_name`.
    async fn latest_successful_job_for_ref(
        &self,
        project_id: ProjectId,
        ref_name: &str,
        job_name: &str,
    ) -> Result<Option<Job>>;

    // CI/CD variables (project and instance) and who may pass pipeline variables
    /// The variables of a project (`Some`) or of the instance (`None`), by key.
    async fn ci_variables(&self, project_id: Option<ProjectId>) -> Result<Vec<CiVariable>>;
    /// The instance's and a project's variables in one read (what a pipeline needs).
    async fn ci_variables_for_pipeline(&self, project_id: ProjectId) -> Result<Vec<CiVariable>>;
    /// Creates a variable; `None` when one with that key (and scope) exists.
    async fn create_ci_variable(&self, variable: &CiVariable) -> Result<Option<CiVariable>>;
    /// Replaces a variable's fields (found by id).
    async fn update_ci_variable(&self, variable: &CiVariable) -> Result<CiVariable>;
    async fn delete_ci_variable(&self, id: i64) -> Result<()>;
    /// `ci_pipeline_variables_minimum_override_role`, when the project set it.
    async fn pipeline_variables_minimum_role(
        &self,
        project_id: ProjectId,
    ) -> Result<Option<String>>;
    /// The project's default job timeout in seconds (`build_timeout`), when set.
    async fn project_build_timeout(&self, project_id: ProjectId) -> Result<Option<i64>>;
    async fn set_project_build_timeout(&self, project_id: ProjectId, seconds: i64) -> Result<()>;
    async fn set_pipeline_variables_minimum_role(
        &self,
        project_id: ProjectId,
        role: &str,
    ) -> Result<()>;

    // Webhooks and their delivery queue; instance settings
    async fn project_hooks(&self, project_id: ProjectId) -> Result<Vec<ProjectHook>>;
    async fn project_hook(&self, project_id: ProjectId, id: i64) -> Result<Option<ProjectHook>>;
    async fn project_hook_by_id(&self, id: i64) -> Result<Option<ProjectHook>>;
    async fn create_project_hook(&self, hook: &ProjectHook) -> Result<ProjectHook>;
    async fn update_project_hook(&self, hook: &ProjectHook) -> Result<ProjectHook>;
    async fn delete_project_hook(&self, id: i64) -> Result<()>;
    async fn enqueue_hook_deliveries(&self, deliveries: &[NewHookDelivery]) -> Result<()>;
    /// Claims due deliveries (pending ones whose time has come, and sends whose claim ran
    /// out because their sender died) until `claim_until`.
    async fn claim_hook_deliveries(
        &self,
        now: pipewright_core::Timestamp,
        claim_until: pipewright_core::Timestamp,
        limit: i64,
    ) -> Result<Vec<HookDelivery>>;
    async fn record_hook_attempt(&self, id: i64, attempt: &DeliveryAttempt) -> Result<()>;
    /// A hook's most recent deliveries, newest first.
    async fn hook_deliveries(&self, hook_id: i64, limit: i64) -> Result<Vec<HookDelivery>>;
    async fn setting(&self, name: &str) -> Result<Option<String>>;
    async fn set_setting(&self, name: &str, value: &str) -> Result<()>;

    // Job token scope ("Limit access to this project")
    /// Whether the project limits job tokens of other projects (default true).
    async fn job_token_scope_enabled(&self, project_id: ProjectId) -> Result<bool>;
    async fn set_job_token_scope_enabled(&self, project_id: ProjectId, enabled: bool)
    -> Result<()>;
    /// The projects whose job tokens may reach `project_id`.
    async fn job_token_allowlist(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Project>>;
    /// False when the entry already exists.
    async fn add_to_job_token_allowlist(
        &self,
        project_id: ProjectId,
        target_project_id: ProjectId,
    ) -> Result<bool>;
    /// False when there was no such entry.
    async fn remove_from_job_token_allowlist(
        &self,
        project_id: ProjectId,
        target_project_id: ProjectId,
    ) -> Result<bool>;
    /// Whether a job token of `source` may reach `target` under `target`'s scope.
    async fn job_token_allowed(&self, target: ProjectId, source: ProjectId) -> Result<bool>;

    // Runners
    async fn create_runner(&self, runner: &NewRunner) -> Result<Runner>;
    async fn runner(&self, id: i64) -> Result<Option<Runner>>;
    async fn runner_by_digest(&self, digest: &str) -> Result<Option<Runner>>;
    async fn runners(&self, scope: RunnerScope, page: Page) -> Result<Paged<Runner>>;
    async fn update_runner(&self, id: i64, update: &RunnerUpdate) -> Result<Runner>;
    async fn delete_runner(&self, id: i64) -> Result<()>;
    async fn touch_runner(&self, id: i64, at: pipewright_core::Timestamp) -> Result<()>;

    // Push events (the outbox that pipelines-on-push and webhooks consume)
    async fn record_push_events(&self, events: &[NewPushEvent]) -> Result<Vec<PushEvent>>;
    async fn pending_push_events(&self, limit: i64) -> Result<Vec<PushEvent>>;
    /// Claims a push event; false when another process already did.
    async fn mark_push_event_processed(&self, id: i64) -> Result<bool>;

    // Web UI
    /// One page of a project's pipelines without counting them all (the pages show "Next"
    /// when `limit` rows came back), so a page costs the same with 10 or 10,000 pipelines.
    async fn pipelines_window(
        &self,
        project_id: ProjectId,
        filter: &PipelineFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Pipeline>>;
    /// As [`Store::pipelines_window`] for a project's jobs (newest first), including retried ones.
    async fn project_jobs_window(
        &self,
        project_id: ProjectId,
        statuses: &[pipewright_core::Status],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Job>>;
    async fn pipelines_by_ids(&self, ids: &[i64]) -> Result<Vec<Pipeline>>;
    async fn create_web_session(&self, session: &WebSession) -> Result<()>;
    async fn web_session(&self, id_digest: &str) -> Result<Option<WebSession>>;
    async fn touch_web_session(
        &self,
        id_digest: &str,
        now: pipewright_core::Timestamp,
        expires_at: pipewright_core::Timestamp,
    ) -> Result<()>;
    async fn delete_web_session(&self, id_digest: &str) -> Result<()>;
    /// Removes sessions that expired before `now`; returns how many.
    async fn delete_expired_web_sessions(&self, now: pipewright_core::Timestamp) -> Result<u64>;
    /// Counts a failed sign-in under `key`; a window that started before `window_after` starts
    /// over at `now`. Returns the failures in the current window.
    async fn record_sign_in_failure(
        &self,
        key: &str,
        now: pipewright_core::Timestamp,
        window_after: pipewright_core::Timestamp,
    ) -> Result<i64>;
    /// The failures counted under each key (`(key, failures, window_start)`), for those that
    /// have any.
    async fn sign_in_failures(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, i64, pipewright_core::Timestamp)>>;
    async fn clear_sign_in_failures(&self, key: &str) -> Result<()>;
    /// Forgets windows that started before `before`.
    async fn delete_old_sign_in_failures(&self, before: pipewright_core::Timestamp) -> Result<u64>;
}
