//! Pipelines that reach across projects with `CI_JOB_TOKEN`, as the seeds show them: a job in
//! project A triggers project B (`source: pipeline`, linked to A's job) and downloads B's
//! artifacts from B's latest successful pipeline, and B's job token scope decides whether A
//! may do either.

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, remote};
use crate::running::{
    finish, finished_pipeline, job_log, project_in as project_with, register_runner, request,
    start_runner,
};
use crate::support::TestApp;

both_backends!(
    a_job_triggers_and_downloads_from_another_project_under_its_allowlist,
    job_token_scope_api
);

async fn run(app: &TestApp, id: i64) -> (Value, Vec<Value>) {
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    finished_pipeline(app, id, &pipeline).await
}

const B_CONFIG: &str = r#"build:
  script:
    - echo "source is $CI_PIPELINE_SOURCE"
    - echo "triggered is ${CI_PIPELINE_TRIGGERED:-unset}"
    - mkdir -p out && echo "made in B" > out/b.txt
  artifacts:
    paths: [out/]
"#;

fn a_config(b: i64) -> String {
    format!(
        r#"trigger_b:
  script:
    - curl --silent --show-error --fail-with-body --request POST --form "token=$CI_JOB_TOKEN" --form ref=main "$CI_API_V4_URL/projects/{b}/trigger/pipeline"
fetch_b:
  script:
    - curl --silent --show-error --fail-with-body --location --output b.zip "$CI_API_V4_URL/projects/{b}/jobs/artifacts/main/download?job=build&job_token=$CI_JOB_TOKEN"
    - python3 -c "import zipfile; print(zipfile.ZipFile('b.zip').read('out/b.txt').decode())"
"#
    )
}

/// The seeds' multi-project flows end to end on Pipewright's runner: without B's allowlist
/// entry A's job token gets 404 for both the trigger and the artifacts; with it, B runs a
/// pipeline with source `pipeline` linked to A's job, and A reads B's artifact.
async fn a_job_triggers_and_downloads_from_another_project_under_its_allowlist(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let b = project_with(&app, "b", B_CONFIG, tmp.path()).await;
    let a = project_with(&app, "a", &a_config(b), tmp.path()).await;
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    // B has a successful pipeline on main with an artifact.
    let (done, _) = run(&app, b).await;
    assert_eq!(done["status"], "success");

    // Without an allowlist entry in B, A's job token reaches nothing in B.
    let (done, jobs) = run(&app, a).await;
    assert_eq!(done["status"], "failed");
    for name in ["trigger_b", "fetch_b"] {
        let log = job_log(&app, a, &jobs, name).await;
        assert!(log.contains("404"), "{name}: {log}");
    }
    let b_pipelines: Vec<Value> = app.root_json(&format!("/projects/{b}/pipelines")).await;
    assert_eq!(b_pipelines.len(), 1, "no pipeline was created in B");

    // B lets A in.
    let res = app
        .post(
            &format!("/projects/{b}/job_token_scope/allowlist"),
            Some(&app.root_token),
            json!({"target_project_id": a}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let (done, jobs) = run(&app, a).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let fetched = job_log(&app, a, &jobs, "fetch_b").await;
    assert!(fetched.contains("\nmade in B"), "{fetched}");
    let trigger_job = jobs.iter().find(|j| j["name"] == "trigger_b").unwrap();

    // B's new pipeline: source `pipeline`, linked to A's job, run as A's pipeline's user.
    let b_pipelines: Vec<Value> = app.root_json(&format!("/projects/{b}/pipelines")).await;
    assert_eq!(b_pipelines.len(), 2);
    let downstream = &b_pipelines[0];
    assert_eq!(downstream["source"], "pipeline");
    let downstream: Value = app
        .root_json(&format!("/projects/{b}/pipelines/{}", downstream["id"]))
        .await;
    assert_eq!(downstream["upstream"]["job_id"], trigger_job["id"]);
    assert_eq!(downstream["upstream"]["project_id"], a);
    assert_eq!(downstream["upstream"]["pipeline_id"], done["id"]);
    assert_eq!(downstream["user"]["username"], "root");
    let (finished, b_jobs) = finished_pipeline(&app, b, &downstream).await;
    assert_eq!(finished["status"], "success");
    let log = job_log(&app, b, &b_jobs, "build").await;
    assert!(log.contains("source is pipeline"), "{log}");
    assert!(log.contains("triggered is unset"), "{log}");
    runner.abort();
}

/// The scope API, and a finished job's token refused by the trigger API.
async fn job_token_scope_api(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let b = project_with(&app, "scoped", B_CONFIG, tmp.path()).await;
    let a = project_with(&app, "caller", "job:\n  script: [x]\n", tmp.path()).await;
    let scope: Value = app
        .root_json(&format!("/projects/{b}/job_token_scope"))
        .await;
    assert_eq!(
        scope,
        json!({"inbound_enabled": true, "outbound_enabled": false})
    );
    let list: Vec<Value> = app
        .root_json(&format!("/projects/{b}/job_token_scope/allowlist"))
        .await;
    assert!(list.is_empty());
    let add = json!({"target_project_id": a});
    let path = format!("/projects/{b}/job_token_scope/allowlist");
    let res = app.post(&path, Some(&app.root_token), add.clone()).await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"source_project_id": b, "target_project_id": a})
    );
    let res = app.post(&path, Some(&app.root_token), add).await;
    assert_eq!(res.status(), 400);
    let list: Vec<Value> = app.root_json(&path).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], a);
    let res = app
        .post(
            &path,
            Some(&app.root_token),
            json!({"target_project_id": 999_999}),
        )
        .await;
    assert_eq!(res.status(), 404);

    // Developers may not see or change the scope.
    let (dev_id, dev) = app.create_user("scope-dev").await;
    app.add_member(b, dev_id, 30).await;
    assert_eq!(
        app.get(&format!("/projects/{b}/job_token_scope"), Some(&dev))
            .await
            .status(),
        403
    );

    // A job token after its job finished: 401 Job is not running.
    let runner = register_runner(&app).await;
    let res = app
        .post(
            &format!("/projects/{a}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let job = request(&app, &runner).await.expect("a job");
    let token = job["token"].as_str().unwrap().to_string();
    finish(&app, &job, "success").await;
    let res = app
        .post(
            &format!("/projects/{b}/trigger/pipeline"),
            None,
            json!({"token": token, "ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Job is not running"})
    );

    // git over HTTP with a job token reaches B while B lets A in (see the end for the rest).
    let res = app
        .post(
            &format!("/projects/{a}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let cloner = request(&app, &runner).await.expect("a job");
    let b_repo = format!(
        "{}/root/scoped.git",
        app.url.replacen(
            "http://",
            &format!(
                "http://gitlab-ci-token:{}@",
                cloner["token"].as_str().unwrap()
            ),
            1
        )
    );
    let ls_remote = || crate::git::git(tmp.path(), tmp.path(), &["ls-remote", &b_repo]);
    assert!(ls_remote().status.success(), "{:?}", ls_remote());

    // The job acts as its pipeline's user: a Developer of A who cannot see B gets 404 even
    // though B lets A in.
    let (a_dev_id, a_dev) = app.create_user("a-dev").await;
    app.add_member(a, a_dev_id, 30).await;
    let dir = tmp.path().join("caller");
    let url = remote(&app, "root", &app.root_token, "root/caller");
    git_ok(
        &dir.join("work"),
        &dir,
        &["push", "-q", "-o", "ci.skip", &url, "main:feature"],
    );
    let res = app
        .post(
            &format!("/projects/{a}/pipeline"),
            Some(&a_dev),
            json!({"ref": "feature"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let job = request(&app, &runner).await.expect("the developer's job");
    let res = app
        .post(
            &format!("/projects/{b}/trigger/pipeline"),
            None,
            json!({"token": job["token"], "ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .client
        .get(app.api(&format!(
            "/projects/{b}/jobs/artifacts/main/download?job=build"
        )))
        .header("JOB-TOKEN", job["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    finish(&app, &job, "success").await;

    // Disabling the scope, then removing the entry.
    let res = app
        .request(
            reqwest::Method::PATCH,
            &format!("/projects/{b}/job_token_scope"),
            Some(&app.root_token),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(res.status(), 204);
    let scope: Value = app
        .root_json(&format!("/projects/{b}/job_token_scope"))
        .await;
    assert_eq!(scope["inbound_enabled"], false);
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("{path}/{a}"),
            Some(&app.root_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("{path}/{a}"),
            Some(&app.root_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 404);
    // With the entry gone the scope still lets A in while it is disabled, not once enabled.
    assert!(ls_remote().status.success(), "{:?}", ls_remote());
    let res = app
        .request(
            reqwest::Method::PATCH,
            &format!("/projects/{b}/job_token_scope"),
            Some(&app.root_token),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert!(!ls_remote().status.success(), "B no longer lets A's job in");
    finish(&app, &cloner, "success").await;
}
