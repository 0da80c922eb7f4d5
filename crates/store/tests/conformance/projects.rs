//! Projects, members, protected branches and job token scopes.

use pipewright_core::{AccessLevel, Timestamp, Visibility};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, demo_project, page, project, user};

on_both!(
    a_project_belongs_to_its_namespace_and_its_creator_is_owner,
    each_viewer_lists_the_projects_they_may_see,
    a_project_is_updated_field_by_field_and_deleted,
    members_are_added_once_changed_and_removed,
    protected_branches_are_listed_by_name_and_forgotten_when_deleted,
    a_job_token_reaches_a_scoped_project_only_from_its_allowlist,
);

async fn a_project_belongs_to_its_namespace_and_its_creator_is_owner(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let demo = project(&*store, &alice, "Demo").await;
    assert_eq!(demo.full_path(), "alice/Demo");
    assert_eq!(demo.visibility, Visibility::Private);
    let found = store
        .project_by_full_path("ALICE", "demo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.namespace.id), (demo.id, demo.namespace.id));
    let owner = store.member(demo.id, alice.id).await.unwrap().unwrap();
    assert_eq!(owner.access_level, AccessLevel::Owner);
    assert_eq!(owner.user.username, "alice");
    let namespace = store.namespace(demo.namespace.id).await.unwrap().unwrap();
    assert_eq!(namespace.path, "alice");
    assert!(matches!(
        store
            .create_project(&NewProject {
                namespace_id: namespace.id,
                name: "again".into(),
                path: "DEMO".into(),
                description: None,
                visibility: Visibility::Public,
                default_branch: "main".into(),
                creator_id: alice.id,
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn each_viewer_lists_the_projects_they_may_see(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let private = project(&*store, &alice, "private").await;
    let internal = project(&*store, &alice, "internal").await;
    let public = project(&*store, &alice, "public").await;
    for (p, visibility) in [
        (&internal, Visibility::Internal),
        (&public, Visibility::Public),
    ] {
        let update = ProjectUpdate {
            visibility: Some(visibility),
            ..Default::default()
        };
        store.update_project(p.id, &update).await.unwrap();
    }
    let list = |viewer, search: Option<&str>| {
        let filter = ProjectFilter {
            viewer,
            membership_of: None,
            owned_by: None,
            search: search.map(str::to_string),
            namespace: None,
            order_by: ProjectOrder::Id,
            ascending: true,
        };
        let store = store.clone();
        async move {
            let found = store.projects(&filter, page(1, 20)).await.unwrap();
            assert_eq!(found.total as usize, found.items.len());
            found.items.iter().map(|p| p.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(Viewer::Anonymous, None).await, [public.id]);
    assert_eq!(
        list(Viewer::User(bob.id), None).await,
        [internal.id, public.id]
    );
    let everything = [private.id, internal.id, public.id];
    assert_eq!(list(Viewer::User(alice.id), None).await, everything);
    assert_eq!(list(Viewer::Admin, None).await, everything);
    assert_eq!(list(Viewer::Admin, Some("INTERN")).await, [internal.id]);
    assert_eq!(list(Viewer::Admin, Some("%")).await, Vec::<i64>::new());
}

async fn a_project_is_updated_field_by_field_and_deleted(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    let described = ProjectUpdate {
        description: Some(Some("What it does".into())),
        default_branch: Some("trunk".into()),
        ..Default::default()
    };
    let updated = store.update_project(demo.id, &described).await.unwrap();
    assert_eq!(updated.description.as_deref(), Some("What it does"));
    assert_eq!(
        (updated.name.as_str(), updated.default_branch.as_str()),
        ("demo", "trunk")
    );
    let cleared = ProjectUpdate {
        description: Some(None),
        path: Some("Renamed".into()),
        ..Default::default()
    };
    let updated = store.update_project(demo.id, &cleared).await.unwrap();
    assert_eq!(updated.description, None);
    assert_eq!(updated.full_path(), "alice/Renamed");
    assert!(
        store
            .project_by_full_path("alice", "renamed")
            .await
            .unwrap()
            .is_some()
    );

    store.delete_project(demo.id).await.unwrap();
    assert!(store.project(demo.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_project(demo.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update_project(demo.id, &cleared).await,
        Err(StoreError::NotFound)
    ));
}

async fn members_are_added_once_changed_and_removed(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let demo = project(&*store, &alice, "demo").await;
    let expires = Some(Timestamp(1_900_000_000_000));
    let added = store
        .add_member(demo.id, bob.id, AccessLevel::Developer, expires)
        .await
        .unwrap();
    assert_eq!(
        (added.access_level, added.expires_at),
        (AccessLevel::Developer, expires)
    );
    assert!(matches!(
        store
            .add_member(demo.id, bob.id, AccessLevel::Guest, None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let changed = store
        .update_member(demo.id, bob.id, AccessLevel::Maintainer, None)
        .await
        .unwrap();
    assert_eq!(
        (changed.access_level, changed.expires_at),
        (AccessLevel::Maintainer, None)
    );
    let members = store.members(demo.id, page(1, 20)).await.unwrap();
    let ids: Vec<_> = members.items.iter().map(|m| m.user.id).collect();
    assert_eq!((ids, members.total), (vec![alice.id, bob.id], 2));

    store.remove_member(demo.id, bob.id).await.unwrap();
    assert!(store.member(demo.id, bob.id).await.unwrap().is_none());
    assert!(matches!(
        store.remove_member(demo.id, bob.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_member(demo.id, bob.id, AccessLevel::Guest, None)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn protected_branches_are_listed_by_name_and_forgotten_when_deleted(db: Fresh) {
    let store = db.open().await;
    let demo = demo_project(&*store).await;
    // Read first, so a cache (SQLite's) holds the empty list the writes must invalidate.
    assert!(store.protected_branches(demo.id).await.unwrap().is_empty());
    let protect = |name: &str, push| NewProtectedBranch {
        project_id: demo.id,
        name: name.into(),
        push_access_level: push,
        merge_access_level: ProtectionLevel::AtLeast(AccessLevel::Maintainer),
        allow_force_push: false,
    };
    let release = protect("release/*", ProtectionLevel::NoOne);
    store.create_protected_branch(&release).await.unwrap();
    let main = protect("main", ProtectionLevel::AtLeast(AccessLevel::Developer));
    let created = store.create_protected_branch(&main).await.unwrap();
    assert_eq!(
        created.push_access_level,
        ProtectionLevel::AtLeast(AccessLevel::Developer)
    );
    assert!(matches!(
        store.create_protected_branch(&main).await,
        Err(StoreError::Conflict(_))
    ));
    let rules = store.protected_branches(demo.id).await.unwrap();
    let names: Vec<_> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["main", "release/*"]);
    assert_eq!(rules[1].push_access_level, ProtectionLevel::NoOne);

    store
        .delete_protected_branch(demo.id, "main")
        .await
        .unwrap();
    let rules = store.protected_branches(demo.id).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert!(matches!(
        store.delete_protected_branch(demo.id, "main").await,
        Err(StoreError::NotFound)
    ));
}

async fn a_job_token_reaches_a_scoped_project_only_from_its_allowlist(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let target = project(&*store, &alice, "target").await;
    let source = project(&*store, &alice, "source").await;
    assert!(store.job_token_scope_enabled(target.id).await.unwrap());
    assert!(store.job_token_allowed(target.id, target.id).await.unwrap());
    assert!(!store.job_token_allowed(target.id, source.id).await.unwrap());

    assert!(
        store
            .add_to_job_token_allowlist(target.id, source.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_to_job_token_allowlist(target.id, source.id)
            .await
            .unwrap()
    );
    assert!(store.job_token_allowed(target.id, source.id).await.unwrap());
    let allowed = store
        .job_token_allowlist(target.id, page(1, 20))
        .await
        .unwrap();
    let ids: Vec<_> = allowed.items.iter().map(|p| p.id).collect();
    assert_eq!((ids, allowed.total), (vec![source.id], 1));

    assert!(
        store
            .remove_from_job_token_allowlist(target.id, source.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_from_job_token_allowlist(target.id, source.id)
            .await
            .unwrap()
    );
    assert!(!store.job_token_allowed(target.id, source.id).await.unwrap());
    store
        .set_job_token_scope_enabled(target.id, false)
        .await
        .unwrap();
    assert!(!store.job_token_scope_enabled(target.id).await.unwrap());
    assert!(store.job_token_allowed(target.id, source.id).await.unwrap());
}
