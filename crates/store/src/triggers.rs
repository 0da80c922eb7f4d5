//! Pipeline trigger tokens, and what the trigger endpoint reads about one in one statement.

use async_trait::async_trait;
use pipewright_core::{AccessLevel, Timestamp};

use crate::Result;
use crate::db::{Listing, Query, Row, RowExt, col, column, query, select, split_list, width};
use crate::model::*;
use crate::projects::project_at;
use crate::store::SqlStore;
use crate::users::{found, user_at};

/// Pipeline trigger tokens.
#[async_trait]
pub trait TriggerStore: Send + Sync {
    async fn create_trigger(&self, trigger: &NewTrigger) -> Result<Trigger>;
    async fn trigger(&self, project_id: ProjectId, id: i64) -> Result<Option<Trigger>>;
    /// Everything the trigger endpoint needs about a token, in one statement: the trigger, its
    /// project, its owner and the owner's current role there. A token replaced by a rotation
    /// is found too until its grace period ends.
    async fn trigger_run_context(&self, digest: &str) -> Result<Option<TriggerContext>>;
    async fn triggers(&self, project_id: ProjectId, page: Page) -> Result<Paged<Trigger>>;
    /// Sets a trigger's description and restrictions.
    async fn update_trigger(
        &self,
        id: i64,
        description: &str,
        restrictions: &TriggerRestrictions,
    ) -> Result<Trigger>;
    /// Replaces a trigger's token; the replaced one keeps working (by its digest only) until
    /// `rotated.previous_valid_until`, and a token replaced earlier stops at once.
    async fn rotate_trigger(&self, id: i64, rotated: &RotatedToken) -> Result<Trigger>;
    async fn delete_trigger(&self, id: i64) -> Result<()>;
}

macro_rules! trigger_columns {
    () => {
        "id, project_id, owner_id, legacy, description, token_sealed, short_token, created_at, \
         updated_at, expires_at, last_used_at, ref_patterns, allowed_variables"
    };
}
const TRIGGER_COLUMNS: &str = trigger_columns!();

/// `trigger_run_context`'s columns: the trigger's (as `t.*`), its project's, its owner's
/// (NULL when it has none) and the owner's membership.
macro_rules! context_columns {
    () => {
        concat!(
            $crate::projects::project_columns!(),
            ", ",
            $crate::users::user_columns!(),
            ", m.access_level, m.expires_at"
        )
    };
}
const CONTEXT_COLUMNS: &str = concat!(trigger_columns!(), ", ", context_columns!());

fn trigger_from_row(row: &dyn Row) -> Result<Trigger> {
    const COLUMNS: &str = TRIGGER_COLUMNS;
    Ok(Trigger {
        id: row.get(col!("id"))?,
        project_id: row.get(col!("project_id"))?,
        owner_id: row.get(col!("owner_id"))?,
        legacy: row.get(col!("legacy"))?,
        description: row.get(col!("description"))?,
        token_sealed: row.get(col!("token_sealed"))?,
        short_token: row.get(col!("short_token"))?,
        created_at: row.get(col!("created_at"))?,
        updated_at: row.get(col!("updated_at"))?,
        expires_at: row.get(col!("expires_at"))?,
        last_used_at: row.get(col!("last_used_at"))?,
        restrictions: TriggerRestrictions {
            ref_patterns: split_list(&row.get::<String>(col!("ref_patterns"))?, '\n'),
            allowed_variables: split_list(&row.get::<String>(col!("allowed_variables"))?, '\n'),
        },
    })
}

fn context_from_row(row: &dyn Row) -> Result<TriggerContext> {
    const COLUMNS: &str = CONTEXT_COLUMNS;
    // `t.*` yields the trigger's columns, so the project's start where that list ends.
    const { assert!(column(CONTEXT_COLUMNS, "p.id") == width(TRIGGER_COLUMNS)) };
    let owner = match row.get::<Option<i64>>(col!("u.id"))? {
        None => None,
        // What the endpoint needs of the owner; never their password.
        Some(_) => Some(User {
            password_hash: None,
            ..user_at(row, col!("u.id"))?
        }),
    };
    let role: Option<i64> = row.get(col!("m.access_level"))?;
    let expires: Option<i64> = row.get(col!("m.expires_at"))?;
    let owner_role = match (role, expires) {
        (Some(level), expires) if expires.is_none_or(|t| t > Timestamp::now().millis()) => {
            AccessLevel::from_i64(level)
        }
        _ => None,
    };
    Ok(TriggerContext {
        trigger: trigger_from_row(row)?,
        project: project_at(row, col!("p.id"))?,
        owner,
        owner_role,
    })
}

#[async_trait]
impl TriggerStore for SqlStore {
    async fn create_trigger(&self, trigger: &NewTrigger) -> Result<Trigger> {
        let sql = concat!(
            "INSERT INTO triggers (project_id, owner_id, legacy, description, token_digest, \
             token_sealed, short_token, created_at, updated_at, expires_at, ref_patterns, \
             allowed_variables) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11) RETURNING ",
            trigger_columns!()
        );
        let q = query(sql)
            .bind(trigger.project_id)
            .bind(trigger.owner_id)
            .bind(trigger.legacy)
            .bind(&trigger.description)
            .bind(&trigger.token_digest)
            .bind(&trigger.token_sealed)
            .bind(&trigger.short_token)
            .bind(Timestamp::now())
            .bind(trigger.expires_at)
            .bind(trigger.restrictions.ref_patterns.join("\n"))
            .bind(trigger.restrictions.allowed_variables.join("\n"));
        self.db.fetch_one(&q, trigger_from_row).await
    }

    async fn trigger(&self, project_id: ProjectId, id: i64) -> Result<Option<Trigger>> {
        let sql = select!(
            trigger_columns,
            "triggers",
            "WHERE project_id = $1 AND id = $2"
        );
        let q = query(sql).bind(project_id).bind(id);
        self.db.fetch_optional(&q, trigger_from_row).await
    }

    async fn trigger_run_context(&self, digest: &str) -> Result<Option<TriggerContext>> {
        let sql = concat!(
            "SELECT t.*, ",
            context_columns!(),
            " FROM (SELECT ",
            trigger_columns!(),
            " FROM triggers WHERE token_digest = $1 \
             OR (previous_token_digest = $1 AND previous_token_expires_at > $2)) t \
             JOIN projects p ON p.id = t.project_id JOIN namespaces n ON n.id = p.namespace_id \
             LEFT JOIN users u ON u.id = t.owner_id \
             LEFT JOIN project_authorizations m ON m.project_id = t.project_id \
             AND m.user_id = t.owner_id AND (m.expires_at IS NULL OR m.expires_at > $2) \
             ORDER BY m.access_level DESC LIMIT 1"
        );
        self.db
            .fetch_optional(
                &query(sql).bind(digest).bind(Timestamp::now()),
                context_from_row,
            )
            .await
    }

    async fn triggers(&self, project_id: ProjectId, page: Page) -> Result<Paged<Trigger>> {
        let filter = |q: &mut Query<'_>| {
            q.push(" WHERE project_id = ").push_bind(project_id);
        };
        let listing = Listing {
            columns: TRIGGER_COLUMNS,
            from: "triggers",
            filter: &filter,
            order: &["id"],
        };
        self.db.paged(listing, page, trigger_from_row).await
    }

    async fn update_trigger(
        &self,
        id: i64,
        description: &str,
        restrictions: &TriggerRestrictions,
    ) -> Result<Trigger> {
        let sql = concat!(
            "UPDATE triggers SET description = $2, ref_patterns = $3, allowed_variables = $4, \
             updated_at = $5 WHERE id = $1 RETURNING ",
            trigger_columns!()
        );
        let q = query(sql)
            .bind(id)
            .bind(description)
            .bind(restrictions.ref_patterns.join("\n"))
            .bind(restrictions.allowed_variables.join("\n"))
            .bind(Timestamp::now());
        self.db.fetch_one(&q, trigger_from_row).await
    }

    async fn rotate_trigger(&self, id: i64, rotated: &RotatedToken) -> Result<Trigger> {
        // The right-hand `token_digest` is the row's value before this update.
        let sql = concat!(
            "UPDATE triggers SET \
             previous_token_digest = CASE WHEN $5 THEN token_digest ELSE NULL END, \
             previous_token_expires_at = $6, \
             token_digest = $2, token_sealed = $3, short_token = $4, updated_at = $7 \
             WHERE id = $1 RETURNING ",
            trigger_columns!()
        );
        let q = query(sql)
            .bind(id)
            .bind(&rotated.token_digest)
            .bind(&rotated.token_sealed)
            .bind(&rotated.short_token)
            .bind(rotated.previous_valid_until.is_some())
            .bind(rotated.previous_valid_until)
            .bind(Timestamp::now());
        self.db.fetch_one(&q, trigger_from_row).await
    }

    async fn delete_trigger(&self, id: i64) -> Result<()> {
        let q = query("DELETE FROM triggers WHERE id = $1").bind(id);
        found(self.db.execute(&q).await?)
    }
}
