//! GitLab's legacy runner registration, `POST /api/v4/runners` with a registration token, as
//! GitLab 17 has it (`lib/api/ci/runner.rb`, `app/services/ci/runners/register_runner_service.rb`
//! and its spec; docs: `ci/runners/new_creation_workflow.md`): off by default (410 Gone -
//! runner registration disallowed), allowed by an administrator
//! (`allow_runner_registration_token`), with the instance's token for instance runners and a
//! project's `runners_token` for its runners.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{ROOT_PASSWORD, TestApp, assert_json};
use crate::web::Browser;

both_backends!(
    registration_tokens_are_refused_until_an_administrator_allows_them,
    a_runner_registers_with_the_instance_or_a_project_token_and_takes_jobs,
    only_maintainers_see_a_projects_registration_token,
    the_admin_page_switches_registration_tokens_on
);

async fn allow_registration_tokens(app: &TestApp, allow: bool) {
    let res = app
        .request(
            Method::PUT,
            "/application/settings",
            Some(&app.root_token),
            Some(json!({"allow_runner_registration_token": allow})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let settings: Value = res.json().await.unwrap();
    assert_eq!(settings["allow_runner_registration_token"], allow);
}

async fn instance_token(app: &TestApp) -> String {
    let res = app
        .post(
            "/runners/reset_registration_token",
            Some(&app.root_token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_expires_at"], Value::Null);
    body["token"].as_str().unwrap().to_string()
}

/// GitLab: `requires :token` (400), `runner_registration_disallowed` → 410 for any token while
/// `allow_runner_registration_token` is false (GitLab 17's default), `invalid token supplied`
/// → 403 for an empty or unknown token.
async fn registration_tokens_are_refused_until_an_administrator_allows_them(app: TestApp) {
    let settings: Value = app.root_json("/application/settings").await;
    assert_eq!(
        settings["allow_runner_registration_token"], false,
        "off by default"
    );
    assert_json(
        app.post("/runners", None, json!({"description": "no token"}))
            .await,
        400,
        json!({"error": "token is missing"}),
    )
    .await;
    let token = instance_token(&app).await;
    assert!(token.starts_with("GR1348941"), "{token}");
    for candidate in [token.as_str(), "GR1348941unknown"] {
        assert_json(
            app.post("/runners", None, json!({"token": candidate}))
                .await,
            410,
            json!({"message": "410 Gone - runner registration disallowed"}),
        )
        .await;
    }
    assert_json(
        app.post("/runners", None, json!({"token": ""})).await,
        403,
        json!({"message": "403 Forbidden - invalid token supplied"}),
    )
    .await;
    allow_registration_tokens(&app, true).await;
    assert_json(
        app.post("/runners", None, json!({"token": "GR1348941unknown"}))
            .await,
        403,
        json!({"message": "403 Forbidden - invalid token supplied"}),
    )
    .await;
    // A reset token replaces the old one.
    let fresh = instance_token(&app).await;
    assert_ne!(fresh, token);
    let res = app.post("/runners", None, json!({"token": token})).await;
    assert_eq!(res.status(), 403, "the old token no longer registers");
    // Only administrators reset the instance's token.
    let (_, alice) = app.create_user("alice").await;
    let res = app
        .post("/runners/reset_registration_token", Some(&alice), json!({}))
        .await;
    assert_eq!(res.status(), 403);
}

/// GitLab: an instance token makes an `instance_type` runner, a project's `runners_token` a
/// `project_type` runner of that project, each with its own authentication token (never the
/// registration token), and the runner then takes jobs like any other.
async fn a_runner_registers_with_the_instance_or_a_project_token_and_takes_jobs(app: TestApp) {
    allow_registration_tokens(&app, true).await;
    let token = instance_token(&app).await;
    let res = app
        .post(
            "/runners",
            None,
            json!({"token": token, "description": "legacy", "tag_list": "linux,docker",
                   "run_untagged": false, "info": {"name": "third-party"}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let runner: Value = res.json().await.unwrap();
    let auth = runner["token"].as_str().unwrap().to_string();
    assert_ne!(auth, token);
    assert_eq!(runner["token_expires_at"], Value::Null);
    let shown: Value = app.root_json(&format!("/runners/{}", runner["id"])).await;
    assert_eq!(shown["runner_type"], "instance_type");
    assert_eq!(shown["description"], "legacy");
    assert_eq!(shown["tag_list"], json!(["linux", "docker"]));
    assert_eq!(shown["run_untagged"], false);
    let res = app
        .post("/runners/verify", None, json!({"token": auth}))
        .await;
    assert_eq!(res.status(), 200);

    let tmp = tempfile::tempdir().unwrap();
    let id = crate::running::project_in(&app, "legacy", "build:\n  script: x\n", tmp.path()).await;
    let project: Value = app.root_json(&format!("/projects/{id}")).await;
    let project_token = project["runners_token"].as_str().unwrap().to_string();
    assert!(project_token.starts_with("GR1348941"));
    let res = app
        .post("/runners", None, json!({"token": project_token}))
        .await;
    assert_eq!(res.status(), 201);
    let runner: Value = res.json().await.unwrap();
    let shown: Value = app.root_json(&format!("/runners/{}", runner["id"])).await;
    assert_eq!(shown["runner_type"], "project_type");
    assert_eq!(shown["projects"][0]["id"], id);
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let job = crate::running::request(&app, runner["token"].as_str().unwrap())
        .await
        .expect("the project runner takes the project's job");
    assert_eq!(job["job_info"]["name"], "build");

    // Switching registration off again refuses even the valid tokens.
    allow_registration_tokens(&app, false).await;
    let res = app.post("/runners", None, json!({"token": token})).await;
    assert_eq!(res.status(), 410);
    let project: Value = app.root_json(&format!("/projects/{id}")).await;
    assert_eq!(project["runners_token"], Value::Null);
}

/// GitLab's project entity shows `runners_token` only to those who administer the project;
/// a Maintainer may reset it (`POST /projects/:id/runners/reset_registration_token`), a
/// Developer may do neither.
async fn only_maintainers_see_a_projects_registration_token(app: TestApp) {
    allow_registration_tokens(&app, true).await;
    let project = app.create_project(&app.root_token, "shared").await;
    let id = project["id"].as_i64().unwrap();
    let (dev_id, dev) = app.create_user("dev").await;
    app.add_member(id, dev_id, 30).await;
    let seen: Value = app
        .get(&format!("/projects/{id}"), Some(&dev))
        .await
        .json()
        .await
        .unwrap();
    assert!(seen.get("runners_token").is_none(), "{seen}");
    let res = app
        .post(
            &format!("/projects/{id}/runners/reset_registration_token"),
            Some(&dev),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let before: Value = app.root_json(&format!("/projects/{id}")).await;
    let res = app
        .post(
            &format!("/projects/{id}/runners/reset_registration_token"),
            Some(&app.root_token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let reset: Value = res.json().await.unwrap();
    assert_ne!(reset["token"], before["runners_token"]);
    let after: Value = app.root_json(&format!("/projects/{id}")).await;
    assert_eq!(after["runners_token"], reset["token"]);
}

/// The admin area's settings form carries the switch, and shows the instance token once on.
async fn the_admin_page_switches_registration_tokens_on(app: TestApp) {
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let page = root
        .submit(
            "/admin",
            "/admin/settings",
            &[("allow_runner_registration_token", "true")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let settings: Value = app.root_json("/application/settings").await;
    assert_eq!(settings["allow_runner_registration_token"], true);
    let admin = root.get("/admin").await;
    assert!(admin.body.contains("data-testid=\"registration-token\""));
    let page = root.submit("/admin", "/admin/settings", &[]).await;
    assert_eq!(page.status, 303);
    let settings: Value = app.root_json("/application/settings").await;
    assert_eq!(settings["allow_runner_registration_token"], false);
}
