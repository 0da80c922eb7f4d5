//! GitLab's job token scope ("Limit access to this project"): with it enabled (the default)
//! a job token from another project reaches this project only when that project is on this
//! project's allowlist, directly or through a group it is in (the allowlist's groups).

use async_trait::async_trait;
use pipewright_core::Timestamp;

use crate::Result;
use crate::db::{Listing, Query, RowExt, query};
use crate::model::*;
use crate::projects::{PROJECT_COLUMNS, PROJECT_FROM, project_from_row};
use crate::store::SqlStore;

/// Job token scopes and allowlists.
#[async_trait]
pub trait JobTokenScopeStore: Send + Sync {
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
    /// The groups whose projects' job tokens may reach `project_id`.
    async fn job_token_group_allowlist(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Namespace>>;
    /// False when the entry already exists.
    async fn add_to_job_token_group_allowlist(
        &self,
        project_id: ProjectId,
        target_group_id: NamespaceId,
    ) -> Result<bool>;
    /// False when there was no such entry.
    async fn remove_from_job_token_group_allowlist(
        &self,
        project_id: ProjectId,
        target_group_id: NamespaceId,
    ) -> Result<bool>;
    /// Whether a job token of `source` may reach `target` under `target`'s scope.
    async fn job_token_allowed(&self, target: ProjectId, source: ProjectId) -> Result<bool>;
}

#[async_trait]
impl JobTokenScopeStore for SqlStore {
    async fn job_token_scope_enabled(&self, project_id: ProjectId) -> Result<bool> {
        let q =
            query("SELECT enabled FROM job_token_scopes WHERE project_id = $1").bind(project_id);
        let enabled = self.db.fetch_optional(&q, crate::db::first::<bool>).await?;
        Ok(enabled.unwrap_or(true))
    }

    async fn set_job_token_scope_enabled(
        &self,
        project_id: ProjectId,
        enabled: bool,
    ) -> Result<()> {
        let q = query(
            "INSERT INTO job_token_scopes (project_id, enabled) VALUES ($1, $2) \
             ON CONFLICT (project_id) DO UPDATE SET enabled = excluded.enabled",
        )
        .bind(project_id)
        .bind(enabled);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn job_token_allowlist(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Project>> {
        let filter = |q: &mut Query<'_>| {
            q.push(
                " WHERE p.id IN (SELECT target_project_id FROM job_token_allowlist \
                 WHERE project_id = ",
            )
            .push_bind(project_id)
            .push(")");
        };
        let listing = Listing {
            columns: PROJECT_COLUMNS,
            from: PROJECT_FROM,
            filter: &filter,
            order: &["p.id"],
        };
        self.db.paged(listing, page, project_from_row).await
    }

    async fn add_to_job_token_allowlist(
        &self,
        project_id: ProjectId,
        target_project_id: ProjectId,
    ) -> Result<bool> {
        let q = query(
            "INSERT INTO job_token_allowlist (project_id, target_project_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (project_id, target_project_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(target_project_id)
        .bind(Timestamp::now());
        Ok(self.db.execute(&q).await? > 0)
    }

    async fn remove_from_job_token_allowlist(
        &self,
        project_id: ProjectId,
        target_project_id: ProjectId,
    ) -> Result<bool> {
        let q = query(
            "DELETE FROM job_token_allowlist WHERE project_id = $1 AND target_project_id = $2",
        )
        .bind(project_id)
        .bind(target_project_id);
        Ok(self.db.execute(&q).await? > 0)
    }

    async fn job_token_allowed(&self, target: ProjectId, source: ProjectId) -> Result<bool> {
        if target == source {
            return Ok(true);
        }
        let q = query(
            "SELECT COALESCE((SELECT enabled FROM job_token_scopes WHERE project_id = $1), TRUE), \
             EXISTS (SELECT 1 FROM job_token_allowlist \
               WHERE project_id = $1 AND target_project_id = $2) \
             OR EXISTS (SELECT 1 FROM job_token_group_allowlist ga \
               JOIN projects sp ON sp.id = $2 JOIN namespaces sn ON sn.id = sp.namespace_id \
               WHERE ga.project_id = $1 AND (sn.id = ga.target_group_id \
               OR sn.ancestor_ids LIKE '%/' || CAST(ga.target_group_id AS TEXT) || '/%'))",
        )
        .bind(target)
        .bind(source);
        let (enabled, listed): (bool, bool) = self
            .db
            .fetch_one(&q, |row| Ok((row.get(0)?, row.get(1)?)))
            .await?;
        Ok(!enabled || listed)
    }

    async fn job_token_group_allowlist(
        &self,
        project_id: ProjectId,
        page: Page,
    ) -> Result<Paged<Namespace>> {
        let filter = |q: &mut Query<'_>| {
            q.push(
                " WHERE n.id IN (SELECT target_group_id FROM job_token_group_allowlist \
                 WHERE project_id = ",
            )
            .push_bind(project_id)
            .push(")");
        };
        let listing = Listing {
            columns: crate::users::namespace_columns!(),
            from: "namespaces n",
            filter: &filter,
            order: &["n.id"],
        };
        self.db
            .paged(listing, page, |row| crate::users::namespace_at(row, 0))
            .await
    }

    async fn add_to_job_token_group_allowlist(
        &self,
        project_id: ProjectId,
        target_group_id: NamespaceId,
    ) -> Result<bool> {
        let q = query(
            "INSERT INTO job_token_group_allowlist (project_id, target_group_id, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (project_id, target_group_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(target_group_id)
        .bind(Timestamp::now());
        Ok(self.db.execute(&q).await? > 0)
    }

    async fn remove_from_job_token_group_allowlist(
        &self,
        project_id: ProjectId,
        target_group_id: NamespaceId,
    ) -> Result<bool> {
        let q = query(
            "DELETE FROM job_token_group_allowlist WHERE project_id = $1 AND target_group_id = $2",
        )
        .bind(project_id)
        .bind(target_group_id);
        Ok(self.db.execute(&q).await? > 0)
    }
}
