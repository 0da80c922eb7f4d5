//! Idempotency-Key claims: one claim per key, its answer recorded or released, expired and
//! abandoned claims taken over, expired keys swept.

use pipewright_core::Timestamp;
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, demo_project};

on_both!(
    a_key_is_claimed_once_and_answers_what_was_recorded,
    a_released_key_can_be_claimed_again,
    expired_and_abandoned_claims_are_taken_over,
    concurrent_claims_have_one_winner,
);

fn scope(project: &Project, key: &str) -> IdempotencyScope {
    IdempotencyScope {
        project_id: project.id,
        credential: "token:digest".into(),
        key: key.into(),
    }
}

async fn claim(store: &dyn Store, scope: &IdempotencyScope, now: i64) -> bool {
    store
        .claim_idempotency_key(
            scope,
            "fp",
            Timestamp(now),
            Timestamp(now + 1_000),
            Timestamp(now - 100),
        )
        .await
        .unwrap()
}

async fn a_key_is_claimed_once_and_answers_what_was_recorded(db: Fresh) {
    let store = db.open().await;
    let project = demo_project(&*store).await;
    let key = scope(&project, "k1");
    assert!(claim(&*store, &key, 10_000).await);
    assert!(!claim(&*store, &key, 10_001).await);
    let pending = store.idempotency_key(&key).await.unwrap().unwrap();
    assert_eq!(
        (pending.fingerprint.as_str(), pending.response),
        ("fp", None)
    );
    store
        .finish_idempotency_key(&key, 201, "{\"id\":1}")
        .await
        .unwrap();
    // A finished claim is not released.
    store.release_idempotency_key(&key).await.unwrap();
    let done = store.idempotency_key(&key).await.unwrap().unwrap();
    assert_eq!(done.response, Some((201, "{\"id\":1}".to_string())));
    // Another credential's identical key is another key.
    let other = IdempotencyScope {
        credential: "user:1".into(),
        ..key.clone()
    };
    assert!(claim(&*store, &other, 10_002).await);
}

async fn a_released_key_can_be_claimed_again(db: Fresh) {
    let store = db.open().await;
    let project = demo_project(&*store).await;
    let key = scope(&project, "k2");
    assert!(claim(&*store, &key, 10_000).await);
    store.release_idempotency_key(&key).await.unwrap();
    assert!(store.idempotency_key(&key).await.unwrap().is_none());
    assert!(claim(&*store, &key, 10_001).await);
}

async fn expired_and_abandoned_claims_are_taken_over(db: Fresh) {
    let store = db.open().await;
    let project = demo_project(&*store).await;
    let finished = scope(&project, "finished");
    assert!(claim(&*store, &finished, 10_000).await);
    store
        .finish_idempotency_key(&finished, 201, "{}")
        .await
        .unwrap();
    // Finished, not expired: kept even long after its creation.
    assert!(!claim(&*store, &finished, 10_900).await);
    // Expired: taken over, answer forgotten.
    assert!(claim(&*store, &finished, 11_000).await);
    assert_eq!(
        store
            .idempotency_key(&finished)
            .await
            .unwrap()
            .unwrap()
            .response,
        None
    );
    // Unfinished since before `stale_before`: its request died; taken over.
    let abandoned = scope(&project, "abandoned");
    assert!(claim(&*store, &abandoned, 20_000).await);
    assert!(!claim(&*store, &abandoned, 20_050).await);
    assert!(claim(&*store, &abandoned, 20_101).await);
    // The sweep removes what expired.
    assert_eq!(
        store
            .delete_expired_idempotency_keys(Timestamp(30_000))
            .await
            .unwrap(),
        2
    );
}

async fn concurrent_claims_have_one_winner(db: Fresh) {
    let store = db.open().await;
    let project = demo_project(&*store).await;
    let key = scope(&project, "race");
    let claims = (0..8).map(|_| {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move { claim(&*store, &key, 10_000).await })
    });
    let mut winners = 0;
    for claim in claims {
        winners += usize::from(claim.await.unwrap());
    }
    assert_eq!(winners, 1);
}
