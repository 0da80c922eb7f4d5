//! CI/CD variables of projects and of the instance (values sealed under the server key), and
//! a project's CI/CD settings: who may pass pipeline variables, the default job timeout.

use async_trait::async_trait;
use pipewright_core::Timestamp;

use crate::db::{Query, Row, RowExt, col, first, query, select};
use crate::model::*;
use crate::store::SqlStore;
use crate::{Result, StoreError};

/// CI/CD variables and project CI/CD settings.
#[async_trait]
pub trait VariableStore: Send + Sync {
    /// The variables of a project (`Some`) or of the instance (`None`), by key.
    async fn ci_variables(&self, project_id: Option<ProjectId>) -> Result<Vec<CiVariable>>;
    /// A group's own variables, by key.
    async fn group_ci_variables(&self, group_id: NamespaceId) -> Result<Vec<CiVariable>>;
    /// The instance's, the project's groups' and the project's variables in one read (what a
    /// pipeline needs), in rising precedence: instance, each group from the top down, the
    /// project.
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
    async fn set_pipeline_variables_minimum_role(
        &self,
        project_id: ProjectId,
        role: &str,
    ) -> Result<()>;
    /// The project's default job timeout in seconds (`build_timeout`), when set.
    async fn project_build_timeout(&self, project_id: ProjectId) -> Result<Option<i64>>;
    async fn set_project_build_timeout(&self, project_id: ProjectId, seconds: i64) -> Result<()>;
    /// The project's `ci_config_path`, when set (GitLab's default is `.gitlab-ci.yml`).
    async fn project_ci_config_path(&self, project_id: ProjectId) -> Result<Option<String>>;
    /// Sets (`Some`) or clears (`None`) the project's `ci_config_path`.
    async fn set_project_ci_config_path(
        &self,
        project_id: ProjectId,
        path: Option<&str>,
    ) -> Result<()>;
}

macro_rules! variable_columns {
    () => {
        "id, project_id, key, value_sealed, variable_type, protected, masked, raw, description, \
         environment_scope, group_id"
    };
}
const VARIABLE_COLUMNS: &str = variable_columns!();

fn variable_from_row(row: &dyn Row) -> Result<CiVariable> {
    const COLUMNS: &str = VARIABLE_COLUMNS;
    let kind: String = row.get(col!("variable_type"))?;
    Ok(CiVariable {
        id: row.get(col!("id"))?,
        project_id: row.get(col!("project_id"))?,
        key: row.get(col!("key"))?,
        value_sealed: row.get(col!("value_sealed"))?,
        variable_type: VariableType::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("variable type {kind}")))?,
        protected: row.get(col!("protected"))?,
        masked: row.get(col!("masked"))?,
        raw: row.get(col!("raw"))?,
        description: row.get(col!("description"))?,
        environment_scope: row.get(col!("environment_scope"))?,
        group_id: row.get(col!("group_id"))?,
    })
}

/// Binds a variable's value and settings, `value_sealed` to `environment_scope` in column
/// order (what both creating and updating a variable write).
fn bind_settings<'a>(q: Query<'a>, v: &'a CiVariable) -> Query<'a> {
    q.bind(&v.value_sealed)
        .bind(v.variable_type.as_str())
        .bind(v.protected)
        .bind(v.masked)
        .bind(v.raw)
        .bind(&v.description)
        .bind(&v.environment_scope)
}

#[async_trait]
impl VariableStore for SqlStore {
    async fn ci_variables(&self, project_id: Option<ProjectId>) -> Result<Vec<CiVariable>> {
        let q = match project_id {
            Some(id) => query(select!(
                variable_columns,
                "ci_variables",
                "WHERE project_id = $1 ORDER BY key, environment_scope"
            ))
            .bind(id),
            None => query(select!(
                variable_columns,
                "ci_variables",
                "WHERE project_id IS NULL AND group_id IS NULL ORDER BY key"
            )),
        };
        self.db.fetch_all(&q, variable_from_row).await
    }

    async fn group_ci_variables(&self, group_id: NamespaceId) -> Result<Vec<CiVariable>> {
        let sql = select!(
            variable_columns,
            "ci_variables",
            "WHERE group_id = $1 ORDER BY key, environment_scope"
        );
        self.db
            .fetch_all(&query(sql).bind(group_id), variable_from_row)
            .await
    }

    async fn ci_variables_for_pipeline(&self, project_id: ProjectId) -> Result<Vec<CiVariable>> {
        // The project's namespace and its ancestors are its groups; a group's full path is a
        // prefix of its descendants', so the shorter, the farther.
        let sql = concat!(
            "SELECT ",
            variable_columns!(),
            " FROM ci_variables \
             WHERE project_id = $1 OR (project_id IS NULL AND group_id IS NULL) \
             OR group_id IN (SELECT a.id FROM projects p \
                 JOIN namespaces n ON n.id = p.namespace_id \
                 JOIN namespaces a ON a.id = n.id \
                     OR n.ancestor_ids LIKE '%/' || CAST(a.id AS TEXT) || '/%' \
                 WHERE p.id = $1) \
             ORDER BY CASE WHEN project_id IS NOT NULL THEN 2 \
                 WHEN group_id IS NOT NULL THEN 1 ELSE 0 END, \
             (SELECT LENGTH(g.full_path) FROM namespaces g WHERE g.id = ci_variables.group_id), \
             key"
        );
        self.db
            .fetch_all(&query(sql).bind(project_id), variable_from_row)
            .await
    }

    async fn create_ci_variable(&self, v: &CiVariable) -> Result<Option<CiVariable>> {
        let sql = concat!(
            "INSERT INTO ci_variables (project_id, key, value_sealed, variable_type, protected, \
             masked, raw, description, environment_scope, created_at, group_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
            variable_columns!()
        );
        let q = query(sql).bind(v.project_id).bind(&v.key);
        let q = bind_settings(q, v).bind(Timestamp::now()).bind(v.group_id);
        match self.db.fetch_one(&q, variable_from_row).await {
            Ok(created) => Ok(Some(created)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn update_ci_variable(&self, v: &CiVariable) -> Result<CiVariable> {
        let sql = concat!(
            "UPDATE ci_variables SET value_sealed = $2, variable_type = $3, protected = $4, \
             masked = $5, raw = $6, description = $7, environment_scope = $8 \
             WHERE id = $1 RETURNING ",
            variable_columns!()
        );
        let q = bind_settings(query(sql).bind(v.id), v);
        self.db.fetch_one(&q, variable_from_row).await
    }

    async fn delete_ci_variable(&self, id: i64) -> Result<()> {
        let q = query("DELETE FROM ci_variables WHERE id = $1").bind(id);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn pipeline_variables_minimum_role(
        &self,
        project_id: ProjectId,
    ) -> Result<Option<String>> {
        let q = query(
            "SELECT pipeline_variables_minimum_override_role FROM project_ci_settings \
             WHERE project_id = $1",
        )
        .bind(project_id);
        self.db.fetch_optional(&q, first).await
    }

    async fn set_pipeline_variables_minimum_role(
        &self,
        project_id: ProjectId,
        role: &str,
    ) -> Result<()> {
        let q = query(
            "INSERT INTO project_ci_settings \
             (project_id, pipeline_variables_minimum_override_role) \
             VALUES ($1, $2) ON CONFLICT (project_id) DO UPDATE SET \
             pipeline_variables_minimum_override_role = \
             excluded.pipeline_variables_minimum_override_role",
        )
        .bind(project_id)
        .bind(role);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn project_build_timeout(&self, project_id: ProjectId) -> Result<Option<i64>> {
        let q = query("SELECT build_timeout FROM project_ci_settings WHERE project_id = $1")
            .bind(project_id);
        let timeout: Option<Option<i64>> = self.db.fetch_optional(&q, first).await?;
        Ok(timeout.flatten())
    }

    async fn set_project_build_timeout(&self, project_id: ProjectId, seconds: i64) -> Result<()> {
        let q = query(
            "INSERT INTO project_ci_settings \
             (project_id, pipeline_variables_minimum_override_role, build_timeout) \
             VALUES ($1, 'developer', $2) \
             ON CONFLICT (project_id) DO UPDATE SET build_timeout = excluded.build_timeout",
        )
        .bind(project_id)
        .bind(seconds);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn project_ci_config_path(&self, project_id: ProjectId) -> Result<Option<String>> {
        let q = query("SELECT ci_config_path FROM project_ci_settings WHERE project_id = $1")
            .bind(project_id);
        let path: Option<Option<String>> = self.db.fetch_optional(&q, first).await?;
        Ok(path.flatten())
    }

    async fn set_project_ci_config_path(
        &self,
        project_id: ProjectId,
        path: Option<&str>,
    ) -> Result<()> {
        let q = query(
            "INSERT INTO project_ci_settings \
             (project_id, pipeline_variables_minimum_override_role, ci_config_path) \
             VALUES ($1, 'developer', $2) \
             ON CONFLICT (project_id) DO UPDATE SET ci_config_path = excluded.ci_config_path",
        )
        .bind(project_id)
        .bind(path);
        self.db.execute(&q).await?;
        Ok(())
    }
}
