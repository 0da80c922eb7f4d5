//! The job queue: pending jobs, claims, results, log chunks and leases.
//!
//! Every state change is a conditional update ("from these statuses to that one"), so racing
//! runners, API calls, the maintenance loop and other replicas cannot both win. Claims,
//! results, log chunks and the pipeline statuses they imply go through one group-commit
//! writer ([`JobWriter`]), so a batch of concurrent runners' changes costs one transaction:
//! each must be durable before it is acknowledged, and one transaction each would cost one
//! fsync per change. Within a batch changes run in arrival order, so two claims of one job
//! still resolve to one winner.
//!
//! Each change is written once, against [`Exec`]: the writer runs it on a pool transaction
//! (PostgreSQL, in-memory SQLite) or, on a SQLite file, on its own thread's rusqlite
//! connection (see `db/sqlite.rs`).

use async_trait::async_trait;
use pipewright_core::{Status, Timestamp};

use crate::db::{Commit, Exec, Query, Transactional, first, query, select};
use crate::group_commit::{self, Writer};
use crate::jobs::{job_columns, job_from_row};
use crate::model::*;
use crate::store::SqlStore;
use crate::{Result, StoreError};

/// The job queue: what runners and the lease keeper do to jobs.
#[async_trait]
pub trait QueueStore: Send + Sync {
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
        lease_until: Timestamp,
    ) -> Result<Option<Job>>;
    /// Moves a running job to a final status; false when it was not running any more.
    async fn finish_job(
        &self,
        job_id: i64,
        status: Status,
        failure_reason: Option<&str>,
        exit_code: Option<i64>,
    ) -> Result<bool>;
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
    /// The job whose job token has this digest.
    async fn job_by_token(&self, token_digest: &str) -> Result<Option<Job>>;
    async fn renew_job_lease(&self, job_id: i64, until: Timestamp) -> Result<()>;
    /// Running jobs whose runner has not been heard from since their lease ran out.
    async fn expired_leases(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>>;
    /// Ends the leases of a runner's running jobs now (its process restarted).
    async fn expire_runner_leases(&self, runner_id: i64) -> Result<u64>;
}

/// A change for the job writer.
pub(crate) enum JobOp {
    Claim {
        candidates: Vec<i64>,
        runner_id: i64,
        token_digest: String,
        lease_until: Timestamp,
    },
    Finish {
        job_id: i64,
        status: Status,
        failure_reason: Option<String>,
        exit_code: Option<i64>,
    },
    /// A pipeline's status, which job changes imply: through this writer, it shares their
    /// transactions instead of contending for SQLite's write lock.
    PipelineStatus { pipeline_id: i64, status: Status },
    AppendTrace {
        job_id: i64,
        start: u64,
        data: Vec<u8>,
        limit: u64,
        /// Appended once, when a chunk is cut at the limit.
        note: Vec<u8>,
    },
}

pub(crate) enum JobOpResult {
    Claimed(Option<Box<Job>>),
    /// Whether a conditional update changed its row.
    Changed(bool),
    Traced(TraceAppend),
}

/// Where job changes are sent.
pub(crate) type JobChanges = group_commit::Sender<JobOp, JobOpResult>;

/// The job writer on a connection `C` (the pool, or SQLite's writer connection).
pub(crate) struct JobWriter<C>(C);

impl<C> JobWriter<C> {
    pub(crate) fn new(conn: C) -> Self {
        JobWriter(conn)
    }
}

impl<C: Transactional> Writer for JobWriter<C> {
    type Change = JobOp;
    type Output = JobOpResult;

    async fn write(&mut self, ops: &[&JobOp]) -> Result<Vec<JobOpResult>> {
        let now = Timestamp::now();
        let mut tx = self.0.begin_write().await?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(apply(&mut tx, op, now).await?);
        }
        tx.commit().await?;
        Ok(results)
    }
}

/// One change, inside the writer's transaction.
async fn apply(tx: &mut impl Exec, op: &JobOp, now: Timestamp) -> Result<JobOpResult> {
    Ok(match op {
        JobOp::Claim {
            candidates,
            runner_id,
            token_digest,
            lease_until,
        } => {
            let claim = |id: i64| {
                query(CLAIM_JOB)
                    .bind(id)
                    .bind(*runner_id)
                    .bind(token_digest)
                    .bind(*lease_until)
                    .bind(now)
            };
            let mut claimed = None;
            for id in candidates {
                claimed = tx.fetch_optional(&claim(*id), job_from_row).await?;
                if claimed.is_some() {
                    break;
                }
            }
            JobOpResult::Claimed(claimed.map(Box::new))
        }
        JobOp::Finish {
            job_id,
            status,
            failure_reason,
            exit_code,
        } => {
            let finish = query(FINISH_JOB)
                .bind(*job_id)
                .bind(status.as_str())
                .bind(failure_reason)
                .bind(*exit_code)
                .bind(now);
            JobOpResult::Changed(tx.execute(&finish).await? > 0)
        }
        JobOp::PipelineStatus {
            pipeline_id,
            status,
        } => JobOpResult::Changed(
            tx.execute(&pipeline_status(*pipeline_id, *status, now))
                .await?
                > 0,
        ),
        JobOp::AppendTrace {
            job_id,
            start,
            data,
            limit,
            note,
        } => JobOpResult::Traced(append_trace(tx, *job_id, *start, data, (*limit, note)).await?),
    })
}

/// A pending job becomes the runner's: `running`, its job token's digest, its lease.
const CLAIM_JOB: &str = concat!(
    "UPDATE jobs SET status = 'running', runner_id = $2, token_digest = $3, \
     lease_expires_at = $4, started_at = $5 WHERE id = $1 AND status = 'pending' RETURNING ",
    job_columns!()
);
const FINISH_JOB: &str = "UPDATE jobs SET status = $2, failure_reason = $3, exit_code = $4, \
     finished_at = $5, lease_expires_at = NULL WHERE id = $1 AND status = 'running'";

/// Sets a pipeline's status (stamping its start and end once) unless it already has it.
fn pipeline_status<'a>(pipeline_id: i64, status: Status, now: Timestamp) -> Query<'a> {
    let started = (matches!(status, Status::Running) || status.is_complete()).then_some(now);
    let finished = status.is_complete().then_some(now);
    query(
        "UPDATE pipelines SET status = $2, updated_at = $3, started_at = COALESCE(started_at, $4), \
         finished_at = CASE WHEN $5 IS NULL THEN NULL ELSE COALESCE(finished_at, $5) END \
         WHERE id = $1 AND status <> $2",
    )
    .bind(pipeline_id)
    .bind(status.as_str())
    .bind(now)
    .bind(started)
    .bind(finished)
}

/// Stores a log chunk. The fast path is two statements: move the length on if the chunk
/// starts where the log ends, then store the chunk. Anything else needs the current length.
async fn append_trace(
    tx: &mut impl Exec,
    job_id: i64,
    start: u64,
    data: &[u8],
    (limit, note): (u64, &[u8]),
) -> Result<TraceAppend> {
    let (stored, new_size) = trace_chunk(start, data, limit, note);
    let moved = if stored.is_empty() {
        0
    } else {
        let q = query("UPDATE jobs SET trace_size = $3 WHERE id = $1 AND trace_size = $2")
            .bind(job_id)
            .bind(start as i64)
            .bind(new_size as i64);
        tx.execute(&q).await?
    };
    if moved == 0 {
        let q = query("SELECT trace_size FROM jobs WHERE id = $1").bind(job_id);
        let size: i64 = tx.fetch_optional(&q, first).await?.unwrap_or(0);
        let size = size.max(0) as u64;
        return Ok(if size == start {
            // Nothing to store (an empty chunk, or the log is full).
            TraceAppend::Appended { size }
        } else {
            TraceAppend::Mismatch { size }
        });
    }
    let insert =
        query("INSERT INTO job_trace_chunks (job_id, start_offset, data) VALUES ($1, $2, $3)")
            .bind(job_id)
            .bind(start as i64)
            .bind(stored);
    tx.execute(&insert).await?;
    Ok(TraceAppend::Appended { size: new_size })
}

/// What of a log chunk starting at `start` is stored under the size limit (cut, with `note`
/// once, where it crosses it), and the log's length after it.
fn trace_chunk(start: u64, data: &[u8], limit: u64, note: &[u8]) -> (Vec<u8>, u64) {
    let room = limit.saturating_sub(start) as usize;
    let mut stored = data[..data.len().min(room)].to_vec();
    if data.len() > room && room > 0 {
        stored.extend_from_slice(note);
    }
    let new_size = start + stored.len() as u64;
    (stored, new_size)
}

fn mismatched() -> StoreError {
    StoreError::Corrupt("the job writer answered another kind of change".into())
}

impl SqlStore {
    /// Hands a change to the job writer and waits for it to be committed.
    pub(crate) async fn job_op(&self, op: JobOp) -> Result<JobOpResult> {
        group_commit::submit(&self.job_writer, op).await
    }

    /// A conditional update through the job writer: whether it changed its row.
    pub(crate) async fn job_change(&self, op: JobOp) -> Result<bool> {
        match self.job_op(op).await? {
            JobOpResult::Changed(changed) => Ok(changed),
            _ => Err(mismatched()),
        }
    }
}

#[async_trait]
impl QueueStore for SqlStore {
    async fn pending_jobs(&self, limit: i64) -> Result<Vec<Job>> {
        let sql = select!(
            job_columns,
            "jobs",
            "WHERE status = 'pending' ORDER BY id LIMIT $1"
        );
        self.hot_read(&query(sql).bind(limit), job_from_row).await
    }

    async fn pending_protected_jobs(&self, limit: i64) -> Result<Vec<Job>> {
        // A job is protected when its pipeline's ref was protected at creation (GitLab copies
        // `protected_ref?` into `ci_builds.protected`; retries keep it), so the pipeline's flag
        // is the job's.
        let sql = select!(
            job_columns,
            "jobs",
            "WHERE status = 'pending' AND EXISTS (SELECT 1 FROM pipelines p \
             WHERE p.id = jobs.pipeline_id AND p.protected_ref = TRUE) ORDER BY id LIMIT $1"
        );
        self.hot_read(&query(sql).bind(limit), job_from_row).await
    }

    async fn claim_job(
        &self,
        candidates: &[i64],
        runner_id: i64,
        token_digest: &str,
        lease_until: Timestamp,
    ) -> Result<Option<Job>> {
        let op = JobOp::Claim {
            candidates: candidates.to_vec(),
            runner_id,
            token_digest: token_digest.to_string(),
            lease_until,
        };
        match self.job_op(op).await? {
            JobOpResult::Claimed(job) => Ok(job.map(|j| *j)),
            _ => Err(mismatched()),
        }
    }

    async fn finish_job(
        &self,
        job_id: i64,
        status: Status,
        failure_reason: Option<&str>,
        exit_code: Option<i64>,
    ) -> Result<bool> {
        self.job_change(JobOp::Finish {
            job_id,
            status,
            failure_reason: failure_reason.map(str::to_string),
            exit_code,
        })
        .await
    }

    async fn append_trace(
        &self,
        job_id: i64,
        start: u64,
        data: &[u8],
        limit: u64,
        note: &[u8],
    ) -> Result<TraceAppend> {
        let op = JobOp::AppendTrace {
            job_id,
            start,
            data: data.to_vec(),
            limit,
            note: note.to_vec(),
        };
        match self.job_op(op).await? {
            JobOpResult::Traced(done) => Ok(done),
            _ => Err(mismatched()),
        }
    }

    async fn job_by_token(&self, token_digest: &str) -> Result<Option<Job>> {
        let sql = select!(job_columns, "jobs", "WHERE token_digest = $1");
        self.hot_read_one(&query(sql).bind(token_digest), job_from_row)
            .await
    }

    async fn renew_job_lease(&self, job_id: i64, until: Timestamp) -> Result<()> {
        let q = query("UPDATE jobs SET lease_expires_at = $2 WHERE id = $1 AND status = 'running'")
            .bind(job_id)
            .bind(until);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn expired_leases(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>> {
        let sql = select!(
            job_columns,
            "jobs",
            "WHERE status = 'running' AND lease_expires_at < $1 \
             ORDER BY lease_expires_at LIMIT $2"
        );
        self.jobs_due(sql, now, limit).await
    }

    async fn expire_runner_leases(&self, runner_id: i64) -> Result<u64> {
        let q = query(
            "UPDATE jobs SET lease_expires_at = 0 WHERE runner_id = $1 AND status = 'running'",
        )
        .bind(runner_id);
        self.db.execute(&q).await
    }
}
