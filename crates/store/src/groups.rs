//! Groups (namespaces of kind `group`), their subgroups and their members, and the one
//! definition of inherited access: the `project_authorizations` and `group_authorizations`
//! views (migration 0018), read by [`GroupStore::group_role`] and
//! [`crate::ProjectStore::project_role`] and by every SQL filter that asks "may this user see".
//!
//! A namespace's `path_lower` is its full path, lowercased: unique across users and groups at
//! every depth, as GitLab's routes. `ancestor_ids` (`/1/5/`) lists a group's ancestors, so
//! "below group 5" is one `LIKE '%/5/%'` and a rename rewrites the descendants' full paths
//! in one statement.

use async_trait::async_trait;
use pipewright_core::{
    AccessLevel, ProjectCreationLevel, SubgroupCreationLevel, Timestamp, Visibility,
};

use crate::db::{
    Commit, Exec, Listing, Query, Row, RowExt, col, first, like_pattern, query, select,
};
use crate::model::*;
use crate::store::SqlStore;
use crate::users::found;
use crate::users::{namespace_at, namespace_columns, user_at};
use crate::{Result, StoreError, UserStore};

/// Groups, subgroups and group members.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Creates the group and makes its creator an Owner, in one transaction. `NotFound` when
    /// the parent is not a group; `Conflict` when the full path is taken.
    async fn create_group(&self, group: &NewGroup) -> Result<Namespace>;
    /// A user's or a group's namespace by its full path (`acme/backend`), case-insensitively.
    async fn namespace_by_full_path(&self, full_path: &str) -> Result<Option<Namespace>>;
    async fn groups(&self, filter: &GroupFilter, page: Page) -> Result<Paged<Namespace>>;
    /// Renames update every descendant's full path and full name in the same transaction.
    async fn update_group(&self, id: NamespaceId, update: &GroupUpdate) -> Result<Namespace>;
    /// Deletes the group, its subgroups and their projects' rows (repositories are the
    /// caller's: see [`GroupStore::projects_below`]).
    async fn delete_group(&self, id: NamespaceId) -> Result<()>;
    /// Every project in the group or a group below it.
    async fn projects_below(&self, id: NamespaceId) -> Result<Vec<ProjectId>>;
    /// Whether the group has subgroups.
    async fn has_subgroups(&self, id: NamespaceId) -> Result<bool>;
    /// The visibilities of the group's direct subgroups and projects: `(is_group, visibility)`,
    /// each pair once.
    async fn child_visibilities(&self, id: NamespaceId) -> Result<Vec<(bool, Visibility)>>;

    async fn group_member(
        &self,
        group_id: NamespaceId,
        user_id: UserId,
    ) -> Result<Option<GroupMember>>;
    /// Direct members.
    async fn group_members(&self, group_id: NamespaceId, page: Page) -> Result<Paged<GroupMember>>;
    /// Direct and inherited members, each user once with their highest live role.
    async fn group_members_all(
        &self,
        group_id: NamespaceId,
        page: Page,
    ) -> Result<Paged<GroupMember>>;
    async fn add_group_member(
        &self,
        group_id: NamespaceId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<GroupMember>;
    async fn update_group_member(
        &self,
        group_id: NamespaceId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<GroupMember>;
    async fn remove_group_member(&self, group_id: NamespaceId, user_id: UserId) -> Result<()>;
    /// How many live Owners the group has directly (GitLab keeps at least one).
    async fn group_owner_count(&self, group_id: NamespaceId) -> Result<i64>;
    /// Whether the user holds a live role in a project in the group or a group below it
    /// (GitLab's `has_projects` condition, which lets a user see a private group they are no
    /// member of: app/policies/group_policy.rb, app/policies/concerns/find_group_projects.rb).
    async fn has_projects_below(&self, group_id: NamespaceId, user_id: UserId) -> Result<bool>;
    /// The user's highest live role in the group, direct or inherited from an ancestor.
    async fn group_role(
        &self,
        group_id: NamespaceId,
        user_id: UserId,
    ) -> Result<Option<AccessLevel>>;
}

macro_rules! group_member_columns {
    () => {
        concat!(
            $crate::users::user_columns!(),
            ", m.group_id, m.access_level, m.expires_at, m.created_at"
        )
    };
}
const GROUP_MEMBER_COLUMNS: &str = group_member_columns!();

fn group_member_from_row(row: &dyn Row) -> Result<GroupMember> {
    const COLUMNS: &str = GROUP_MEMBER_COLUMNS;
    let level: i64 = row.get(col!("m.access_level"))?;
    Ok(GroupMember {
        group_id: row.get(col!("m.group_id"))?,
        user: user_at(row, 0)?,
        access_level: AccessLevel::from_i64(level).unwrap_or(AccessLevel::Guest),
        expires_at: row.get(col!("m.expires_at"))?,
        created_at: row.get(col!("m.created_at"))?,
    })
}

fn namespace_from_row(row: &dyn Row) -> Result<Namespace> {
    namespace_at(row, 0)
}

/// `%/<id>/%`: matches the `ancestor_ids` of every namespace below `id`.
pub(crate) fn below_pattern(id: NamespaceId) -> String {
    format!("%/{id}/%")
}

/// `(…)`: the groups related to a user, which they see whatever the groups' visibility —
/// GitLab's `authorized_groups.self_and_ancestors` ∪ `groups.self_and_descendants`
/// (app/finders/groups_finder.rb, `get_groups_for_user`; `User#authorized_groups` is the
/// groups they are a member of and the namespaces of projects they are a member of). So a
/// member of `acme/backend` alone sees `acme` listed, but not `acme`'s other subgroups.
fn push_related_groups(q: &mut Query<'_>, uid: UserId, now: Timestamp) {
    // A member of the group or of one of its ancestors.
    q.push(
        "(EXISTS (SELECT 1 FROM group_authorizations ga WHERE ga.group_id = n.id \
         AND ga.user_id = ",
    )
    .push_bind(uid)
    .push(" AND (ga.expires_at IS NULL OR ga.expires_at > ")
    .push_bind(now);
    // A member of one of its descendants.
    q.push(
        ")) OR EXISTS (SELECT 1 FROM group_members gd JOIN namespaces d ON d.id = gd.group_id \
         WHERE d.ancestor_ids LIKE '%/' || CAST(n.id AS TEXT) || '/%' AND gd.user_id = ",
    )
    .push_bind(uid)
    .push(" AND (gd.expires_at IS NULL OR gd.expires_at > ")
    .push_bind(now);
    // A member of a project in it or below it.
    q.push(
        ")) OR EXISTS (SELECT 1 FROM project_members pm JOIN projects p ON p.id = pm.project_id \
         JOIN namespaces d ON d.id = p.namespace_id WHERE (d.id = n.id OR d.ancestor_ids LIKE \
         '%/' || CAST(n.id AS TEXT) || '/%') AND pm.user_id = ",
    )
    .push_bind(uid)
    .push(" AND (pm.expires_at IS NULL OR pm.expires_at > ")
    .push_bind(now)
    .push(")))");
}

/// ` WHERE …`: the groups a viewer may see, narrowed by the filter.
fn push_group_filter(q: &mut Query<'_>, filter: &GroupFilter, now: Timestamp) {
    q.push(" WHERE n.kind = 'group'");
    match filter.viewer {
        Viewer::Admin => {}
        Viewer::Anonymous => {
            q.push(" AND n.visibility = 'public'");
        }
        Viewer::User(uid) => {
            q.push(" AND (n.visibility IN ('public', 'internal') OR ");
            push_related_groups(q, uid, now);
            q.push(")");
        }
    }
    match filter.parent {
        None => {}
        Some(None) => {
            q.push(" AND n.parent_id IS NULL");
        }
        Some(Some(parent)) => {
            q.push(" AND n.parent_id = ").push_bind(parent);
        }
    }
    if let Some(uid) = filter.membership_of {
        q.push(" AND ");
        push_related_groups(q, uid, now);
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = like_pattern(search);
        q.push(" AND (LOWER(n.name) LIKE ")
            .push_bind(pattern.clone());
        q.push(" ESCAPE '\\' OR n.path_lower LIKE ")
            .push_bind(pattern);
        q.push(" ESCAPE '\\')");
    }
}

/// The parent's full path, full name and ancestors, for a new subgroup.
struct Parent {
    full_path: String,
    full_name: String,
    ancestor_ids: String,
}

impl Parent {
    fn child(&self, id: NamespaceId, path: &str, name: &str) -> (String, String, String) {
        (
            format!("{}/{path}", self.full_path),
            format!("{} / {name}", self.full_name),
            format!("{}{id}/", self.ancestor_ids),
        )
    }
}

#[async_trait]
impl GroupStore for SqlStore {
    async fn create_group(&self, group: &NewGroup) -> Result<Namespace> {
        let now = Timestamp::now();
        let mut tx = self.db.begin_write().await?;
        let (full_path, full_name, ancestors) = match group.parent_id {
            Some(parent_id) => {
                let q = query(
                    "SELECT full_path, full_name, ancestor_ids FROM namespaces \
                     WHERE id = $1 AND kind = 'group'",
                )
                .bind(parent_id);
                let parent = tx
                    .fetch_optional(&q, |row| {
                        Ok(Parent {
                            full_path: row.get(0)?,
                            full_name: row.get(1)?,
                            ancestor_ids: row.get(2)?,
                        })
                    })
                    .await?
                    .ok_or(StoreError::NotFound)?;
                parent.child(parent_id, &group.path, &group.name)
            }
            None => (group.path.clone(), group.name.clone(), "/".to_string()),
        };
        let insert = query(
            "INSERT INTO namespaces (name, path, path_lower, kind, owner_id, created_at, \
             parent_id, full_path, full_name, ancestor_ids, visibility, description, \
             project_creation_level, subgroup_creation_level) \
             VALUES ($1, $2, $3, 'group', NULL, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             RETURNING id",
        )
        .bind(&group.name)
        .bind(&group.path)
        .bind(full_path.to_lowercase())
        .bind(now)
        .bind(group.parent_id)
        .bind(full_path)
        .bind(full_name)
        .bind(ancestors)
        .bind(group.visibility.as_str())
        .bind(&group.description)
        .bind(
            group
                .project_creation_level
                .map(ProjectCreationLevel::as_str),
        )
        .bind(group.subgroup_creation_level.as_str());
        let id: i64 = tx.fetch_one(&insert, first).await?;
        let owner = query(
            "INSERT INTO group_members (group_id, user_id, access_level, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(group.creator_id)
        .bind(AccessLevel::Owner.as_i64())
        .bind(now);
        tx.execute(&owner).await?;
        tx.commit().await?;
        self.namespace(id).await?.ok_or(StoreError::NotFound)
    }

    async fn namespace_by_full_path(&self, full_path: &str) -> Result<Option<Namespace>> {
        let sql = select!(namespace_columns, "namespaces n", "WHERE n.path_lower = $1");
        let q = query(sql).bind(full_path.to_lowercase());
        self.db.fetch_optional(&q, namespace_from_row).await
    }

    async fn groups(&self, filter: &GroupFilter, page: Page) -> Result<Paged<Namespace>> {
        let now = Timestamp::now();
        let apply = |q: &mut Query<'_>| push_group_filter(q, filter, now);
        let listing = Listing {
            columns: namespace_columns!(),
            from: "namespaces n",
            filter: &apply,
            order: &["LOWER(n.name), n.id"],
        };
        self.db.paged(listing, page, namespace_from_row).await
    }

    async fn update_group(&self, id: NamespaceId, update: &GroupUpdate) -> Result<Namespace> {
        let current = self
            .namespace(id)
            .await?
            .filter(Namespace::is_group)
            .ok_or(StoreError::NotFound)?;
        let name = update.name.clone().unwrap_or_else(|| current.name.clone());
        let path = update.path.clone().unwrap_or_else(|| current.path.clone());
        let full_path = match current.full_path.rsplit_once('/') {
            Some((parent, _)) => format!("{parent}/{path}"),
            None => path.clone(),
        };
        let full_name = match current.full_name.rsplit_once(" / ") {
            Some((parent, _)) => format!("{parent} / {name}"),
            None => name.clone(),
        };
        let mut tx = self.db.begin_write().await?;
        let set = query(
            "UPDATE namespaces SET name = $2, path = $3, path_lower = $4, full_path = $5, \
             full_name = $6, visibility = COALESCE($7, visibility), \
             description = COALESCE($8, description), \
             project_creation_level = COALESCE($9, project_creation_level), \
             subgroup_creation_level = COALESCE($10, subgroup_creation_level) WHERE id = $1",
        )
        .bind(id)
        .bind(&name)
        .bind(&path)
        .bind(full_path.to_lowercase())
        .bind(&full_path)
        .bind(&full_name)
        .bind(update.visibility.map(Visibility::as_str))
        .bind(&update.description)
        .bind(
            update
                .project_creation_level
                .map(ProjectCreationLevel::as_str),
        )
        .bind(
            update
                .subgroup_creation_level
                .map(SubgroupCreationLevel::as_str),
        );
        found(tx.execute(&set).await?)?;
        // Descendants keep their own tail: `old/x/y` → `new/x/y` (the right-hand columns
        // are the rows' values before this update, on both databases).
        let descendants = query(
            "UPDATE namespaces SET \
             full_path = $2 || SUBSTR(full_path, CAST($3 AS INTEGER)), \
             path_lower = LOWER($2 || SUBSTR(full_path, CAST($3 AS INTEGER))), \
             full_name = $4 || SUBSTR(full_name, CAST($5 AS INTEGER)) \
             WHERE ancestor_ids LIKE $1",
        )
        .bind(below_pattern(id))
        .bind(full_path)
        .bind(current.full_path.chars().count() as i64 + 1)
        .bind(full_name)
        .bind(current.full_name.chars().count() as i64 + 1);
        tx.execute(&descendants).await?;
        tx.commit().await?;
        self.namespace(id).await?.ok_or(StoreError::NotFound)
    }

    async fn delete_group(&self, id: NamespaceId) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        // Every group below, then this one; their projects and memberships go by the
        // foreign keys' cascades.
        let below = query("DELETE FROM namespaces WHERE ancestor_ids LIKE $1 AND kind = 'group'")
            .bind(below_pattern(id));
        tx.execute(&below).await?;
        let this = query("DELETE FROM namespaces WHERE id = $1 AND kind = 'group'").bind(id);
        let deleted = tx.execute(&this).await?;
        tx.commit().await?;
        found(deleted)
    }

    async fn projects_below(&self, id: NamespaceId) -> Result<Vec<ProjectId>> {
        let q = query(
            "SELECT p.id FROM projects p JOIN namespaces n ON n.id = p.namespace_id \
             WHERE n.id = $1 OR n.ancestor_ids LIKE $2 ORDER BY p.id",
        )
        .bind(id)
        .bind(below_pattern(id));
        self.db.fetch_all(&q, first).await
    }

    async fn has_subgroups(&self, id: NamespaceId) -> Result<bool> {
        let q = query("SELECT COUNT(*) FROM namespaces WHERE parent_id = $1").bind(id);
        let n: i64 = self.db.fetch_one(&q, first).await?;
        Ok(n > 0)
    }

    async fn child_visibilities(&self, id: NamespaceId) -> Result<Vec<(bool, Visibility)>> {
        let q = query(
            "SELECT DISTINCT TRUE, visibility FROM namespaces WHERE parent_id = $1 \
             UNION SELECT DISTINCT FALSE, visibility FROM projects WHERE namespace_id = $1",
        )
        .bind(id);
        let rows: Vec<(bool, String)> = self
            .db
            .fetch_all(&q, |row| Ok((row.get(0)?, row.get(1)?)))
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(group, v)| Visibility::parse(&v).map(|v| (group, v)))
            .collect())
    }

    async fn group_member(
        &self,
        group_id: NamespaceId,
        user_id: UserId,
    ) -> Result<Option<GroupMember>> {
        let sql = select!(
            group_member_columns,
            "group_members m JOIN users u ON u.id = m.user_id",
            "WHERE m.group_id = $1 AND m.user_id = $2"
        );
        let q = query(sql).bind(group_id).bind(user_id);
        self.db.fetch_optional(&q, group_member_from_row).await
    }

    async fn group_members(&self, group_id: NamespaceId, page: Page) -> Result<Paged<GroupMember>> {
        let filter = |q: &mut Query<'_>| {
            q.push(" WHERE m.group_id = ").push_bind(group_id);
        };
        let listing = Listing {
            columns: GROUP_MEMBER_COLUMNS,
            from: "group_members m JOIN users u ON u.id = m.user_id",
            filter: &filter,
            order: &["u.id"],
        };
        self.db.paged(listing, page, group_member_from_row).await
    }

    async fn group_members_all(
        &self,
        group_id: NamespaceId,
        page: Page,
    ) -> Result<Paged<GroupMember>> {
        let now = Timestamp::now();
        // One row per user: the highest live role; it never expires if any of them never does.
        let filter = |q: &mut Query<'_>| {
            q.push(
                " JOIN (SELECT a.group_id, a.user_id, MAX(a.access_level) AS access_level, \
                 CASE WHEN COUNT(a.expires_at) < COUNT(*) THEN NULL ELSE MAX(a.expires_at) END \
                 AS expires_at, MIN(a.created_at) AS created_at FROM group_authorizations a \
                 WHERE a.group_id = ",
            )
            .push_bind(group_id)
            .push(" AND (a.expires_at IS NULL OR a.expires_at > ")
            .push_bind(now)
            .push(") GROUP BY a.group_id, a.user_id) m ON m.user_id = u.id");
        };
        let listing = Listing {
            columns: GROUP_MEMBER_COLUMNS,
            from: "users u",
            filter: &filter,
            order: &["u.id"],
        };
        self.db.paged(listing, page, group_member_from_row).await
    }

    async fn add_group_member(
        &self,
        group_id: NamespaceId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<GroupMember> {
        let q = query(
            "INSERT INTO group_members (group_id, user_id, access_level, expires_at, \
             created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(group_id)
        .bind(user_id)
        .bind(level.as_i64())
        .bind(expires_at)
        .bind(Timestamp::now());
        self.db.execute(&q).await?;
        self.group_member(group_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn update_group_member(
        &self,
        group_id: NamespaceId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<GroupMember> {
        let q = query(
            "UPDATE group_members SET access_level = $3, expires_at = $4 \
             WHERE group_id = $1 AND user_id = $2",
        )
        .bind(group_id)
        .bind(user_id)
        .bind(level.as_i64())
        .bind(expires_at);
        found(self.db.execute(&q).await?)?;
        self.group_member(group_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn remove_group_member(&self, group_id: NamespaceId, user_id: UserId) -> Result<()> {
        let q = query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id);
        found(self.db.execute(&q).await?)
    }

    async fn group_owner_count(&self, group_id: NamespaceId) -> Result<i64> {
        let q = query(
            "SELECT COUNT(*) FROM group_members WHERE group_id = $1 AND access_level = $2 \
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(group_id)
        .bind(AccessLevel::Owner.as_i64())
        .bind(Timestamp::now());
        self.db.fetch_one(&q, first).await
    }

    async fn has_projects_below(&self, group_id: NamespaceId, user_id: UserId) -> Result<bool> {
        let q = query(
            "SELECT COUNT(*) FROM (SELECT 1 FROM project_authorizations a \
             JOIN projects p ON p.id = a.project_id JOIN namespaces n ON n.id = p.namespace_id \
             WHERE a.user_id = $1 AND (a.expires_at IS NULL OR a.expires_at > $2) \
             AND (n.id = $3 OR n.ancestor_ids LIKE $4) LIMIT 1) found",
        )
        .bind(user_id)
        .bind(Timestamp::now())
        .bind(group_id)
        .bind(below_pattern(group_id));
        let n: i64 = self.db.fetch_one(&q, first).await?;
        Ok(n > 0)
    }

    async fn group_role(
        &self,
        group_id: NamespaceId,
        user_id: UserId,
    ) -> Result<Option<AccessLevel>> {
        let q = query(
            "SELECT MAX(access_level) FROM group_authorizations WHERE group_id = $1 \
             AND user_id = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(group_id)
        .bind(user_id)
        .bind(Timestamp::now());
        let level: Option<i64> = self.db.fetch_one(&q, first).await?;
        Ok(level.and_then(AccessLevel::from_i64))
    }
}
