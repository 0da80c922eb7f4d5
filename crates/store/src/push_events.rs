//! The push outbox: every ref update a push applied, recorded in the request that accepted
//! it, then claimed by what reacts to pushes (pipelines on push, webhooks).

use async_trait::async_trait;
use pipewright_core::Timestamp;

use crate::Result;
use crate::db::{Commit, Exec, Row, RowExt, col, query, select, split_list};
use crate::model::*;
use crate::store::SqlStore;

/// Push events.
#[async_trait]
pub trait PushEventStore: Send + Sync {
    async fn record_push_events(&self, events: &[NewPushEvent]) -> Result<Vec<PushEvent>>;
    async fn pending_push_events(&self, limit: i64) -> Result<Vec<PushEvent>>;
    /// Claims a push event; false when another process already did.
    async fn mark_push_event_processed(&self, id: i64) -> Result<bool>;
}

macro_rules! push_event_columns {
    () => {
        "id, project_id, user_id, ref_name, before_sha, after_sha, push_options, created_at"
    };
}
const PUSH_EVENT_COLUMNS: &str = push_event_columns!();

fn push_event_from_row(row: &dyn Row) -> Result<PushEvent> {
    const COLUMNS: &str = PUSH_EVENT_COLUMNS;
    Ok(PushEvent {
        id: row.get(col!("id"))?,
        project_id: row.get(col!("project_id"))?,
        user_id: row.get(col!("user_id"))?,
        ref_name: row.get(col!("ref_name"))?,
        before_sha: row.get(col!("before_sha"))?,
        after_sha: row.get(col!("after_sha"))?,
        push_options: split_list(&row.get::<String>(col!("push_options"))?, '\n'),
        created_at: row.get(col!("created_at"))?,
    })
}

#[async_trait]
impl PushEventStore for SqlStore {
    async fn record_push_events(&self, events: &[NewPushEvent]) -> Result<Vec<PushEvent>> {
        let now = Timestamp::now();
        let mut tx = self.db.begin_write().await?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let q = query(concat!(
                "INSERT INTO push_events (project_id, user_id, ref_name, before_sha, after_sha, \
                 push_options, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                push_event_columns!()
            ))
            .bind(e.project_id)
            .bind(e.user_id)
            .bind(&e.ref_name)
            .bind(&e.before_sha)
            .bind(&e.after_sha)
            .bind(e.push_options.join("\n"))
            .bind(now);
            out.push(tx.fetch_one(&q, push_event_from_row).await?);
        }
        let activity = query("UPDATE projects SET last_activity_at = $2 WHERE id = $1")
            .bind(events.first().map(|e| e.project_id).unwrap_or_default())
            .bind(now);
        tx.execute(&activity).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn pending_push_events(&self, limit: i64) -> Result<Vec<PushEvent>> {
        let sql = select!(
            push_event_columns,
            "push_events",
            "WHERE processed_at IS NULL ORDER BY id LIMIT $1"
        );
        self.db
            .fetch_all(&query(sql).bind(limit), push_event_from_row)
            .await
    }

    async fn mark_push_event_processed(&self, id: i64) -> Result<bool> {
        let q = query(
            "UPDATE push_events SET processed_at = $2 WHERE id = $1 AND processed_at IS NULL",
        )
        .bind(id)
        .bind(Timestamp::now());
        Ok(self.db.execute(&q).await? > 0)
    }
}
