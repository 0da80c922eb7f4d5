//! Pipeline schedules: their life, their variables and pipelines, and the claim that makes
//! every due run happen once among servers sharing the database.

use pipewright_core::{AccessLevel, Status, Timestamp};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, alice_and_demo, new_pipeline, page, user};

on_both!(
    schedules_are_created_listed_by_scope_updated_and_deleted,
    a_project_holds_at_most_its_limit_of_schedules,
    a_due_run_is_claimed_by_exactly_one_of_many_racing_servers,
    schedule_variables_are_unique_per_key,
    schedule_inputs_are_set_replaced_and_removed_together,
    a_schedule_lists_the_pipelines_it_started,
    schedules_of_owners_who_lost_access_are_deactivated,
);

fn fields(
    description: &str,
    next_run_at: Option<Timestamp>,
    active: bool,
) -> PipelineScheduleFields {
    PipelineScheduleFields {
        description: description.into(),
        ref_name: "refs/heads/main".into(),
        cron: "0 4 * * *".into(),
        cron_timezone: "UTC".into(),
        next_run_at,
        active,
    }
}

fn minutes_from_now(minutes: i64) -> Timestamp {
    Timestamp(Timestamp::now().millis() + minutes * 60_000)
}

async fn schedules_are_created_listed_by_scope_updated_and_deleted(db: Fresh) {
    let store = db.open().await;
    let (alice, demo) = alice_and_demo(&*store).await;
    let nightly = fields("nightly", Some(minutes_from_now(60)), true);
    let nightly = store
        .create_pipeline_schedule(demo.id, alice.id, &nightly, 10)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        (nightly.owner_id, nightly.ref_name.as_str(), nightly.active),
        (Some(alice.id), "refs/heads/main", true)
    );
    let paused = fields("paused", None, false);
    let paused = store
        .create_pipeline_schedule(demo.id, alice.id, &paused, 10)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(paused.next_run_at, None);

    let ids = |listed: Paged<PipelineSchedule>| -> Vec<i64> {
        listed.items.iter().map(|s| s.id).collect()
    };
    let all = store.pipeline_schedules(demo.id, None, page(1, 20)).await;
    assert_eq!(ids(all.unwrap()), [nightly.id, paused.id]);
    let active = store.pipeline_schedules(demo.id, Some(true), page(1, 20));
    assert_eq!(ids(active.await.unwrap()), [nightly.id]);
    let inactive = store.pipeline_schedules(demo.id, Some(false), page(1, 20));
    assert_eq!(ids(inactive.await.unwrap()), [paused.id]);

    let mut changed = fields("weekly", Some(minutes_from_now(5)), false);
    changed.cron = "0 4 * * 1".into();
    changed.cron_timezone = "Europe/Berlin".into();
    let updated = store
        .update_pipeline_schedule(nightly.id, &changed)
        .await
        .unwrap();
    assert_eq!(
        (
            updated.description.as_str(),
            updated.cron.as_str(),
            updated.active
        ),
        ("weekly", "0 4 * * 1", false)
    );
    assert_eq!(updated.cron_timezone, "Europe/Berlin");
    assert_eq!(updated.created_at, nightly.created_at);
    let bob = user(&*store, "bob").await;
    let taken = store.set_pipeline_schedule_owner(nightly.id, bob.id).await;
    assert_eq!(taken.unwrap().owner_id, Some(bob.id));

    store.delete_pipeline_schedule(nightly.id).await.unwrap();
    assert!(
        store
            .pipeline_schedule(demo.id, nightly.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.delete_pipeline_schedule(nightly.id).await,
        Err(StoreError::NotFound)
    ));
    // Another project's id finds nothing.
    assert!(
        store
            .pipeline_schedule(demo.id + 1, paused.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_project_holds_at_most_its_limit_of_schedules(db: Fresh) {
    let store = db.open().await;
    let (alice, demo) = alice_and_demo(&*store).await;
    let one = fields("one", None, true);
    for _ in 0..2 {
        let created = store.create_pipeline_schedule(demo.id, alice.id, &one, 2);
        assert!(created.await.unwrap().is_some());
    }
    let third = store.create_pipeline_schedule(demo.id, alice.id, &one, 2);
    assert!(third.await.unwrap().is_none(), "over the limit");
}

async fn a_due_run_is_claimed_by_exactly_one_of_many_racing_servers(db: Fresh) {
    let first = db.open().await;
    let second = db.open().await;
    let (alice, demo) = alice_and_demo(&*first).await;
    let due = minutes_from_now(-3);
    let later = minutes_from_now(60);
    let overdue = fields("overdue", Some(due), true);
    let overdue = first
        .create_pipeline_schedule(demo.id, alice.id, &overdue, 10)
        .await
        .unwrap()
        .unwrap();
    let future = fields("future", Some(later), true);
    first
        .create_pipeline_schedule(demo.id, alice.id, &future, 10)
        .await
        .unwrap()
        .unwrap();
    let paused = fields("paused", Some(due), false);
    first
        .create_pipeline_schedule(demo.id, alice.id, &paused, 10)
        .await
        .unwrap()
        .unwrap();

    let found = second
        .due_pipeline_schedules(Timestamp::now(), 10)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "only the active, due one");
    assert_eq!(found[0], overdue);

    // Eight claims of the same tick from two servers at once: one wins.
    let mut racers = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { &first } else { &second }.clone();
        racers.push(tokio::spawn(async move {
            store
                .claim_pipeline_schedule_run(overdue.id, due, Some(later))
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for racer in racers {
        wins += usize::from(racer.await.unwrap());
    }
    assert_eq!(wins, 1);
    let claimed = first.pipeline_schedule(demo.id, overdue.id).await.unwrap();
    assert_eq!(claimed.unwrap().next_run_at, Some(later));
    assert!(
        first
            .due_pipeline_schedules(Timestamp::now(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A stale read claims nothing; a deactivated schedule neither.
    assert!(
        !first
            .claim_pipeline_schedule_run(overdue.id, due, None)
            .await
            .unwrap()
    );
    assert!(
        first
            .deactivate_pipeline_schedule(overdue.id)
            .await
            .unwrap()
    );
    assert!(
        !first
            .deactivate_pipeline_schedule(overdue.id)
            .await
            .unwrap()
    );
    assert!(
        !first
            .claim_pipeline_schedule_run(overdue.id, later, None)
            .await
            .unwrap()
    );
}

async fn schedule_variables_are_unique_per_key(db: Fresh) {
    let store = db.open().await;
    let (alice, demo) = alice_and_demo(&*store).await;
    let schedule = store
        .create_pipeline_schedule(demo.id, alice.id, &fields("s", None, true), 10)
        .await
        .unwrap()
        .unwrap();
    let created = store
        .create_pipeline_schedule_variable(schedule.id, "DEPLOY", "sealed-1", VariableType::EnvVar)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(created.key, "DEPLOY");
    let again = store
        .create_pipeline_schedule_variable(schedule.id, "DEPLOY", "sealed-2", VariableType::File)
        .await;
    assert!(again.unwrap().is_none(), "the key is taken");
    store
        .create_pipeline_schedule_variable(schedule.id, "OTHER", "sealed-3", VariableType::File)
        .await
        .unwrap()
        .unwrap();
    let updated = store
        .update_pipeline_schedule_variable(schedule.id, "DEPLOY", "sealed-4", VariableType::File)
        .await
        .unwrap();
    assert_eq!(
        (updated.value_sealed.as_str(), updated.variable_type),
        ("sealed-4", VariableType::File)
    );
    store
        .delete_pipeline_schedule_variable(schedule.id, "OTHER")
        .await
        .unwrap();
    let left = store
        .pipeline_schedule_variables(schedule.id)
        .await
        .unwrap();
    assert_eq!(left, [updated]);
    assert!(matches!(
        store
            .update_pipeline_schedule_variable(schedule.id, "NONE", "x", VariableType::EnvVar)
            .await,
        Err(StoreError::NotFound)
    ));
    // Deleting the schedule deletes its variables.
    store.delete_pipeline_schedule(schedule.id).await.unwrap();
    assert!(
        store
            .pipeline_schedule_variables(schedule.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_schedule_lists_the_pipelines_it_started(db: Fresh) {
    let store = db.open().await;
    let (alice, demo) = alice_and_demo(&*store).await;
    let schedule = store
        .create_pipeline_schedule(demo.id, alice.id, &fields("s", None, true), 10)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .last_pipeline_schedule_pipeline(schedule.id)
            .await
            .unwrap()
            .is_none()
    );
    let mut started = Vec::new();
    for status in [Status::Success, Status::Failed, Status::Pending] {
        let pipeline = store
            .create_pipeline(&new_pipeline(&demo, &["job"], status))
            .await
            .unwrap();
        store
            .link_pipeline_to_schedule(schedule.id, pipeline.id)
            .await
            .unwrap();
        started.push(pipeline.id);
    }
    // A pipeline the schedule did not start is not listed.
    store
        .create_pipeline(&new_pipeline(&demo, &["job"], Status::Success))
        .await
        .unwrap();

    let ids = |listed: Paged<Pipeline>| -> (Vec<i64>, i64) {
        (listed.items.iter().map(|p| p.id).collect(), listed.total)
    };
    let oldest_first = store.pipeline_schedule_pipelines(schedule.id, &[], true, page(1, 2));
    assert_eq!(ids(oldest_first.await.unwrap()), (started[..2].to_vec(), 3));
    let newest_first = store.pipeline_schedule_pipelines(schedule.id, &[], false, page(1, 20));
    let mut reversed = started.clone();
    reversed.reverse();
    assert_eq!(ids(newest_first.await.unwrap()), (reversed, 3));
    let failed =
        store.pipeline_schedule_pipelines(schedule.id, &[Status::Failed], true, page(1, 20));
    assert_eq!(ids(failed.await.unwrap()), (vec![started[1]], 1));
    let last = store.last_pipeline_schedule_pipeline(schedule.id).await;
    assert_eq!(last.unwrap().map(|p| p.id), Some(started[2]));

    // A deleted pipeline leaves the list.
    store.delete_pipeline(started[2]).await.unwrap();
    let last = store.last_pipeline_schedule_pipeline(schedule.id).await;
    assert_eq!(last.unwrap().map(|p| p.id), Some(started[1]));
}

async fn schedules_of_owners_who_lost_access_are_deactivated(db: Fresh) {
    let store = db.open().await;
    let (alice, demo) = alice_and_demo(&*store).await;
    let developer = user(&*store, "dev").await;
    let demoted = user(&*store, "demoted").await;
    let leaver = user(&*store, "leaver").await;
    let admin = user(&*store, "admin").await;
    let gone = user(&*store, "gone").await;
    store
        .update_user(
            admin.id,
            &UserUpdate {
                is_admin: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    for member in [&developer, &demoted, &leaver, &gone] {
        store
            .add_member(demo.id, member.id, AccessLevel::Developer, None)
            .await
            .unwrap();
    }
    let mut schedules = Vec::new();
    for owner in [&alice, &developer, &demoted, &leaver, &admin, &gone] {
        let s = store
            .create_pipeline_schedule(demo.id, owner.id, &fields(&owner.username, None, true), 10)
            .await
            .unwrap()
            .unwrap();
        schedules.push(s.id);
    }
    assert_eq!(
        store
            .deactivate_orphaned_pipeline_schedules(Timestamp::now())
            .await
            .unwrap(),
        0,
        "everyone may still run pipelines"
    );
    store
        .update_member(demo.id, demoted.id, AccessLevel::Reporter, None)
        .await
        .unwrap();
    store.remove_member(demo.id, leaver.id).await.unwrap();
    store.delete_user(gone.id).await.unwrap();
    assert_eq!(
        store
            .deactivate_orphaned_pipeline_schedules(Timestamp::now())
            .await
            .unwrap(),
        3
    );
    let mut active = Vec::new();
    for id in &schedules {
        let s = store
            .pipeline_schedule(demo.id, *id)
            .await
            .unwrap()
            .unwrap();
        active.push(s.active);
    }
    // alice (Owner), dev, demoted, leaver, admin (no member), gone (deleted: owner NULL).
    assert_eq!(active, [true, true, false, false, true, false]);
}

async fn schedule_inputs_are_set_replaced_and_removed_together(db: Fresh) {
    let store = db.open().await;
    let (alice, demo) = alice_and_demo(&*store).await;
    let schedule = store
        .create_pipeline_schedule(demo.id, alice.id, &fields("s", None, true), 10)
        .await
        .unwrap()
        .unwrap();
    let set = |name: &str, value: &str| ScheduleInputChange::Set {
        name: name.into(),
        value_sealed: value.into(),
    };
    let input = |name: &str, value: &str| ScheduleInput {
        name: name.into(),
        value_sealed: value.into(),
    };
    store
        .change_pipeline_schedule_inputs(
            schedule.id,
            &[set("environment", "sealed-1"), set("replicas", "sealed-2")],
        )
        .await
        .unwrap();
    // A set replaces the value in place; a removal of an unknown name changes nothing.
    store
        .change_pipeline_schedule_inputs(
            schedule.id,
            &[
                set("environment", "sealed-3"),
                ScheduleInputChange::Remove {
                    name: "replicas".into(),
                },
                ScheduleInputChange::Remove {
                    name: "never-set".into(),
                },
                set("flags", "sealed-4"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.pipeline_schedule_inputs(schedule.id).await.unwrap(),
        [input("environment", "sealed-3"), input("flags", "sealed-4")]
    );
    // Deleting the schedule deletes its inputs.
    store.delete_pipeline_schedule(schedule.id).await.unwrap();
    assert!(
        store
            .pipeline_schedule_inputs(schedule.id)
            .await
            .unwrap()
            .is_empty()
    );
}
