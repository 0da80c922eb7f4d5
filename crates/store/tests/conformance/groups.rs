//! Groups, subgroups, group members and inherited access (`project_role`, `group_role`).

use pipewright_core::{
    AccessLevel, ProjectCreationLevel, SubgroupCreationLevel, Timestamp, Visibility,
};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Fresh, page, user};

on_both!(
    a_subgroup_full_path_is_unique_and_a_group_cannot_take_a_username,
    a_group_member_has_their_role_in_every_project_and_subgroup_below,
    renaming_a_group_moves_its_descendants_full_paths,
    deleting_a_group_deletes_its_subgroups_and_projects,
    listing_groups_shows_each_viewer_what_they_may_see,
    a_member_of_a_subgroup_or_a_project_sees_its_ancestors_listed_but_not_their_other_subgroups,
    a_pipeline_reads_group_variables_between_the_instance_and_the_project,
    a_groups_creation_levels_are_stored_changed_and_kept_by_a_rename,
);

pub(crate) fn new_group(name: &str, parent: Option<i64>, creator: &User) -> NewGroup {
    NewGroup {
        name: name.into(),
        path: name.to_lowercase(),
        parent_id: parent,
        visibility: Visibility::Private,
        description: String::new(),
        project_creation_level: None,
        subgroup_creation_level: SubgroupCreationLevel::Maintainer,
        creator_id: creator.id,
    }
}

async fn project_in(store: &dyn Store, ns: &Namespace, creator: &User, path: &str) -> Project {
    store
        .create_project(&NewProject {
            namespace_id: ns.id,
            name: path.into(),
            path: path.into(),
            description: None,
            visibility: Visibility::Private,
            default_branch: "main".into(),
            creator_id: creator.id,
        })
        .await
        .unwrap()
}

async fn a_subgroup_full_path_is_unique_and_a_group_cannot_take_a_username(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let acme = store
        .create_group(&new_group("Acme", None, &alice))
        .await
        .unwrap();
    let backend = store
        .create_group(&new_group("Backend", Some(acme.id), &alice))
        .await
        .unwrap();
    assert_eq!(backend.full_path, "acme/backend");
    assert_eq!(backend.full_name, "Acme / Backend");
    assert_eq!(backend.parent_id, Some(acme.id));
    let found = store
        .namespace_by_full_path("ACME/Backend")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, backend.id);
    // The same path under another parent is fine; under the same parent it is taken.
    let other = store
        .create_group(&new_group("Other", None, &alice))
        .await
        .unwrap();
    store
        .create_group(&new_group("Backend", Some(other.id), &alice))
        .await
        .unwrap();
    let again = store
        .create_group(&new_group("BACKEND", Some(acme.id), &alice))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let username = store.create_group(&new_group("Alice", None, &alice)).await;
    assert!(
        matches!(username, Err(StoreError::Conflict(_))),
        "{username:?}"
    );
    let orphan = store
        .create_group(&new_group("Orphan", Some(9999), &alice))
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound)), "{orphan:?}");
    // A project in a subgroup answers to its full path of any depth.
    let api = project_in(&*store, &backend, &alice, "api").await;
    assert_eq!(api.full_path(), "acme/backend/api");
    let by_path = store
        .project_by_full_path("acme/backend", "API")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_path.id, api.id);
}

async fn a_group_member_has_their_role_in_every_project_and_subgroup_below(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let acme = store
        .create_group(&new_group("Acme", None, &alice))
        .await
        .unwrap();
    let backend = store
        .create_group(&new_group("Backend", Some(acme.id), &alice))
        .await
        .unwrap();
    let api = project_in(&*store, &backend, &alice, "api").await;
    assert_eq!(store.project_role(api.id, bob.id).await.unwrap(), None);

    store
        .add_group_member(acme.id, bob.id, AccessLevel::Reporter, None)
        .await
        .unwrap();
    assert_eq!(
        store.project_role(api.id, bob.id).await.unwrap(),
        Some(AccessLevel::Reporter)
    );
    assert_eq!(
        store.group_role(backend.id, bob.id).await.unwrap(),
        Some(AccessLevel::Reporter)
    );
    // The highest of direct and inherited wins, either way round.
    store
        .add_member(api.id, bob.id, AccessLevel::Developer, None)
        .await
        .unwrap();
    assert_eq!(
        store.project_role(api.id, bob.id).await.unwrap(),
        Some(AccessLevel::Developer)
    );
    store
        .add_group_member(backend.id, bob.id, AccessLevel::Maintainer, None)
        .await
        .unwrap();
    assert_eq!(
        store.project_role(api.id, bob.id).await.unwrap(),
        Some(AccessLevel::Maintainer)
    );
    let all = store
        .group_members_all(backend.id, page(1, 20))
        .await
        .unwrap();
    let bob_row = all.items.iter().find(|m| m.user.id == bob.id).unwrap();
    assert_eq!(bob_row.access_level, AccessLevel::Maintainer);
    assert_eq!(all.total, 2, "alice and bob, once each");
    // An expired membership grants nothing; removing one leaves the others.
    let past = Timestamp(Timestamp::now().millis() - 1000);
    store
        .update_group_member(backend.id, bob.id, AccessLevel::Owner, Some(past))
        .await
        .unwrap();
    assert_eq!(
        store.project_role(api.id, bob.id).await.unwrap(),
        Some(AccessLevel::Developer)
    );
    store.remove_member(api.id, bob.id).await.unwrap();
    store.remove_group_member(backend.id, bob.id).await.unwrap();
    assert_eq!(
        store.project_role(api.id, bob.id).await.unwrap(),
        Some(AccessLevel::Reporter)
    );
    store.remove_group_member(acme.id, bob.id).await.unwrap();
    assert_eq!(store.project_role(api.id, bob.id).await.unwrap(), None);
    assert_eq!(store.group_owner_count(acme.id).await.unwrap(), 1);
}

async fn renaming_a_group_moves_its_descendants_full_paths(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let acme = store
        .create_group(&new_group("Acme", None, &alice))
        .await
        .unwrap();
    let backend = store
        .create_group(&new_group("Backend", Some(acme.id), &alice))
        .await
        .unwrap();
    let api = project_in(&*store, &backend, &alice, "api").await;
    let renamed = store
        .update_group(
            acme.id,
            &GroupUpdate {
                name: Some("Acme Corp".into()),
                path: Some("acme-corp".into()),
                ..GroupUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.full_path.as_str(), renamed.full_name.as_str()),
        ("acme-corp", "Acme Corp")
    );
    let backend = store.namespace(backend.id).await.unwrap().unwrap();
    assert_eq!(backend.full_path, "acme-corp/backend");
    assert_eq!(backend.full_name, "Acme Corp / Backend");
    let api = store.project(api.id).await.unwrap().unwrap();
    assert_eq!(api.full_path(), "acme-corp/backend/api");
    assert!(
        store
            .namespace_by_full_path("acme/backend")
            .await
            .unwrap()
            .is_none()
    );
}

async fn deleting_a_group_deletes_its_subgroups_and_projects(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let acme = store
        .create_group(&new_group("Acme", None, &alice))
        .await
        .unwrap();
    let backend = store
        .create_group(&new_group("Backend", Some(acme.id), &alice))
        .await
        .unwrap();
    let top = project_in(&*store, &acme, &alice, "site").await;
    let api = project_in(&*store, &backend, &alice, "api").await;
    assert!(store.has_subgroups(acme.id).await.unwrap());
    assert_eq!(
        store.projects_below(acme.id).await.unwrap(),
        vec![top.id, api.id]
    );
    assert_eq!(
        store.projects_below(backend.id).await.unwrap(),
        vec![api.id]
    );
    store.delete_group(acme.id).await.unwrap();
    assert!(store.namespace(backend.id).await.unwrap().is_none());
    assert!(store.project(api.id).await.unwrap().is_none());
    assert!(store.project(top.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_group(acme.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn listing_groups_shows_each_viewer_what_they_may_see(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let private = store
        .create_group(&new_group("Secret", None, &alice))
        .await
        .unwrap();
    let mut public = new_group("Open", None, &alice);
    public.visibility = Visibility::Public;
    let public = store.create_group(&public).await.unwrap();
    let sub = store
        .create_group(&new_group("Inner", Some(private.id), &alice))
        .await
        .unwrap();
    let ids = |viewer, parent| {
        let store = &store;
        async move {
            let filter = GroupFilter {
                viewer,
                parent,
                membership_of: None,
                search: None,
            };
            let listed = store.groups(&filter, page(1, 20)).await.unwrap();
            listed.items.iter().map(|g| g.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(Viewer::Anonymous, None).await, vec![public.id]);
    assert_eq!(ids(Viewer::User(bob.id), None).await, vec![public.id]);
    assert_eq!(
        ids(Viewer::User(alice.id), Some(None)).await,
        vec![public.id, private.id]
    );
    assert_eq!(
        ids(Viewer::Admin, Some(Some(private.id))).await,
        vec![sub.id]
    );
    // A member of the parent sees the private subgroup.
    store
        .add_group_member(private.id, bob.id, AccessLevel::Guest, None)
        .await
        .unwrap();
    assert_eq!(
        ids(Viewer::User(bob.id), Some(Some(private.id))).await,
        vec![sub.id]
    );
}

async fn a_member_of_a_subgroup_or_a_project_sees_its_ancestors_listed_but_not_their_other_subgroups(
    db: Fresh,
) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let acme = store
        .create_group(&new_group("Acme", None, &alice))
        .await
        .unwrap();
    let backend = store
        .create_group(&new_group("Backend", Some(acme.id), &alice))
        .await
        .unwrap();
    let api = store
        .create_group(&new_group("Api", Some(backend.id), &alice))
        .await
        .unwrap();
    let secret = store
        .create_group(&new_group("Secret", Some(acme.id), &alice))
        .await
        .unwrap();
    let listed = |viewer, membership_of| {
        let store = &store;
        async move {
            let filter = GroupFilter {
                viewer,
                parent: None,
                membership_of,
                search: None,
            };
            let listed = store.groups(&filter, page(1, 20)).await.unwrap();
            listed.items.iter().map(|g| g.id).collect::<Vec<_>>()
        }
    };
    // Bob is a member of acme/backend only: he sees it, its subgroup and its parent, not
    // the parent's other subgroup; likewise when only his own groups are asked for.
    store
        .add_group_member(backend.id, bob.id, AccessLevel::Developer, None)
        .await
        .unwrap();
    let bobs = vec![acme.id, api.id, backend.id];
    assert_eq!(listed(Viewer::User(bob.id), None).await, bobs);
    assert_eq!(listed(Viewer::User(bob.id), Some(bob.id)).await, bobs);
    assert!(!store.has_projects_below(acme.id, bob.id).await.unwrap());
    // Carol is a member of one project in acme/secret: she sees its group and their parent.
    let vault = project_in(&*store, &secret, &alice, "vault").await;
    store
        .add_member(vault.id, carol.id, AccessLevel::Reporter, None)
        .await
        .unwrap();
    assert_eq!(
        listed(Viewer::User(carol.id), None).await,
        vec![acme.id, secret.id]
    );
    assert!(store.has_projects_below(acme.id, carol.id).await.unwrap());
    assert!(store.has_projects_below(secret.id, carol.id).await.unwrap());
    assert!(
        !store
            .has_projects_below(backend.id, carol.id)
            .await
            .unwrap()
    );
    // An expired membership relates to nothing.
    store
        .update_member(
            vault.id,
            carol.id,
            AccessLevel::Reporter,
            Some(Timestamp(1)),
        )
        .await
        .unwrap();
    assert!(listed(Viewer::User(carol.id), None).await.is_empty());
    assert!(!store.has_projects_below(acme.id, carol.id).await.unwrap());
}

async fn a_pipeline_reads_group_variables_between_the_instance_and_the_project(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let acme = store
        .create_group(&new_group("Acme", None, &alice))
        .await
        .unwrap();
    let backend = store
        .create_group(&new_group("Backend", Some(acme.id), &alice))
        .await
        .unwrap();
    let other = store
        .create_group(&new_group("Other", None, &alice))
        .await
        .unwrap();
    let api = project_in(&*store, &backend, &alice, "api").await;
    let var = |project_id, group_id, key: &str, value: &str| CiVariable {
        id: 0,
        project_id,
        group_id,
        key: key.into(),
        value_sealed: value.into(),
        variable_type: VariableType::EnvVar,
        protected: false,
        masked: false,
        raw: false,
        description: None,
        environment_scope: "*".into(),
    };
    for v in [
        var(Some(api.id), None, "K", "project"),
        var(None, Some(backend.id), "K", "backend"),
        var(None, Some(acme.id), "K", "acme"),
        var(None, None, "K", "instance"),
        var(None, Some(other.id), "K", "other"),
    ] {
        assert!(store.create_ci_variable(&v).await.unwrap().is_some());
    }
    // The same key in a group and on the instance are different variables; twice in one
    // group is not.
    let again = store
        .create_ci_variable(&var(None, Some(acme.id), "K", "again"))
        .await
        .unwrap();
    assert!(again.is_none());
    let values =
        |vars: Vec<CiVariable>| vars.into_iter().map(|v| v.value_sealed).collect::<Vec<_>>();
    assert_eq!(
        values(store.ci_variables_for_pipeline(api.id).await.unwrap()),
        ["instance", "acme", "backend", "project"]
    );
    assert_eq!(
        values(store.ci_variables(None).await.unwrap()),
        ["instance"]
    );
    assert_eq!(
        values(store.group_ci_variables(acme.id).await.unwrap()),
        ["acme"]
    );
}

/// A new group follows the instance's project creation default (`None`) and lets Maintainers
/// create subgroups; an update changes only the levels it names; a rename keeps them.
async fn a_groups_creation_levels_are_stored_changed_and_kept_by_a_rename(db: Fresh) {
    let store = db.open().await;
    let alice = user(&*store, "alice").await;
    let acme = store
        .create_group(&new_group("Acme", None, &alice))
        .await
        .unwrap();
    assert_eq!(acme.project_creation_level, None);
    assert_eq!(
        acme.subgroup_creation_level,
        SubgroupCreationLevel::Maintainer
    );
    let strict = NewGroup {
        project_creation_level: Some(ProjectCreationLevel::NoOne),
        subgroup_creation_level: SubgroupCreationLevel::Owner,
        ..new_group("Strict", None, &alice)
    };
    let strict = store.create_group(&strict).await.unwrap();
    assert_eq!(
        strict.project_creation_level,
        Some(ProjectCreationLevel::NoOne)
    );
    assert_eq!(strict.subgroup_creation_level, SubgroupCreationLevel::Owner);

    let only_projects = GroupUpdate {
        project_creation_level: Some(ProjectCreationLevel::Maintainer),
        ..GroupUpdate::default()
    };
    let acme = store.update_group(acme.id, &only_projects).await.unwrap();
    assert_eq!(
        acme.project_creation_level,
        Some(ProjectCreationLevel::Maintainer)
    );
    assert_eq!(
        acme.subgroup_creation_level,
        SubgroupCreationLevel::Maintainer
    );
    let rename = GroupUpdate {
        path: Some("acme-corp".into()),
        subgroup_creation_level: Some(SubgroupCreationLevel::Owner),
        ..GroupUpdate::default()
    };
    store.update_group(acme.id, &rename).await.unwrap();
    let found = store
        .namespace_by_full_path("acme-corp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.project_creation_level,
        Some(ProjectCreationLevel::Maintainer)
    );
    assert_eq!(found.subgroup_creation_level, SubgroupCreationLevel::Owner);
}
