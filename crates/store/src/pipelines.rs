//! Pipelines: creating them (with their variables and jobs, group-committed), reading and
//! listing them, and their status.
//!
//! Creation is the trigger endpoint's hot path. Every creation goes through one
//! group-commit writer ([`PipelineWriter`], see `group_commit.rs`), which writes a batch with
//! a fixed number of statements however many pipelines it holds: one iid reservation per
//! project, then one multi-row insert each for pipelines, variables and jobs.

use std::collections::HashMap;

use async_trait::async_trait;
use pipewright_core::{PipelineSource, Status, Timestamp};

use crate::db::{
    Arg, Commit, Db, Exec, Listing, Query, Row, RowExt, Tx, col, first, query, select,
};
use crate::group_commit::{self, Writer};
use crate::jobs::push_statuses;
use crate::model::*;
use crate::queue::JobOp;
use crate::store::SqlStore;
use crate::users::found;
use crate::{Result, StoreError};

/// Pipelines and their variables.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Creates a pipeline with its per-project iid, variables and jobs in one transaction, and
    /// records the trigger's use.
    async fn create_pipeline(&self, pipeline: &NewPipeline) -> Result<Pipeline>;
    async fn pipeline(&self, project_id: ProjectId, id: i64) -> Result<Option<Pipeline>>;
    async fn pipeline_by_id(&self, id: i64) -> Result<Option<Pipeline>>;
    async fn pipelines(
        &self,
        project_id: ProjectId,
        filter: &PipelineFilter,
        page: Page,
    ) -> Result<Paged<Pipeline>>;
    /// One page of a project's pipelines without counting them all (the pages show "Next"
    /// when `limit` rows came back), so a page costs the same with 10 or 10,000 pipelines.
    async fn pipelines_window(
        &self,
        project_id: ProjectId,
        filter: &PipelineFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Pipeline>>;
    async fn pipelines_by_ids(&self, ids: &[i64]) -> Result<Vec<Pipeline>>;
    /// The pipeline a `trigger:` job (or a job's `CI_JOB_TOKEN`) started, newest first.
    async fn downstream_pipeline(&self, job_id: i64) -> Result<Option<Pipeline>>;
    async fn pipeline_variables(&self, pipeline_id: i64) -> Result<Vec<StoredVariable>>;
    /// Sets a pipeline's status; true when it changed.
    async fn set_pipeline_status(&self, pipeline_id: i64, status: Status) -> Result<bool>;
    async fn delete_pipeline(&self, id: i64) -> Result<()>;
}

/// A pipeline's columns, in the order [`pipeline_from_row`] reads them.
macro_rules! pipeline_columns {
    () => {
        "id, project_id, iid, sha, before_sha, ref_name, tag, protected_ref, source, status, \
         user_id, trigger_id, trigger_short_token, upstream_job_id, upstream_pipeline_id, \
         upstream_project_id, name, yaml_errors, failure_reason, committed_at, created_at, \
         updated_at, started_at, finished_at"
    };
}
const PIPELINE_COLUMNS: &str = pipeline_columns!();

fn pipeline_from_row(row: &dyn Row) -> Result<Pipeline> {
    const COLUMNS: &str = PIPELINE_COLUMNS;
    let source: String = row.get(col!("source"))?;
    let upstream = match (
        row.get(col!("upstream_job_id"))?,
        row.get(col!("upstream_pipeline_id"))?,
        row.get(col!("upstream_project_id"))?,
    ) {
        (Some(job_id), Some(pipeline_id), Some(project_id)) => Some(Upstream {
            job_id,
            pipeline_id,
            project_id,
        }),
        _ => None,
    };
    Ok(Pipeline {
        id: row.get(col!("id"))?,
        project_id: row.get(col!("project_id"))?,
        iid: row.get(col!("iid"))?,
        sha: row.get(col!("sha"))?,
        before_sha: row.get(col!("before_sha"))?,
        ref_name: row.get(col!("ref_name"))?,
        tag: row.get(col!("tag"))?,
        protected_ref: row.get(col!("protected_ref"))?,
        source: PipelineSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown source {source}")))?,
        status: row.get(col!("status"))?,
        user_id: row.get(col!("user_id"))?,
        trigger_id: row.get(col!("trigger_id"))?,
        trigger_short_token: row.get(col!("trigger_short_token"))?,
        upstream,
        name: row.get(col!("name"))?,
        yaml_errors: row.get(col!("yaml_errors"))?,
        failure_reason: row.get(col!("failure_reason"))?,
        committed_at: row.get(col!("committed_at"))?,
        created_at: row.get(col!("created_at"))?,
        updated_at: row.get(col!("updated_at"))?,
        started_at: row.get(col!("started_at"))?,
        finished_at: row.get(col!("finished_at"))?,
    })
}

/// ` WHERE project_id = … AND …` for a pipelines filter.
fn push_filter(q: &mut Query<'_>, project_id: ProjectId, filter: &PipelineFilter) {
    q.push(" WHERE project_id = ").push_bind(project_id);
    push_statuses(q, &filter.statuses);
    if let Some(source) = filter.source {
        q.push(" AND source = ").push_bind(source.as_str());
    }
    if let Some(r) = &filter.ref_name {
        q.push(" AND ref_name = ").push_bind(r.clone());
    }
    if let Some(sha) = &filter.sha {
        q.push(" AND sha = ").push_bind(sha.clone());
    }
    if let Some(uid) = filter.user_id {
        q.push(" AND user_id = ").push_bind(uid);
    }
    if let Some(t) = filter.updated_after {
        q.push(" AND updated_at > ").push_bind(t);
    }
    if let Some(t) = filter.updated_before {
        q.push(" AND updated_at < ").push_bind(t);
    }
}

/// Where pipeline creations are sent.
pub(crate) type NewPipelines = group_commit::Sender<NewPipeline, Pipeline>;

/// The group-commit writer of pipeline creations.
pub(crate) struct PipelineWriter(Db);

impl PipelineWriter {
    pub(crate) fn new(db: Db) -> Self {
        PipelineWriter(db)
    }
}

impl Writer for PipelineWriter {
    type Change = NewPipeline;
    type Output = Pipeline;

    async fn write(&mut self, batch: &[&NewPipeline]) -> Result<Vec<Pipeline>> {
        let mut tx = self.0.begin_write().await?;
        let created = insert_pipelines(&mut tx, batch).await?;
        touch_triggers(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(created)
    }
}

/// Writes pipelines (iids, rows, variables, jobs) inside the caller's transaction, with a
/// fixed number of statements however many there are. Fails as a whole (for example when a
/// project no longer exists).
async fn insert_pipelines(tx: &mut Tx, batch: &[&NewPipeline]) -> Result<Vec<Pipeline>> {
    let now = Timestamp::now();
    let iids = reserve_iids(tx, batch).await?;
    let created = insert_rows(tx, batch, &iids, now).await?;
    insert_variables(tx, batch, &created).await?;
    insert_jobs(tx, batch, &created, now).await?;
    Ok(created)
}

/// Reserves each pipeline's iid: one counter update per project, numbers handed out in
/// request order.
async fn reserve_iids(tx: &mut Tx, batch: &[&NewPipeline]) -> Result<Vec<i64>> {
    let mut projects: Vec<(ProjectId, i64)> = Vec::new();
    for p in batch {
        match projects.iter_mut().find(|(id, _)| *id == p.project_id) {
            Some((_, n)) => *n += 1,
            None => projects.push((p.project_id, 1)),
        }
    }
    // Lock project rows in id order, so concurrent batches (PostgreSQL replicas) cannot
    // deadlock.
    projects.sort_unstable_by_key(|(id, _)| *id);
    let mut next_iid: HashMap<ProjectId, i64> = HashMap::new();
    for (project_id, count) in &projects {
        let reserve = query(
            "UPDATE projects SET last_pipeline_iid = last_pipeline_iid + $2 WHERE id = $1 \
             RETURNING last_pipeline_iid",
        )
        .bind(*project_id)
        .bind(*count);
        let last: i64 = tx.fetch_one(&reserve, first).await?;
        next_iid.insert(*project_id, last - count + 1);
    }
    let mut iids = Vec::with_capacity(batch.len());
    for p in batch {
        let slot = next_iid
            .get_mut(&p.project_id)
            .ok_or(StoreError::NotFound)?;
        iids.push(*slot);
        *slot += 1;
    }
    Ok(iids)
}

/// The pipeline rows, 100 per statement; `RETURNING` rows are matched back by
/// (project, iid), which is unique.
async fn insert_rows(
    tx: &mut Tx,
    batch: &[&NewPipeline],
    iids: &[i64],
    now: Timestamp,
) -> Result<Vec<Pipeline>> {
    let mut created: Vec<Option<Pipeline>> = vec![None; batch.len()];
    for (chunk, chunk_iids) in batch.chunks(100).zip(iids.chunks(100)) {
        let mut q = query(
            "INSERT INTO pipelines (project_id, iid, sha, before_sha, ref_name, tag, \
             protected_ref, source, status, user_id, trigger_id, trigger_short_token, \
             upstream_job_id, upstream_pipeline_id, upstream_project_id, name, yaml_errors, \
             failure_reason, committed_at, created_at, updated_at, finished_at) VALUES ",
        );
        for (i, (p, iid)) in chunk.iter().zip(chunk_iids).enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push_tuple(pipeline_values(p, *iid, now));
        }
        q.push(concat!(" RETURNING ", pipeline_columns!()));
        // Row counts vary, so these statements are not kept in the prepared-statement cache.
        for pipeline in tx.fetch_all(&q.not_cached(), pipeline_from_row).await? {
            let at = batch
                .iter()
                .zip(iids)
                .position(|(p, iid)| p.project_id == pipeline.project_id && *iid == pipeline.iid)
                .ok_or_else(|| StoreError::Corrupt("inserted pipeline not in its batch".into()))?;
            created[at] = Some(pipeline);
        }
    }
    created
        .into_iter()
        .map(|p| p.ok_or_else(|| StoreError::Corrupt("a pipeline was not inserted".into())))
        .collect()
}

fn pipeline_values(p: &NewPipeline, iid: i64, now: Timestamp) -> [Arg<'_>; 22] {
    [
        p.project_id.into(),
        iid.into(),
        (&p.sha).into(),
        (&p.before_sha).into(),
        (&p.ref_name).into(),
        p.tag.into(),
        p.protected_ref.into(),
        p.source.as_str().into(),
        p.status.as_str().into(),
        p.user_id.into(),
        p.trigger_id.into(),
        (&p.trigger_short_token).into(),
        p.upstream.map(|u| u.job_id).into(),
        p.upstream.map(|u| u.pipeline_id).into(),
        p.upstream.map(|u| u.project_id).into(),
        (&p.name).into(),
        (&p.yaml_errors).into(),
        (&p.failure_reason).into(),
        p.committed_at.into(),
        now.into(),
        now.into(),
        p.status.is_complete().then_some(now).into(),
    ]
}

/// Every pipeline's variables, 200 rows per statement.
async fn insert_variables(tx: &mut Tx, batch: &[&NewPipeline], created: &[Pipeline]) -> Result<()> {
    let variables: Vec<(i64, usize, &StoredVariable)> = batch
        .iter()
        .zip(created)
        .flat_map(|(p, c)| {
            p.variables
                .iter()
                .enumerate()
                .map(move |(pos, v)| (c.id, pos, v))
        })
        .collect();
    for chunk in variables.chunks(200) {
        let mut q = query(
            "INSERT INTO pipeline_variables (pipeline_id, position, key, value_sealed, \
             variable_type) VALUES ",
        );
        for (i, (pipeline_id, position, v)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push_tuple([
                (*pipeline_id).into(),
                (*position as i64).into(),
                (&v.key).into(),
                (&v.value_sealed).into(),
                v.variable_type.as_str().into(),
            ]);
        }
        tx.execute(&q.not_cached()).await?;
    }
    Ok(())
}

/// Every pipeline's jobs, 100 rows per statement.
async fn insert_jobs(
    tx: &mut Tx,
    batch: &[&NewPipeline],
    created: &[Pipeline],
    now: Timestamp,
) -> Result<()> {
    let jobs: Vec<(i64, ProjectId, usize, &NewJob)> = batch
        .iter()
        .zip(created)
        .flat_map(|(p, c)| {
            let ids = (c.id, p.project_id);
            p.jobs
                .iter()
                .enumerate()
                .map(move |(pos, j)| (ids.0, ids.1, pos, j))
        })
        .collect();
    for chunk in jobs.chunks(100) {
        let mut q = query(
            "INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, position, \
             status, when_condition, allow_failure, spec, created_at, queued_at) VALUES ",
        );
        for (i, (pipeline_id, project_id, position, job)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push_tuple([
                (*pipeline_id).into(),
                (*project_id).into(),
                (&job.name).into(),
                (&job.stage).into(),
                job.stage_idx.into(),
                (*position as i64).into(),
                job.status.as_str().into(),
                (&job.when).into(),
                job.allow_failure.into(),
                (&job.spec).into(),
                now.into(),
                (job.status == Status::Pending).then_some(now).into(),
            ]);
        }
        tx.execute(&q.not_cached()).await?;
    }
    Ok(())
}

/// Records that triggers created pipelines now (`last_used`), once per trigger per commit.
async fn touch_triggers(tx: &mut Tx, pipelines: &[&NewPipeline]) -> Result<()> {
    let mut ids: Vec<i64> = pipelines.iter().filter_map(|p| p.trigger_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = query("UPDATE triggers SET last_used_at = $1 WHERE id IN (").bind(Timestamp::now());
    q.push_list(ids).push(")");
    tx.execute(&q).await?;
    Ok(())
}

#[async_trait]
impl PipelineStore for SqlStore {
    async fn create_pipeline(&self, p: &NewPipeline) -> Result<Pipeline> {
        group_commit::submit(&self.pipeline_writer, p.clone()).await
    }

    async fn pipeline(&self, project_id: ProjectId, id: i64) -> Result<Option<Pipeline>> {
        let sql = select!(
            pipeline_columns,
            "pipelines",
            "WHERE project_id = $1 AND id = $2"
        );
        let q = query(sql).bind(project_id).bind(id);
        self.db.fetch_optional(&q, pipeline_from_row).await
    }

    async fn pipeline_by_id(&self, id: i64) -> Result<Option<Pipeline>> {
        let sql = select!(pipeline_columns, "pipelines", "WHERE id = $1");
        self.hot_read_one(&query(sql).bind(id), pipeline_from_row)
            .await
    }

    async fn pipelines(
        &self,
        project_id: ProjectId,
        filter: &PipelineFilter,
        page: Page,
    ) -> Result<Paged<Pipeline>> {
        let column = match filter.order_by {
            PipelineOrder::Id => "id",
            PipelineOrder::Status => "status",
            PipelineOrder::Ref => "ref_name",
            PipelineOrder::UpdatedAt => "updated_at",
            PipelineOrder::UserId => "user_id",
        };
        let dir = if filter.ascending { " ASC" } else { " DESC" };
        let apply = |q: &mut Query<'_>| push_filter(q, project_id, filter);
        let listing = Listing {
            columns: PIPELINE_COLUMNS,
            from: "pipelines",
            filter: &apply,
            order: &[column, dir, ", id", dir],
        };
        self.db.paged(listing, page, pipeline_from_row).await
    }

    async fn pipelines_window(
        &self,
        project_id: ProjectId,
        filter: &PipelineFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Pipeline>> {
        let mut q = query(select!(pipeline_columns, "pipelines", ""));
        push_filter(&mut q, project_id, filter);
        q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        q.push(" OFFSET ").push_bind(offset);
        self.db.fetch_all(&q, pipeline_from_row).await
    }

    async fn pipelines_by_ids(&self, ids: &[i64]) -> Result<Vec<Pipeline>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = query(select!(pipeline_columns, "pipelines", "WHERE id IN ("));
        q.push_list(ids.iter().copied()).push(")");
        self.db.fetch_all(&q, pipeline_from_row).await
    }

    async fn downstream_pipeline(&self, job_id: i64) -> Result<Option<Pipeline>> {
        let sql = select!(
            pipeline_columns,
            "pipelines",
            "WHERE upstream_job_id = $1 ORDER BY id DESC LIMIT 1"
        );
        self.db
            .fetch_optional(&query(sql).bind(job_id), pipeline_from_row)
            .await
    }

    async fn pipeline_variables(&self, pipeline_id: i64) -> Result<Vec<StoredVariable>> {
        let q = query(
            "SELECT key, value_sealed, variable_type FROM pipeline_variables \
             WHERE pipeline_id = $1 ORDER BY position",
        )
        .bind(pipeline_id);
        let decode = |row: &dyn Row| {
            let kind: String = row.get(2)?;
            Ok(StoredVariable {
                key: row.get(0)?,
                value_sealed: row.get(1)?,
                variable_type: VariableType::parse(&kind).unwrap_or(VariableType::EnvVar),
            })
        };
        self.db.fetch_all(&q, decode).await
    }

    async fn set_pipeline_status(&self, pipeline_id: i64, status: Status) -> Result<bool> {
        self.job_change(JobOp::PipelineStatus {
            pipeline_id,
            status,
        })
        .await
    }

    async fn delete_pipeline(&self, id: i64) -> Result<()> {
        let q = query("DELETE FROM pipelines WHERE id = $1").bind(id);
        found(self.db.execute(&q).await?)
    }
}
