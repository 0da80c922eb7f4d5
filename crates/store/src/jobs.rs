//! Jobs after their creation: reading and listing them, their status changes outside the
//! runner protocol (cancel, play, retry, delayed jobs), their artifacts and stored logs. What
//! runners do to jobs (claims, results, log chunks, leases) is the queue's (`queue.rs`).

use std::collections::HashSet;

use async_trait::async_trait;
use pipewright_core::{Status, Timestamp};

use crate::Result;
use crate::db::{Commit, Exec, Listing, Query, Row, RowExt, col, first, query, select};
use crate::model::*;
use crate::store::SqlStore;

/// Jobs: reading, listing, transitions, retries, artifacts and logs.
#[async_trait]
pub trait JobStore: Send + Sync {
    async fn job(&self, project_id: ProjectId, id: i64) -> Result<Option<Job>>;
    async fn job_by_id(&self, id: i64) -> Result<Option<Job>>;
    /// A pipeline's current jobs (not retried attempts), by position.
    async fn pipeline_all_jobs(&self, pipeline_id: i64) -> Result<Vec<Job>>;
    async fn pipeline_jobs(
        &self,
        pipeline_id: i64,
        statuses: &[Status],
        page: Page,
    ) -> Result<Paged<Job>>;
    /// A project's jobs, newest first (retried attempts included, as GitLab lists them).
    async fn project_jobs(
        &self,
        project_id: ProjectId,
        statuses: &[Status],
        page: Page,
    ) -> Result<Paged<Job>>;
    /// As [`crate::PipelineStore::pipelines_window`] for a project's jobs (newest first),
    /// including retried ones.
    async fn project_jobs_window(
        &self,
        project_id: ProjectId,
        statuses: &[Status],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Job>>;
    /// Sets statuses of jobs that have not started (pending/skipped/manual/scheduled/canceled).
    async fn set_job_statuses(&self, changes: &[(i64, Status)]) -> Result<()>;
    /// Moves a job from one of `from` to `to` (stamping queued/finished times); false when it
    /// was in none of them, so two racing callers cannot both win.
    async fn transition_job(&self, job_id: i64, from: &[Status], to: Status) -> Result<bool>;
    async fn schedule_job(&self, job_id: i64, at: Timestamp) -> Result<()>;
    async fn due_scheduled_jobs(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>>;
    /// Marks a finished job `retried` and inserts a fresh attempt in `status`; `None` when the
    /// job was already retried or has not finished.
    async fn retry_job(&self, job_id: i64, status: Status) -> Result<Option<Job>>;
    /// How many attempts of a job a pipeline has had.
    async fn job_attempts(&self, pipeline_id: i64, name: &str) -> Result<i64>;
    /// Whether a current job of the pipeline failed or was canceled but was allowed to
    /// (GitLab's `has_warnings?`: `builds.latest.failed_but_allowed`).
    async fn pipeline_has_warnings(&self, pipeline_id: i64) -> Result<bool>;
    /// Which of `pipeline_ids` have warnings (as [`JobStore::pipeline_has_warnings`]), asked
    /// with one statement: what a list page asks for its rows.
    async fn pipelines_with_warnings(&self, pipeline_ids: &[i64]) -> Result<HashSet<i64>>;
    async fn set_job_artifacts(&self, job_id: i64, artifacts: Option<&JobArtifacts>) -> Result<()>;
    async fn erase_job(&self, job_id: i64) -> Result<()>;
    async fn expired_artifacts(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>>;
    /// The successful job `job_name` of the latest successful pipeline for `ref_name`.
    async fn latest_successful_job_for_ref(
        &self,
        project_id: ProjectId,
        ref_name: &str,
        job_name: &str,
    ) -> Result<Option<Job>>;
    /// A job's whole log.
    async fn job_trace(&self, job_id: i64) -> Result<Vec<u8>>;
    /// The log from byte `offset` on (empty past its end).
    async fn job_trace_from(&self, job_id: i64, offset: i64) -> Result<Vec<u8>>;
    async fn erase_trace(&self, job_id: i64) -> Result<()>;
}

/// A job's columns, in the order [`job_from_row`] reads them.
macro_rules! job_columns {
    () => {
        "id, pipeline_id, project_id, name, stage, stage_idx, position, status, when_condition, \
         allow_failure, spec, failure_reason, created_at, queued_at, started_at, finished_at, \
         runner_id, lease_expires_at, exit_code, retried, scheduled_at, erased_at, \
         artifacts_filename, artifacts_size, artifacts_expire_at, trace_size"
    };
}
pub(crate) use job_columns;
const JOB_COLUMNS: &str = job_columns!();

pub(crate) fn job_from_row(row: &dyn Row) -> Result<Job> {
    const COLUMNS: &str = JOB_COLUMNS;
    let artifacts = match row.get::<Option<String>>(col!("artifacts_filename"))? {
        Some(filename) => Some(JobArtifacts {
            filename,
            size: row.get::<Option<i64>>(col!("artifacts_size"))?.unwrap_or(0),
            expire_at: row.get(col!("artifacts_expire_at"))?,
        }),
        None => None,
    };
    Ok(Job {
        id: row.get(col!("id"))?,
        pipeline_id: row.get(col!("pipeline_id"))?,
        project_id: row.get(col!("project_id"))?,
        name: row.get(col!("name"))?,
        stage: row.get(col!("stage"))?,
        stage_idx: row.get(col!("stage_idx"))?,
        position: row.get(col!("position"))?,
        status: row.get(col!("status"))?,
        when: row.get(col!("when_condition"))?,
        allow_failure: row.get(col!("allow_failure"))?,
        spec: row.get(col!("spec"))?,
        failure_reason: row.get(col!("failure_reason"))?,
        created_at: row.get(col!("created_at"))?,
        queued_at: row.get(col!("queued_at"))?,
        started_at: row.get(col!("started_at"))?,
        finished_at: row.get(col!("finished_at"))?,
        runner_id: row.get(col!("runner_id"))?,
        lease_expires_at: row.get(col!("lease_expires_at"))?,
        exit_code: row.get(col!("exit_code"))?,
        retried: row.get(col!("retried"))?,
        scheduled_at: row.get(col!("scheduled_at"))?,
        erased_at: row.get(col!("erased_at"))?,
        artifacts,
        trace_size: row.get(col!("trace_size"))?,
    })
}

/// ` AND status IN (…)` when any statuses are given.
pub(crate) fn push_statuses(q: &mut Query<'_>, statuses: &[Status]) {
    if !statuses.is_empty() {
        q.push(" AND status IN (")
            .push_list(statuses.iter().map(|s| s.as_str()))
            .push(")");
    }
}

/// Changes a job's status if it is in one of `from`, stamping the times `to` implies.
fn transition<'a>(job_id: i64, from: &[Status], to: Status) -> Query<'a> {
    let now = Timestamp::now();
    let mut q = query(
        "UPDATE jobs SET status = $2, queued_at = COALESCE($3, queued_at), \
         finished_at = CASE WHEN $5 THEN NULL ELSE COALESCE($4, finished_at) END, \
         started_at = CASE WHEN $5 THEN NULL WHEN $7 THEN COALESCE(started_at, $8) \
         ELSE started_at END, \
         lease_expires_at = CASE WHEN $6 THEN NULL ELSE lease_expires_at END \
         WHERE id = $1 AND status IN (",
    )
    .bind(job_id)
    .bind(to.as_str())
    .bind((to == Status::Pending).then_some(now))
    .bind(to.is_complete().then_some(now))
    .bind(to == Status::Created)
    .bind(to.is_complete())
    .bind(to == Status::Running)
    .bind(now);
    // Statuses are our own enum's names, so listing them inline is safe and keeps the
    // statement cacheable per set.
    for (i, status) in from.iter().enumerate() {
        q.push(if i == 0 { "'" } else { ", '" })
            .push(status.as_str())
            .push("'");
    }
    q.push(")");
    q
}

/// The log from the chunk that holds `offset` on (a live log's poll reads only what is
/// new), cut to start at `offset`.
fn trace_tail(chunks: Vec<(i64, Vec<u8>)>, offset: i64) -> Vec<u8> {
    let first = chunks.first().map_or(offset, |(start, _)| *start);
    let mut out: Vec<u8> = chunks.into_iter().flat_map(|(_, data)| data).collect();
    let skip = usize::try_from(offset - first).unwrap_or(0).min(out.len());
    out.drain(..skip);
    out
}

impl SqlStore {
    /// The jobs `sql` (`… $1 … LIMIT $2`) finds due at `now`: what the maintenance loop acts
    /// on (delayed jobs, expired artifacts, expired leases).
    pub(crate) async fn jobs_due(
        &self,
        sql: &'static str,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<Job>> {
        let q = query(sql).bind(now).bind(limit);
        self.db.fetch_all(&q, job_from_row).await
    }
}

#[async_trait]
impl JobStore for SqlStore {
    async fn job(&self, project_id: ProjectId, id: i64) -> Result<Option<Job>> {
        let sql = select!(job_columns, "jobs", "WHERE project_id = $1 AND id = $2");
        let q = query(sql).bind(project_id).bind(id);
        self.db.fetch_optional(&q, job_from_row).await
    }

    async fn job_by_id(&self, id: i64) -> Result<Option<Job>> {
        let sql = select!(job_columns, "jobs", "WHERE id = $1");
        self.db
            .fetch_optional(&query(sql).bind(id), job_from_row)
            .await
    }

    async fn pipeline_all_jobs(&self, pipeline_id: i64) -> Result<Vec<Job>> {
        let sql = select!(
            job_columns,
            "jobs",
            "WHERE pipeline_id = $1 AND retried = FALSE ORDER BY position"
        );
        self.hot_read(&query(sql).bind(pipeline_id), job_from_row)
            .await
    }

    async fn pipeline_jobs(
        &self,
        pipeline_id: i64,
        statuses: &[Status],
        page: Page,
    ) -> Result<Paged<Job>> {
        let filter = |q: &mut Query<'_>| {
            q.push(" WHERE retried = FALSE AND pipeline_id = ")
                .push_bind(pipeline_id);
            push_statuses(q, statuses);
        };
        let listing = Listing {
            columns: JOB_COLUMNS,
            from: "jobs",
            filter: &filter,
            order: &["position"],
        };
        self.db.paged(listing, page, job_from_row).await
    }

    async fn project_jobs(
        &self,
        project_id: ProjectId,
        statuses: &[Status],
        page: Page,
    ) -> Result<Paged<Job>> {
        let filter = |q: &mut Query<'_>| {
            q.push(" WHERE project_id = ").push_bind(project_id);
            push_statuses(q, statuses);
        };
        let listing = Listing {
            columns: JOB_COLUMNS,
            from: "jobs",
            filter: &filter,
            order: &["id DESC"],
        };
        self.db.paged(listing, page, job_from_row).await
    }

    async fn project_jobs_window(
        &self,
        project_id: ProjectId,
        statuses: &[Status],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Job>> {
        let mut q = query(select!(job_columns, "jobs", "WHERE project_id = $1")).bind(project_id);
        push_statuses(&mut q, statuses);
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        q.push(" OFFSET ").push_bind(offset);
        self.db.fetch_all(&q, job_from_row).await
    }

    async fn set_job_statuses(&self, changes: &[(i64, Status)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now();
        let mut tx = self.db.begin_write().await?;
        for (id, status) in changes {
            let q = query(
                "UPDATE jobs SET status = $2, queued_at = COALESCE($3, queued_at), \
                 finished_at = COALESCE($4, finished_at) \
                 WHERE id = $1 AND status IN ('created', 'manual', 'scheduled', 'pending')",
            )
            .bind(*id)
            .bind(status.as_str())
            .bind((*status == Status::Pending).then_some(now))
            .bind(status.is_complete().then_some(now));
            tx.execute(&q).await?;
        }
        tx.commit().await
    }

    async fn transition_job(&self, job_id: i64, from: &[Status], to: Status) -> Result<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        Ok(self.db.execute(&transition(job_id, from, to)).await? > 0)
    }

    async fn schedule_job(&self, job_id: i64, at: Timestamp) -> Result<()> {
        let q = query("UPDATE jobs SET scheduled_at = $2 WHERE id = $1")
            .bind(job_id)
            .bind(at);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn due_scheduled_jobs(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>> {
        let sql = select!(
            job_columns,
            "jobs",
            "WHERE status = 'scheduled' AND scheduled_at <= $1 \
             ORDER BY scheduled_at LIMIT $2"
        );
        self.jobs_due(sql, now, limit).await
    }

    async fn retry_job(&self, job_id: i64, status: Status) -> Result<Option<Job>> {
        let now = Timestamp::now();
        let mut tx = self.db.begin_write().await?;
        let mark = query(
            "UPDATE jobs SET retried = TRUE WHERE id = $1 AND retried = FALSE \
             AND status IN ('success', 'failed', 'canceled', 'skipped')",
        )
        .bind(job_id);
        if tx.execute(&mark).await? == 0 {
            return Ok(None);
        }
        let sql = concat!(
            "INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, position, status, \
             when_condition, allow_failure, spec, created_at, queued_at) \
             SELECT pipeline_id, project_id, name, stage, stage_idx, position, $2, \
             when_condition, allow_failure, spec, $3, $4 FROM jobs WHERE id = $1 RETURNING ",
            job_columns!()
        );
        let copy = query(sql)
            .bind(job_id)
            .bind(status.as_str())
            .bind(now)
            .bind((status == Status::Pending).then_some(now));
        let job = tx.fetch_one(&copy, job_from_row).await?;
        tx.commit().await?;
        Ok(Some(job))
    }

    async fn job_attempts(&self, pipeline_id: i64, name: &str) -> Result<i64> {
        let q = query("SELECT COUNT(*) FROM jobs WHERE pipeline_id = $1 AND name = $2")
            .bind(pipeline_id)
            .bind(name);
        self.db.fetch_one(&q, first).await
    }

    async fn pipeline_has_warnings(&self, pipeline_id: i64) -> Result<bool> {
        let q = query(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE pipeline_id = $1 AND retried = FALSE \
             AND allow_failure = TRUE AND status IN ('failed', 'canceled') LIMIT 1) AS warned",
        )
        .bind(pipeline_id);
        let count: i64 = self.db.fetch_one(&q, first).await?;
        Ok(count > 0)
    }

    async fn pipelines_with_warnings(&self, pipeline_ids: &[i64]) -> Result<HashSet<i64>> {
        if pipeline_ids.is_empty() {
            return Ok(HashSet::new());
        }
        // Each id is looked up through `jobs_pipeline` (pipeline_id, position), as the
        // single-pipeline question is; a page holds at most 100 ids.
        let mut q = query(
            "SELECT DISTINCT pipeline_id FROM jobs WHERE retried = FALSE AND allow_failure = TRUE \
             AND status IN ('failed', 'canceled') AND pipeline_id IN (",
        );
        q.push_list(pipeline_ids.iter().copied()).push(")");
        let ids: Vec<i64> = self.db.fetch_all(&q, first).await?;
        Ok(ids.into_iter().collect())
    }

    async fn set_job_artifacts(&self, job_id: i64, artifacts: Option<&JobArtifacts>) -> Result<()> {
        let q = query(
            "UPDATE jobs SET artifacts_filename = $2, artifacts_size = $3, \
             artifacts_expire_at = $4 WHERE id = $1",
        )
        .bind(job_id)
        .bind(artifacts.map(|a| a.filename.as_str()))
        .bind(artifacts.map(|a| a.size))
        .bind(artifacts.and_then(|a| a.expire_at));
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn erase_job(&self, job_id: i64) -> Result<()> {
        let q = query(
            "UPDATE jobs SET erased_at = $2, artifacts_filename = NULL, artifacts_size = NULL, \
             artifacts_expire_at = NULL WHERE id = $1",
        )
        .bind(job_id)
        .bind(Timestamp::now());
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn expired_artifacts(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>> {
        let sql = select!(
            job_columns,
            "jobs",
            "WHERE artifacts_expire_at < $1 ORDER BY artifacts_expire_at LIMIT $2"
        );
        self.jobs_due(sql, now, limit).await
    }

    async fn latest_successful_job_for_ref(
        &self,
        project_id: ProjectId,
        ref_name: &str,
        job_name: &str,
    ) -> Result<Option<Job>> {
        let sql = select!(
            job_columns,
            "jobs",
            "WHERE pipeline_id = (SELECT id FROM pipelines WHERE project_id = $1 \
             AND ref_name = $2 AND status = 'success' ORDER BY id DESC LIMIT 1) \
             AND name = $3 AND status = 'success' AND retried = FALSE ORDER BY id DESC LIMIT 1"
        );
        let q = query(sql).bind(project_id).bind(ref_name).bind(job_name);
        self.db.fetch_optional(&q, job_from_row).await
    }

    async fn job_trace(&self, job_id: i64) -> Result<Vec<u8>> {
        let q = query("SELECT data FROM job_trace_chunks WHERE job_id = $1 ORDER BY start_offset")
            .bind(job_id);
        let chunks: Vec<Vec<u8>> = self.db.fetch_all(&q, first).await?;
        Ok(chunks.concat())
    }

    async fn job_trace_from(&self, job_id: i64, offset: i64) -> Result<Vec<u8>> {
        let q = query(
            "SELECT start_offset, data FROM job_trace_chunks WHERE job_id = $1 AND start_offset >= \
             (SELECT COALESCE(MAX(start_offset), 0) FROM job_trace_chunks \
              WHERE job_id = $1 AND start_offset <= $2) \
             ORDER BY start_offset",
        )
        .bind(job_id)
        .bind(offset);
        let chunks = self
            .db
            .fetch_all(&q, |row| Ok((row.get(0)?, row.get(1)?)))
            .await?;
        Ok(trace_tail(chunks, offset))
    }

    async fn erase_trace(&self, job_id: i64) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let chunks = query("DELETE FROM job_trace_chunks WHERE job_id = $1").bind(job_id);
        tx.execute(&chunks).await?;
        let size = query("UPDATE jobs SET trace_size = 0 WHERE id = $1").bind(job_id);
        tx.execute(&size).await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_tail_starts_at_the_offset_inside_its_first_chunk() {
        let chunks = vec![(4, b"efgh".to_vec()), (8, b"ij".to_vec())];
        assert_eq!(trace_tail(chunks.clone(), 6), b"ghij");
        assert_eq!(trace_tail(chunks, 4), b"efghij");
        assert_eq!(trace_tail(Vec::new(), 3), b"");
    }

    #[test]
    fn a_transition_lists_its_from_statuses_inline() {
        let q = transition(1, &[Status::Pending, Status::Running], Status::Canceled);
        assert!(q.sql().ends_with("status IN ('pending', 'running')"));
        assert_eq!(q.args().len(), 8);
    }
}
