//! `dry_run=true` on the endpoints that create pipelines (issue 14 §6): the same checks as the
//! real request, then which jobs would run and why, with nothing stored.

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::support::TestApp;
use crate::triggering::triggerable_project;

both_backends!(
    a_dry_run_says_which_jobs_would_run_and_why_and_stores_nothing,
    a_dry_run_fails_as_the_real_request_would,
    the_api_endpoint_dry_runs_too,
);

const EXPLAINED: &str = r#"stages: [build, test, deploy]
build:
  stage: build
  script: make
test:
  stage: test
  needs: [build]
  script: make test
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
      when: never
    - if: $RUN_TESTS == "yes"
      allow_failure: true
deploy:
  stage: deploy
  script: make deploy
  rules:
    - if: $CI_COMMIT_BRANCH == "release"
    - if: $CI_PIPELINE_SOURCE == "trigger"
      when: manual
docs:
  stage: deploy
  script: make docs
  only: [tags]
nightly:
  stage: test
  script: make nightly
  rules:
    - if: $NIGHTLY
"#;

/// A project `root/<name>` whose main holds [`EXPLAINED`]; (id, trigger token).
async fn explained_project(app: &TestApp, name: &str, tmp: &std::path::Path) -> (i64, String) {
    let project = app.create_project(&app.root_token, name).await;
    let id = project["id"].as_i64().unwrap();
    let work = local_repo(tmp, EXPLAINED);
    git_ok(&work, tmp, &["branch", "-M", "main"]);
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(&work, tmp, &["push", "-q", "-o", "ci.skip", &url, "main"]);
    let trigger: Value = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "dry"}),
        )
        .await
        .json()
        .await
        .unwrap();
    (id, trigger["token"].as_str().unwrap().to_string())
}

async fn a_dry_run_says_which_jobs_would_run_and_why_and_stores_nothing(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token) = explained_project(&app, "explained", tmp.path()).await;
    let res = app
        .client
        .post(app.api(&format!("/projects/{id}/trigger/pipeline")))
        .form(&[
            ("token", token.as_str()),
            ("ref", "main"),
            ("variables[RUN_TESTS]", "yes"),
            ("dry_run", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["ref"], "main");
    assert_eq!(body["source"], "trigger");
    assert_eq!(body["sha"].as_str().unwrap().len(), 40);
    assert_eq!(
        body["jobs"],
        json!([
            {"name": "build", "stage": "build", "when": "on_success", "allow_failure": false,
             "needs": [], "reason": "only:refs [branches, tags]"},
            {"name": "test", "stage": "test", "when": "on_success", "allow_failure": true,
             "needs": ["build"], "reason": "rules[1]: if: $RUN_TESTS == \"yes\""},
            {"name": "deploy", "stage": "deploy", "when": "manual", "allow_failure": false,
             "needs": [],
             "reason": "rules[1]: if: $CI_PIPELINE_SOURCE == \"trigger\", when: manual"},
        ])
    );
    assert_eq!(
        body["excluded"],
        json!([
            {"name": "docs", "reason": "only:refs [tags] does not match"},
            {"name": "nightly", "reason": "no rule matched"},
        ])
    );
    // Nothing stored: no pipeline, the trigger unused, the next real pipeline is #1.
    let pipelines: Vec<Value> = app.root_json(&format!("/projects/{id}/pipelines")).await;
    assert!(pipelines.is_empty());
    let triggers: Vec<Value> = app.root_json(&format!("/projects/{id}/triggers")).await;
    assert_eq!(triggers[0]["last_used"], Value::Null);
    let real: Value = app
        .client
        .post(app.api(&format!("/projects/{id}/trigger/pipeline")))
        .json(&json!({"token": token, "ref": "main"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(real["iid"], 1);
    // A dry run with an Idempotency-Key neither claims nor replays it.
    let res = app
        .client
        .post(app.api(&format!(
            "/projects/{id}/trigger/pipeline?dry_run=true&token={token}&ref=main"
        )))
        .header("Idempotency-Key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .post(app.api(&format!(
            "/projects/{id}/trigger/pipeline?token={token}&ref=main"
        )))
        .header("Idempotency-Key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("idempotent-replayed").is_none());
}

async fn a_dry_run_fails_as_the_real_request_would(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "dryerrors", tmp.path()).await;
    let dry = |token: String, r#ref: &str| {
        app.client
            .post(app.api(&format!("/projects/{id}/trigger/pipeline")))
            .json(&json!({"token": token, "ref": r#ref, "dry_run": true}))
            .send()
    };
    let cases = [
        (
            "nope-token",
            "main",
            404,
            json!({"message": "404 Not Found"}),
        ),
        (
            "",
            "nope",
            400,
            json!({"message": {"base": ["Reference not found"]}}),
        ),
        (
            "",
            "no-ci",
            400,
            json!({"message": {"base": ["Missing CI config file"]}}),
        ),
        (
            "",
            "filtered",
            400,
            json!({"message": {"base": ["No stages / jobs for this pipeline."]}}),
        ),
        (
            "",
            "workflow",
            400,
            json!({"message": {"base": ["Pipeline filtered out by workflow rules."]}}),
        ),
    ];
    for (bad_token, r#ref, status, body) in cases {
        let token = if bad_token.is_empty() {
            token.clone()
        } else {
            bad_token.to_string()
        };
        let res = dry(token, r#ref).await.unwrap();
        assert_eq!(res.status(), status, "{ref}");
        assert_eq!(res.json::<Value>().await.unwrap(), body, "{ref}");
    }
    // A broken config: the real request's 422 and message, but no failed pipeline saved.
    let res = dry(token.clone(), "broken").await.unwrap();
    assert_eq!(res.status(), 422);
    let real = app
        .client
        .post(app.api(&format!("/projects/{id}/trigger/pipeline")))
        .json(&json!({"token": token, "ref": "broken"}))
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), 422);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        real.json::<Value>().await.unwrap()
    );
    let pipelines: Vec<Value> = app.root_json(&format!("/projects/{id}/pipelines")).await;
    assert_eq!(pipelines.len(), 1, "only the real request saved one");
    // `dry_run` must be a boolean.
    let res = app
        .client
        .post(app.api(&format!("/projects/{id}/trigger/pipeline")))
        .json(&json!({"token": token, "ref": "main", "dry_run": "maybe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

async fn the_api_endpoint_dry_runs_too(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, _) = explained_project(&app, "apidry", tmp.path()).await;
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main", "dry_run": true,
                   "variables": [{"key": "NIGHTLY", "value": "1"}]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["source"], "api");
    let names: Vec<&str> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["build", "nightly"]);
    assert_eq!(body["jobs"][1]["reason"], "rules[0]: if: $NIGHTLY");
    let excluded: Vec<&str> = body["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        excluded,
        [
            "no rule matched",
            "no rule matched",
            "only:refs [tags] does not match"
        ]
    );
    // A Reporter may not, dry run or not.
    let (_, reporter) = app.create_user("reporter").await;
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&reporter),
            json!({"ref": "main", "dry_run": true}),
        )
        .await;
    assert_eq!(res.status(), 404);
    let pipelines: Vec<Value> = app.root_json(&format!("/projects/{id}/pipelines")).await;
    assert!(pipelines.is_empty());
}
