//! Web sessions and sign-in throttling.

use pipewright_core::Timestamp;
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, user};

on_both!(
    a_session_slides_until_it_expires,
    failed_sign_ins_count_per_window,
);

async fn a_session_slides_until_it_expires(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let session = WebSession {
        id_digest: "digest".into(),
        user_id: alice.id,
        created_at: Timestamp(1_000),
        last_seen_at: Timestamp(1_000),
        expires_at: Timestamp(2_000),
    };
    store.create_web_session(&session).await.unwrap();
    assert_eq!(
        store.web_session("digest").await.unwrap(),
        Some(session.clone())
    );
    store
        .touch_web_session("digest", Timestamp(1_500), Timestamp(3_000))
        .await
        .unwrap();
    let touched = store.web_session("digest").await.unwrap().unwrap();
    assert_eq!(
        (touched.last_seen_at, touched.expires_at),
        (Timestamp(1_500), Timestamp(3_000))
    );
    assert_eq!(
        store
            .delete_expired_web_sessions(Timestamp(3_000))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_expired_web_sessions(Timestamp(3_001))
            .await
            .unwrap(),
        1
    );
    assert!(store.web_session("digest").await.unwrap().is_none());

    store.create_web_session(&session).await.unwrap();
    store.delete_web_session("digest").await.unwrap();
    assert!(store.web_session("digest").await.unwrap().is_none());

    // A password change ends every other session of the user.
    let bob = user(&*store, "bob").await;
    for (digest, user_id) in [("a1", alice.id), ("a2", alice.id), ("b1", bob.id)] {
        let s = WebSession {
            id_digest: digest.into(),
            user_id,
            ..session.clone()
        };
        store.create_web_session(&s).await.unwrap();
    }
    let ended = store.delete_user_web_sessions(alice.id, Some("a1")).await;
    assert_eq!(ended.unwrap(), 1);
    assert!(store.web_session("a1").await.unwrap().is_some());
    assert!(store.web_session("a2").await.unwrap().is_none());
    assert!(store.web_session("b1").await.unwrap().is_some());
}

async fn failed_sign_ins_count_per_window(db: Fresh) {
    let store = db.open().await;
    let fail = |key: &'static str, now: i64| {
        let store = store.clone();
        // A window that started more than 100 ms before `now` starts over.
        async move {
            let (now, after) = (Timestamp(now), Timestamp(now - 100));
            store.record_sign_in_failure(key, now, after).await.unwrap()
        }
    };
    assert_eq!(fail("user:alice", 1_000).await, 1);
    assert_eq!(fail("user:alice", 1_050).await, 2);
    assert_eq!(fail("ip:10.0.0.1", 1_060).await, 1);
    assert_eq!(fail("user:alice", 1_200).await, 1, "a new window");
    let keys = [
        "user:alice".to_string(),
        "ip:10.0.0.1".into(),
        "user:nobody".into(),
    ];
    let mut counted = store.sign_in_failures(&keys).await.unwrap();
    counted.sort();
    let expected = [
        ("ip:10.0.0.1".to_string(), 1, Timestamp(1_060)),
        ("user:alice".to_string(), 1, Timestamp(1_200)),
    ];
    assert_eq!(counted, expected);
    assert!(store.sign_in_failures(&[]).await.unwrap().is_empty());
    store.clear_sign_in_failures("user:alice").await.unwrap();
    assert_eq!(
        store
            .delete_old_sign_in_failures(Timestamp(1_061))
            .await
            .unwrap(),
        1
    );
    assert!(store.sign_in_failures(&keys).await.unwrap().is_empty());
}
