//! Idempotency keys of the pipeline-creating endpoints: a request claims its key with an INSERT
//! under the table's primary key (so of several concurrent requests exactly one wins, on any
//! replica), then records the answer it gave, or releases the claim when it created nothing.

use async_trait::async_trait;
use pipewright_core::Timestamp;

use crate::Result;
use crate::db::{RowExt, first, query};
use crate::store::SqlStore;

/// Which request a key belongs to: a key is only ever compared within one project and one
/// credential (`token:<digest>`, `user:<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    pub project_id: i64,
    pub credential: String,
    pub key: String,
}

/// A key as stored: the parameters' fingerprint and, once the claiming request finished, the
/// answer it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    /// `None` while the claiming request is still creating.
    pub response: Option<(u16, String)>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Idempotency-Key claims and their recorded answers.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `scope` for a request with `fingerprint` until `expires_at`. A row that expired
    /// before `now`, or a claim still unfinished since before `stale_before` (its request died),
    /// is taken over. True when this call holds the claim.
    async fn claim_idempotency_key(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
        expires_at: Timestamp,
        stale_before: Timestamp,
    ) -> Result<bool>;
    async fn idempotency_key(&self, scope: &IdempotencyScope) -> Result<Option<IdempotencyRecord>>;
    /// Records the answer of the request that holds the claim.
    async fn finish_idempotency_key(
        &self,
        scope: &IdempotencyScope,
        status: u16,
        response: &str,
    ) -> Result<()>;
    /// Gives up an unfinished claim (its request created nothing), so the key may be used again.
    async fn release_idempotency_key(&self, scope: &IdempotencyScope) -> Result<()>;
    /// Removes keys that expired before `now`; returns how many.
    async fn delete_expired_idempotency_keys(&self, now: Timestamp) -> Result<u64>;
}

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn claim_idempotency_key(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        now: Timestamp,
        expires_at: Timestamp,
        stale_before: Timestamp,
    ) -> Result<bool> {
        // One statement: a new key is inserted; a live one is left alone (no row returned).
        let q = query(
            "INSERT INTO idempotency_keys (project_id, credential, idem_key, fingerprint, \
               status_code, response, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6) \
             ON CONFLICT (project_id, credential, idem_key) DO UPDATE SET \
               fingerprint = excluded.fingerprint, status_code = NULL, response = NULL, \
               created_at = excluded.created_at, expires_at = excluded.expires_at \
             WHERE idempotency_keys.expires_at <= $5 \
               OR (idempotency_keys.status_code IS NULL AND idempotency_keys.created_at < $7) \
             RETURNING project_id",
        )
        .bind(scope.project_id)
        .bind(&scope.credential)
        .bind(&scope.key)
        .bind(fingerprint)
        .bind(now)
        .bind(expires_at)
        .bind(stale_before);
        let claimed: Option<i64> = self.db.fetch_optional(&q, first).await?;
        Ok(claimed.is_some())
    }

    async fn idempotency_key(&self, scope: &IdempotencyScope) -> Result<Option<IdempotencyRecord>> {
        let q = query(
            "SELECT fingerprint, status_code, response, created_at, expires_at \
             FROM idempotency_keys WHERE project_id = $1 AND credential = $2 AND idem_key = $3",
        )
        .bind(scope.project_id)
        .bind(&scope.credential)
        .bind(&scope.key);
        self.db
            .fetch_optional(&q, |row| {
                let status: Option<i64> = row.get(1)?;
                let body: Option<String> = row.get(2)?;
                Ok(IdempotencyRecord {
                    fingerprint: row.get(0)?,
                    response: match (status, body) {
                        (Some(status), Some(body)) => {
                            Some((u16::try_from(status).unwrap_or(500), body))
                        }
                        _ => None,
                    },
                    created_at: row.get(3)?,
                    expires_at: row.get(4)?,
                })
            })
            .await
    }

    async fn finish_idempotency_key(
        &self,
        scope: &IdempotencyScope,
        status: u16,
        response: &str,
    ) -> Result<()> {
        let q = query(
            "UPDATE idempotency_keys SET status_code = $4, response = $5 \
             WHERE project_id = $1 AND credential = $2 AND idem_key = $3",
        )
        .bind(scope.project_id)
        .bind(&scope.credential)
        .bind(&scope.key)
        .bind(i64::from(status))
        .bind(response);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, scope: &IdempotencyScope) -> Result<()> {
        let q = query(
            "DELETE FROM idempotency_keys \
             WHERE project_id = $1 AND credential = $2 AND idem_key = $3 AND status_code IS NULL",
        )
        .bind(scope.project_id)
        .bind(&scope.credential)
        .bind(&scope.key);
        self.db.execute(&q).await?;
        Ok(())
    }

    async fn delete_expired_idempotency_keys(&self, now: Timestamp) -> Result<u64> {
        let q = query("DELETE FROM idempotency_keys WHERE expires_at <= $1").bind(now);
        self.db.execute(&q).await
    }
}
