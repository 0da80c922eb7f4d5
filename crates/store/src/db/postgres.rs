//! PostgreSQL: the scale-out store that several `serve` replicas share. What only PostgreSQL
//! has lives here: the pool's settings, `LISTEN/NOTIFY` for waking runners on other replicas,
//! and the advisory lock under which one replica at a time checks and migrates the schema.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::{Exec, Query, Tx, query};
use crate::Result;

/// The `LISTEN/NOTIFY` channel on which replicas announce pending jobs.
const JOBS_CHANNEL: &str = "pipewright_jobs";

/// Any constant works; it only has to be the same in every replica.
const MIGRATION_LOCK_KEY: i64 = 0x7069_7065_7772_6967; // "pipewrig"

pub(crate) async fn pool(url: &str) -> Result<sqlx::PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(crate::ACQUIRE_TIMEOUT)
        .connect(url)
        .await?)
}

/// Tells every replica that jobs became pending.
pub(crate) async fn announce_jobs(pool: &sqlx::PgPool) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(JOBS_CHANNEL)
        .execute(pool)
        .await?;
    Ok(())
}

/// Wakes `wake` whenever any replica announces jobs, listening again after a failure.
pub(crate) fn watch_jobs(
    pool: sqlx::PgPool,
    wake: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let listening: std::result::Result<(), sqlx::Error> = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen(JOBS_CHANNEL).await?;
                loop {
                    listener.recv().await?;
                    wake.notify_waiters();
                }
            }
            .await;
            if let Err(err) = listening {
                tracing::warn!(error = %err, "listening for job announcements failed; retrying");
            }
            // Whatever was announced meanwhile is found by the runners' periodic look.
            wake.notify_waiters();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Serializes migrating replicas: held until the transaction `tx` ends (commit, rollback or a
/// dropped connection), so a replica that dies while migrating never leaves it held.
pub(crate) async fn lock_for_migration(tx: &mut Tx) -> Result<()> {
    let lock: Query<'_> = query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK_KEY);
    tx.execute(&lock).await?;
    Ok(())
}
