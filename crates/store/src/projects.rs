//! Projects, their members and their protected branches.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use pipewright_core::{AccessLevel, Timestamp, Visibility};

use crate::db::{
    Commit, Exec, Listing, Query, Row, RowExt, col, first, like_pattern, query, select,
};
use crate::model::*;
use crate::store::SqlStore;
use crate::users::{namespace_at, user_at};
use crate::{Result, StoreError, users::found};

/// Projects, members and protected branches.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Creates the project and makes its creator an Owner, in one transaction.
    async fn create_project(&self, project: &NewProject) -> Result<Project>;
    async fn project(&self, id: ProjectId) -> Result<Option<Project>>;
    async fn project_by_full_path(&self, namespace: &str, path: &str) -> Result<Option<Project>>;
    async fn projects(&self, filter: &ProjectFilter, page: Page) -> Result<Paged<Project>>;
    async fn update_project(&self, id: ProjectId, update: &ProjectUpdate) -> Result<Project>;
    async fn delete_project(&self, id: ProjectId) -> Result<()>;

    /// The user's effective role: the highest live one of their direct membership and their
    /// memberships of the project's group and its ancestors (GitLab's
    /// `project_authorizations`; migration 0018's view). Every permission check reads this.
    async fn project_role(
        &self,
        project_id: ProjectId,
        user_id: UserId,
    ) -> Result<Option<AccessLevel>>;
    async fn member(&self, project_id: ProjectId, user_id: UserId) -> Result<Option<Member>>;
    async fn members(&self, project_id: ProjectId, page: Page) -> Result<Paged<Member>>;
    async fn add_member(
        &self,
        project_id: ProjectId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<Member>;
    async fn update_member(
        &self,
        project_id: ProjectId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<Member>;
    async fn remove_member(&self, project_id: ProjectId, user_id: UserId) -> Result<()>;

    async fn protected_branches(&self, project_id: ProjectId) -> Result<Vec<ProtectedBranch>>;
    async fn create_protected_branch(&self, branch: &NewProtectedBranch)
    -> Result<ProtectedBranch>;
    async fn delete_protected_branch(&self, project_id: ProjectId, name: &str) -> Result<()>;
}

/// A project's columns with its namespace's, for [`PROJECT_FROM`].
macro_rules! project_columns {
    () => {
        concat!(
            "p.id, p.name, p.path, p.description, p.visibility, p.default_branch, p.creator_id, \
             p.created_at, p.updated_at, p.last_activity_at, ",
            $crate::users::namespace_columns!()
        )
    };
}
pub(crate) use project_columns;
pub(crate) const PROJECT_COLUMNS: &str = project_columns!();

/// What [`PROJECT_COLUMNS`] are selected from.
macro_rules! project_from {
    () => {
        "projects p JOIN namespaces n ON n.id = p.namespace_id"
    };
}
pub(crate) const PROJECT_FROM: &str = project_from!();

/// A membership's columns: the user's, then the membership's.
macro_rules! member_columns {
    () => {
        concat!(
            $crate::users::user_columns!(),
            ", m.project_id, m.access_level, m.expires_at, m.created_at"
        )
    };
}
const MEMBER_COLUMNS: &str = member_columns!();

macro_rules! member_from {
    () => {
        "project_members m JOIN users u ON u.id = m.user_id"
    };
}
const MEMBER_FROM: &str = member_from!();

macro_rules! protected_branch_columns {
    () => {
        "id, project_id, name, push_access_level, merge_access_level, allow_force_push, created_at"
    };
}
const PROTECTED_BRANCH_COLUMNS: &str = protected_branch_columns!();

/// The project whose [`PROJECT_COLUMNS`] start at column `at`.
pub(crate) fn project_at(row: &dyn Row, at: usize) -> Result<Project> {
    const COLUMNS: &str = PROJECT_COLUMNS;
    let visibility: String = row.get(col!(at, "p.visibility"))?;
    Ok(Project {
        id: row.get(col!(at, "p.id"))?,
        namespace: namespace_at(row, col!(at, "n.id"))?,
        name: row.get(col!(at, "p.name"))?,
        path: row.get(col!(at, "p.path"))?,
        description: row.get(col!(at, "p.description"))?,
        visibility: Visibility::parse(&visibility).unwrap_or(Visibility::Private),
        default_branch: row.get(col!(at, "p.default_branch"))?,
        creator_id: row.get(col!(at, "p.creator_id"))?,
        created_at: row.get(col!(at, "p.created_at"))?,
        updated_at: row.get(col!(at, "p.updated_at"))?,
        last_activity_at: row.get(col!(at, "p.last_activity_at"))?,
    })
}

pub(crate) fn project_from_row(row: &dyn Row) -> Result<Project> {
    project_at(row, 0)
}

fn member_from_row(row: &dyn Row) -> Result<Member> {
    const COLUMNS: &str = MEMBER_COLUMNS;
    let level: i64 = row.get(col!("m.access_level"))?;
    Ok(Member {
        project_id: row.get(col!("m.project_id"))?,
        user: user_at(row, 0)?,
        access_level: AccessLevel::from_i64(level).unwrap_or(AccessLevel::Guest),
        expires_at: row.get(col!("m.expires_at"))?,
        created_at: row.get(col!("m.created_at"))?,
    })
}

fn protected_branch_from_row(row: &dyn Row) -> Result<ProtectedBranch> {
    const COLUMNS: &str = PROTECTED_BRANCH_COLUMNS;
    let level = |value: i64| {
        ProtectionLevel::from_i64(value)
            .unwrap_or(ProtectionLevel::AtLeast(AccessLevel::Maintainer))
    };
    Ok(ProtectedBranch {
        id: row.get(col!("id"))?,
        project_id: row.get(col!("project_id"))?,
        name: row.get(col!("name"))?,
        push_access_level: level(row.get(col!("push_access_level"))?),
        merge_access_level: level(row.get(col!("merge_access_level"))?),
        allow_force_push: row.get(col!("allow_force_push"))?,
        created_at: row.get(col!("created_at"))?,
    })
}

/// ` WHERE …`: the projects a viewer may see, narrowed by the filter.
fn push_project_filter(q: &mut Query<'_>, filter: &ProjectFilter) {
    q.push(" WHERE 1=1");
    match filter.viewer {
        Viewer::Admin => {}
        Viewer::Anonymous => {
            q.push(" AND p.visibility = 'public'");
        }
        Viewer::User(uid) => {
            q.push(
                " AND (p.visibility IN ('public', 'internal') OR EXISTS (SELECT 1 FROM \
                 project_authorizations pm WHERE pm.project_id = p.id AND pm.user_id = ",
            )
            .push_bind(uid)
            .push("))");
        }
    }
    if let Some(uid) = filter.membership_of {
        q.push(
            " AND EXISTS (SELECT 1 FROM project_authorizations mm WHERE mm.project_id = p.id \
             AND mm.user_id = ",
        )
        .push_bind(uid)
        .push(")");
    }
    if let Some(uid) = filter.owned_by {
        q.push(" AND n.owner_id = ").push_bind(uid);
    }
    match filter.namespace {
        Some((id, false)) => {
            q.push(" AND n.id = ").push_bind(id);
        }
        Some((id, true)) => {
            q.push(" AND (n.id = ")
                .push_bind(id)
                .push(" OR n.ancestor_ids LIKE ")
                .push_bind(crate::groups::below_pattern(id))
                .push(")");
        }
        None => {}
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = like_pattern(search);
        q.push(" AND (LOWER(p.name) LIKE ")
            .push_bind(pattern.clone());
        q.push(" ESCAPE '\\' OR p.path_lower LIKE ")
            .push_bind(pattern);
        q.push(" ESCAPE '\\')");
    }
}

/// Protected-branch rules by project, read on every trigger and push: the SQLite store's
/// cache. The embedded SQLite store is only ever written by this process, so invalidating on
/// our own writes keeps it exact (the PostgreSQL store, shared by replicas, does not cache).
#[derive(Default)]
pub(crate) struct ProtectedCache(Mutex<CachedRules>);

/// Cached rules plus a generation that every write bumps, so a read that raced a write never
/// stores what it read.
#[derive(Default)]
struct CachedRules {
    rules: HashMap<ProjectId, Vec<ProtectedBranch>>,
    generation: u64,
}

impl ProtectedCache {
    fn get(&self, project_id: ProjectId) -> (Option<Vec<ProtectedBranch>>, u64) {
        match self.0.lock() {
            Ok(cache) => (cache.rules.get(&project_id).cloned(), cache.generation),
            Err(_) => (None, u64::MAX),
        }
    }

    fn put(&self, project_id: ProjectId, rules: &[ProtectedBranch], generation: u64) {
        if let Ok(mut cache) = self.0.lock()
            && cache.generation == generation
        {
            if cache.rules.len() > 10_000 {
                cache.rules.clear();
            }
            cache.rules.insert(project_id, rules.to_vec());
        }
    }

    fn invalidate(&self, project_id: ProjectId) {
        if let Ok(mut cache) = self.0.lock() {
            cache.generation += 1;
            cache.rules.remove(&project_id);
        }
    }
}

impl SqlStore {
    fn invalidate_protected_branches(&self, project_id: ProjectId) {
        if let Some(cache) = &self.protected {
            cache.invalidate(project_id);
        }
    }
}

#[async_trait]
impl ProjectStore for SqlStore {
    async fn create_project(&self, project: &NewProject) -> Result<Project> {
        let now = Timestamp::now();
        let mut tx = self.db.begin_write().await?;
        let insert = query(
            "INSERT INTO projects (namespace_id, name, path, path_lower, description, visibility, \
             default_branch, creator_id, created_at, updated_at, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9) RETURNING id",
        )
        .bind(project.namespace_id)
        .bind(&project.name)
        .bind(&project.path)
        .bind(project.path.to_lowercase())
        .bind(&project.description)
        .bind(project.visibility.as_str())
        .bind(&project.default_branch)
        .bind(project.creator_id)
        .bind(now);
        let id: i64 = tx.fetch_one(&insert, first).await?;
        let owner = query(
            "INSERT INTO project_members (project_id, user_id, access_level, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(project.creator_id)
        .bind(AccessLevel::Owner.as_i64())
        .bind(now);
        tx.execute(&owner).await?;
        tx.commit().await?;
        self.project(id).await?.ok_or(StoreError::NotFound)
    }

    async fn project(&self, id: ProjectId) -> Result<Option<Project>> {
        let sql = select!(project_columns, project_from!(), "WHERE p.id = $1");
        self.db
            .fetch_optional(&query(sql).bind(id), project_from_row)
            .await
    }

    async fn project_by_full_path(&self, namespace: &str, path: &str) -> Result<Option<Project>> {
        let sql = select!(
            project_columns,
            project_from!(),
            "WHERE n.path_lower = $1 AND p.path_lower = $2"
        );
        let q = query(sql)
            .bind(namespace.to_lowercase())
            .bind(path.to_lowercase());
        self.db.fetch_optional(&q, project_from_row).await
    }

    async fn projects(&self, filter: &ProjectFilter, page: Page) -> Result<Paged<Project>> {
        let column = match filter.order_by {
            ProjectOrder::Id => "p.id",
            ProjectOrder::Name => "LOWER(p.name)",
            ProjectOrder::Path => "p.path_lower",
            ProjectOrder::CreatedAt => "p.created_at",
            ProjectOrder::UpdatedAt => "p.updated_at",
            ProjectOrder::LastActivityAt => "p.last_activity_at",
        };
        let dir = if filter.ascending { " ASC" } else { " DESC" };
        let apply = |q: &mut Query<'_>| push_project_filter(q, filter);
        let listing = Listing {
            columns: PROJECT_COLUMNS,
            from: PROJECT_FROM,
            filter: &apply,
            order: &[column, dir, ", p.id", dir],
        };
        self.db.paged(listing, page, project_from_row).await
    }

    async fn update_project(&self, id: ProjectId, update: &ProjectUpdate) -> Result<Project> {
        let (set_description, description) = match &update.description {
            Some(d) => (true, d.as_deref()),
            None => (false, None),
        };
        let q = query(
            "UPDATE projects SET name = COALESCE($2, name), path = COALESCE($3, path), \
               path_lower = COALESCE($4, path_lower), \
               description = CASE WHEN $5 THEN $6 ELSE description END, \
               visibility = COALESCE($7, visibility), \
               default_branch = COALESCE($8, default_branch), \
               updated_at = $9 WHERE id = $1",
        )
        .bind(id)
        .bind(&update.name)
        .bind(&update.path)
        .bind(update.path.as_ref().map(|p| p.to_lowercase()))
        .bind(set_description)
        .bind(description)
        .bind(update.visibility.map(Visibility::as_str))
        .bind(&update.default_branch)
        .bind(Timestamp::now());
        found(self.db.execute(&q).await?)?;
        self.project(id).await?.ok_or(StoreError::NotFound)
    }

    async fn delete_project(&self, id: ProjectId) -> Result<()> {
        let deleted = self
            .db
            .execute(&query("DELETE FROM projects WHERE id = $1").bind(id))
            .await;
        self.invalidate_protected_branches(id);
        found(deleted?)
    }

    async fn project_role(
        &self,
        project_id: ProjectId,
        user_id: UserId,
    ) -> Result<Option<AccessLevel>> {
        let q = query(
            "SELECT MAX(access_level) FROM project_authorizations WHERE project_id = $1 \
             AND user_id = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(Timestamp::now());
        let level: Option<i64> = self.db.fetch_one(&q, first).await?;
        Ok(level.and_then(AccessLevel::from_i64))
    }

    async fn member(&self, project_id: ProjectId, user_id: UserId) -> Result<Option<Member>> {
        let sql = select!(
            member_columns,
            member_from!(),
            "WHERE m.project_id = $1 AND m.user_id = $2"
        );
        let q = query(sql).bind(project_id).bind(user_id);
        self.db.fetch_optional(&q, member_from_row).await
    }

    async fn members(&self, project_id: ProjectId, page: Page) -> Result<Paged<Member>> {
        let filter = |q: &mut Query<'_>| {
            q.push(" WHERE m.project_id = ").push_bind(project_id);
        };
        let listing = Listing {
            columns: MEMBER_COLUMNS,
            from: MEMBER_FROM,
            filter: &filter,
            order: &["u.id"],
        };
        self.db.paged(listing, page, member_from_row).await
    }

    async fn add_member(
        &self,
        project_id: ProjectId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<Member> {
        let q = query(
            "INSERT INTO project_members (project_id, user_id, access_level, expires_at, \
             created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(level.as_i64())
        .bind(expires_at)
        .bind(Timestamp::now());
        self.db.execute(&q).await?;
        self.member(project_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn update_member(
        &self,
        project_id: ProjectId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<Member> {
        let q = query(
            "UPDATE project_members SET access_level = $3, expires_at = $4 \
             WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(level.as_i64())
        .bind(expires_at);
        found(self.db.execute(&q).await?)?;
        self.member(project_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn remove_member(&self, project_id: ProjectId, user_id: UserId) -> Result<()> {
        let q = query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id);
        found(self.db.execute(&q).await?)
    }

    async fn protected_branches(&self, project_id: ProjectId) -> Result<Vec<ProtectedBranch>> {
        let (cached, generation) = match &self.protected {
            Some(cache) => cache.get(project_id),
            None => (None, 0),
        };
        if let Some(rules) = cached {
            return Ok(rules);
        }
        let sql = select!(
            protected_branch_columns,
            "protected_branches",
            "WHERE project_id = $1 ORDER BY name"
        );
        let q = query(sql).bind(project_id);
        let rules = self.db.fetch_all(&q, protected_branch_from_row).await?;
        if let Some(cache) = &self.protected {
            cache.put(project_id, &rules, generation);
        }
        Ok(rules)
    }

    async fn create_protected_branch(
        &self,
        branch: &NewProtectedBranch,
    ) -> Result<ProtectedBranch> {
        let sql = concat!(
            "INSERT INTO protected_branches (project_id, name, push_access_level, \
             merge_access_level, allow_force_push, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            protected_branch_columns!()
        );
        let q = query(sql)
            .bind(branch.project_id)
            .bind(&branch.name)
            .bind(branch.push_access_level.as_i64())
            .bind(branch.merge_access_level.as_i64())
            .bind(branch.allow_force_push)
            .bind(Timestamp::now());
        let created = self.db.fetch_one(&q, protected_branch_from_row).await;
        self.invalidate_protected_branches(branch.project_id);
        created
    }

    async fn delete_protected_branch(&self, project_id: ProjectId, name: &str) -> Result<()> {
        let q = query("DELETE FROM protected_branches WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(name);
        let deleted = self.db.execute(&q).await;
        self.invalidate_protected_branches(project_id);
        found(deleted?)
    }
}
