//! Pipeline schedules: a ref run on a cron pattern as its owner, the schedule's variables and
//! CI/CD inputs, and the pipelines it started (GitLab's `ci_pipeline_schedules`,
//! `ci_pipeline_schedule_variables`, `ci_pipeline_schedule_inputs` and
//! `ci_pipelines.pipeline_schedule_id`).
//!
//! The store does not read cron patterns: the server computes `next_run_at` and hands it in.
//! What the store guarantees is that a due run is taken once: [`claim_pipeline_schedule_run`]
//! moves `next_run_at` from the value the scheduler read to the next one in a single
//! conditional update, so of several servers that found the same schedule due exactly one
//! changes a row (and runs the pipeline); the others see zero rows changed and move on.
//!
//! [`claim_pipeline_schedule_run`]: PipelineScheduleStore::claim_pipeline_schedule_run

use async_trait::async_trait;
use pipewright_core::{AccessLevel, Status, Timestamp};

use crate::db::{Commit, Exec, Listing, Query, Row, RowExt, col, first, query, select};
use crate::jobs::push_statuses;
use crate::model::*;
use crate::store::SqlStore;
use crate::users::found;
use crate::{PipelineStore, Result, StoreError};

/// A pipeline schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSchedule {
    pub id: i64,
    pub project_id: ProjectId,
    /// Who its pipelines run as; `None` once the owner's account was deleted.
    pub owner_id: Option<UserId>,
    pub description: String,
    /// As GitLab stores it: `refs/heads/…` or `refs/tags/…` once expanded.
    pub ref_name: String,
    pub cron: String,
    pub cron_timezone: String,
    /// The due tick; `None` when the pattern never matches again.
    pub next_run_at: Option<Timestamp>,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a schedule is made of, on creation and on update (the owner changes only through
/// [`PipelineScheduleStore::set_pipeline_schedule_owner`]).
#[derive(Debug, Clone)]
pub struct PipelineScheduleFields {
    pub description: String,
    pub ref_name: String,
    pub cron: String,
    pub cron_timezone: String,
    pub next_run_at: Option<Timestamp>,
    pub active: bool,
}

/// One of a schedule's variables; the value sealed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleVariable {
    pub id: i64,
    pub schedule_id: i64,
    pub key: String,
    pub value_sealed: String,
    pub variable_type: VariableType,
}

/// One of a schedule's CI/CD inputs; the value (JSON text) sealed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleInput {
    pub name: String,
    pub value_sealed: String,
}

/// A change to a schedule's inputs: set one (added, or its value replaced), or remove one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleInputChange {
    Set { name: String, value_sealed: String },
    Remove { name: String },
}

/// Pipeline schedules, their variables and inputs, and the pipelines they started.
#[async_trait]
pub trait PipelineScheduleStore: Send + Sync {
    /// Creates a schedule owned by `owner_id`, unless the project already has `limit`
    /// schedules (GitLab's `ci_pipeline_schedules` plan limit): `None` then.
    async fn create_pipeline_schedule(
        &self,
        project_id: ProjectId,
        owner_id: UserId,
        fields: &PipelineScheduleFields,
        limit: i64,
    ) -> Result<Option<PipelineSchedule>>;
    async fn pipeline_schedule(
        &self,
        project_id: ProjectId,
        id: i64,
    ) -> Result<Option<PipelineSchedule>>;
    /// A project's schedules by id; `active` filters (GitLab's `scope=active|inactive`).
    async fn pipeline_schedules(
        &self,
        project_id: ProjectId,
        active: Option<bool>,
        page: Page,
    ) -> Result<Paged<PipelineSchedule>>;
    /// Replaces a schedule's fields.
    async fn update_pipeline_schedule(
        &self,
        id: i64,
        fields: &PipelineScheduleFields,
    ) -> Result<PipelineSchedule>;
    async fn set_pipeline_schedule_owner(
        &self,
        id: i64,
        owner_id: UserId,
    ) -> Result<PipelineSchedule>;
    async fn delete_pipeline_schedule(&self, id: i64) -> Result<()>;

    /// Active schedules whose `next_run_at` is at or before `now`, the longest overdue first.
    async fn due_pipeline_schedules(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<PipelineSchedule>>;
    /// Takes the run that was due at `due`, moving `next_run_at` to `next`: true for exactly
    /// one caller among all that read `due`; false when another server (or an edit) moved it
    /// first or the schedule was deactivated.
    async fn claim_pipeline_schedule_run(
        &self,
        id: i64,
        due: Timestamp,
        next: Option<Timestamp>,
    ) -> Result<bool>;
    /// Deactivates a schedule; true when it was active.
    async fn deactivate_pipeline_schedule(&self, id: i64) -> Result<bool>;
    /// Deactivates every active schedule whose owner may no longer run pipelines in its
    /// project (deleted, or neither an administrator nor a Developer or higher there, as of
    /// `now`); how many.
    async fn deactivate_orphaned_pipeline_schedules(&self, now: Timestamp) -> Result<u64>;

    async fn pipeline_schedule_variables(&self, schedule_id: i64) -> Result<Vec<ScheduleVariable>>;
    /// Adds a variable; `None` when the schedule already has one with that key.
    async fn create_pipeline_schedule_variable(
        &self,
        schedule_id: i64,
        key: &str,
        value_sealed: &str,
        variable_type: VariableType,
    ) -> Result<Option<ScheduleVariable>>;
    async fn update_pipeline_schedule_variable(
        &self,
        schedule_id: i64,
        key: &str,
        value_sealed: &str,
        variable_type: VariableType,
    ) -> Result<ScheduleVariable>;
    async fn delete_pipeline_schedule_variable(&self, schedule_id: i64, key: &str) -> Result<()>;

    /// A schedule's inputs, in the order they were first set.
    async fn pipeline_schedule_inputs(&self, schedule_id: i64) -> Result<Vec<ScheduleInput>>;
    /// Applies `changes` in order, all or none (removing an input it does not have is no
    /// change).
    async fn change_pipeline_schedule_inputs(
        &self,
        schedule_id: i64,
        changes: &[ScheduleInputChange],
    ) -> Result<()>;

    /// Records that the schedule started the pipeline.
    async fn link_pipeline_to_schedule(&self, schedule_id: i64, pipeline_id: i64) -> Result<()>;
    /// The pipelines a schedule started, by id (`ascending` or newest first), optionally
    /// only those in `statuses`.
    async fn pipeline_schedule_pipelines(
        &self,
        schedule_id: i64,
        statuses: &[Status],
        ascending: bool,
        page: Page,
    ) -> Result<Paged<Pipeline>>;
    /// The newest pipeline a schedule started.
    async fn last_pipeline_schedule_pipeline(&self, schedule_id: i64) -> Result<Option<Pipeline>>;
}

macro_rules! schedule_columns {
    () => {
        "id, project_id, owner_id, description, ref_name, cron, cron_timezone, next_run_at, \
         active, created_at, updated_at"
    };
}
const SCHEDULE_COLUMNS: &str = schedule_columns!();

fn schedule_from_row(row: &dyn Row) -> Result<PipelineSchedule> {
    const COLUMNS: &str = SCHEDULE_COLUMNS;
    Ok(PipelineSchedule {
        id: row.get(col!("id"))?,
        project_id: row.get(col!("project_id"))?,
        owner_id: row.get(col!("owner_id"))?,
        description: row.get(col!("description"))?,
        ref_name: row.get(col!("ref_name"))?,
        cron: row.get(col!("cron"))?,
        cron_timezone: row.get(col!("cron_timezone"))?,
        next_run_at: row.get(col!("next_run_at"))?,
        active: row.get(col!("active"))?,
        created_at: row.get(col!("created_at"))?,
        updated_at: row.get(col!("updated_at"))?,
    })
}

macro_rules! variable_columns {
    () => {
        "id, schedule_id, key, value_sealed, variable_type"
    };
}
const VARIABLE_COLUMNS: &str = variable_columns!();

fn variable_from_row(row: &dyn Row) -> Result<ScheduleVariable> {
    const COLUMNS: &str = VARIABLE_COLUMNS;
    let kind: String = row.get(col!("variable_type"))?;
    Ok(ScheduleVariable {
        id: row.get(col!("id"))?,
        schedule_id: row.get(col!("schedule_id"))?,
        key: row.get(col!("key"))?,
        value_sealed: row.get(col!("value_sealed"))?,
        variable_type: VariableType::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown variable type {kind}")))?,
    })
}

/// Binds a schedule's fields, in the order the statements list their columns.
fn bind_fields<'a>(q: Query<'a>, f: &'a PipelineScheduleFields) -> Query<'a> {
    q.bind(&f.description)
        .bind(&f.ref_name)
        .bind(&f.cron)
        .bind(&f.cron_timezone)
        .bind(f.next_run_at)
        .bind(f.active)
}

#[async_trait]
impl PipelineScheduleStore for SqlStore {
    async fn create_pipeline_schedule(
        &self,
        project_id: ProjectId,
        owner_id: UserId,
        fields: &PipelineScheduleFields,
        limit: i64,
    ) -> Result<Option<PipelineSchedule>> {
        // One statement, so the limit holds however the requests interleave on SQLite (one
        // writer); on PostgreSQL two racing creations may both pass it, as in GitLab.
        let sql = concat!(
            "INSERT INTO pipeline_schedules (project_id, owner_id, description, ref_name, cron, \
             cron_timezone, next_run_at, active, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $9 \
             WHERE (SELECT COUNT(*) FROM pipeline_schedules WHERE project_id = $1) < $10 \
             RETURNING ",
            schedule_columns!()
        );
        let q = bind_fields(query(sql).bind(project_id).bind(owner_id), fields)
            .bind(Timestamp::now())
            .bind(limit);
        self.db.fetch_optional(&q, schedule_from_row).await
    }

    async fn pipeline_schedule(
        &self,
        project_id: ProjectId,
        id: i64,
    ) -> Result<Option<PipelineSchedule>> {
        let sql = select!(
            schedule_columns,
            "pipeline_schedules",
            "WHERE project_id = $1 AND id = $2"
        );
        let q = query(sql).bind(project_id).bind(id);
        self.db.fetch_optional(&q, schedule_from_row).await
    }

    async fn pipeline_schedules(
        &self,
        project_id: ProjectId,
        active: Option<bool>,
        page: Page,
    ) -> Result<Paged<PipelineSchedule>> {
        let filter = |q: &mut Query<'_>| {
            q.push(" WHERE project_id = ").push_bind(project_id);
            if let Some(active) = active {
                q.push(" AND active = ").push_bind(active);
            }
        };
        let listing = Listing {
            columns: SCHEDULE_COLUMNS,
            from: "pipeline_schedules",
            filter: &filter,
            order: &["id"],
        };
        self.db.paged(listing, page, schedule_from_row).await
    }

    async fn update_pipeline_schedule(
        &self,
        id: i64,
        fields: &PipelineScheduleFields,
    ) -> Result<PipelineSchedule> {
        let sql = concat!(
            "UPDATE pipeline_schedules SET description = $2, ref_name = $3, cron = $4, \
             cron_timezone = $5, next_run_at = $6, active = $7, updated_at = $8 \
             WHERE id = $1 RETURNING ",
            schedule_columns!()
        );
        let q = bind_fields(query(sql).bind(id), fields).bind(Timestamp::now());
        self.db.fetch_one(&q, schedule_from_row).await
    }

    async fn set_pipeline_schedule_owner(
        &self,
        id: i64,
        owner_id: UserId,
    ) -> Result<PipelineSchedule> {
        let sql = concat!(
            "UPDATE pipeline_schedules SET owner_id = $2, updated_at = $3 WHERE id = $1 \
             RETURNING ",
            schedule_columns!()
        );
        let q = query(sql).bind(id).bind(owner_id).bind(Timestamp::now());
        self.db.fetch_one(&q, schedule_from_row).await
    }

    async fn delete_pipeline_schedule(&self, id: i64) -> Result<()> {
        let q = query("DELETE FROM pipeline_schedules WHERE id = $1").bind(id);
        found(self.db.execute(&q).await?)
    }

    async fn due_pipeline_schedules(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<PipelineSchedule>> {
        let sql = select!(
            schedule_columns,
            "pipeline_schedules",
            "WHERE active AND next_run_at <= $1 ORDER BY next_run_at, id LIMIT $2"
        );
        let q = query(sql).bind(now).bind(limit);
        self.db.fetch_all(&q, schedule_from_row).await
    }

    async fn claim_pipeline_schedule_run(
        &self,
        id: i64,
        due: Timestamp,
        next: Option<Timestamp>,
    ) -> Result<bool> {
        // The claim: only a row still holding the tick this caller read moves on.
        let q = query(
            "UPDATE pipeline_schedules SET next_run_at = $3 \
             WHERE id = $1 AND active AND next_run_at = $2",
        )
        .bind(id)
        .bind(due)
        .bind(next);
        Ok(self.db.execute(&q).await? == 1)
    }

    async fn deactivate_pipeline_schedule(&self, id: i64) -> Result<bool> {
        let q = query(
            "UPDATE pipeline_schedules SET active = FALSE, updated_at = $2 \
             WHERE id = $1 AND active",
        )
        .bind(id)
        .bind(Timestamp::now());
        Ok(self.db.execute(&q).await? == 1)
    }

    async fn deactivate_orphaned_pipeline_schedules(&self, now: Timestamp) -> Result<u64> {
        // GitLab deactivates an owner's schedules when they leave the project or drop below
        // Developer (GitLab: app/models/concerns/ci/pipeline_schedule_ownership_validator.rb).
        let q = query(
            "UPDATE pipeline_schedules SET active = FALSE, updated_at = $1 \
             WHERE active AND NOT EXISTS (\
                 SELECT 1 FROM users u WHERE u.id = pipeline_schedules.owner_id AND (u.is_admin \
                 OR EXISTS (SELECT 1 FROM project_authorizations m \
                     WHERE m.project_id = pipeline_schedules.project_id AND m.user_id = u.id \
                     AND m.access_level >= $2 AND (m.expires_at IS NULL OR m.expires_at > $1))))",
        )
        .bind(now)
        .bind(AccessLevel::Developer.as_i64());
        self.db.execute(&q).await
    }

    async fn pipeline_schedule_variables(&self, schedule_id: i64) -> Result<Vec<ScheduleVariable>> {
        let sql = select!(
            variable_columns,
            "pipeline_schedule_variables",
            "WHERE schedule_id = $1 ORDER BY id"
        );
        self.db
            .fetch_all(&query(sql).bind(schedule_id), variable_from_row)
            .await
    }

    async fn create_pipeline_schedule_variable(
        &self,
        schedule_id: i64,
        key: &str,
        value_sealed: &str,
        variable_type: VariableType,
    ) -> Result<Option<ScheduleVariable>> {
        let sql = concat!(
            "INSERT INTO pipeline_schedule_variables (schedule_id, key, value_sealed, \
             variable_type, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
            variable_columns!()
        );
        let q = query(sql)
            .bind(schedule_id)
            .bind(key)
            .bind(value_sealed)
            .bind(variable_type.as_str())
            .bind(Timestamp::now());
        match self.db.fetch_one(&q, variable_from_row).await {
            Ok(created) => Ok(Some(created)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn update_pipeline_schedule_variable(
        &self,
        schedule_id: i64,
        key: &str,
        value_sealed: &str,
        variable_type: VariableType,
    ) -> Result<ScheduleVariable> {
        let sql = concat!(
            "UPDATE pipeline_schedule_variables SET value_sealed = $3, variable_type = $4, \
             updated_at = $5 WHERE schedule_id = $1 AND key = $2 RETURNING ",
            variable_columns!()
        );
        let q = query(sql)
            .bind(schedule_id)
            .bind(key)
            .bind(value_sealed)
            .bind(variable_type.as_str())
            .bind(Timestamp::now());
        self.db.fetch_one(&q, variable_from_row).await
    }

    async fn delete_pipeline_schedule_variable(&self, schedule_id: i64, key: &str) -> Result<()> {
        let q =
            query("DELETE FROM pipeline_schedule_variables WHERE schedule_id = $1 AND key = $2")
                .bind(schedule_id)
                .bind(key);
        found(self.db.execute(&q).await?)
    }

    async fn pipeline_schedule_inputs(&self, schedule_id: i64) -> Result<Vec<ScheduleInput>> {
        let q = query(
            "SELECT name, value_sealed FROM pipeline_schedule_inputs WHERE schedule_id = $1 \
             ORDER BY id",
        )
        .bind(schedule_id);
        self.db
            .fetch_all(&q, |row| {
                Ok(ScheduleInput {
                    name: row.get(0)?,
                    value_sealed: row.get(1)?,
                })
            })
            .await
    }

    async fn change_pipeline_schedule_inputs(
        &self,
        schedule_id: i64,
        changes: &[ScheduleInputChange],
    ) -> Result<()> {
        let now = Timestamp::now();
        let mut tx = self.db.begin_write().await?;
        for change in changes {
            let q = match change {
                ScheduleInputChange::Set { name, value_sealed } => query(
                    "INSERT INTO pipeline_schedule_inputs (schedule_id, name, value_sealed, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (schedule_id, name) DO UPDATE SET \
                     value_sealed = excluded.value_sealed, updated_at = excluded.updated_at",
                )
                .bind(schedule_id)
                .bind(name)
                .bind(value_sealed)
                .bind(now),
                ScheduleInputChange::Remove { name } => query(
                    "DELETE FROM pipeline_schedule_inputs WHERE schedule_id = $1 AND name = $2",
                )
                .bind(schedule_id)
                .bind(name),
            };
            tx.execute(&q).await?;
        }
        tx.commit().await
    }

    async fn link_pipeline_to_schedule(&self, schedule_id: i64, pipeline_id: i64) -> Result<()> {
        let q = query(
            "INSERT INTO pipeline_schedule_pipelines (schedule_id, pipeline_id) VALUES ($1, $2)",
        )
        .bind(schedule_id)
        .bind(pipeline_id);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn pipeline_schedule_pipelines(
        &self,
        schedule_id: i64,
        statuses: &[Status],
        ascending: bool,
        page: Page,
    ) -> Result<Paged<Pipeline>> {
        let filter = |q: &mut Query<'_>| {
            q.push(" WHERE l.schedule_id = ").push_bind(schedule_id);
            push_statuses(q, statuses);
        };
        let listing = Listing {
            columns: "l.pipeline_id",
            from: "pipeline_schedule_pipelines l JOIN pipelines p ON p.id = l.pipeline_id",
            filter: &filter,
            order: &[if ascending {
                "l.pipeline_id ASC"
            } else {
                "l.pipeline_id DESC"
            }],
        };
        let ids = self.db.paged(listing, page, first).await?;
        let mut items = self.pipelines_by_ids(&ids.items).await?;
        // `pipelines_by_ids` answers in any order: the page's order is the ids'.
        items.sort_by_key(|p| ids.items.iter().position(|id| *id == p.id));
        Ok(Paged {
            items,
            total: ids.total,
        })
    }

    async fn last_pipeline_schedule_pipeline(&self, schedule_id: i64) -> Result<Option<Pipeline>> {
        let q = query(
            "SELECT MAX(pipeline_id) FROM pipeline_schedule_pipelines WHERE schedule_id = $1",
        )
        .bind(schedule_id);
        match self.db.fetch_one(&q, first::<Option<i64>>).await? {
            Some(id) => self.pipeline_by_id(id).await,
            None => Ok(None),
        }
    }
}
