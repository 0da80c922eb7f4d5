//! Webhooks, their delivery queue and instance settings.

use pipewright_core::Timestamp;
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, demo_project};

on_both!(
    a_hook_is_created_updated_and_deleted,
    a_due_delivery_is_claimed_by_one_sender_until_its_claim_runs_out,
    settings_are_upserted,
);

async fn hook(store: &dyn Store, project_id: ProjectId) -> ProjectHook {
    let new = ProjectHook {
        id: 0,
        project_id,
        url: "https://example.com/hook".into(),
        token_sealed: Some("sealed".into()),
        push_events: true,
        push_events_branch_filter: Some("main".into()),
        tag_push_events: false,
        pipeline_events: true,
        job_events: false,
        enable_ssl_verification: true,
        created_at: Timestamp(0),
    };
    store.create_project_hook(&new).await.unwrap()
}

async fn a_hook_is_created_updated_and_deleted(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let created = hook(&*store, demo.id).await;
    assert!(created.created_at.millis() > 0);
    let changed = ProjectHook {
        url: "https://example.com/other".into(),
        token_sealed: None,
        push_events_branch_filter: None,
        job_events: true,
        ..created.clone()
    };
    assert_eq!(store.update_project_hook(&changed).await.unwrap(), changed);
    let listed = store.project_hooks(demo.id).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&changed));
    let found = store.project_hook(demo.id, created.id).await.unwrap();
    assert_eq!(found, Some(changed));
    assert!(
        store
            .project_hook(demo.id + 1, created.id)
            .await
            .unwrap()
            .is_none()
    );
    store.delete_project_hook(created.id).await.unwrap();
    assert!(
        store
            .project_hook_by_id(created.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_due_delivery_is_claimed_by_one_sender_until_its_claim_runs_out(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let hook = hook(&*store, demo.id).await;
    let delivery = |uuid: &str| NewHookDelivery {
        hook_id: hook.id,
        event: "Push Hook".into(),
        uuid: uuid.into(),
        payload: "{}".into(),
    };
    store.enqueue_hook_deliveries(&[]).await.unwrap();
    store
        .enqueue_hook_deliveries(&[delivery("one"), delivery("two")])
        .await
        .unwrap();
    let now = Timestamp::now();
    let claim_until = Timestamp(now.millis() + 60_000);
    let mut claimed = store
        .claim_hook_deliveries(now, claim_until, 10)
        .await
        .unwrap();
    claimed.sort_by_key(|d| d.id);
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|d| d.state == "sending" && d.attempts == 1)
    );
    assert!(
        store
            .claim_hook_deliveries(now, claim_until, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let attempt = DeliveryAttempt {
        state: "delivered".into(),
        next_attempt_at: now,
        response_status: Some(200),
        response_body: Some("ok".into()),
        duration_ms: Some(12),
        error: None,
    };
    store
        .record_hook_attempt(claimed[0].id, &attempt)
        .await
        .unwrap();
    // The other sender died: its claim runs out and the delivery is due again.
    let later = Timestamp(claim_until.millis() + 1);
    let reclaimed = store.claim_hook_deliveries(later, later, 10).await.unwrap();
    assert_eq!(
        reclaimed.iter().map(|d| d.id).collect::<Vec<_>>(),
        [claimed[1].id]
    );
    assert_eq!(reclaimed[0].attempts, 2);

    let recent = store.hook_deliveries(hook.id, 10).await.unwrap();
    let uuids: Vec<_> = recent.iter().map(|d| d.uuid.as_str()).collect();
    assert_eq!(uuids, ["two", "one"]);
    assert_eq!(recent[1].state, "delivered");
    assert_eq!(recent[1].response_status, Some(200));
}

async fn settings_are_upserted(db: Fresh) {
    let store = db.open().await;
    let name = "allow_local_requests_from_web_hooks_and_services";
    assert_eq!(store.setting(name).await.unwrap(), None);
    store.set_setting(name, "true").await.unwrap();
    store.set_setting(name, "false").await.unwrap();
    assert_eq!(store.setting(name).await.unwrap().as_deref(), Some("false"));
}
