//! Project webhooks, their durable delivery queue (which is also the record of recent
//! deliveries), and instance settings.

use async_trait::async_trait;
use pipewright_core::Timestamp;

use crate::Result;
use crate::db::{Commit, Exec, Query, Row, RowExt, col, first, query, select};
use crate::model::*;
use crate::store::SqlStore;

/// Webhooks, their deliveries and instance settings.
#[async_trait]
pub trait HookStore: Send + Sync {
    async fn project_hooks(&self, project_id: ProjectId) -> Result<Vec<ProjectHook>>;
    async fn project_hook(&self, project_id: ProjectId, id: i64) -> Result<Option<ProjectHook>>;
    async fn project_hook_by_id(&self, id: i64) -> Result<Option<ProjectHook>>;
    async fn create_project_hook(&self, hook: &ProjectHook) -> Result<ProjectHook>;
    async fn update_project_hook(&self, hook: &ProjectHook) -> Result<ProjectHook>;
    async fn delete_project_hook(&self, id: i64) -> Result<()>;
    async fn enqueue_hook_deliveries(&self, deliveries: &[NewHookDelivery]) -> Result<()>;
    /// Claims due deliveries (pending ones whose time has come, and sends whose claim ran
    /// out because their sender died) until `claim_until`.
    async fn claim_hook_deliveries(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<HookDelivery>>;
    async fn record_hook_attempt(&self, id: i64, attempt: &DeliveryAttempt) -> Result<()>;
    /// A hook's most recent deliveries, newest first.
    async fn hook_deliveries(&self, hook_id: i64, limit: i64) -> Result<Vec<HookDelivery>>;
    async fn setting(&self, name: &str) -> Result<Option<String>>;
    async fn set_setting(&self, name: &str, value: &str) -> Result<()>;
}

macro_rules! hook_columns {
    () => {
        "id, project_id, url, token_sealed, push_events, push_events_branch_filter, \
         tag_push_events, pipeline_events, job_events, enable_ssl_verification, created_at"
    };
}
const HOOK_COLUMNS: &str = hook_columns!();

macro_rules! delivery_columns {
    () => {
        "id, hook_id, event, uuid, payload, state, attempts, next_attempt_at, response_status, \
         response_body, duration_ms, error, created_at, updated_at"
    };
}
const DELIVERY_COLUMNS: &str = delivery_columns!();

fn hook_from_row(row: &dyn Row) -> Result<ProjectHook> {
    const COLUMNS: &str = HOOK_COLUMNS;
    Ok(ProjectHook {
        id: row.get(col!("id"))?,
        project_id: row.get(col!("project_id"))?,
        url: row.get(col!("url"))?,
        token_sealed: row.get(col!("token_sealed"))?,
        push_events: row.get(col!("push_events"))?,
        push_events_branch_filter: row.get(col!("push_events_branch_filter"))?,
        tag_push_events: row.get(col!("tag_push_events"))?,
        pipeline_events: row.get(col!("pipeline_events"))?,
        job_events: row.get(col!("job_events"))?,
        enable_ssl_verification: row.get(col!("enable_ssl_verification"))?,
        created_at: row.get(col!("created_at"))?,
    })
}

fn delivery_from_row(row: &dyn Row) -> Result<HookDelivery> {
    const COLUMNS: &str = DELIVERY_COLUMNS;
    Ok(HookDelivery {
        id: row.get(col!("id"))?,
        hook_id: row.get(col!("hook_id"))?,
        event: row.get(col!("event"))?,
        uuid: row.get(col!("uuid"))?,
        payload: row.get(col!("payload"))?,
        state: row.get(col!("state"))?,
        attempts: row.get(col!("attempts"))?,
        next_attempt_at: row.get(col!("next_attempt_at"))?,
        response_status: row.get(col!("response_status"))?,
        response_body: row.get(col!("response_body"))?,
        duration_ms: row.get(col!("duration_ms"))?,
        error: row.get(col!("error"))?,
        created_at: row.get(col!("created_at"))?,
        updated_at: row.get(col!("updated_at"))?,
    })
}

/// Binds a hook's settings, `url` to `enable_ssl_verification` in column order (what both
/// creating and updating a hook write).
fn bind_settings<'a>(q: Query<'a>, h: &'a ProjectHook) -> Query<'a> {
    q.bind(&h.url)
        .bind(&h.token_sealed)
        .bind(h.push_events)
        .bind(&h.push_events_branch_filter)
        .bind(h.tag_push_events)
        .bind(h.pipeline_events)
        .bind(h.job_events)
        .bind(h.enable_ssl_verification)
}

#[async_trait]
impl HookStore for SqlStore {
    async fn project_hooks(&self, project_id: ProjectId) -> Result<Vec<ProjectHook>> {
        let sql = select!(
            hook_columns,
            "project_hooks",
            "WHERE project_id = $1 ORDER BY id"
        );
        self.db
            .fetch_all(&query(sql).bind(project_id), hook_from_row)
            .await
    }

    async fn project_hook(&self, project_id: ProjectId, id: i64) -> Result<Option<ProjectHook>> {
        let sql = select!(
            hook_columns,
            "project_hooks",
            "WHERE project_id = $1 AND id = $2"
        );
        let q = query(sql).bind(project_id).bind(id);
        self.db.fetch_optional(&q, hook_from_row).await
    }

    async fn project_hook_by_id(&self, id: i64) -> Result<Option<ProjectHook>> {
        let sql = select!(hook_columns, "project_hooks", "WHERE id = $1");
        self.db
            .fetch_optional(&query(sql).bind(id), hook_from_row)
            .await
    }

    async fn create_project_hook(&self, h: &ProjectHook) -> Result<ProjectHook> {
        let sql = concat!(
            "INSERT INTO project_hooks (project_id, url, token_sealed, push_events, \
             push_events_branch_filter, tag_push_events, pipeline_events, job_events, \
             enable_ssl_verification, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
            hook_columns!()
        );
        let q = bind_settings(query(sql).bind(h.project_id), h).bind(Timestamp::now());
        self.db.fetch_one(&q, hook_from_row).await
    }

    async fn update_project_hook(&self, h: &ProjectHook) -> Result<ProjectHook> {
        let sql = concat!(
            "UPDATE project_hooks SET url = $2, token_sealed = $3, push_events = $4, \
             push_events_branch_filter = $5, tag_push_events = $6, pipeline_events = $7, \
             job_events = $8, enable_ssl_verification = $9 WHERE id = $1 RETURNING ",
            hook_columns!()
        );
        let q = bind_settings(query(sql).bind(h.id), h);
        self.db.fetch_one(&q, hook_from_row).await
    }

    async fn delete_project_hook(&self, id: i64) -> Result<()> {
        let q = query("DELETE FROM project_hooks WHERE id = $1").bind(id);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn enqueue_hook_deliveries(&self, deliveries: &[NewHookDelivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now();
        let mut tx = self.db.begin_write().await?;
        for d in deliveries {
            let q = query(
                "INSERT INTO hook_deliveries (hook_id, event, uuid, payload, state, attempts, \
                 next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5)",
            )
            .bind(d.hook_id)
            .bind(&d.event)
            .bind(&d.uuid)
            .bind(&d.payload)
            .bind(now);
            tx.execute(&q).await?;
        }
        tx.commit().await
    }

    async fn claim_hook_deliveries(
        &self,
        now: Timestamp,
        claim_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<HookDelivery>> {
        let due = query(
            "SELECT id FROM hook_deliveries WHERE state IN ('pending', 'sending') \
             AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit);
        let ids: Vec<i64> = self.db.fetch_all(&due, first).await?;
        let mut claimed = Vec::new();
        for id in ids {
            // Another sender may have claimed it since: the update is conditional.
            let claim = query(concat!(
                "UPDATE hook_deliveries SET state = 'sending', next_attempt_at = $2, \
                 attempts = attempts + 1, updated_at = $3 \
                 WHERE id = $1 AND state IN ('pending', 'sending') AND next_attempt_at <= $3 \
                 RETURNING ",
                delivery_columns!()
            ))
            .bind(id)
            .bind(claim_until)
            .bind(now);
            if let Some(delivery) = self.db.fetch_optional(&claim, delivery_from_row).await? {
                claimed.push(delivery);
            }
        }
        Ok(claimed)
    }

    async fn record_hook_attempt(&self, id: i64, a: &DeliveryAttempt) -> Result<()> {
        let q = query(
            "UPDATE hook_deliveries SET state = $2, next_attempt_at = $3, response_status = $4, \
             response_body = $5, duration_ms = $6, error = $7, updated_at = $8 WHERE id = $1",
        )
        .bind(id)
        .bind(&a.state)
        .bind(a.next_attempt_at)
        .bind(a.response_status)
        .bind(&a.response_body)
        .bind(a.duration_ms)
        .bind(&a.error)
        .bind(Timestamp::now());
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn hook_deliveries(&self, hook_id: i64, limit: i64) -> Result<Vec<HookDelivery>> {
        let sql = select!(
            delivery_columns,
            "hook_deliveries",
            "WHERE hook_id = $1 ORDER BY id DESC LIMIT $2"
        );
        let q = query(sql).bind(hook_id).bind(limit);
        self.db.fetch_all(&q, delivery_from_row).await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>> {
        let q = query("SELECT value FROM application_settings WHERE name = $1").bind(name);
        self.db.fetch_optional(&q, first).await
    }

    async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        let q = query(
            "INSERT INTO application_settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value);
        self.db.execute(&q).await?;
        Ok(())
    }
}
