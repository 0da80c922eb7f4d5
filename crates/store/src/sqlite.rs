//! The SQLite backend: the embedded default, one file in the data dir.
//!
//! Settings and why: WAL so readers never block the writer; `synchronous = FULL` because an
//! acknowledged API write must survive power loss, not only a crash; foreign keys on (SQLite
//! leaves them off by default); a busy timeout so concurrent writers queue instead of failing;
//! write transactions start with `BEGIN IMMEDIATE` so two transactions that both read then
//! write cannot deadlock on the lock upgrade.
//!
//! Group commit (shared with PostgreSQL, see `queries.rs`): SQLite has one writer and every
//! durable commit costs an fsync, so pipeline creations (the trigger endpoint's hot path) go
//! through one writer task that takes every request waiting at that moment, writes them in one
//! transaction, and commits once. Each caller still gets its answer only after that commit, so a 201 is durable;
//! if one request fails (say, its project was just deleted), the batch is retried one by one.
//!
//! The job writer (claims, results, log chunks, the pipeline statuses they imply) is the job
//! queue's one serial path, so on SQLite it runs on its own OS thread with its own connection
//! (rusqlite, linking the same SQLite as sqlx): a batch is a plain loop of cached prepared
//! statements, with no hand-off to a connection worker thread per statement. Same SQL, same
//! order, same settings, same one commit before anyone is answered. The job path's point reads
//! run inline for the same reason (see `InlineReads`).

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
    writer: tokio::sync::mpsc::Sender<PipelineRequest>,
    /// The group-commit writer for job claims and results (see `queries.rs`).
    job_writer: tokio::sync::mpsc::Sender<JobRequest>,
    /// Protected-branch rules by project, read on every trigger and push. The embedded SQLite
    /// store is only ever written by this process, so invalidating on our own writes keeps the
    /// cache exact (the PostgreSQL store, shared by replicas, does not cache).
    protected: std::sync::Mutex<ProtectedCache>,
    /// The hot path's reads, on the caller's thread (`None` for an in-memory database).
    reads: Option<InlineReads>,
}

/// Cached rules plus a generation that every write bumps, so a read that raced a write never
/// stores what it read.
#[derive(Default)]
struct ProtectedCache {
    rules: std::collections::HashMap<ProjectId, Vec<ProtectedBranch>>,
    generation: u64,
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
            .acquire_timeout(crate::ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let (job_writer, reads) = if url.contains(":memory:") || url.contains("mode=memory") {
            // Other connections would open other databases: everything through the pool.
            (spawn_job_writer(pool.clone()), None)
        } else {
            let path = options.get_filename().to_path_buf();
            let writer = spawn_sqlite_job_writer(&path)?;
            let reads = InlineReads {
                path,
                idle: Default::default(),
            };
            (writer, Some(reads))
        };
        let store = SqliteStore {
            pool: pool.clone(),
            job_writer,
            reads,
            writer: spawn_pipeline_writer(pool),
            protected: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    fn cached_protected_branches(
        &self,
        project_id: ProjectId,
    ) -> (Option<Vec<ProtectedBranch>>, u64) {
        match self.protected.lock() {
            Ok(cache) => (cache.rules.get(&project_id).cloned(), cache.generation),
            Err(_) => (None, u64::MAX),
        }
    }

    fn cache_protected_branches(
        &self,
        project_id: ProjectId,
        rules: &[ProtectedBranch],
        generation: u64,
    ) {
        if let Ok(mut cache) = self.protected.lock()
            && cache.generation == generation
        {
            if cache.rules.len() > 10_000 {
                cache.rules.clear();
            }
            cache.rules.insert(project_id, rules.to_vec());
        }
    }

    /// One server per SQLite file: its in-process wake-up is all there is.
    async fn announce_jobs_impl(&self) -> Result<()> {
        Ok(())
    }

    fn watch_jobs_impl(
        &self,
        _wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }

    fn invalidate_protected_branches(&self, project_id: ProjectId) {
        if let Ok(mut cache) = self.protected.lock() {
            cache.generation += 1;
            cache.rules.remove(&project_id);
        }
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Db>> {
        begin_write_on(&self.pool).await
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

/// Write transactions take the write lock up front (see the module docs).
async fn begin_write_on(pool: &sqlx::Pool<Db>) -> Result<Transaction<'static, Db>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

// The shared SQL (and its column-list macros, which the SQLite-only code below uses).
include!("queries.rs");

/// Starts the job writer on its own thread and connection (see the module docs).
fn spawn_sqlite_job_writer(
    path: &std::path::Path,
) -> Result<tokio::sync::mpsc::Sender<JobRequest>> {
    let conn = rusqlite::Connection::open(path)?;
    // As the pool's connections: WAL (already the file's mode), full sync, foreign keys.
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(32);
    let (writer, requests) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
    std::thread::Builder::new()
        .name("job-writer".into())
        .spawn(move || sqlite_job_writer(conn, requests))
        .map_err(|e| StoreError::GroupCommit(format!("starting the job writer: {e}")))?;
    Ok(writer)
}

fn sqlite_job_writer(
    mut conn: rusqlite::Connection,
    mut requests: tokio::sync::mpsc::Receiver<JobRequest>,
) {
    let mut batch: Vec<JobRequest> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let ops: Vec<&JobOp> = batch.iter().map(|(op, _)| op).collect();
        let results = match apply_job_ops_sqlite(&mut conn, &ops) {
            Ok(results) => results.into_iter().map(Ok).collect::<Vec<_>>(),
            // Something failed: each change on its own, so one bad change costs only itself.
            Err(_) => ops
                .iter()
                .map(|op| {
                    apply_job_ops_sqlite(&mut conn, std::slice::from_ref(op)).and_then(|mut r| {
                        r.pop()
                            .ok_or_else(|| StoreError::Corrupt("no result".into()))
                    })
                })
                .collect(),
        };
        for ((_, reply), result) in batch.drain(..).zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// [`apply_job_ops`] on the writer thread's connection: one `BEGIN IMMEDIATE` transaction,
/// the changes in order, one commit.
fn apply_job_ops_sqlite(
    conn: &mut rusqlite::Connection,
    ops: &[&JobOp],
) -> Result<Vec<JobOpResult>> {
    use rusqlite::OptionalExtension;
    let now = Timestamp::now().millis();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            JobOp::Claim {
                candidates,
                runner_id,
                token_digest,
                lease_until,
            } => {
                let mut stmt = tx.prepare_cached(CLAIM_JOB_SQL)?;
                let mut claimed = None;
                for id in candidates {
                    let mut rows = stmt.query(rusqlite::named_params! {
                        "$1": id, "$2": runner_id, "$3": token_digest, "$4": lease_until, "$5": now,
                    })?;
                    if let Some(row) = rows.next()? {
                        claimed = Some(Box::new(job_from_sqlite_row(row)?));
                        break;
                    }
                }
                results.push(JobOpResult::Claimed(claimed));
            }
            JobOp::Finish {
                job_id,
                status,
                failure_reason,
                exit_code,
            } => {
                let changed = tx.prepare_cached(FINISH_JOB_SQL)?.execute(rusqlite::named_params! {
                    "$1": job_id, "$2": status.as_str(), "$3": failure_reason, "$4": exit_code, "$5": now,
                })?;
                results.push(JobOpResult::Finished(changed > 0));
            }
            JobOp::PipelineStatus {
                pipeline_id,
                status,
            } => {
                let (started, finished) = pipeline_status_times(*status, now);
                let changed = tx.prepare_cached(PIPELINE_STATUS_SQL)?.execute(rusqlite::named_params! {
                    "$1": pipeline_id, "$2": status.as_str(), "$3": now, "$4": started, "$5": finished,
                })?;
                results.push(JobOpResult::Finished(changed > 0));
            }
            JobOp::AppendTrace {
                job_id,
                start,
                data,
                limit,
                note,
            } => {
                let (stored, new_size) = trace_chunk(*start, data, *limit, note);
                let moved = if stored.is_empty() {
                    0
                } else {
                    tx.prepare_cached(TRACE_MOVE_SQL)?
                        .execute(rusqlite::named_params! {
                            "$1": job_id, "$2": *start as i64, "$3": new_size as i64,
                        })?
                };
                if moved == 0 {
                    let size: i64 = tx
                        .prepare_cached(TRACE_SIZE_SQL)?
                        .query_row(rusqlite::named_params! { "$1": job_id }, |row| row.get(0))
                        .optional()?
                        .unwrap_or(0);
                    let size = size.max(0) as u64;
                    results.push(JobOpResult::Traced(if size == *start {
                        // Nothing to store (an empty chunk, or the log is full).
                        TraceAppend::Appended { size }
                    } else {
                        TraceAppend::Mismatch { size }
                    }));
                    continue;
                }
                tx.prepare_cached(TRACE_INSERT_SQL)?
                    .execute(rusqlite::named_params! {
                        "$1": job_id, "$2": *start as i64, "$3": stored,
                    })?;
                results.push(JobOpResult::Traced(TraceAppend::Appended {
                    size: new_size,
                }));
            }
        }
    }
    tx.commit()?;
    Ok(results)
}

/// Reads on the hot path (a runner's token, a job's token, a pipeline and its jobs, the
/// pending jobs), run on the calling thread: each is an index lookup of a few rows from the
/// page cache, which takes microseconds and, in WAL mode, never waits for a writer, while the
/// same read through sqlx costs two thread hand-offs to a connection worker and back.
/// Connections are kept for reuse, one per thread that reads at a time.
struct InlineReads {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl InlineReads {
    fn run<T>(&self, read: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = rusqlite::Connection::open_with_flags(
                    &self.path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(Duration::from_secs(10))?;
                conn.set_prepared_statement_cache_capacity(16);
                conn
            }
        };
        let result = read(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 8
        {
            idle.push(conn);
        }
        result
    }

    fn rows<T>(
        &self,
        sql: &str,
        arg: InlineArg<'_>,
        decode: fn(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.run(|conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = match arg {
                InlineArg::Int(value) => stmt.query(rusqlite::named_params! { "$1": value })?,
                InlineArg::Text(value) => stmt.query(rusqlite::named_params! { "$1": value })?,
            };
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode(row)?);
            }
            Ok(out)
        })
    }
}

impl SqliteStore {
    fn inline_jobs(&self, sql: &str, arg: InlineArg<'_>) -> Option<Result<Vec<Job>>> {
        Some(self.reads.as_ref()?.rows(sql, arg, job_from_sqlite_row))
    }

    fn inline_pipeline(&self, sql: &str, arg: InlineArg<'_>) -> Option<Result<Option<Pipeline>>> {
        let rows = self
            .reads
            .as_ref()?
            .rows(sql, arg, pipeline_from_sqlite_row);
        Some(rows.map(|rows| rows.into_iter().next()))
    }

    fn inline_runner(&self, sql: &str, arg: InlineArg<'_>) -> Option<Result<Option<Runner>>> {
        let rows = self.reads.as_ref()?.rows(sql, arg, runner_from_sqlite_row);
        Some(rows.map(|rows| rows.into_iter().next()))
    }
}

/// Where `name` stands in a comma-separated column list (evaluated at compile time, where a
/// name that is not in the list fails the build).
const fn column(list: &str, name: &str) -> usize {
    let (list, name) = (list.as_bytes(), name.as_bytes());
    let (mut index, mut start, mut i) = (0, 0, 0);
    while i <= list.len() {
        if i == list.len() || list[i] == b',' {
            let (mut a, mut b) = (start, i);
            while a < b && list[a] == b' ' {
                a += 1;
            }
            while b > a && list[b - 1] == b' ' {
                b -= 1;
            }
            if b - a == name.len() {
                let mut k = 0;
                while k < name.len() && list[a + k] == name[k] {
                    k += 1;
                }
                if k == name.len() {
                    return index;
                }
            }
            index += 1;
            start = i + 1;
        }
        i += 1;
    }
    panic!("no such column in the list");
}

fn sqlite_time(row: &rusqlite::Row<'_>, column: usize) -> Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(column)?.map(Timestamp))
}

fn sqlite_status(row: &rusqlite::Row<'_>, column: usize) -> Result<Status> {
    let text: String = row.get(column)?;
    Status::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown status {text}")))
}

/// [`job_from_row`] for the writer's and the inline reads' connections.
fn job_from_sqlite_row(row: &rusqlite::Row<'_>) -> Result<Job> {
    // Columns by position (no name lookups per row), found in the list at compile time.
    macro_rules! c {
        ($name:literal) => {
            const { column(job_columns!(), $name) }
        };
    }
    let artifacts = match row.get::<_, Option<String>>(c!("artifacts_filename"))? {
        Some(filename) => Some(JobArtifacts {
            filename,
            size: row
                .get::<_, Option<i64>>(c!("artifacts_size"))?
                .unwrap_or(0),
            expire_at: sqlite_time(row, c!("artifacts_expire_at"))?,
        }),
        None => None,
    };
    Ok(Job {
        id: row.get(c!("id"))?,
        pipeline_id: row.get(c!("pipeline_id"))?,
        project_id: row.get(c!("project_id"))?,
        name: row.get(c!("name"))?,
        stage: row.get(c!("stage"))?,
        stage_idx: row.get(c!("stage_idx"))?,
        position: row.get(c!("position"))?,
        status: sqlite_status(row, c!("status"))?,
        when: row.get(c!("when_condition"))?,
        allow_failure: row.get(c!("allow_failure"))?,
        spec: row.get(c!("spec"))?,
        failure_reason: row.get(c!("failure_reason"))?,
        created_at: Timestamp(row.get(c!("created_at"))?),
        queued_at: sqlite_time(row, c!("queued_at"))?,
        started_at: sqlite_time(row, c!("started_at"))?,
        finished_at: sqlite_time(row, c!("finished_at"))?,
        runner_id: row.get(c!("runner_id"))?,
        lease_expires_at: sqlite_time(row, c!("lease_expires_at"))?,
        exit_code: row.get(c!("exit_code"))?,
        retried: row.get(c!("retried"))?,
        scheduled_at: sqlite_time(row, c!("scheduled_at"))?,
        erased_at: sqlite_time(row, c!("erased_at"))?,
        artifacts,
        trace_size: row.get(c!("trace_size"))?,
    })
}

/// [`pipeline_from_row`] for the inline reads' connections.
fn pipeline_from_sqlite_row(row: &rusqlite::Row<'_>) -> Result<Pipeline> {
    // Columns by position (no name lookups per row), found in the list at compile time.
    macro_rules! c {
        ($name:literal) => {
            const { column(pipeline_columns!(), $name) }
        };
    }
    let source: String = row.get(c!("source"))?;
    let upstream = match (
        row.get::<_, Option<i64>>(c!("upstream_job_id"))?,
        row.get::<_, Option<i64>>(c!("upstream_pipeline_id"))?,
        row.get::<_, Option<i64>>(c!("upstream_project_id"))?,
    ) {
        (Some(job_id), Some(pipeline_id), Some(project_id)) => Some(Upstream {
            job_id,
            pipeline_id,
            project_id,
        }),
        _ => None,
    };
    Ok(Pipeline {
        id: row.get(c!("id"))?,
        project_id: row.get(c!("project_id"))?,
        iid: row.get(c!("iid"))?,
        sha: row.get(c!("sha"))?,
        before_sha: row.get(c!("before_sha"))?,
        ref_name: row.get(c!("ref_name"))?,
        tag: row.get(c!("tag"))?,
        protected_ref: row.get(c!("protected_ref"))?,
        source: PipelineSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown source {source}")))?,
        status: sqlite_status(row, c!("status"))?,
        user_id: row.get(c!("user_id"))?,
        trigger_id: row.get(c!("trigger_id"))?,
        trigger_short_token: row.get(c!("trigger_short_token"))?,
        upstream,
        name: row.get(c!("name"))?,
        yaml_errors: row.get(c!("yaml_errors"))?,
        failure_reason: row.get(c!("failure_reason"))?,
        committed_at: sqlite_time(row, c!("committed_at"))?,
        created_at: Timestamp(row.get(c!("created_at"))?),
        updated_at: Timestamp(row.get(c!("updated_at"))?),
        started_at: sqlite_time(row, c!("started_at"))?,
        finished_at: sqlite_time(row, c!("finished_at"))?,
    })
}

/// [`runner_from_row`] for the inline reads' connections.
fn runner_from_sqlite_row(row: &rusqlite::Row<'_>) -> Result<Runner> {
    // Columns by position (no name lookups per row), found in the list at compile time.
    macro_rules! c {
        ($name:literal) => {
            const { column(runner_columns!(), $name) }
        };
    }
    let kind: String = row.get(c!("runner_type"))?;
    let tags: String = row.get(c!("tag_list"))?;
    Ok(Runner {
        id: row.get(c!("id"))?,
        runner_type: RunnerType::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown runner type {kind}")))?,
        project_id: row.get(c!("project_id"))?,
        creator_id: row.get(c!("creator_id"))?,
        description: row.get(c!("description"))?,
        tag_list: split_list(&tags),
        run_untagged: row.get(c!("run_untagged"))?,
        paused: row.get(c!("paused"))?,
        locked: row.get(c!("locked"))?,
        access_level: row.get(c!("access_level"))?,
        maximum_timeout: row.get(c!("maximum_timeout"))?,
        created_at: Timestamp(row.get(c!("created_at"))?),
        contacted_at: sqlite_time(row, c!("contacted_at"))?,
    })
}
