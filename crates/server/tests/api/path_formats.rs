//! Path formats as GitLab's: a project, group or user path is checked against the format
//! regexes of lib/gitlab/path_regex.rb and, on top, `Gitlab::Regex.oci_repository_path_regex`
//! (lib/gitlab/regex.rb, checked by app/models/project.rb and namespace.rb whenever a path is
//! set): letters and digits at both ends, no two of `.`, `_`, `-` in a row. Each rule adds its
//! own message, as GitLab's validators do. A path GitLab accepts works everywhere: the API, `git`
//! and the pages.

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::support::{TestApp, assert_json};
use crate::web::Browser;

both_backends!(
    a_project_path_gitlab_refuses_is_refused_with_its_messages,
    a_group_or_user_path_gitlab_refuses_is_refused_with_its_messages,
    a_project_with_dots_dashes_and_underscores_is_created_pushed_to_and_browsed,
);

/// `oci_repository_path_regex_message` (lib/gitlab/regex.rb).
pub const OCI_MESSAGE: &str = "can only include non-accented letters, digits, '_', '-' and '.'. It must not start with '-', '_', or '.', nor end with '-', '_', '.', '.git', or '.atom'.";

const PROJECT_FORMAT: &str = "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'";

const NAMESPACE_FORMAT: &str = "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-' or end in '.', '.git' or '.atom'.";

fn path_errors(field: &str, messages: &[&str]) -> Value {
    json!({"message": {field: messages}})
}

async fn a_project_path_gitlab_refuses_is_refused_with_its_messages(app: TestApp) {
    let (_, alice) = app.create_user("alice").await;
    // Fine for the path format, refused by the OCI rule: a special character at an end, or two
    // in a row (`.x` and `a..b` would also be odd directory names and URL segments).
    for path in [".x", "_x", "x_", "x-", "x.", "a..b", "a._b", "a-_b"] {
        let res = app
            .post(
                "/projects",
                Some(&alice),
                json!({"name": "x", "path": path}),
            )
            .await;
        assert_json(res, 400, path_errors("path", &[OCI_MESSAGE])).await;
    }
    // Refused by both rules, each with its message; `.git` only by the format.
    let res = app
        .post(
            "/projects",
            Some(&alice),
            json!({"name": "x", "path": "-x"}),
        )
        .await;
    assert_json(
        res,
        400,
        path_errors("path", &[PROJECT_FORMAT, OCI_MESSAGE]),
    )
    .await;
    let res = app
        .post(
            "/projects",
            Some(&alice),
            json!({"name": "x", "path": "x.git"}),
        )
        .await;
    assert_json(res, 400, path_errors("path", &[PROJECT_FORMAT])).await;
    // Renaming is checked as creating is; resending the unchanged path is not a change.
    app.create_project(&alice, "kept").await;
    let res = app
        .request(
            reqwest::Method::PUT,
            "/projects/alice%2Fkept",
            Some(&alice),
            Some(json!({"path": "_kept"})),
        )
        .await;
    assert_json(res, 400, path_errors("path", &[OCI_MESSAGE])).await;
    let res = app
        .request(
            reqwest::Method::PUT,
            "/projects/alice%2Fkept",
            Some(&alice),
            Some(json!({"path": "kept", "description": "same path"})),
        )
        .await;
    assert_eq!(res.status(), 200);
}

async fn a_group_or_user_path_gitlab_refuses_is_refused_with_its_messages(app: TestApp) {
    let root = app.root_token.clone();
    for path in ["_acme", "acme_", "ac..me", ".acme"] {
        let res = app
            .post(
                "/groups",
                Some(&root),
                json!({"name": "Acme", "path": path}),
            )
            .await;
        assert_json(res, 400, path_errors("path", &[OCI_MESSAGE])).await;
    }
    let res = app
        .post(
            "/groups",
            Some(&root),
            json!({"name": "Acme", "path": "-acme"}),
        )
        .await;
    assert_json(
        res,
        400,
        path_errors("path", &[OCI_MESSAGE, NAMESPACE_FORMAT]),
    )
    .await;
    let res = app
        .post(
            "/groups",
            Some(&root),
            json!({"name": "Acme", "path": "ac.me-1_2"}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let user = |username: &str| {
        json!({
            "username": username,
            "name": "Someone",
            "email": "someone@example.com",
            "password": "a-long-password",
        })
    };
    let res = app.post("/users", Some(&root), user("_bob")).await;
    assert_json(res, 400, path_errors("username", &[OCI_MESSAGE])).await;
    // A reserved word that is also badly formed gets both messages.
    let res = app.post("/users", Some(&root), user("-")).await;
    assert_json(
        res,
        400,
        path_errors("username", &["- is a reserved name", OCI_MESSAGE]),
    )
    .await;
    let res = app.post("/users", Some(&root), user("b.o-b_1")).await;
    assert_eq!(res.status(), 201);
}

async fn a_project_with_dots_dashes_and_underscores_is_created_pushed_to_and_browsed(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let res = app
        .post(
            "/projects",
            Some(&app.root_token),
            json!({"name": "Dotted", "path": "my.app-v2_x"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let project: Value = res.json().await.unwrap();
    assert_eq!(project["path_with_namespace"], "root/my.app-v2_x");

    let work = local_repo(tmp.path(), "test:\n  script: echo hi\n");
    let url = remote(&app, "root", &app.root_token, "root/my.app-v2_x");
    git_ok(&work, tmp.path(), &["push", "-q", &url, "main"]);
    let host = app.url.trim_start_matches("http://");
    let clone_url = format!("http://root:{}@{host}/root/my.app-v2_x.git", app.root_token);
    git_ok(
        tmp.path(),
        tmp.path(),
        &["clone", "-q", &clone_url, "clone"],
    );
    assert!(tmp.path().join("clone/.gitlab-ci.yml").exists());

    let mut browser = Browser::sign_in(&app, "root", crate::support::ROOT_PASSWORD).await;
    let overview = browser.get("/root/my.app-v2_x").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    let tree = browser.get("/root/my.app-v2_x/-/tree/main").await;
    assert_eq!(tree.status, 200, "{}", tree.body);
    assert!(tree.body.contains(".gitlab-ci.yml"), "{}", tree.body);
    let redirect = browser.get("/root/my.app-v2_x.git").await;
    assert_eq!(redirect.location.as_deref(), Some("/root/my.app-v2_x"));
}
