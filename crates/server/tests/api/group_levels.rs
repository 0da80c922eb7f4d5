//! A group's creation levels, as GitLab has them (app/policies/group_policy.rb):
//! `project_creation_level` decides who creates projects in the group (`developer` unless the
//! group or the instance's `default_project_creation` says otherwise; `noone` stops even Owners
//! and administrators), `subgroup_creation_level` whether Maintainers create subgroups besides
//! Owners. Both are set through `POST /groups` and `PUT /groups/:id`, shown in the group's JSON,
//! and followed by the API and by the new project and new group pages.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::groups::{add_group_member, call, create_group};
use crate::support::TestApp;
use crate::web::Browser;

both_backends!(
    a_developer_creates_projects_under_the_default_level_but_not_under_maintainer,
    a_maintainer_cannot_create_a_subgroup_when_the_level_is_owner,
    noone_stops_owners_and_administrators_creating_projects,
    an_unknown_level_is_refused_in_gitlabs_words_and_changes_nothing,
    groups_without_their_own_level_follow_the_instance_default,
);

const DEVELOPER: i64 = 30;
const MAINTAINER: i64 = 40;

/// Tries to create a project `name` in `group` as `token`; the status (GitLab refuses a
/// namespace the user may not create in with 400 `namespace is not valid`).
async fn create_project_in(app: &TestApp, token: &str, group: &Value, name: &str) -> u16 {
    let body = json!({"name": name, "namespace_id": group["id"]});
    call(app, Method::POST, "/projects", token, body).await.0
}

async fn set_levels(app: &TestApp, token: &str, group: &Value, levels: Value) -> Value {
    let path = format!("/groups/{}", group["id"]);
    let (status, updated) = call(app, Method::PUT, &path, token, levels).await;
    assert_eq!(status, 200, "{updated}");
    updated
}

async fn a_developer_creates_projects_under_the_default_level_but_not_under_maintainer(
    app: TestApp,
) {
    let (_, owner) = app.create_user("owner").await;
    let (dev_id, dev) = app.create_user("dev").await;
    let acme = create_group(&app, &owner, json!({"name": "Acme", "path": "acme"})).await;
    assert_eq!(acme["project_creation_level"], "developer");
    assert_eq!(acme["subgroup_creation_level"], "maintainer");
    add_group_member(&app, &acme, &owner, dev_id, DEVELOPER).await;
    assert_eq!(create_project_in(&app, &dev, &acme, "by-dev").await, 201);
    let mut browser = Browser::sign_in(&app, "dev", "a-long-password").await;
    let new_project = browser.get("/projects/new").await.body;
    assert!(new_project.contains(">acme<"), "{new_project}");

    let acme = set_levels(
        &app,
        &owner,
        &acme,
        json!({"project_creation_level": "maintainer"}),
    )
    .await;
    assert_eq!(acme["project_creation_level"], "maintainer");
    assert_eq!(acme["subgroup_creation_level"], "maintainer", "unchanged");
    let (_, shown) = call(&app, Method::GET, "/groups/acme", &dev, json!({})).await;
    assert_eq!(shown["project_creation_level"], "maintainer");
    assert_eq!(
        create_project_in(&app, &dev, &acme, "by-dev-again").await,
        400
    );
    // The page offers only namespaces the user may create in, and its form is refused too.
    let new_project = browser.get("/projects/new").await.body;
    assert!(!new_project.contains(">acme<"), "{new_project}");
    let id = acme["id"].to_string();
    let form = [("name", "through-the-page"), ("namespace_id", id.as_str())];
    browser.submit("/projects/new", "/projects", &form).await;
    let (status, _) = call(
        &app,
        Method::GET,
        "/projects/acme%2Fthrough-the-page",
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(status, 404, "the page created a project it may not");
    // A Maintainer still may.
    let (maintainer_id, maintainer) = app.create_user("maintainer").await;
    add_group_member(&app, &acme, &owner, maintainer_id, MAINTAINER).await;
    assert_eq!(
        create_project_in(&app, &maintainer, &acme, "by-maintainer").await,
        201
    );
}

async fn a_maintainer_cannot_create_a_subgroup_when_the_level_is_owner(app: TestApp) {
    let (_, owner) = app.create_user("owner").await;
    let (maintainer_id, maintainer) = app.create_user("maintainer").await;
    let acme = create_group(
        &app,
        &owner,
        json!({"name": "Acme", "path": "acme", "subgroup_creation_level": "owner"}),
    )
    .await;
    assert_eq!(acme["subgroup_creation_level"], "owner");
    add_group_member(&app, &acme, &owner, maintainer_id, MAINTAINER).await;
    let subgroup = |path: &str| json!({"name": path, "path": path, "parent_id": acme["id"]});
    let (status, body) = call(&app, Method::POST, "/groups", &maintainer, subgroup("m")).await;
    assert_eq!(status, 403, "{body}");
    // The new group page does not offer the group as a parent.
    let mut browser = Browser::sign_in(&app, "maintainer", "a-long-password").await;
    let page = browser
        .get(&format!("/groups/new?parent_id={}", acme["id"]))
        .await;
    assert!(!page.body.contains(">acme<"), "{}", page.body);
    let group_page = browser.get("/groups/acme").await.body;
    assert!(!group_page.contains("New subgroup"), "{group_page}");
    // Owners still may; back at `maintainer`, so may Maintainers.
    create_group(&app, &owner, subgroup("o")).await;
    set_levels(
        &app,
        &owner,
        &acme,
        json!({"subgroup_creation_level": "maintainer"}),
    )
    .await;
    create_group(&app, &maintainer, subgroup("m")).await;
    let group_page = browser.get("/groups/acme").await.body;
    assert!(group_page.contains("New subgroup"), "{group_page}");
}

/// GitLab: `Group.prevent_project_creation?` is true under `noone` for everyone, and
/// `create_projects_disabled` prevents even an administrator's `create_projects`.
async fn noone_stops_owners_and_administrators_creating_projects(app: TestApp) {
    let (_, owner) = app.create_user("owner").await;
    let acme = create_group(
        &app,
        &owner,
        json!({"name": "Acme", "path": "acme", "project_creation_level": "noone"}),
    )
    .await;
    assert_eq!(acme["project_creation_level"], "noone");
    assert_eq!(
        create_project_in(&app, &owner, &acme, "by-owner").await,
        400
    );
    let root = app.root_token.clone();
    assert_eq!(create_project_in(&app, &root, &acme, "by-admin").await, 400);
    // `owner`: Owners may, and administrators.
    set_levels(
        &app,
        &owner,
        &acme,
        json!({"project_creation_level": "owner"}),
    )
    .await;
    assert_eq!(
        create_project_in(&app, &owner, &acme, "by-owner").await,
        201
    );
    assert_eq!(create_project_in(&app, &root, &acme, "by-admin").await, 201);
    // `administrator`: administrators only.
    set_levels(
        &app,
        &owner,
        &acme,
        json!({"project_creation_level": "administrator"}),
    )
    .await;
    assert_eq!(
        create_project_in(&app, &owner, &acme, "by-owner-2").await,
        400
    );
    assert_eq!(
        create_project_in(&app, &root, &acme, "by-admin-2").await,
        201
    );
}

async fn an_unknown_level_is_refused_in_gitlabs_words_and_changes_nothing(app: TestApp) {
    let (_, owner) = app.create_user("owner").await;
    let body = json!({"name": "Acme", "path": "acme", "project_creation_level": "everyone"});
    let (status, error) = call(&app, Method::POST, "/groups", &owner, body).await;
    assert_eq!(status, 400);
    assert_eq!(
        error,
        json!({"error": "project_creation_level does not have a valid value"})
    );
    let (status, _) = call(&app, Method::GET, "/groups/acme", &owner, json!({})).await;
    assert_eq!(status, 404, "nothing was created");

    let acme = create_group(&app, &owner, json!({"name": "Acme", "path": "acme"})).await;
    let path = format!("/groups/{}", acme["id"]);
    for (name, value) in [
        ("subgroup_creation_level", json!("developer")),
        ("project_creation_level", json!("Maintainer")),
        ("project_creation_level", json!(2)),
    ] {
        let body = json!({ name: value, "description": "changed" });
        let (status, error) = call(&app, Method::PUT, &path, &owner, body).await;
        assert_eq!(status, 400, "{name}={value}: {error}");
        assert_eq!(
            error,
            json!({"error": format!("{name} does not have a valid value")})
        );
    }
    let (_, shown) = call(&app, Method::GET, &path, &owner, json!({})).await;
    assert_eq!(shown["description"], "", "a refused update changes nothing");
    assert_eq!(shown["project_creation_level"], "developer");
    assert_eq!(shown["subgroup_creation_level"], "maintainer");
}

/// GitLab's application setting `default_project_creation` (an integer: 1 is
/// `MAINTAINER_PROJECT_ACCESS`) is the level of every group that has none of its own.
async fn groups_without_their_own_level_follow_the_instance_default(app: TestApp) {
    let root = app.root_token.clone();
    let (_, owner) = app.create_user("owner").await;
    let (dev_id, dev) = app.create_user("dev").await;
    let acme = create_group(&app, &owner, json!({"name": "Acme", "path": "acme"})).await;
    let open = create_group(
        &app,
        &owner,
        json!({"name": "Open", "path": "open", "project_creation_level": "developer"}),
    )
    .await;
    add_group_member(&app, &acme, &owner, dev_id, DEVELOPER).await;
    add_group_member(&app, &open, &owner, dev_id, DEVELOPER).await;

    let settings = json!({"default_project_creation": 1});
    let (status, shown) = call(&app, Method::PUT, "/application/settings", &root, settings).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["default_project_creation"], 1);
    let (_, acme) = call(&app, Method::GET, "/groups/acme", &dev, json!({})).await;
    assert_eq!(acme["project_creation_level"], "maintainer");
    assert_eq!(create_project_in(&app, &dev, &acme, "by-dev").await, 400);
    // A group's own level wins over the instance's.
    assert_eq!(create_project_in(&app, &dev, &open, "by-dev").await, 201);

    let wrong = json!({"default_project_creation": 7});
    let (status, error) = call(&app, Method::PUT, "/application/settings", &root, wrong).await;
    assert_eq!(status, 400);
    assert_eq!(
        error,
        json!({"error": "default_project_creation does not have a valid value"})
    );
    let (status, _) = call(
        &app,
        Method::PUT,
        "/application/settings",
        &owner,
        json!({"default_project_creation": 2}),
    )
    .await;
    assert_eq!(
        status, 403,
        "only administrators change the instance's default"
    );

    // The admin area offers the same setting, with GitLab's labels.
    let mut admin = Browser::sign_in(&app, "root", crate::support::ROOT_PASSWORD).await;
    let page = admin.get("/admin").await.body;
    assert!(
        page.contains(r#"<option value="1" selected>Maintainers</option>"#),
        "{page}"
    );
    let form = [("default_project_creation", "2")];
    admin.submit("/admin", "/admin/settings", &form).await;
    let (_, shown) = call(&app, Method::GET, "/application/settings", &root, json!({})).await;
    assert_eq!(shown["default_project_creation"], 2);
    assert_eq!(create_project_in(&app, &dev, &acme, "by-dev").await, 201);
}
