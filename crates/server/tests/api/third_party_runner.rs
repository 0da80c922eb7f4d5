//! What a GitLab runner nobody here wrote tripped over (issue 15 §4), each checked against
//! GitLab's source: `CI_CONFIG_PATH` and the project's `ci_config_path`, a failure without a
//! reason, a pipeline that passed with warnings, and trailing slashes on API paths. (Legacy
//! registration with registration tokens is in `runner_registration.rs`; the third-party
//! client itself is `crates/runner-compat`.)

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::running::{finish, project_in, request, vars};
use crate::support::{ROOT_PASSWORD, TestApp};
use crate::web::Browser;

both_backends!(
    a_project_reads_its_config_from_ci_config_path_and_jobs_receive_it,
    a_ci_config_path_with_traversal_is_refused,
    a_failed_job_allowed_to_fail_leaves_the_pipeline_passed_with_warnings,
    a_trailing_slash_on_an_api_path_answers_as_without_it
);

/// A project `root/<name>` whose `main` holds `file` at `path` only (no `.gitlab-ci.yml`).
async fn project_with_file(app: &TestApp, name: &str, path: &str, file: &str) -> (i64, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let project = app.create_project(&app.root_token, name).await;
    let root = tmp.path();
    let dir = crate::git::local_repo(root, "placeholder: x\n");
    crate::git::git_ok(&dir, root, &["rm", "-q", ".gitlab-ci.yml"]);
    let target = dir.join(path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, file).unwrap();
    crate::git::git_ok(&dir, root, &["add", "."]);
    crate::git::git_ok(&dir, root, &["commit", "-q", "-m", "Move the CI config"]);
    let url = crate::git::remote(app, "root", &app.root_token, &format!("root/{name}"));
    crate::git::git_ok(
        &dir,
        root,
        &["push", "-q", "-o", "ci.skip", &url, "HEAD:main"],
    );
    (project["id"].as_i64().unwrap(), project)
}

async fn register_runner(app: &TestApp) -> String {
    crate::running::register_runner(app).await
}

/// GitLab: `ci_config_path` on `PUT /projects/:id` (`lib/api/projects.rb`,
/// `app/models/project.rb` `ci_config_path_or_default`); pipeline creation reads the config
/// from there, and every job gets `CI_CONFIG_PATH` (`Project#predefined_project_variables`),
/// `.gitlab-ci.yml` when the project did not set one.
async fn a_project_reads_its_config_from_ci_config_path_and_jobs_receive_it(app: TestApp) {
    let (id, created) =
        project_with_file(&app, "moved", "ci/pipeline.yml", "build:\n  script: make\n").await;
    assert_eq!(created["ci_config_path"], Value::Null, "unset at first");
    // Without the setting there is no config to run.
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 400, "no .gitlab-ci.yml on main");
    let res = app
        .request(
            Method::PUT,
            &format!("/projects/{id}"),
            Some(&app.root_token),
            Some(json!({"ci_config_path": "ci/pipeline.yml"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let project: Value = res.json().await.unwrap();
    assert_eq!(project["ci_config_path"], "ci/pipeline.yml");
    let shown: Value = app.root_json(&format!("/projects/{id}")).await;
    assert_eq!(shown["ci_config_path"], "ci/pipeline.yml");

    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201, "the config is read from ci/pipeline.yml");
    let runner = register_runner(&app).await;
    let job = request(&app, &runner).await.expect("the build job");
    assert_eq!(job["job_info"]["name"], "build");
    assert_eq!(vars(&job)["CI_CONFIG_PATH"]["value"], "ci/pipeline.yml");
    assert_eq!(vars(&job)["CI_CONFIG_PATH"]["public"], true);

    // A project that never set it: `.gitlab-ci.yml`.
    let tmp = tempfile::tempdir().unwrap();
    let plain = project_in(&app, "plain", "test:\n  script: x\n", tmp.path()).await;
    let res = app
        .post(
            &format!("/projects/{plain}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let job = request(&app, &runner).await.expect("the test job");
    assert_eq!(vars(&job)["CI_CONFIG_PATH"]["value"], ".gitlab-ci.yml");

    // An empty value clears the setting (GitLab: `allow_blank`).
    let res = app
        .request(
            Method::PUT,
            &format!("/projects/{id}"),
            Some(&app.root_token),
            Some(json!({"ci_config_path": ""})),
        )
        .await;
    let project: Value = res.json().await.unwrap();
    assert_eq!(project["ci_config_path"], Value::Null);

    // POST /projects takes it too.
    let res = app
        .post(
            "/projects",
            Some(&app.root_token),
            json!({"name": "configured", "ci_config_path": "build/ci.yml"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let project: Value = res.json().await.unwrap();
    assert_eq!(project["ci_config_path"], "build/ci.yml");
}

/// GitLab's validation (`app/models/project.rb`): `ci_config_path` `format: { without:
/// %r{(\.{2}|\A/)} }`, "cannot include leading slash or directory traversal.".
async fn a_ci_config_path_with_traversal_is_refused(app: TestApp) {
    let project = app.create_project(&app.root_token, "strict").await;
    let id = &project["id"];
    for bad in ["../secrets.yml", "/etc/passwd", "ci/../../x.yml"] {
        let res = app
            .request(
                Method::PUT,
                &format!("/projects/{id}"),
                Some(&app.root_token),
                Some(json!({"ci_config_path": bad})),
            )
            .await;
        assert_eq!(res.status(), 400, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["message"]["ci_config_path"][0],
            "cannot include leading slash or directory traversal."
        );
    }
    let shown: Value = app.root_json(&format!("/projects/{id}")).await;
    assert_eq!(shown["ci_config_path"], Value::Null, "nothing was stored");
}

/// GitLab: `lib/gitlab/ci/status/success_warning.rb` (a successful pipeline with
/// `has_warnings?`: label `passed with warnings`, group `success-with-warnings`, icon
/// `status_warning`) and `lib/gitlab/ci/status/build/failed_allowed.rb` (the job: `failed
/// (allowed to fail)`), on the API and the pages.
async fn a_failed_job_allowed_to_fail_leaves_the_pipeline_passed_with_warnings(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let config = "lint:\n  script: x\n  allow_failure: true\n";
    let id = project_in(&app, "warned", config, tmp.path()).await;
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    let pipeline: Value = res.json().await.unwrap();
    let runner = register_runner(&app).await;
    let job = request(&app, &runner).await.expect("lint");
    assert_eq!(finish(&app, &job, "failed").await.status(), 200);

    let path = format!("/projects/{id}/pipelines/{}", pipeline["id"]);
    let done: Value = app.root_json(&path).await;
    assert_eq!(done["status"], "success");
    let status = &done["detailed_status"];
    assert_eq!(status["group"], "success-with-warnings");
    assert_eq!(status["label"], "passed with warnings");
    assert_eq!(status["text"], "passed");
    assert_eq!(status["icon"], "status_warning");
    let jobs: Vec<Value> = app.root_json(&format!("{path}/jobs")).await;
    assert_eq!(
        (&jobs[0]["status"], &jobs[0]["allow_failure"]),
        (&json!("failed"), &json!(true))
    );

    let mut browser = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let page = browser
        .get(&format!("/root/warned/-/pipelines/{}", pipeline["id"]))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("passed with warnings"), "{}", page.body);
    assert!(
        page.body.contains("failed (allowed to fail)"),
        "{}",
        page.body
    );
    // The lists ask once per page which rows passed with warnings: the pipelines list, the
    // project's overview, the branch's history and the branches.
    for list in [
        "/root/warned/-/pipelines",
        "/root/warned",
        "/root/warned/-/commits/main",
        "/root/warned/-/branches",
    ] {
        let shown = browser.get(list).await;
        assert_eq!(shown.status, 200, "{list}");
        assert!(
            shown.body.contains("passed with warnings"),
            "{list}: {}",
            shown.body
        );
    }
}

/// `GET /api/v4/projects/` is `GET /api/v4/projects`, as on GitLab (a third-party runner
/// client sent `POST /api/v4/jobs/request/`); pages keep their own URLs.
async fn a_trailing_slash_on_an_api_path_answers_as_without_it(app: TestApp) {
    app.create_project(&app.root_token, "slashed").await;
    let plain: Value = app.root_json("/projects").await;
    let slashed = app.get("/projects/", Some(&app.root_token)).await;
    assert_eq!(slashed.status(), 200);
    assert_eq!(slashed.json::<Value>().await.unwrap(), plain);
    let one = app
        .get("/projects/root%2Fslashed/", Some(&app.root_token))
        .await;
    assert_eq!(one.status(), 200);
    let res = app
        .post("/jobs/request/", None, json!({"token": "glrt-nobody"}))
        .await;
    assert_eq!(
        res.status(),
        403,
        "routed to the runner API, which refuses the token"
    );
    let unknown = app.get("/nothing/here/", Some(&app.root_token)).await;
    assert_eq!(unknown.status(), 404);
}
