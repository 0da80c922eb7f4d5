//! Group commit: one writer takes every change waiting at that moment and writes them in one
//! transaction with one durable commit (one fsync on SQLite, one WAL flush on PostgreSQL)
//! instead of one each. Every caller still gets its answer only after that commit, so an
//! acknowledged change is durable. If the batch fails (say, one pipeline's project was just
//! deleted), it is rolled back and each change is written on its own, so one bad change costs
//! only itself. (A savepoint per change would cost two more statements each on the fast path.)
//! If the database is unavailable, every caller of the batch gets
//! [`StoreError::Unavailable`] at once: writing each change again would only wait for it again.
//!
//! Two writers use it: pipeline creations (`pipelines.rs`) and the job queue's changes
//! (`queue.rs`). A writer runs as a tokio task ([`serve`]) or, for the SQLite job writer, on
//! its own OS thread ([`serve_blocking`]); the batching and the fallback are the same.

use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// The most changes one group commit writes.
pub(crate) const MAX_BATCH: usize = 256;

/// What a writer does with a batch.
pub(crate) trait Writer {
    type Change;
    type Output;
    /// Writes `changes` in one transaction and commits it: all or nothing.
    async fn write(&mut self, changes: &[&Self::Change]) -> Result<Vec<Self::Output>>;
}

/// A change waiting for its writer, and where its answer goes.
pub(crate) type Request<C, O> = (C, oneshot::Sender<Result<O>>);

/// Where changes `C` are sent to a writer that answers `O`.
pub(crate) type Sender<C, O> = mpsc::Sender<Request<C, O>>;

/// The requests a writer of `W` serves.
pub(crate) type Requests<W> = mpsc::Receiver<Request<<W as Writer>::Change, <W as Writer>::Output>>;

pub(crate) fn channel<C, O>() -> (Sender<C, O>, mpsc::Receiver<Request<C, O>>) {
    mpsc::channel(4 * MAX_BATCH)
}

/// Hands a change to a writer and waits until it is committed.
pub(crate) async fn submit<C, O>(writer: &Sender<C, O>, change: C) -> Result<O> {
    let stopped = || StoreError::GroupCommit("the writer has stopped".into());
    let (reply, answer) = oneshot::channel();
    writer.send((change, reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// The writer as a task: until every sender is gone, waits for a change, then writes it with
/// every other one already waiting.
pub(crate) async fn serve<W: Writer>(mut writer: W, mut requests: Requests<W>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.recv().await {
        batch.push(first);
        fill(&mut requests, &mut batch);
        commit(&mut writer, &mut batch).await;
    }
}

/// [`serve`] on the calling thread, for a writer whose work never waits (see
/// `db::run_ready`).
pub(crate) fn serve_blocking<W: Writer>(mut writer: W, mut requests: Requests<W>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        fill(&mut requests, &mut batch);
        let committed = crate::db::run_ready(async {
            commit(&mut writer, &mut batch).await;
            Ok(())
        });
        if let Err(err) = committed {
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::GroupCommit(err.to_string())));
            }
        }
    }
}

/// Takes what is already waiting, up to [`MAX_BATCH`].
fn fill<T>(requests: &mut mpsc::Receiver<T>, batch: &mut Vec<T>) {
    while batch.len() < MAX_BATCH {
        match requests.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
}

/// Writes the batch, answers every caller and empties it.
async fn commit<W: Writer>(writer: &mut W, batch: &mut Vec<Request<W::Change, W::Output>>) {
    let changes: Vec<&W::Change> = batch.iter().map(|(change, _)| change).collect();
    let results = match writer.write(&changes).await {
        Ok(outputs) => outputs.into_iter().map(Ok).collect(),
        Err(err) if changes.len() == 1 => vec![Err(err)],
        // The database is gone: retrying each change would only wait for it again.
        Err(StoreError::Unavailable(message)) => changes
            .iter()
            .map(|_| Err(StoreError::Unavailable(message.clone())))
            .collect(),
        // Something failed: each change on its own, so one bad change costs only itself.
        Err(_) => {
            let mut results = Vec::with_capacity(changes.len());
            for change in &changes {
                let written = writer.write(std::slice::from_ref(change)).await;
                results.push(written.and_then(|mut out| {
                    out.pop()
                        .ok_or_else(|| StoreError::Corrupt("a write answered nothing".into()))
                }));
            }
            results
        }
    };
    drop(changes);
    for ((_, reply), result) in batch.drain(..).zip(results) {
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose every write fails with `error`, counting its attempts.
    struct Failing {
        error: fn() -> StoreError,
        writes: usize,
    }

    impl Writer for Failing {
        type Change = u32;
        type Output = u32;
        async fn write(&mut self, _: &[&u32]) -> Result<Vec<u32>> {
            self.writes += 1;
            Err((self.error)())
        }
    }

    /// Commits a batch of three changes; each caller's answer.
    async fn commit_three(writer: &mut Failing) -> Vec<Result<u32>> {
        let (mut batch, mut answers) = (Vec::new(), Vec::new());
        for change in 0..3 {
            let (reply, answer) = oneshot::channel();
            batch.push((change, reply));
            answers.push(answer);
        }
        commit(writer, &mut batch).await;
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.expect("answered"));
        }
        results
    }

    #[tokio::test]
    async fn an_unavailable_database_fails_the_whole_batch_at_once() {
        let mut writer = Failing {
            error: || StoreError::Unavailable("connection refused".into()),
            writes: 0,
        };
        let results = commit_three(&mut writer).await;
        assert_eq!(writer.writes, 1, "no change is retried on its own");
        for result in results {
            match result {
                Err(StoreError::Unavailable(message)) => assert_eq!(message, "connection refused"),
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_failed_batch_writes_each_change_on_its_own() {
        let mut writer = Failing {
            error: || StoreError::Conflict("one bad change".into()),
            writes: 0,
        };
        let results = commit_three(&mut writer).await;
        assert_eq!(writer.writes, 4, "the batch, then each change");
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(StoreError::Conflict(_))))
        );
    }
}
