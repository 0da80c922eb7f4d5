//! Runners: the machines that take jobs. A runner's token is stored only as its digest.

use async_trait::async_trait;
use pipewright_core::Timestamp;

use crate::db::{Listing, Query, Row, RowExt, col, query, select, split_list};
use crate::model::*;
use crate::store::SqlStore;
use crate::users::found;
use crate::{Result, StoreError};

/// Runners.
#[async_trait]
pub trait RunnerStore: Send + Sync {
    async fn create_runner(&self, runner: &NewRunner) -> Result<Runner>;
    async fn runner(&self, id: i64) -> Result<Option<Runner>>;
    async fn runner_by_digest(&self, digest: &str) -> Result<Option<Runner>>;
    async fn runners(&self, scope: RunnerScope, page: Page) -> Result<Paged<Runner>>;
    async fn update_runner(&self, id: i64, update: &RunnerUpdate) -> Result<Runner>;
    async fn delete_runner(&self, id: i64) -> Result<()>;
    async fn touch_runner(&self, id: i64, at: Timestamp) -> Result<()>;
    /// The sealed registration token of a project (`Some`) or of the instance (`None`).
    async fn registration_token(&self, project_id: Option<i64>) -> Result<Option<String>>;
    /// Stores a registration token; `replace: false` keeps one that exists (so two requests
    /// that both found none agree on the first one written).
    async fn set_registration_token(
        &self,
        project_id: Option<i64>,
        digest: &str,
        sealed: &str,
        replace: bool,
    ) -> Result<()>;
    /// Whose registration token has this digest: `Some(None)` the instance's,
    /// `Some(Some(id))` project `id`'s.
    async fn registration_token_owner(&self, digest: &str) -> Result<Option<Option<i64>>>;
}

/// The `owner` key of a registration token.
fn registration_owner(project_id: Option<i64>) -> String {
    match project_id {
        Some(id) => format!("project:{id}"),
        None => "instance".to_string(),
    }
}

macro_rules! runner_columns {
    () => {
        "id, runner_type, project_id, creator_id, description, tag_list, run_untagged, paused, \
         locked, access_level, maximum_timeout, created_at, contacted_at, group_id"
    };
}
const RUNNER_COLUMNS: &str = runner_columns!();

fn runner_from_row(row: &dyn Row) -> Result<Runner> {
    const COLUMNS: &str = RUNNER_COLUMNS;
    let kind: String = row.get(col!("runner_type"))?;
    Ok(Runner {
        id: row.get(col!("id"))?,
        runner_type: RunnerType::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown runner type {kind}")))?,
        project_id: row.get(col!("project_id"))?,
        creator_id: row.get(col!("creator_id"))?,
        description: row.get(col!("description"))?,
        tag_list: split_list(&row.get::<String>(col!("tag_list"))?, ','),
        run_untagged: row.get(col!("run_untagged"))?,
        paused: row.get(col!("paused"))?,
        locked: row.get(col!("locked"))?,
        access_level: row.get(col!("access_level"))?,
        maximum_timeout: row.get(col!("maximum_timeout"))?,
        created_at: row.get(col!("created_at"))?,
        contacted_at: row.get(col!("contacted_at"))?,
        group_id: row.get(col!("group_id"))?,
    })
}

#[async_trait]
impl RunnerStore for SqlStore {
    async fn create_runner(&self, r: &NewRunner) -> Result<Runner> {
        let sql = concat!(
            "INSERT INTO runners (token_digest, runner_type, project_id, creator_id, description, \
             tag_list, run_untagged, paused, locked, access_level, maximum_timeout, created_at, \
             group_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ",
            runner_columns!()
        );
        let q = query(sql)
            .bind(&r.token_digest)
            .bind(r.runner_type.as_str())
            .bind(r.project_id)
            .bind(r.creator_id)
            .bind(&r.description)
            .bind(r.tag_list.join(","))
            .bind(r.run_untagged)
            .bind(r.paused)
            .bind(r.locked)
            .bind(&r.access_level)
            .bind(r.maximum_timeout)
            .bind(Timestamp::now())
            .bind(r.group_id);
        self.db.fetch_one(&q, runner_from_row).await
    }

    async fn runner(&self, id: i64) -> Result<Option<Runner>> {
        let sql = select!(runner_columns, "runners", "WHERE id = $1");
        self.db
            .fetch_optional(&query(sql).bind(id), runner_from_row)
            .await
    }

    async fn runner_by_digest(&self, digest: &str) -> Result<Option<Runner>> {
        let sql = select!(runner_columns, "runners", "WHERE token_digest = $1");
        self.hot_read_one(&query(sql).bind(digest), runner_from_row)
            .await
    }

    async fn runners(&self, scope: RunnerScope, page: Page) -> Result<Paged<Runner>> {
        let filter = |q: &mut Query<'_>| {
            if let RunnerScope::ManagedBy(user_id) = scope {
                q.push(
                    " WHERE project_id IN (SELECT project_id FROM project_authorizations \
                     WHERE user_id = ",
                )
                .push_bind(user_id)
                .push(
                    " AND access_level >= 40) OR group_id IN (SELECT group_id FROM \
                     group_authorizations WHERE user_id = ",
                )
                .push_bind(user_id)
                .push(" AND access_level >= 50)");
            }
            if let RunnerScope::AvailableInGroup(group_id) = scope {
                // `ancestor_ids` is `/1/5/`: ids only, so the pattern has no stray wildcard.
                q.push(
                    " WHERE runner_type = 'instance_type' OR EXISTS (SELECT 1 FROM namespaces g \
                     WHERE g.id = ",
                )
                .push_bind(group_id)
                .push(
                    " AND (runners.group_id = g.id OR g.ancestor_ids LIKE \
                     '%/' || CAST(runners.group_id AS TEXT) || '/%'))",
                );
            }
        };
        let listing = Listing {
            columns: RUNNER_COLUMNS,
            from: "runners",
            filter: &filter,
            order: &["id"],
        };
        self.db.paged(listing, page, runner_from_row).await
    }

    async fn update_runner(&self, id: i64, u: &RunnerUpdate) -> Result<Runner> {
        let (set_timeout, timeout) = match u.maximum_timeout {
            Some(t) => (true, t),
            None => (false, None),
        };
        let sql = concat!(
            "UPDATE runners SET description = COALESCE($2, description), \
             tag_list = COALESCE($3, tag_list), run_untagged = COALESCE($4, run_untagged), \
             paused = COALESCE($5, paused), locked = COALESCE($6, locked), \
             access_level = COALESCE($7, access_level), \
             maximum_timeout = CASE WHEN $8 THEN $9 ELSE maximum_timeout END \
             WHERE id = $1 RETURNING ",
            runner_columns!()
        );
        let q = query(sql)
            .bind(id)
            .bind(&u.description)
            .bind(u.tag_list.as_ref().map(|t| t.join(",")))
            .bind(u.run_untagged)
            .bind(u.paused)
            .bind(u.locked)
            .bind(&u.access_level)
            .bind(set_timeout)
            .bind(timeout);
        self.db.fetch_one(&q, runner_from_row).await
    }

    async fn delete_runner(&self, id: i64) -> Result<()> {
        let q = query("DELETE FROM runners WHERE id = $1").bind(id);
        found(self.db.execute(&q).await?)
    }

    async fn touch_runner(&self, id: i64, at: Timestamp) -> Result<()> {
        let q = query("UPDATE runners SET contacted_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn registration_token(&self, project_id: Option<i64>) -> Result<Option<String>> {
        let q = query("SELECT token_sealed FROM runner_registration_tokens WHERE owner = $1")
            .bind(registration_owner(project_id));
        self.db.fetch_optional(&q, crate::db::first).await
    }

    async fn set_registration_token(
        &self,
        project_id: Option<i64>,
        digest: &str,
        sealed: &str,
        replace: bool,
    ) -> Result<()> {
        let sql = if replace {
            "INSERT INTO runner_registration_tokens (owner, project_id, token_digest, token_sealed) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (owner) DO UPDATE SET \
             token_digest = excluded.token_digest, token_sealed = excluded.token_sealed"
        } else {
            "INSERT INTO runner_registration_tokens (owner, project_id, token_digest, token_sealed) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (owner) DO NOTHING"
        };
        let q = query(sql)
            .bind(registration_owner(project_id))
            .bind(project_id)
            .bind(digest)
            .bind(sealed);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn registration_token_owner(&self, digest: &str) -> Result<Option<Option<i64>>> {
        let q = query("SELECT project_id FROM runner_registration_tokens WHERE token_digest = $1")
            .bind(digest);
        self.db.fetch_optional(&q, crate::db::first).await
    }
}
