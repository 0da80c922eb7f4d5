//! `trigger:` jobs: a multi-project bridge with `strategy: depend` mirrors the downstream
//! pipeline, a child pipeline runs from a file of the same commit, YAML variables are
//! forwarded, and a bridge to a missing project fails with a reason instead of the server.

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::running::{finished_pipeline, job_log, start_runner, wait_for};
use crate::support::TestApp;

both_backends!(
    bridges_start_downstream_and_child_pipelines,
    a_bridge_in_the_first_stage_starts_with_its_pipeline
);

const UPSTREAM: &str = r#"stages: [build, deploy]
build:
  stage: build
  script: [echo build]
deploy_b:
  stage: deploy
  variables:
    DEPLOY_ENV: staging
  trigger:
    project: root/downstream
    strategy: depend
child:
  stage: deploy
  trigger:
    include: ci/child.yml
    strategy: depend
missing:
  stage: deploy
  allow_failure: true
  trigger:
    project: root/does-not-exist
"#;

const CHILD: &str = "child_job:\n  script:\n    - echo \"child from $CI_PIPELINE_SOURCE\"\n";
const DOWNSTREAM: &str =
    "b_job:\n  script:\n    - echo \"B got $DEPLOY_ENV from $CI_PIPELINE_SOURCE\"\n";

async fn bridges_start_downstream_and_child_pipelines(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let b = app.create_project(&app.root_token, "downstream").await["id"]
        .as_i64()
        .unwrap();
    let dir_b = tmp.path().join("b");
    std::fs::create_dir_all(&dir_b).unwrap();
    let work_b = local_repo(&dir_b, DOWNSTREAM);
    let url_b = remote(&app, "root", &app.root_token, "root/downstream");
    git_ok(
        &work_b,
        &dir_b,
        &["push", "-q", "-o", "ci.skip", &url_b, "main"],
    );

    let a = app.create_project(&app.root_token, "upstream").await["id"]
        .as_i64()
        .unwrap();
    let dir_a = tmp.path().join("a");
    std::fs::create_dir_all(&dir_a).unwrap();
    let work_a = local_repo(&dir_a, UPSTREAM);
    std::fs::create_dir_all(work_a.join("ci")).unwrap();
    std::fs::write(work_a.join("ci/child.yml"), CHILD).unwrap();
    git_ok(&work_a, &dir_a, &["add", "."]);
    git_ok(&work_a, &dir_a, &["commit", "-q", "-m", "Child pipeline"]);
    let url_a = remote(&app, "root", &app.root_token, "root/upstream");
    git_ok(
        &work_a,
        &dir_a,
        &["push", "-q", "-o", "ci.skip", &url_a, "main"],
    );

    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let res = app
        .post(
            &format!("/projects/{a}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    let (done, jobs) = finished_pipeline(&app, a, &pipeline).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let status = |name: &str| jobs.iter().find(|j| j["name"] == name).unwrap()["status"].clone();
    assert_eq!(status("deploy_b"), "success");
    assert_eq!(status("child"), "success");
    assert_eq!(status("missing"), "failed");
    let missing = jobs.iter().find(|j| j["name"] == "missing").unwrap();
    assert_eq!(
        missing["failure_reason"],
        "downstream_bridge_project_not_found"
    );
    let log = job_log(&app, a, &jobs, "missing").await;
    assert!(log.contains("could not be found"), "{log}");

    let bridges: Vec<Value> = app
        .root_json(&format!(
            "/projects/{a}/pipelines/{}/bridges",
            pipeline["id"]
        ))
        .await;
    assert_eq!(bridges.len(), 3);
    let bridge = |name: &str| bridges.iter().find(|j| j["name"] == name).unwrap().clone();
    assert!(bridge("missing")["downstream_pipeline"].is_null());
    let downstream = bridge("deploy_b")["downstream_pipeline"].clone();
    assert_eq!(downstream["project_id"], b);
    assert_eq!(downstream["source"], "pipeline");
    assert_eq!(downstream["status"], "success");
    let (_, b_jobs) = finished_pipeline(&app, b, &downstream).await;
    let log = job_log(&app, b, &b_jobs, "b_job").await;
    assert!(log.contains("B got staging from pipeline"), "{log}");
    let child = bridge("child")["downstream_pipeline"].clone();
    assert_eq!(child["project_id"], a);
    assert_eq!(child["source"], "parent_pipeline");
    assert_eq!(child["sha"], pipeline["sha"]);
    let (_, child_jobs) = finished_pipeline(&app, a, &child).await;
    let log = job_log(&app, a, &child_jobs, "child_job").await;
    assert!(log.contains("child from parent_pipeline"), "{log}");
    let upstream_link: Value = app
        .root_json(&format!("/projects/{b}/pipelines/{}", downstream["id"]))
        .await;
    assert_eq!(
        upstream_link["upstream"]["job_id"],
        bridge("deploy_b")["id"]
    );
    runner.abort();
}

/// A `trigger:` job with nothing before it starts as soon as its pipeline is created, like a
/// first-stage job goes to a runner: no runner is involved, the server starts it.
async fn a_bridge_in_the_first_stage_starts_with_its_pipeline(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let config = "stages: [deploy, after]\nchild:\n  stage: deploy\n  trigger:\n    include: ci/child.yml\nlater:\n  stage: after\n  script: [echo later]\n";
    let id = app.create_project(&app.root_token, "first").await["id"]
        .as_i64()
        .unwrap();
    let work = local_repo(tmp.path(), config);
    std::fs::create_dir_all(work.join("ci")).unwrap();
    std::fs::write(work.join("ci/child.yml"), CHILD).unwrap();
    git_ok(&work, tmp.path(), &["add", "."]);
    git_ok(&work, tmp.path(), &["commit", "-q", "-m", "Child"]);
    let url = remote(&app, "root", &app.root_token, "root/first");
    git_ok(
        &work,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "main"],
    );

    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    let path = format!("/projects/{id}/pipelines/{}/bridges", pipeline["id"]);
    let bridges = wait_for(&app, &path, |b| b[0]["status"] == "success").await;
    let child = &bridges[0]["downstream_pipeline"];
    assert_eq!(child["source"], "parent_pipeline");
    // The next stage was unblocked for runners.
    let jobs: Vec<Value> = app
        .root_json(&format!("/projects/{id}/pipelines/{}/jobs", pipeline["id"]))
        .await;
    let later = jobs.iter().find(|j| j["name"] == "later").unwrap();
    assert_eq!(later["status"], "pending");
}
