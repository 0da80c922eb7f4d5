//! Runners and the push-event outbox.

use pipewright_core::{AccessLevel, Timestamp};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, alice_and_demo, demo_project, page, project, runner, user};

on_both!(
    registration_tokens_belong_to_the_instance_or_a_project,
    a_runner_is_updated_field_by_field_and_listed_to_its_managers,
    a_push_event_is_claimed_once,
    a_group_lists_the_instance_runners_and_those_of_itself_and_its_ancestors,
);

async fn a_runner_is_updated_field_by_field_and_listed_to_its_managers(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let demo = project(&*store, &alice, "demo").await;
    store
        .add_member(demo.id, bob.id, AccessLevel::Developer, None)
        .await
        .unwrap();
    runner(&*store, "instance").await;
    let mut new = NewRunner {
        group_id: None,
        token_digest: "project".into(),
        runner_type: RunnerType::Project,
        project_id: Some(demo.id),
        creator_id: Some(alice.id),
        description: "demo's".into(),
        tag_list: Vec::new(),
        run_untagged: true,
        paused: false,
        locked: true,
        access_level: "ref_protected".into(),
        maximum_timeout: Some(600),
    };
    let mine = store.create_runner(&new).await.unwrap();
    assert_eq!(
        (mine.runner_type, mine.maximum_timeout),
        (RunnerType::Project, Some(600))
    );
    assert!(mine.tag_list.is_empty());
    new.description = "the same token again".into();
    assert!(matches!(
        store.create_runner(&new).await,
        Err(StoreError::Conflict(_))
    ));

    let managed = |user_id| {
        let store = store.clone();
        async move {
            let scope = RunnerScope::ManagedBy(user_id);
            let listed = store.runners(scope, page(1, 20)).await.unwrap();
            listed.items.iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(managed(alice.id).await, [mine.id]);
    assert!(
        managed(bob.id).await.is_empty(),
        "developers do not manage runners"
    );
    assert_eq!(
        store
            .runners(RunnerScope::All, page(1, 20))
            .await
            .unwrap()
            .total,
        2
    );

    let update = RunnerUpdate {
        tag_list: Some(vec!["gpu".into()]),
        paused: Some(true),
        maximum_timeout: Some(None),
        ..Default::default()
    };
    let updated = store.update_runner(mine.id, &update).await.unwrap();
    assert_eq!(
        (updated.tag_list, updated.paused),
        (vec!["gpu".to_string()], true)
    );
    assert_eq!((updated.maximum_timeout, updated.locked), (None, true));
    assert_eq!(updated.description, "demo's");
    store.touch_runner(mine.id, Timestamp(77)).await.unwrap();
    let touched = store.runner(mine.id).await.unwrap().unwrap();
    assert_eq!(touched.contacted_at, Some(Timestamp(77)));
    store.delete_runner(mine.id).await.unwrap();
    assert!(store.runner(mine.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_runner(mine.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update_runner(mine.id, &update).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_push_event_is_claimed_once(db: Fresh) {
    let store = db.open().await;
    let (alice, demo) = alice_and_demo(&*store).await;
    let push = |ref_name: &str, options: Vec<String>| NewPushEvent {
        project_id: demo.id,
        user_id: Some(alice.id),
        ref_name: ref_name.into(),
        before_sha: "0".repeat(40),
        after_sha: "b".repeat(40),
        push_options: options,
    };
    let options = vec!["ci.skip".to_string(), "ci.variable=A=1".to_string()];
    let events = [
        push("refs/heads/main", options.clone()),
        push("refs/tags/v1", vec![]),
    ];
    let recorded = store.record_push_events(&events).await.unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].push_options, options);
    let active = store.project(demo.id).await.unwrap().unwrap();
    assert!(active.last_activity_at >= demo.last_activity_at);

    let pending = store.pending_push_events(10).await.unwrap();
    let ids: Vec<_> = pending.iter().map(|e| e.id).collect();
    assert_eq!(ids, [recorded[0].id, recorded[1].id]);
    assert!(
        store
            .mark_push_event_processed(recorded[0].id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .mark_push_event_processed(recorded[0].id)
            .await
            .unwrap()
    );
    let pending = store.pending_push_events(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|e| e.id).collect::<Vec<_>>(),
        [recorded[1].id]
    );
    assert!(pending[0].push_options.is_empty());
}

/// Registration tokens (GitLab's legacy `POST /runners`): one for the instance, one per
/// project, found by digest; a second writer without `replace` keeps the first token.
async fn registration_tokens_belong_to_the_instance_or_a_project(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    assert_eq!(store.registration_token(None).await.unwrap(), None);
    store
        .set_registration_token(None, "d-instance", "sealed-1", false)
        .await
        .unwrap();
    store
        .set_registration_token(None, "d-other", "sealed-2", false)
        .await
        .unwrap();
    assert_eq!(
        store.registration_token(None).await.unwrap().as_deref(),
        Some("sealed-1"),
        "the first token written stays"
    );
    store
        .set_registration_token(Some(demo.id), "d-project", "sealed-p", false)
        .await
        .unwrap();
    assert_eq!(
        store.registration_token_owner("d-instance").await.unwrap(),
        Some(None)
    );
    assert_eq!(
        store.registration_token_owner("d-project").await.unwrap(),
        Some(Some(demo.id))
    );
    assert_eq!(
        store.registration_token_owner("d-other").await.unwrap(),
        None
    );
    // A reset replaces the token; the old one no longer registers anything.
    store
        .set_registration_token(None, "d-reset", "sealed-3", true)
        .await
        .unwrap();
    assert_eq!(
        store.registration_token_owner("d-instance").await.unwrap(),
        None
    );
    assert_eq!(
        store.registration_token_owner("d-reset").await.unwrap(),
        Some(None)
    );
}

/// `RunnerScope::AvailableInGroup` (GitLab's `Ci::Runner.group_or_instance_wide`): the
/// instance's runners and the group runners of the group and its ancestors, not those of its
/// subgroups, of other groups or of projects.
async fn a_group_lists_the_instance_runners_and_those_of_itself_and_its_ancestors(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let group = |name: &'static str, parent: Option<i64>| {
        let store = store.clone();
        let new = crate::groups::new_group(name, parent, &alice);
        async move { store.create_group(&new).await.unwrap() }
    };
    let acme = group("Acme", None).await;
    let backend = group("Backend", Some(acme.id)).await;
    let deep = group("Deep", Some(backend.id)).await;
    let other = group("Other", None).await;
    let demo = project(&*store, &alice, "demo").await;
    let instance = runner(&*store, "instance").await;
    let mut ids = std::collections::HashMap::new();
    for (name, group_id, project_id) in [
        ("acme", Some(acme.id), None),
        ("backend", Some(backend.id), None),
        ("deep", Some(deep.id), None),
        ("other", Some(other.id), None),
        ("project", None, Some(demo.id)),
    ] {
        let new = NewRunner {
            group_id,
            token_digest: name.into(),
            runner_type: if group_id.is_some() {
                RunnerType::Group
            } else {
                RunnerType::Project
            },
            project_id,
            creator_id: Some(alice.id),
            description: name.into(),
            tag_list: Vec::new(),
            run_untagged: true,
            paused: false,
            locked: false,
            access_level: "not_protected".into(),
            maximum_timeout: None,
        };
        ids.insert(name, store.create_runner(&new).await.unwrap().id);
    }
    let available = |group_id| {
        let store = store.clone();
        async move {
            let scope = RunnerScope::AvailableInGroup(group_id);
            let listed = store.runners(scope, page(1, 20)).await.unwrap();
            assert_eq!(listed.total, listed.items.len() as i64);
            listed.items.iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        available(backend.id).await,
        [instance.id, ids["acme"], ids["backend"]]
    );
    assert_eq!(available(acme.id).await, [instance.id, ids["acme"]]);
    assert_eq!(available(other.id).await, [instance.id, ids["other"]]);
}
