//! Users, their personal namespaces and their personal access tokens.

use async_trait::async_trait;
use pipewright_core::{ProjectCreationLevel, SubgroupCreationLevel, Timestamp, Visibility};

use crate::db::{
    Commit, Exec, Listing, Query, Row, RowExt, col, first, like_pattern, query, select, split_list,
};
use crate::model::*;
use crate::store::SqlStore;
use crate::{Result, StoreError};

/// Users, namespaces and personal access tokens.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user and their personal namespace, in one transaction.
    async fn create_user(&self, user: &NewUser) -> Result<User>;
    async fn user(&self, id: UserId) -> Result<Option<User>>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn users(&self, page: Page, search: Option<&str>) -> Result<Paged<User>>;
    async fn count_users(&self) -> Result<i64>;
    async fn update_user(&self, id: UserId, update: &UserUpdate) -> Result<User>;
    async fn set_user_state(&self, id: UserId, state: UserState) -> Result<()>;
    async fn delete_user(&self, id: UserId) -> Result<()>;

    async fn namespace(&self, id: NamespaceId) -> Result<Option<Namespace>>;
    async fn user_namespace(&self, user_id: UserId) -> Result<Option<Namespace>>;

    async fn create_personal_access_token(
        &self,
        token: &NewPersonalAccessToken,
    ) -> Result<PersonalAccessToken>;
    /// The token with this digest (revoked and expired ones included: the caller decides).
    async fn personal_access_token_by_digest(
        &self,
        digest: &str,
    ) -> Result<Option<PersonalAccessToken>>;
    async fn personal_access_token(&self, id: i64) -> Result<Option<PersonalAccessToken>>;
    async fn personal_access_tokens(
        &self,
        user_id: Option<UserId>,
        page: Page,
    ) -> Result<Paged<PersonalAccessToken>>;
    async fn revoke_personal_access_token(&self, id: i64) -> Result<()>;
    /// Revokes the token `id` and creates `new` in its place, in one transaction (GitLab's
    /// `PersonalAccessTokens::RotateService`). `None`, and nothing changed, when `id` was
    /// already revoked — so two rotations of one token cannot both succeed.
    async fn rotate_personal_access_token(
        &self,
        id: i64,
        new: &NewPersonalAccessToken,
    ) -> Result<Option<PersonalAccessToken>>;
    async fn touch_personal_access_token(&self, id: i64, at: Timestamp) -> Result<()>;
    /// Revokes every token rotation made from `id`, directly or through others (its
    /// descendants); returns how many were still active.
    async fn revoke_personal_access_token_family(&self, id: i64) -> Result<u64>;
}

/// A user's columns, for `FROM users u` (members and trigger owners join them too).
macro_rules! user_columns {
    () => {
        "u.id, u.username, u.name, u.email, u.password_hash, u.is_admin, u.state, u.created_at, \
         u.updated_at"
    };
}
pub(crate) use user_columns;
pub(crate) const USER_COLUMNS: &str = user_columns!();

/// A namespace's columns, for `FROM namespaces n` (projects join them too).
macro_rules! namespace_columns {
    () => {
        "n.id, n.name, n.path, n.kind, n.owner_id, n.created_at, n.parent_id, n.full_path, \
         n.full_name, n.visibility, n.description, n.project_creation_level, \
         n.subgroup_creation_level"
    };
}
pub(crate) use namespace_columns;
const NAMESPACE_COLUMNS: &str = namespace_columns!();

macro_rules! token_columns {
    () => {
        "id, user_id, name, scopes, expires_at, revoked, created_at, last_used_at"
    };
}
const TOKEN_COLUMNS: &str = token_columns!();

/// The user whose [`USER_COLUMNS`] start at column `at`.
pub(crate) fn user_at(row: &dyn Row, at: usize) -> Result<User> {
    const COLUMNS: &str = USER_COLUMNS;
    Ok(User {
        id: row.get(col!(at, "u.id"))?,
        username: row.get(col!(at, "u.username"))?,
        name: row.get(col!(at, "u.name"))?,
        email: row.get(col!(at, "u.email"))?,
        password_hash: row.get(col!(at, "u.password_hash"))?,
        is_admin: row.get(col!(at, "u.is_admin"))?,
        state: UserState::parse(&row.get::<String>(col!(at, "u.state"))?),
        created_at: row.get(col!(at, "u.created_at"))?,
        updated_at: row.get(col!(at, "u.updated_at"))?,
    })
}

fn user_from_row(row: &dyn Row) -> Result<User> {
    user_at(row, 0)
}

/// The namespace whose [`NAMESPACE_COLUMNS`] start at column `at`.
pub(crate) fn namespace_at(row: &dyn Row, at: usize) -> Result<Namespace> {
    const COLUMNS: &str = NAMESPACE_COLUMNS;
    Ok(Namespace {
        id: row.get(col!(at, "n.id"))?,
        name: row.get(col!(at, "n.name"))?,
        path: row.get(col!(at, "n.path"))?,
        kind: NamespaceKind::parse(&row.get::<String>(col!(at, "n.kind"))?),
        owner_id: row.get(col!(at, "n.owner_id"))?,
        created_at: row.get(col!(at, "n.created_at"))?,
        parent_id: row.get(col!(at, "n.parent_id"))?,
        full_path: row.get(col!(at, "n.full_path"))?,
        full_name: row.get(col!(at, "n.full_name"))?,
        visibility: Visibility::parse(&row.get::<String>(col!(at, "n.visibility"))?)
            .unwrap_or(Visibility::Private),
        description: row.get(col!(at, "n.description"))?,
        project_creation_level: row
            .get::<Option<String>>(col!(at, "n.project_creation_level"))?
            .as_deref()
            .and_then(ProjectCreationLevel::parse),
        subgroup_creation_level: SubgroupCreationLevel::parse(
            &row.get::<String>(col!(at, "n.subgroup_creation_level"))?,
        )
        .unwrap_or(SubgroupCreationLevel::Maintainer),
    })
}

fn namespace_from_row(row: &dyn Row) -> Result<Namespace> {
    namespace_at(row, 0)
}

fn token_from_row(row: &dyn Row) -> Result<PersonalAccessToken> {
    const COLUMNS: &str = TOKEN_COLUMNS;
    Ok(PersonalAccessToken {
        id: row.get(col!("id"))?,
        user_id: row.get(col!("user_id"))?,
        name: row.get(col!("name"))?,
        scopes: split_list(&row.get::<String>(col!("scopes"))?, ','),
        expires_at: row.get(col!("expires_at"))?,
        revoked: row.get(col!("revoked"))?,
        created_at: row.get(col!("created_at"))?,
        last_used_at: row.get(col!("last_used_at"))?,
    })
}

fn insert_token(token: &NewPersonalAccessToken) -> Query<'_> {
    query(
        "INSERT INTO personal_access_tokens (user_id, name, token_digest, scopes, expires_at, \
         revoked, created_at) VALUES ($1, $2, $3, $4, $5, FALSE, $6) RETURNING id",
    )
    .bind(token.user_id)
    .bind(&token.name)
    .bind(&token.token_digest)
    .bind(token.scopes.join(","))
    .bind(token.expires_at)
    .bind(Timestamp::now())
}

/// `Err(NotFound)` when a statement that targets one row by id changed none.
pub(crate) fn found(changed: u64) -> Result<()> {
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let now = Timestamp::now();
        let mut tx = self.db.begin_write().await?;
        let insert = query(
            "INSERT INTO users (username, username_lower, name, email, email_lower, password_hash, \
             is_admin, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8) RETURNING id",
        )
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(&user.name)
        .bind(&user.email)
        .bind(user.email.to_lowercase())
        .bind(&user.password_hash)
        .bind(user.is_admin)
        .bind(now);
        let id: i64 = tx.fetch_one(&insert, first).await?;
        let namespace = query(
            "INSERT INTO namespaces (name, path, path_lower, kind, owner_id, created_at, \
             full_path, full_name) VALUES ($1, $2, $3, 'user', $4, $5, $2, $1)",
        )
        .bind(&user.name)
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(id)
        .bind(now);
        tx.execute(&namespace).await?;
        tx.commit().await?;
        self.user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        let sql = select!(user_columns, "users u", "WHERE u.id = $1");
        self.db
            .fetch_optional(&query(sql).bind(id), user_from_row)
            .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let sql = select!(user_columns, "users u", "WHERE u.username_lower = $1");
        let q = query(sql).bind(username.to_lowercase());
        self.db.fetch_optional(&q, user_from_row).await
    }

    async fn users(&self, page: Page, search: Option<&str>) -> Result<Paged<User>> {
        let pattern = search.filter(|s| !s.is_empty()).map(like_pattern);
        let filter = |q: &mut Query<'_>| {
            if let Some(pattern) = &pattern {
                q.push(" WHERE u.username_lower LIKE ")
                    .push_bind(pattern.clone());
                q.push(" ESCAPE '\\' OR LOWER(u.name) LIKE ")
                    .push_bind(pattern.clone());
                q.push(" ESCAPE '\\' OR u.email_lower LIKE ")
                    .push_bind(pattern.clone());
                q.push(" ESCAPE '\\'");
            }
        };
        let listing = Listing {
            columns: USER_COLUMNS,
            from: "users u",
            filter: &filter,
            order: &["u.id"],
        };
        self.db.paged(listing, page, user_from_row).await
    }

    async fn count_users(&self) -> Result<i64> {
        self.db
            .fetch_one(&query("SELECT COUNT(*) FROM users"), first)
            .await
    }

    async fn update_user(&self, id: UserId, update: &UserUpdate) -> Result<User> {
        let mut tx = self.db.begin_write().await?;
        let set = query(
            "UPDATE users SET \
               username = COALESCE($2, username), username_lower = COALESCE($3, username_lower), \
               name = COALESCE($4, name), email = COALESCE($5, email), \
               email_lower = COALESCE($6, email_lower), \
               password_hash = COALESCE($7, password_hash), is_admin = COALESCE($8, is_admin), \
               updated_at = $9 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(&update.username)
        .bind(update.username.as_ref().map(|u| u.to_lowercase()))
        .bind(&update.name)
        .bind(&update.email)
        .bind(update.email.as_ref().map(|e| e.to_lowercase()))
        .bind(&update.password_hash)
        .bind(update.is_admin)
        .bind(Timestamp::now());
        found(tx.execute(&set).await?)?;
        if let Some(username) = &update.username {
            let rename = query(
                "UPDATE namespaces SET path = $2, path_lower = $3, full_path = $2 \
                 WHERE owner_id = $1 AND kind = 'user'",
            )
            .bind(id)
            .bind(username)
            .bind(username.to_lowercase());
            tx.execute(&rename).await?;
        }
        tx.commit().await?;
        self.user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn set_user_state(&self, id: UserId, state: UserState) -> Result<()> {
        let q = query("UPDATE users SET state = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .bind(Timestamp::now());
        found(self.db.execute(&q).await?)
    }

    async fn delete_user(&self, id: UserId) -> Result<()> {
        let q = query("DELETE FROM users WHERE id = $1").bind(id);
        found(self.db.execute(&q).await?)
    }

    async fn namespace(&self, id: NamespaceId) -> Result<Option<Namespace>> {
        let sql = select!(namespace_columns, "namespaces n", "WHERE n.id = $1");
        self.db
            .fetch_optional(&query(sql).bind(id), namespace_from_row)
            .await
    }

    async fn user_namespace(&self, user_id: UserId) -> Result<Option<Namespace>> {
        let sql = select!(
            namespace_columns,
            "namespaces n",
            "WHERE n.owner_id = $1 AND n.kind = 'user'"
        );
        self.db
            .fetch_optional(&query(sql).bind(user_id), namespace_from_row)
            .await
    }

    async fn create_personal_access_token(
        &self,
        token: &NewPersonalAccessToken,
    ) -> Result<PersonalAccessToken> {
        let id: i64 = self.db.fetch_one(&insert_token(token), first).await?;
        self.personal_access_token(id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn personal_access_token_by_digest(
        &self,
        digest: &str,
    ) -> Result<Option<PersonalAccessToken>> {
        let sql = select!(
            token_columns,
            "personal_access_tokens",
            "WHERE token_digest = $1"
        );
        self.db
            .fetch_optional(&query(sql).bind(digest), token_from_row)
            .await
    }

    async fn personal_access_token(&self, id: i64) -> Result<Option<PersonalAccessToken>> {
        let sql = select!(token_columns, "personal_access_tokens", "WHERE id = $1");
        self.db
            .fetch_optional(&query(sql).bind(id), token_from_row)
            .await
    }

    async fn personal_access_tokens(
        &self,
        user_id: Option<UserId>,
        page: Page,
    ) -> Result<Paged<PersonalAccessToken>> {
        let filter = |q: &mut Query<'_>| {
            if let Some(uid) = user_id {
                q.push(" WHERE user_id = ").push_bind(uid);
            }
        };
        let listing = Listing {
            columns: TOKEN_COLUMNS,
            from: "personal_access_tokens",
            filter: &filter,
            order: &["id"],
        };
        self.db.paged(listing, page, token_from_row).await
    }

    async fn revoke_personal_access_token(&self, id: i64) -> Result<()> {
        let q = query("UPDATE personal_access_tokens SET revoked = TRUE WHERE id = $1").bind(id);
        found(self.db.execute(&q).await?)
    }

    async fn rotate_personal_access_token(
        &self,
        id: i64,
        new: &NewPersonalAccessToken,
    ) -> Result<Option<PersonalAccessToken>> {
        let mut tx = self.db.begin_write().await?;
        let revoke = query(
            "UPDATE personal_access_tokens SET revoked = TRUE WHERE id = $1 AND revoked = FALSE",
        )
        .bind(id);
        if tx.execute(&revoke).await? == 0 {
            return Ok(None);
        }
        let new_id: i64 = tx.fetch_one(&insert_token(new), first).await?;
        let link = query(
            "UPDATE personal_access_tokens SET previous_personal_access_token_id = $2 WHERE id = $1",
        )
        .bind(new_id)
        .bind(id);
        tx.execute(&link).await?;
        tx.commit().await?;
        self.personal_access_token(new_id).await
    }

    async fn revoke_personal_access_token_family(&self, id: i64) -> Result<u64> {
        let q = query(
            "WITH RECURSIVE family(id) AS ( \
               SELECT id FROM personal_access_tokens WHERE previous_personal_access_token_id = $1 \
               UNION \
               SELECT t.id FROM personal_access_tokens t \
                 JOIN family f ON t.previous_personal_access_token_id = f.id \
             ) \
             UPDATE personal_access_tokens SET revoked = TRUE \
             WHERE revoked = FALSE AND id IN (SELECT id FROM family)",
        )
        .bind(id);
        self.db.execute(&q).await
    }

    async fn touch_personal_access_token(&self, id: i64, at: Timestamp) -> Result<()> {
        let q = query("UPDATE personal_access_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at);
        self.db.execute(&q).await?;
        Ok(())
    }
}
