//! Names the router needs: GitLab refuses a project, group or user path that its own URLs use
//! (lib/gitlab/path_regex.rb: `TOP_LEVEL_ROUTES` for users and top-level groups,
//! `PROJECT_WILDCARD_ROUTES` for projects and subgroups, `GROUP_ROUTES`), with the validators'
//! messages (`"<path> is a reserved name"`), in the API and on the pages alike.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{TestApp, assert_json};
use crate::web::Browser;

both_backends!(
    a_project_named_after_a_project_page_is_refused,
    a_group_named_after_a_top_level_route_or_a_project_page_is_refused,
    a_user_named_after_a_top_level_route_is_refused,
    the_new_project_and_new_group_pages_refuse_reserved_names,
);

fn reserved(field: &str, path: &str) -> Value {
    json!({"message": {field: [format!("{path} is a reserved name")]}})
}

async fn a_project_named_after_a_project_page_is_refused(app: TestApp) {
    let (_, alice) = app.create_user("alice").await;
    for path in ["edit", "tree", "blob", "raw", "Badges", "create_dir"] {
        let res = app
            .post(
                "/projects",
                Some(&alice),
                json!({"name": "x", "path": path}),
            )
            .await;
        assert_json(res, 400, reserved("path", path)).await;
    }
    // The path GitLab derives from a name is checked too.
    let res = app
        .post("/projects", Some(&alice), json!({"name": "Tree"}))
        .await;
    assert_json(res, 400, reserved("path", "tree")).await;
    // A format error is reported before a reserved word, with GitLab's whole message.
    let res = app
        .post("/projects", Some(&alice), json!({"name": "x", "path": "-"}))
        .await;
    assert_json(
        res,
        400,
        json!({"message": {"path": [
            "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'",
            crate::path_formats::OCI_MESSAGE,
        ]}}),
    )
    .await;

    // Only the project's own segment is checked against project pages: `api` is fine below a
    // user, and so are names that merely contain a reserved word.
    for name in ["api", "editor", "trees", "groups"] {
        app.create_project(&alice, name).await;
    }
    let res = app
        .request(
            Method::PUT,
            "/projects/alice%2Feditor",
            Some(&alice),
            Some(json!({"path": "blob"})),
        )
        .await;
    assert_json(res, 400, reserved("path", "blob")).await;
    let project: Value = app.root_json("/projects/alice%2Feditor").await;
    assert_eq!(project["path"], "editor", "nothing changed");
}

async fn a_group_named_after_a_top_level_route_or_a_project_page_is_refused(app: TestApp) {
    let root = app.root_token.clone();
    for path in ["api", "Groups", "users", "projects", "admin", "help", "v2"] {
        let res = app
            .post("/groups", Some(&root), json!({"name": "x", "path": path}))
            .await;
        assert_json(res, 400, reserved("path", path)).await;
    }
    let res = app
        .post(
            "/groups",
            Some(&root),
            json!({"name": "Acme", "path": "acme"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let acme: Value = res.json().await.unwrap();
    // Below the top level, the top-level routes are fine but project pages are not.
    for path in ["edit", "tree", "Blob"] {
        let body = json!({"name": "x", "path": path, "parent_id": acme["id"]});
        let res = app.post("/groups", Some(&root), body).await;
        assert_json(res, 400, reserved("path", path)).await;
    }
    let body = json!({"name": "API", "path": "api", "parent_id": acme["id"]});
    let res = app.post("/groups", Some(&root), body).await;
    assert_eq!(res.status(), 201, "a subgroup may be called api");
    // Renaming is checked as creating is, with the namespace's format message.
    let res = app
        .request(
            Method::PUT,
            "/groups/acme",
            Some(&root),
            Some(json!({"path": "explore"})),
        )
        .await;
    assert_json(res, 400, reserved("path", "explore")).await;
    let res = app
        .request(
            Method::PUT,
            "/groups/acme%2Fapi",
            Some(&root),
            Some(json!({"path": "raw"})),
        )
        .await;
    assert_json(res, 400, reserved("path", "raw")).await;
    let res = app
        .request(
            Method::PUT,
            "/groups/acme",
            Some(&root),
            Some(json!({"path": "acme."})),
        )
        .await;
    assert_json(
        res,
        400,
        json!({"message": {"path": [
            crate::path_formats::OCI_MESSAGE,
            "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-' or end in '.', '.git' or '.atom'.",
        ]}}),
    )
    .await;
}

async fn a_user_named_after_a_top_level_route_is_refused(app: TestApp) {
    for username in ["api", "Admin", "groups", "projects"] {
        let body = json!({
            "username": username,
            "name": "Someone",
            "email": "someone@example.com",
            "password": "a-long-password",
        });
        let res = app.post("/users", Some(&app.root_token), body).await;
        assert_json(res, 400, reserved("username", username)).await;
    }
    // The format is GitLab's namespace format, with its message.
    let body = json!({
        "username": "alice.",
        "name": "Alice",
        "email": "alice@example.com",
        "password": "a-long-password",
    });
    let res = app.post("/users", Some(&app.root_token), body).await;
    assert_json(
        res,
        400,
        json!({"message": {"username": [
            crate::path_formats::OCI_MESSAGE,
            "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-' or end in '.', '.git' or '.atom'.",
        ]}}),
    )
    .await;
    // Project page words are fine for a user, as in GitLab.
    app.create_user("edit").await;
}

async fn the_new_project_and_new_group_pages_refuse_reserved_names(app: TestApp) {
    app.create_user("alice").await;
    let mut alice = Browser::sign_in(&app, "alice", "a-long-password").await;
    let form = [("name", "Edit"), ("path", "edit")];
    let page = alice.submit("/projects/new", "/projects", &form).await;
    assert_eq!(page.location.as_deref(), Some("/projects/new"));
    let again = alice.get("/projects/new").await.body;
    assert!(again.contains("Path edit is a reserved name."), "{again}");

    let form = [
        ("name", "Help"),
        ("path", "help"),
        ("visibility", "private"),
    ];
    let page = alice.submit("/groups/new", "/groups", &form).await;
    assert_eq!(page.location.as_deref(), Some("/groups/new"));
    let again = alice.get("/groups/new").await.body;
    assert!(again.contains("Path help is a reserved name."), "{again}");
    let groups: Value = app.root_json("/groups?search=help").await;
    assert_eq!(groups, json!([]));
}
