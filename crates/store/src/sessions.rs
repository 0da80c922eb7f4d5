//! The web UI's sign-in sessions (stored as digests of the cookie's id) and the failed
//! sign-ins counted per key, shared by every replica.

use async_trait::async_trait;
use pipewright_core::Timestamp;

use crate::Result;
use crate::db::{RowExt, first, query};
use crate::model::*;
use crate::store::SqlStore;

/// Web sessions and sign-in throttling.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_web_session(&self, session: &WebSession) -> Result<()>;
    async fn web_session(&self, id_digest: &str) -> Result<Option<WebSession>>;
    async fn touch_web_session(
        &self,
        id_digest: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()>;
    async fn delete_web_session(&self, id_digest: &str) -> Result<()>;
    /// Ends every session of the user but `keep` (the one changing the password); returns
    /// how many ended.
    async fn delete_user_web_sessions(&self, user_id: UserId, keep: Option<&str>) -> Result<u64>;
    /// Removes sessions that expired before `now`; returns how many.
    async fn delete_expired_web_sessions(&self, now: Timestamp) -> Result<u64>;
    /// Counts a failed sign-in under `key`; a window that started before `window_after` starts
    /// over at `now`. Returns the failures in the current window.
    async fn record_sign_in_failure(
        &self,
        key: &str,
        now: Timestamp,
        window_after: Timestamp,
    ) -> Result<i64>;
    /// The failures counted under each key (`(key, failures, window_start)`), for those that
    /// have any.
    async fn sign_in_failures(&self, keys: &[String]) -> Result<Vec<(String, i64, Timestamp)>>;
    async fn clear_sign_in_failures(&self, key: &str) -> Result<()>;
    /// Forgets windows that started before `before`.
    async fn delete_old_sign_in_failures(&self, before: Timestamp) -> Result<u64>;
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_web_session(&self, session: &WebSession) -> Result<()> {
        let q = query(
            "INSERT INTO web_sessions (id_digest, user_id, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id_digest)
        .bind(session.user_id)
        .bind(session.created_at)
        .bind(session.last_seen_at)
        .bind(session.expires_at);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn web_session(&self, id_digest: &str) -> Result<Option<WebSession>> {
        let q = query(
            "SELECT id_digest, user_id, created_at, last_seen_at, expires_at FROM web_sessions \
             WHERE id_digest = $1",
        )
        .bind(id_digest);
        let decode = |row: &dyn crate::db::Row| {
            Ok(WebSession {
                id_digest: row.get(0)?,
                user_id: row.get(1)?,
                created_at: row.get(2)?,
                last_seen_at: row.get(3)?,
                expires_at: row.get(4)?,
            })
        };
        self.db.fetch_optional(&q, decode).await
    }

    async fn touch_web_session(
        &self,
        id_digest: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        let q = query(
            "UPDATE web_sessions SET last_seen_at = $2, expires_at = $3 WHERE id_digest = $1",
        )
        .bind(id_digest)
        .bind(now)
        .bind(expires_at);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn delete_web_session(&self, id_digest: &str) -> Result<()> {
        let q = query("DELETE FROM web_sessions WHERE id_digest = $1").bind(id_digest);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn delete_user_web_sessions(&self, user_id: UserId, keep: Option<&str>) -> Result<u64> {
        let q = query("DELETE FROM web_sessions WHERE user_id = $1 AND id_digest <> $2")
            .bind(user_id)
            .bind(keep.unwrap_or(""));
        self.db.execute(&q).await
    }

    async fn delete_expired_web_sessions(&self, now: Timestamp) -> Result<u64> {
        let q = query("DELETE FROM web_sessions WHERE expires_at < $1").bind(now);
        self.db.execute(&q).await
    }

    async fn record_sign_in_failure(
        &self,
        key: &str,
        now: Timestamp,
        window_after: Timestamp,
    ) -> Result<i64> {
        let q = query(
            "INSERT INTO sign_in_failures (key, failures, window_start) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.window_start < $3 THEN 1 \
               ELSE sign_in_failures.failures + 1 END, \
             window_start = CASE WHEN sign_in_failures.window_start < $3 THEN $2 \
               ELSE sign_in_failures.window_start END \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(window_after);
        self.db.fetch_one(&q, first).await
    }

    async fn sign_in_failures(&self, keys: &[String]) -> Result<Vec<(String, i64, Timestamp)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut q =
            query("SELECT key, failures, window_start FROM sign_in_failures WHERE key IN (");
        q.push_list(keys.iter().map(String::as_str)).push(")");
        self.db
            .fetch_all(&q, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .await
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<()> {
        let q = query("DELETE FROM sign_in_failures WHERE key = $1").bind(key);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn delete_old_sign_in_failures(&self, before: Timestamp) -> Result<u64> {
        let q = query("DELETE FROM sign_in_failures WHERE window_start < $1").bind(before);
        self.db.execute(&q).await
    }
}
