//! Pipelines (group-committed creation, listing, status) and the trigger tokens that create
//! them.

use pipewright_core::{AccessLevel, PipelineSource, Status, Timestamp};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, demo_project, new_pipeline, page, project, user};

on_both!(
    concurrent_pipelines_get_consecutive_iids_per_project,
    a_pipeline_whose_project_is_gone_fails_alone,
    a_pipeline_keeps_its_variables_and_jobs_in_order,
    pipelines_are_filtered_paged_and_windowed,
    a_pipeline_status_change_stamps_its_times_once,
    a_trigger_token_brings_its_project_owner_and_role,
    a_rotated_trigger_token_keeps_the_old_digest_for_its_grace_period,
);

async fn concurrent_pipelines_get_consecutive_iids_per_project(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let one = project(&*store, &alice, "one").await;
    let two = project(&*store, &alice, "two").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let p = new_pipeline(
            if i % 2 == 0 { &one } else { &two },
            &["build"],
            Status::Pending,
        );
        tasks.push(tokio::spawn(async move { store.create_pipeline(&p).await }));
    }
    let mut iids: Vec<(i64, i64)> = Vec::new();
    for task in tasks {
        let pipeline = task.await.unwrap().unwrap();
        iids.push((pipeline.project_id, pipeline.iid));
    }
    iids.sort();
    let expected: Vec<(i64, i64)> = [one.id, two.id]
        .iter()
        .flat_map(|p| (1..=20).map(move |iid| (*p, iid)))
        .collect();
    assert_eq!(iids, expected);
}

async fn a_pipeline_whose_project_is_gone_fails_alone(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let kept = project(&*store, &alice, "kept").await;
    let gone = project(&*store, &alice, "gone").await;
    store.delete_project(gone.id).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let p = new_pipeline(
            if i == 7 { &gone } else { &kept },
            &["build"],
            Status::Pending,
        );
        tasks.push(tokio::spawn(async move { store.create_pipeline(&p).await }));
    }
    let mut created = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(pipeline) => {
                assert_eq!(pipeline.project_id, kept.id);
                created += 1;
            }
            Err(err) => assert_eq!(i, 7, "{err}"),
        }
    }
    assert_eq!(created, 19);
}

async fn a_pipeline_keeps_its_variables_and_jobs_in_order(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let mut new = new_pipeline(&demo, &["lint", "test", "deploy"], Status::Created);
    new.jobs[0].status = Status::Pending;
    new.variables = ["B", "A"]
        .iter()
        .map(|key| StoredVariable {
            key: key.to_string(),
            value_sealed: format!("sealed {key}"),
            variable_type: VariableType::File,
        })
        .collect();
    new.upstream = Some(Upstream {
        job_id: 41,
        pipeline_id: 40,
        project_id: demo.id,
    });
    let pipeline = store.create_pipeline(&new).await.unwrap();
    assert_eq!((pipeline.iid, pipeline.status), (1, Status::Created));
    assert_eq!(pipeline.upstream, new.upstream);
    assert_eq!(pipeline.finished_at, None);
    let variables = store.pipeline_variables(pipeline.id).await.unwrap();
    let keys: Vec<_> = variables.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["B", "A"]);
    assert_eq!(variables[0].variable_type, VariableType::File);
    let jobs = store.pipeline_all_jobs(pipeline.id).await.unwrap();
    let names: Vec<_> = jobs
        .iter()
        .map(|j| (j.name.as_str(), j.position, j.status))
        .collect();
    let expected = [
        ("lint", 0, Status::Pending),
        ("test", 1, Status::Created),
        ("deploy", 2, Status::Created),
    ];
    assert_eq!(names, expected);
    assert!(jobs[0].queued_at.is_some() && jobs[1].queued_at.is_none());
    let downstream = store.downstream_pipeline(41).await.unwrap().unwrap();
    assert_eq!(downstream.id, pipeline.id);

    store.delete_pipeline(pipeline.id).await.unwrap();
    assert!(store.pipeline_by_id(pipeline.id).await.unwrap().is_none());
    assert!(
        store
            .pipeline_all_jobs(pipeline.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.delete_pipeline(pipeline.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn pipelines_are_filtered_paged_and_windowed(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut new = new_pipeline(&demo, &["build"], Status::Pending);
        if i % 2 == 1 {
            new.ref_name = "feature".into();
            new.source = PipelineSource::Trigger;
        }
        ids.push(store.create_pipeline(&new).await.unwrap().id);
    }
    let filter = PipelineFilter {
        ref_name: Some("main".into()),
        ..Default::default()
    };
    let listed = store.pipelines(demo.id, &filter, page(1, 2)).await.unwrap();
    let got: Vec<_> = listed.items.iter().map(|p| p.id).collect();
    assert_eq!((got, listed.total), (vec![ids[4], ids[2]], 3));
    let oldest_first = PipelineFilter {
        source: Some(PipelineSource::Trigger),
        ascending: true,
        ..Default::default()
    };
    let listed = store
        .pipelines(demo.id, &oldest_first, page(1, 20))
        .await
        .unwrap();
    let got: Vec<_> = listed.items.iter().map(|p| p.id).collect();
    assert_eq!(got, [ids[1], ids[3]]);
    let window = store
        .pipelines_window(demo.id, &PipelineFilter::default(), 2, 1)
        .await
        .unwrap();
    let got: Vec<_> = window.iter().map(|p| p.id).collect();
    assert_eq!(got, [ids[3], ids[2]]);
    let by_ids = store
        .pipelines_by_ids(&[ids[0], ids[4], 9_999])
        .await
        .unwrap();
    assert_eq!(by_ids.len(), 2);
    assert!(store.pipelines_by_ids(&[]).await.unwrap().is_empty());
    assert!(store.pipeline(demo.id + 1, ids[0]).await.unwrap().is_none());
}

async fn a_pipeline_status_change_stamps_its_times_once(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let new = new_pipeline(&demo, &["build"], Status::Pending);
    let pipeline = store.create_pipeline(&new).await.unwrap();
    assert!(
        store
            .set_pipeline_status(pipeline.id, Status::Running)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_pipeline_status(pipeline.id, Status::Running)
            .await
            .unwrap()
    );
    let running = store.pipeline(demo.id, pipeline.id).await.unwrap().unwrap();
    let started = running.started_at.expect("started");
    assert_eq!(
        (running.status, running.finished_at),
        (Status::Running, None)
    );
    assert!(
        store
            .set_pipeline_status(pipeline.id, Status::Success)
            .await
            .unwrap()
    );
    let done = store.pipeline_by_id(pipeline.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.started_at),
        (Status::Success, Some(started))
    );
    assert!(done.finished_at.is_some());
    // Retried: running again clears the end, keeps the start.
    assert!(
        store
            .set_pipeline_status(pipeline.id, Status::Running)
            .await
            .unwrap()
    );
    let again = store.pipeline_by_id(pipeline.id).await.unwrap().unwrap();
    assert_eq!((again.started_at, again.finished_at), (Some(started), None));
}

async fn a_trigger_token_brings_its_project_owner_and_role(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let demo = project(&*store, &alice, "demo").await;
    let new = |owner_id, digest: &str| NewTrigger {
        project_id: demo.id,
        owner_id,
        legacy: owner_id.is_none(),
        description: format!("trigger {digest}"),
        token_digest: digest.into(),
        token_sealed: "sealed".into(),
        short_token: "abcd".into(),
        expires_at: None,
        restrictions: TriggerRestrictions::default(),
    };
    let owned = store
        .create_trigger(&new(Some(bob.id), "t1"))
        .await
        .unwrap();
    let legacy = store.create_trigger(&new(None, "t2")).await.unwrap();
    assert!(matches!(
        store.create_trigger(&new(None, "t2")).await,
        Err(StoreError::Conflict(_))
    ));

    let context = store.trigger_run_context("t1").await.unwrap().unwrap();
    assert_eq!(
        (context.trigger.id, context.project.id),
        (owned.id, demo.id)
    );
    assert_eq!(context.project.namespace.path, "alice");
    let owner = context.owner.expect("owner");
    assert_eq!((owner.id, owner.password_hash), (bob.id, None));
    assert_eq!(context.owner_role, None, "bob is not a member");
    store
        .add_member(demo.id, bob.id, AccessLevel::Developer, None)
        .await
        .unwrap();
    let context = store.trigger_run_context("t1").await.unwrap().unwrap();
    assert_eq!(context.owner_role, Some(AccessLevel::Developer));
    store
        .update_member(demo.id, bob.id, AccessLevel::Developer, Some(Timestamp(1)))
        .await
        .unwrap();
    let context = store.trigger_run_context("t1").await.unwrap().unwrap();
    assert_eq!(context.owner_role, None, "an expired membership is no role");
    let context = store.trigger_run_context("t2").await.unwrap().unwrap();
    assert!(context.owner.is_none() && context.trigger.legacy);
    assert!(store.trigger_run_context("nope").await.unwrap().is_none());

    let mut with_trigger = new_pipeline(&demo, &["build"], Status::Pending);
    with_trigger.trigger_id = Some(owned.id);
    store.create_pipeline(&with_trigger).await.unwrap();
    let used = store.trigger(demo.id, owned.id).await.unwrap().unwrap();
    assert!(used.last_used_at.is_some());
    let restrictions = TriggerRestrictions {
        ref_patterns: vec!["main".into(), "release/*".into()],
        allowed_variables: vec!["DEPLOY".into()],
    };
    let renamed = store
        .update_trigger(legacy.id, "renamed", &restrictions)
        .await
        .unwrap();
    assert_eq!(
        (renamed.description.as_str(), &renamed.restrictions),
        ("renamed", &restrictions)
    );
    let listed = store.triggers(demo.id, page(1, 20)).await.unwrap();
    assert_eq!(listed.total, 2);
    store.delete_trigger(legacy.id).await.unwrap();
    assert!(matches!(
        store.delete_trigger(legacy.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_trigger(legacy.id, "x", &TriggerRestrictions::default())
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn a_rotated_trigger_token_keeps_the_old_digest_for_its_grace_period(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let demo = project(&*store, &alice, "demo").await;
    let restrictions = TriggerRestrictions {
        ref_patterns: vec!["v*".into()],
        allowed_variables: vec![],
    };
    let trigger = store
        .create_trigger(&NewTrigger {
            project_id: demo.id,
            owner_id: Some(alice.id),
            legacy: false,
            description: "deploy".into(),
            token_digest: "old".into(),
            token_sealed: "sealed-old".into(),
            short_token: "olda".into(),
            expires_at: None,
            restrictions: restrictions.clone(),
        })
        .await
        .unwrap();
    let rotate = |digest: &str, until: Option<Timestamp>| RotatedToken {
        token_digest: digest.into(),
        token_sealed: format!("sealed-{digest}"),
        short_token: "newa".into(),
        previous_valid_until: until,
    };
    let later = Timestamp(Timestamp::now().millis() + 60_000);
    let rotated = store
        .rotate_trigger(trigger.id, &rotate("new", Some(later)))
        .await
        .unwrap();
    assert_eq!(
        (rotated.token_sealed.as_str(), rotated.short_token.as_str()),
        ("sealed-new", "newa")
    );
    assert_eq!(
        rotated.restrictions, restrictions,
        "restrictions carry over"
    );
    assert_eq!(rotated.description, "deploy");
    for digest in ["old", "new"] {
        let context = store.trigger_run_context(digest).await.unwrap().unwrap();
        assert_eq!(context.trigger.id, trigger.id, "{digest} works");
    }
    // A second rotation ends the first grace period at once; an elapsed one ends it too.
    store
        .rotate_trigger(trigger.id, &rotate("newer", Some(Timestamp(1))))
        .await
        .unwrap();
    for digest in ["old", "new"] {
        assert!(store.trigger_run_context(digest).await.unwrap().is_none());
    }
    store
        .rotate_trigger(trigger.id, &rotate("newest", None))
        .await
        .unwrap();
    assert!(store.trigger_run_context("newer").await.unwrap().is_none());
    assert!(store.trigger_run_context("newest").await.unwrap().is_some());
}
