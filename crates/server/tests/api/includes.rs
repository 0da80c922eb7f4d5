//! `include:` across repositories and the network, as GitLab's CI/CD YAML reference documents
//! it: a pipeline in project A whose jobs come from a template in project B (read as the
//! pipeline's user: GitLab's "not found or access denied" otherwise — 422 and a failed pipeline
//! for a trigger, 400 and nothing saved for `POST /pipeline`); remote files from a local HTTP
//! server, refused unless the administrator allows local requests, with GitLab's messages for
//! what goes wrong; include `rules:` decided by the pipeline's variables; `local:` wildcards.

use std::path::Path;

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, remote};
use crate::support::{TestApp, assert_json};

both_backends!(
    a_trigger_runs_jobs_from_a_template_in_another_project,
    remote_includes_pass_the_outbound_guard,
    include_rules_and_wildcards_decide_per_pipeline,
    a_masked_variable_in_an_include_location_stays_masked,
    the_ci_lint_api_lists_every_included_file,
);

/// A project of root's whose `main` holds `files`; each `(branch, files)` of `branches` is a
/// branch off `main` with those files changed. Pushed without running pipelines.
fn project_repo(
    app: &TestApp,
    tmp: &Path,
    name: &str,
    files: &[(&str, &str)],
    branches: &[(&str, &[(&str, &str)])],
) {
    let dir = tmp.join(name);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let write = |files: &[(&str, &str)]| {
        for (path, text) in files {
            let file = work.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
    };
    git_ok(&work, &dir, &["init", "-q", "-b", "main"]);
    write(files);
    git_ok(&work, &dir, &["add", "."]);
    git_ok(&work, &dir, &["commit", "-q", "-m", "Files"]);
    for (branch, changed) in branches {
        git_ok(&work, &dir, &["checkout", "-q", "-b", branch, "main"]);
        write(changed);
        git_ok(&work, &dir, &["add", "."]);
        git_ok(&work, &dir, &["commit", "-q", "-m", branch]);
    }
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(&work, &dir, &["push", "-q", "-o", "ci.skip", "--all", &url]);
}

async fn new_project(app: &TestApp, name: &str) -> i64 {
    app.create_project(&app.root_token, name).await["id"]
        .as_i64()
        .unwrap()
}

/// The names of a pipeline's jobs, sorted.
async fn job_names(app: &TestApp, project: i64, pipeline: &Value) -> Vec<String> {
    let jobs: Vec<Value> = app
        .root_json(&format!(
            "/projects/{project}/pipelines/{}/jobs",
            pipeline["id"]
        ))
        .await;
    let mut names: Vec<String> = jobs
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn run_pipeline(app: &TestApp, project: i64, token: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/projects/{project}/pipeline"), Some(token), body)
        .await
}

async fn trigger_token(app: &TestApp, project: i64, user_token: &str) -> String {
    let res = app
        .post(
            &format!("/projects/{project}/triggers"),
            Some(user_token),
            json!({"description": "includes"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn trigger(app: &TestApp, project: i64, token: &str) -> reqwest::Response {
    app.post(
        &format!("/projects/{project}/trigger/pipeline"),
        None,
        json!({"token": token, "ref": "main"}),
    )
    .await
}

async fn pipelines(app: &TestApp, project: i64) -> Vec<Value> {
    app.root_json(&format!("/projects/{project}/pipelines"))
        .await
}

const DENIED: &str = "Project `root/templates` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined.";

/// GitLab: lib/gitlab/ci/config/external/file/project.rb — the file is read at the project's
/// default branch as the pipeline's user (`download_code`), and what it includes with
/// `local:` is read from that project too.
async fn a_trigger_runs_jobs_from_a_template_in_another_project(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let templates = new_project(&app, "templates").await;
    project_repo(
        &app,
        tmp.path(),
        "templates",
        &[
            (
                "ci/build.yml",
                "include: ci/common.yml\nbuild:\n  script: make\n",
            ),
            ("ci/common.yml", "lint:\n  script: lint\n"),
        ],
        &[],
    );
    let a = new_project(&app, "app").await;
    project_repo(
        &app,
        tmp.path(),
        "app",
        &[
            (
                ".gitlab-ci.yml",
                "include:\n  - project: root/templates\n    file: /ci/build.yml\ntest:\n  script: make test\n",
            ),
            // Not what the template's `local:` include means: that is read in templates.
            ("ci/common.yml", "wrong:\n  script: wrong\n"),
        ],
        &[],
    );
    // dev maintains A (and so may own its trigger token).
    let (dev, dev_token) = app.create_user("dev").await;
    app.add_member(a, dev, 40).await;
    let token = trigger_token(&app, a, &dev_token).await;

    // dev cannot read templates: the trigger saves a failed pipeline with the error...
    let res = trigger(&app, a, &token).await;
    assert_json(res, 422, json!({"message": {"base": [DENIED]}})).await;
    let failed = pipelines(&app, a).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], "failed");
    let failed: Value = app
        .root_json(&format!("/projects/{a}/pipelines/{}", failed[0]["id"]))
        .await;
    assert_eq!(failed["yaml_errors"], DENIED);
    // ...and POST /pipeline answers 400 and saves nothing (GitLab: `save_on_errors: false`).
    let res = run_pipeline(&app, a, &dev_token, json!({"ref": "main"})).await;
    assert_json(res, 400, json!({"message": {"base": [DENIED]}})).await;
    // Its dry run answers as the real request does.
    let res = run_pipeline(&app, a, &dev_token, json!({"ref": "main", "dry_run": true})).await;
    assert_json(res, 400, json!({"message": {"base": [DENIED]}})).await;
    assert_eq!(pipelines(&app, a).await.len(), 1);

    // As a Reporter of templates dev may read its code: the template's jobs run in A.
    app.add_member(templates, dev, 20).await;
    let res = trigger(&app, a, &token).await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert_eq!(
        job_names(&app, a, &pipeline).await,
        ["build", "lint", "test"]
    );

    // What one user could include is not handed to another: the result is not cached.
    let (other, other_token) = app.create_user("other").await;
    app.add_member(a, other, 40).await;
    let res = run_pipeline(&app, a, &other_token, json!({"ref": "main"})).await;
    assert_json(res, 400, json!({"message": {"base": [DENIED]}})).await;

    // A ref that does not exist in templates is GitLab's error too.
    let res = app
        .post(
            &format!("/projects/{a}/ci/lint"),
            Some(&dev_token),
            json!({"content": "include:\n  project: root/templates\n  ref: nope\n  file: ci/build.yml\n"}),
        )
        .await;
    let lint: Value = res.json().await.unwrap();
    assert_eq!(
        lint["errors"],
        json!(["Project `root/templates` reference `nope` does not exist!"])
    );
}

/// A local HTTP server: `/ci.yml` is a job, `/same-host` redirects to it, `/elsewhere`
/// redirects to another host name, `/big` is larger than the limit, anything else is 404.
// A remote-file server of the test's own, not a Pipewright route.
#[allow(clippy::disallowed_methods)]
async fn start_file_server() -> (u16, tokio::task::JoinHandle<()>) {
    use axum::response::{IntoResponse, Redirect};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route(
            "/ci.yml",
            axum::routing::get(|| async { "remote_job:\n  script: echo remote\n" }),
        )
        .route(
            "/same-host",
            axum::routing::get(|| async { Redirect::temporary("/ci.yml") }),
        )
        .route(
            "/elsewhere",
            axum::routing::get(move || async move {
                Redirect::temporary(&format!("http://localhost:{port}/ci.yml")).into_response()
            }),
        )
        .route(
            "/big",
            axum::routing::get(|| async { format!("# {}\n", "x".repeat(2 * 1024 * 1024)) }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

async fn allow_local_requests(app: &TestApp, allow: bool) {
    let res = app
        .request(
            reqwest::Method::PUT,
            "/application/settings",
            Some(&app.root_token),
            Some(json!({"allow_local_requests_from_web_hooks_and_services": allow})),
        )
        .await;
    assert_eq!(res.status(), 200);
}

/// GitLab: lib/gitlab/ci/config/external/file/remote.rb (its messages) and the webhooks'
/// outbound guard (`allow_local_requests_from_web_hooks_and_services`).
async fn remote_includes_pass_the_outbound_guard(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (port, server) = start_file_server().await;
    let base = format!("http://127.0.0.1:{port}");
    let config = |path: &str| format!("include:\n  remote: '{base}{path}'\ntest:\n  script: t\n");
    let (ok, same, elsewhere, big, missing) = (
        config("/ci.yml"),
        config("/same-host"),
        config("/elsewhere"),
        config("/big"),
        config("/missing.yml"),
    );
    let id = new_project(&app, "remote").await;
    project_repo(
        &app,
        tmp.path(),
        "remote",
        &[(".gitlab-ci.yml", ok.as_str())],
        &[
            ("same", &[(".gitlab-ci.yml", same.as_str())]),
            ("elsewhere", &[(".gitlab-ci.yml", elsewhere.as_str())]),
            ("big", &[(".gitlab-ci.yml", big.as_str())]),
            ("missing", &[(".gitlab-ci.yml", missing.as_str())]),
        ],
    );
    let run = |r#ref: &'static str| run_pipeline(&app, id, &app.root_token, json!({"ref": r#ref}));
    let refused = |message: String| json!({"message": {"base": [message]}});

    // Local addresses are refused by default, as they are for webhooks.
    assert_json(
        run("main").await,
        400,
        refused("Remote file could not be fetched because URL is blocked: Requests to the local network are not allowed!".into()),
    )
    .await;

    allow_local_requests(&app, true).await;
    let res = run("main").await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert_eq!(job_names(&app, id, &pipeline).await, ["remote_job", "test"]);
    let res = run("same").await;
    assert_eq!(res.status(), 201, "a redirect on the same host is followed");
    assert_json(
        run("elsewhere").await,
        400,
        refused(format!("Remote file `{base}/elsewhere` could not be fetched because of a redirect to another host!")),
    )
    .await;
    assert_json(
        run("big").await,
        400,
        refused(format!(
            "Remote file `{base}/big` could not be fetched because it is larger than 1048576 bytes!"
        )),
    )
    .await;
    assert_json(
        run("missing").await,
        400,
        refused(format!("Remote file `{base}/missing.yml` could not be fetched because of HTTP code `404` error!")),
    )
    .await;

    // Turned off again, the same file is refused again: remote results are never cached.
    allow_local_requests(&app, false).await;
    assert_eq!(run("main").await.status(), 400);
    server.abort();
}

/// The reference's `include:rules` and `include:local` wildcard examples, on the server: the
/// rules see the pipeline's variables and source (GitLab evaluates them with the pipeline's
/// variables), so the same commit includes different files for different pipelines.
async fn include_rules_and_wildcards_decide_per_pipeline(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = new_project(&app, "ruled").await;
    let config = r#"include:
  - local: 'ci/*.yml'
  - local: extra.yml
    rules:
      - if: $EXTRA == "yes"
  - local: deploy.yml
    rules:
      - if: $CI_PIPELINE_SOURCE == "trigger"
        when: never
      - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
  - local: docs.yml
    rules:
      - exists: [ci/sub/*.yml]
"#;
    project_repo(
        &app,
        tmp.path(),
        "ruled",
        &[
            (".gitlab-ci.yml", config),
            ("ci/a.yml", "a:\n  script: a\n"),
            ("ci/b.yml", "b:\n  script: b\n"),
            ("ci/sub/c.yml", "c:\n  script: c\n"),
            ("extra.yml", "extra:\n  script: extra\n"),
            ("deploy.yml", "deploy:\n  script: deploy\n"),
            ("docs.yml", "docs:\n  script: docs\n"),
        ],
        &[],
    );
    let res = run_pipeline(
        &app,
        id,
        &app.root_token,
        json!({"ref": "main", "variables": [{"key": "EXTRA", "value": "yes"}]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let with_extra: Value = res.json().await.unwrap();
    assert_eq!(
        job_names(&app, id, &with_extra).await,
        ["a", "b", "deploy", "docs", "extra"]
    );
    // The same commit without the variable: no `extra` (the first parse is not reused).
    let res = run_pipeline(&app, id, &app.root_token, json!({"ref": "main"})).await;
    assert_eq!(res.status(), 201);
    let plain: Value = res.json().await.unwrap();
    assert_eq!(
        job_names(&app, id, &plain).await,
        ["a", "b", "deploy", "docs"]
    );
    // A trigger: `deploy` is never included.
    let token = trigger_token(&app, id, &app.root_token).await;
    let res = trigger(&app, id, &token).await;
    assert_eq!(res.status(), 201);
    let triggered: Value = res.json().await.unwrap();
    assert_eq!(job_names(&app, id, &triggered).await, ["a", "b", "docs"]);
}

/// GitLab: lib/gitlab/ci/config/external/context.rb `mask_variables_from` — a location
/// written with a masked project variable does not show its value in the pipeline's error.
async fn a_masked_variable_in_an_include_location_stays_masked(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = new_project(&app, "masking").await;
    project_repo(
        &app,
        tmp.path(),
        "masking",
        &[(
            ".gitlab-ci.yml",
            "include:\n  project: $TEMPLATES\n  file: ci.yml\njob:\n  script: x\n",
        )],
        &[],
    );
    let res = app
        .post(
            &format!("/projects/{id}/variables"),
            Some(&app.root_token),
            json!({"key": "TEMPLATES", "value": "hidden-group/templates", "masked": true}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let token = trigger_token(&app, id, &app.root_token).await;
    let res = trigger(&app, id, &token).await;
    let hidden = "Project `[MASKED]xxxxxxxxxxxxxx` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined.";
    assert_json(res, 422, json!({"message": {"base": [hidden]}})).await;
    let failed = pipelines(&app, id).await;
    let failed: Value = app
        .root_json(&format!("/projects/{id}/pipelines/{}", failed[0]["id"]))
        .await;
    assert_eq!(failed["yaml_errors"], hidden);
}

/// `POST /projects/:id/ci/lint` of `content`, as root.
async fn lint_content(app: &TestApp, project: i64, content: &str) -> Value {
    app.post(
        &format!("/projects/{project}/ci/lint"),
        Some(&app.root_token),
        json!({"content": content}),
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn main_sha(app: &TestApp, project: i64) -> String {
    let branch: Value = app
        .root_json(&format!("/projects/{project}/repository/branches/main"))
        .await;
    branch["commit"]["id"].as_str().unwrap().to_string()
}

/// GitLab's CI Lint `includes` (lib/gitlab/ci/config/external/file/*.rb `metadata`, the API
/// docs' example): each file with its type, location, links at the commit it was read from,
/// `extra` for `project:` files, and the project and commit of the file that included it —
/// the includes of one `include:` first, then what they include.
async fn the_ci_lint_api_lists_every_included_file(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let templates = new_project(&app, "templates").await;
    project_repo(
        &app,
        tmp.path(),
        "templates",
        &[
            (
                "ci/build.yml",
                "include: ci/shared.yml\nbuild:\n  script: make\n",
            ),
            ("ci/shared.yml", "shared:\n  script: x\n"),
        ],
        &[],
    );
    let a = new_project(&app, "app").await;
    project_repo(
        &app,
        tmp.path(),
        "app",
        &[
            (
                ".gitlab-ci.yml",
                "include:\n  - local: ci/local.yml\n  - project: root/templates\n    file: ci/build.yml\n",
            ),
            ("ci/local.yml", "local:\n  script: x\n"),
        ],
        &[],
    );
    let (app_sha, templates_sha) = (main_sha(&app, a).await, main_sha(&app, templates).await);
    let base = format!("{}/root", app.url);
    let expected = json!([
        {
            "context_project": "root/app",
            "context_sha": app_sha,
            "type": "local",
            "location": "ci/local.yml",
            "blob": format!("{base}/app/-/blob/{app_sha}/ci/local.yml"),
            "raw": format!("{base}/app/-/raw/{app_sha}/ci/local.yml"),
            "extra": {},
        },
        {
            "context_project": "root/app",
            "context_sha": app_sha,
            "type": "file",
            "location": "ci/build.yml",
            "blob": format!("{base}/templates/-/blob/{templates_sha}/ci/build.yml"),
            "raw": format!("{base}/templates/-/raw/{templates_sha}/ci/build.yml"),
            "extra": {"project": "root/templates", "ref": "HEAD"},
        },
        {
            "context_project": "root/templates",
            "context_sha": templates_sha,
            "type": "local",
            "location": "ci/shared.yml",
            "blob": format!("{base}/templates/-/blob/{templates_sha}/ci/shared.yml"),
            "raw": format!("{base}/templates/-/raw/{templates_sha}/ci/shared.yml"),
            "extra": {},
        },
    ]);
    let lint: Value = app.root_json(&format!("/projects/{a}/ci/lint")).await;
    assert_eq!(lint["valid"], true, "{lint}");
    assert_eq!(lint["includes"], expected);
    // Content is linted at the default branch.
    let content = "include:\n  - local: ci/local.yml\n  - remote: https://example.com/x.yml\n";
    let lint = lint_content(&app, a, content).await;
    // A config that cannot be read (the remote file is refused) has no includes: GitLab's
    // `config_metadata` is empty then (lib/gitlab/ci/yaml_processor/result.rb).
    assert_eq!(lint["valid"], false, "{lint}");
    assert_eq!(lint["includes"], Value::Null);
    // One that was read but is invalid still lists them.
    let lint = lint_content(
        &app,
        a,
        "include: ci/local.yml
job:
  scrpt: x
",
    )
    .await;
    assert_eq!(lint["valid"], false, "{lint}");
    assert_eq!(lint["includes"], json!([expected[0]]), "{lint}");
    let content = "include:\n  - local: ci/local.yml\n";
    let lint = lint_content(&app, a, content).await;
    assert_eq!(lint["includes"], json!([expected[0]]), "{lint}");

    // A remote file has no blob page: its URL is its raw link.
    let (port, server) = start_file_server().await;
    allow_local_requests(&app, true).await;
    let url = format!("http://127.0.0.1:{port}/ci.yml");
    let lint = lint_content(&app, a, &format!("include: {url}\n")).await;
    assert_eq!(
        lint["includes"],
        json!([{"context_project": "root/app", "context_sha": app_sha, "type": "remote",
            "location": url, "blob": null, "raw": url, "extra": {}}]),
        "{lint}"
    );
    server.abort();
}
