//! Users, their namespaces and personal access tokens.

use pipewright_core::Timestamp;
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, page, user};

on_both!(
    a_user_is_found_by_any_case_of_their_name_and_renamed_with_their_namespace,
    a_taken_username_is_a_conflict,
    user_search_matches_wildcards_literally,
    a_blocked_user_stays_blocked_and_a_deleted_one_is_gone,
    tokens_are_found_by_digest_listed_per_user_revoked_and_touched,
    a_token_is_rotated_once_into_a_new_one,
);

async fn a_user_is_found_by_any_case_of_their_name_and_renamed_with_their_namespace(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "Alice").await;
    assert_eq!(alice.username, "Alice");
    assert!(alice.is_active());
    let found = store.user_by_username("aLiCe").await.unwrap().unwrap();
    assert_eq!(found.id, alice.id);
    let namespace = store.user_namespace(alice.id).await.unwrap().unwrap();
    assert_eq!(namespace.path, "Alice");
    assert_eq!(namespace.kind, NamespaceKind::User);

    let update = UserUpdate {
        username: Some("alice2".into()),
        is_admin: Some(true),
        ..Default::default()
    };
    let renamed = store.update_user(alice.id, &update).await.unwrap();
    assert_eq!(
        (renamed.username.as_str(), renamed.is_admin),
        ("alice2", true)
    );
    assert_eq!(renamed.email, "Alice@example.com", "untouched fields stay");
    let namespace = store.namespace(namespace.id).await.unwrap().unwrap();
    assert_eq!(namespace.path, "alice2");
    assert!(store.user_by_username("alice").await.unwrap().is_none());
    assert!(matches!(
        store.update_user(9_999, &update).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_taken_username_is_a_conflict(db: Fresh) {
    let store = db.open().await;
    user(&*store, "bob").await;
    let again = NewUser {
        username: "BOB".into(),
        name: "Other Bob".into(),
        email: "other@example.com".into(),
        password_hash: Some("$argon2id$…".into()),
        is_admin: false,
    };
    assert!(matches!(
        store.create_user(&again).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn user_search_matches_wildcards_literally(db: Fresh) {
    let store = db.open().await;
    for name in ["ann_lee", "annxlee", "bob"] {
        user(&*store, name).await;
    }
    let found = store.users(page(1, 20), Some("N_L")).await.unwrap();
    let names: Vec<_> = found.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!((names, found.total), (vec!["ann_lee"], 1));
    let all = store.users(page(2, 2), None).await.unwrap();
    let names: Vec<_> = all.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!((names, all.total), (vec!["bob"], 3));
}

async fn a_blocked_user_stays_blocked_and_a_deleted_one_is_gone(db: Fresh) {
    let store = db.open().await;
    let carol = user(&*store, "carol").await;
    store
        .set_user_state(carol.id, UserState::Blocked)
        .await
        .unwrap();
    let blocked = store.user(carol.id).await.unwrap().unwrap();
    assert_eq!(blocked.state, UserState::Blocked);
    store.delete_user(carol.id).await.unwrap();
    assert!(store.user(carol.id).await.unwrap().is_none());
    assert!(store.user_namespace(carol.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_user(carol.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_user_state(carol.id, UserState::Active).await,
        Err(StoreError::NotFound)
    ));
}

async fn tokens_are_found_by_digest_listed_per_user_revoked_and_touched(db: Fresh) {
    let store = db.open().await;
    let dave = user(&*store, "dave").await;
    let erin = user(&*store, "erin").await;
    let new = |user_id, digest: &str| NewPersonalAccessToken {
        user_id,
        name: format!("token {digest}"),
        token_digest: digest.into(),
        scopes: vec!["api".into(), "read_repository".into()],
        expires_at: Some(Timestamp(1_900_000_000_000)),
    };
    let token = store
        .create_personal_access_token(&new(dave.id, "d1"))
        .await
        .unwrap();
    store
        .create_personal_access_token(&new(erin.id, "e1"))
        .await
        .unwrap();
    assert_eq!(token.scopes, ["api", "read_repository"]);
    assert_eq!(token.expires_at, Some(Timestamp(1_900_000_000_000)));
    assert!(!token.revoked);
    let found = store
        .personal_access_token_by_digest("d1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, token.id);
    let daves = store
        .personal_access_tokens(Some(dave.id), page(1, 20))
        .await
        .unwrap();
    assert_eq!((daves.items.len(), daves.total), (1, 1));
    let everyone = store.personal_access_tokens(None, page(1, 20)).await;
    assert_eq!(everyone.unwrap().total, 2);

    store
        .touch_personal_access_token(token.id, Timestamp(1_800_000_000_000))
        .await
        .unwrap();
    store.revoke_personal_access_token(token.id).await.unwrap();
    let token = store
        .personal_access_token(token.id)
        .await
        .unwrap()
        .unwrap();
    assert!(token.revoked);
    assert_eq!(token.last_used_at, Some(Timestamp(1_800_000_000_000)));
    assert!(matches!(
        store.revoke_personal_access_token(9_999).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_token_is_rotated_once_into_a_new_one(db: Fresh) {
    let store = db.open().await;
    let dave = user(&*store, "dave").await;
    let new = |digest: &str| NewPersonalAccessToken {
        user_id: dave.id,
        name: "ci".into(),
        token_digest: digest.into(),
        scopes: vec!["api".into()],
        expires_at: Some(Timestamp(1_900_000_000_000)),
    };
    let old = store
        .create_personal_access_token(&new("old"))
        .await
        .unwrap();
    let rotated = store
        .rotate_personal_access_token(old.id, &new("new"))
        .await
        .unwrap()
        .expect("rotated");
    assert_ne!(rotated.id, old.id);
    assert!(!rotated.revoked);
    let old = store.personal_access_token(old.id).await.unwrap().unwrap();
    assert!(old.revoked, "the old token is revoked with the rotation");
    // A second rotation of the same (now revoked) token changes nothing.
    assert!(
        store
            .rotate_personal_access_token(old.id, &new("again"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .personal_access_token_by_digest("again")
            .await
            .unwrap()
            .is_none()
    );

    // Reuse of a rotated token revokes its family: what rotation made from it, and onwards.
    let next = store
        .rotate_personal_access_token(rotated.id, &new("next"))
        .await
        .unwrap()
        .unwrap();
    let unrelated = store
        .create_personal_access_token(&new("other"))
        .await
        .unwrap();
    let revoked = store
        .revoke_personal_access_token_family(old.id)
        .await
        .unwrap();
    assert_eq!(
        revoked, 1,
        "the rotated one was already revoked; the newest was not"
    );
    let next = store.personal_access_token(next.id).await.unwrap().unwrap();
    assert!(next.revoked);
    let unrelated = store
        .personal_access_token(unrelated.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!unrelated.revoked);
}
