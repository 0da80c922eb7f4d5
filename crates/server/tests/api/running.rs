//! Running pipelines through GitLab's runner protocol, with a protocol-level runner that
//! requests jobs, streams logs and reports results the way runners do.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::TestApp;
use crate::triggering::triggerable_project;

both_backends!(
    a_triggered_pipeline_runs_stage_by_stage,
    a_failed_job_skips_later_stages
);

pub async fn register_runner(app: &TestApp) -> String {
    let res = app
        .post(
            "/user/runners",
            Some(&app.root_token),
            json!({"runner_type": "instance_type"}),
        )
        .await;
    let runner: Value = res.json().await.unwrap();
    runner["token"].as_str().unwrap().to_string()
}

/// Pipewright's own runner (the code `serve` embeds), registered as an instance runner and
/// running jobs in `builds` until the returned task is aborted.
pub async fn start_runner(
    app: &TestApp,
    builds: &std::path::Path,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let config = pipewright_runner::RunnerConfig {
        url: app.url.clone(),
        token: register_runner(app).await,
        builds_dir: builds.to_path_buf(),
        concurrency: 2,
        // Jobs are isolated as `serve` isolates them (as `nobody` when the tests run as root);
        // a kernel without Landlock still runs the other scenarios.
        isolation: pipewright_runner::Isolation::detect(&pipewright_runner::IsolationOptions {
            job_user: None,
            allow_unconfined: true,
        })
        .expect("job isolation"),
    };
    tokio::spawn(pipewright_runner::run(config, std::future::pending()))
}

/// A project `root/<name>` whose `main` holds `config`, pushed from `<tmp>/<name>/work` with
/// `ci.skip` (so the push itself starts no pipeline); its id.
pub async fn project_in(app: &TestApp, name: &str, config: &str, tmp: &std::path::Path) -> i64 {
    let project = app.create_project(&app.root_token, name).await;
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let work = crate::git::local_repo(&dir, config);
    let url = crate::git::remote(app, "root", &app.root_token, &format!("root/{name}"));
    crate::git::git_ok(&work, &dir, &["push", "-q", "-o", "ci.skip", &url, "main"]);
    project["id"].as_i64().unwrap()
}

/// `POST /jobs/request`; `None` on 204.
pub async fn request(app: &TestApp, runner: &str) -> Option<Value> {
    let res = app
        .post(
            "/jobs/request",
            None,
            json!({"token": runner, "info": {"features": {"refspecs": true}}}),
        )
        .await;
    match res.status().as_u16() {
        201 => Some(res.json().await.unwrap()),
        204 => None,
        other => panic!("jobs/request answered {other}"),
    }
}

pub async fn trace(app: &TestApp, job: &Value, start: usize, text: &str) -> reqwest::Response {
    let end = start + text.len() - 1;
    app.client
        .patch(app.api(&format!("/jobs/{}/trace", job["id"])))
        .header("JOB-TOKEN", job["token"].as_str().unwrap())
        .header("Content-Range", format!("{start}-{end}"))
        .header("Content-Type", "text/plain")
        .body(text.to_string())
        .send()
        .await
        .unwrap()
}

pub async fn finish(app: &TestApp, job: &Value, state: &str) -> reqwest::Response {
    app.request(
        Method::PUT,
        &format!("/jobs/{}", job["id"]),
        None,
        Some(json!({"token": job["token"], "state": state})),
    )
    .await
}

pub fn vars(job: &Value) -> HashMap<String, Value> {
    job["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["key"].as_str().unwrap().to_string(), v.clone()))
        .collect()
}

async fn a_triggered_pipeline_runs_stage_by_stage(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, sha) = triggerable_project(&app, "runs", tmp.path()).await;
    let runner = register_runner(&app).await;
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": token, "ref": "main", "variables": {"UPLOAD_TO_S3": "true"}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    let pipeline_path = format!("/projects/{id}/pipelines/{}", pipeline["id"]);

    let mut ran = Vec::new();
    for expected in ["run_tests", "build_package", "upload_package"] {
        let job = request(&app, &runner).await.expect("a job");
        assert_eq!(job["job_info"]["name"], expected, "stage order");
        // While it runs, nothing from the next stage is handed out.
        assert!(request(&app, &runner).await.is_none());
        let v = vars(&job);
        assert_eq!(v["CI_PIPELINE_SOURCE"]["value"], "trigger");
        assert_eq!(v["CI_PIPELINE_TRIGGERED"]["value"], "true");
        assert_eq!(v["CI_JOB_NAME"]["value"], expected);
        assert_eq!(v["CI_COMMIT_SHA"]["value"], sha);
        assert_eq!(v["UPLOAD_TO_S3"]["value"], "true");
        assert_eq!(v["UPLOAD_TO_S3"]["public"], false);
        assert_eq!(v["TRIGGER_PAYLOAD"]["file"], true);
        assert_eq!(v["CI_JOB_TOKEN"]["masked"], true);
        assert_eq!(v["CI_JOB_TOKEN"]["value"], job["token"]);
        assert!(job["token"].as_str().unwrap().starts_with("glcbt-"));
        assert_eq!(job["git_info"]["sha"], sha);
        assert!(
            job["git_info"]["repo_url"]
                .as_str()
                .unwrap()
                .contains("gitlab-ci-token:glcbt-")
        );
        let running: Value = app.root_json(&pipeline_path).await;
        assert_eq!(running["status"], "running");
        let line = format!("$ {}\nok\n", job["steps"][0]["script"][0].as_str().unwrap());
        let res = trace(&app, &job, 0, &line).await;
        assert_eq!(res.status(), 202);
        assert_eq!(res.headers()["job-status"], "running");
        // A chunk at the wrong offset is refused with the current range.
        let res = trace(&app, &job, 0, "again").await;
        assert_eq!(res.status(), 416);
        assert_eq!(
            res.headers()["range"].to_str().unwrap(),
            format!("0-{}", line.len())
        );
        let res = finish(&app, &job, "success").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["job-status"], "success");
        // A finished job's token is refused.
        assert_eq!(finish(&app, &job, "success").await.status(), 403);
        ran.push(job);
    }
    assert!(request(&app, &runner).await.is_none());
    let done: Value = app.root_json(&pipeline_path).await;
    assert_eq!(done["status"], "success");
    assert!(done["finished_at"].is_string() && done["started_at"].is_string());
    let jobs: Vec<Value> = app.root_json(&format!("{pipeline_path}/jobs")).await;
    assert!(jobs.iter().all(|j| j["status"] == "success"), "{jobs:?}");
    let log = app
        .get(
            &format!("/projects/{id}/jobs/{}/trace", ran[2]["id"]),
            Some(&app.root_token),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        log,
        "$ if [ -n \"${UPLOAD_TO_S3}\" ]; then make upload; fi\nok\n"
    );
    assert_eq!(
        app.post("/jobs/request", None, json!({"token": "glrt-wrong"}))
            .await
            .status(),
        403
    );
}

async fn a_failed_job_skips_later_stages(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "fails", tmp.path()).await;
    let runner = register_runner(&app).await;
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": token, "ref": "main"}),
        )
        .await;
    let pipeline: Value = res.json().await.unwrap();
    let job = request(&app, &runner).await.expect("first job");
    assert_eq!(job["job_info"]["name"], "run_tests");
    assert_eq!(finish(&app, &job, "failed").await.status(), 200);
    assert!(
        request(&app, &runner).await.is_none(),
        "later stages do not run"
    );
    let path = format!("/projects/{id}/pipelines/{}", pipeline["id"]);
    let done: Value = app.root_json(&path).await;
    assert_eq!(done["status"], "failed");
    let jobs: Vec<Value> = app.root_json(&format!("{path}/jobs")).await;
    let statuses: Vec<&str> = jobs.iter().map(|j| j["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "skipped", "skipped"]);
    // The runner said `failed` and gave no reason: GitLab records `unknown_failure`
    // (`app/services/ci/update_build_state_service.rb`: `params[:failure_reason] ||
    // :unknown_failure`), not the script's failure.
    assert_eq!(jobs[0]["failure_reason"], "unknown_failure");
}

mod long_poll {
    use super::*;
    use crate::support::Backend;

    /// A runner waiting in a long poll gets a newly triggered job at once, not at the poll's end.
    async fn scenario(backend: Backend) {
        let app = TestApp::start_with(backend, |c| {
            c.job_request_long_poll = std::time::Duration::from_secs(30)
        })
        .await;
        let tmp = tempfile::tempdir().unwrap();
        let (id, token, _) = triggerable_project(&app, "waiting", tmp.path()).await;
        let runner = register_runner(&app).await;
        let client = app.client.clone();
        let url = app.api("/jobs/request");
        let waiting = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let res = client
                .post(url)
                .json(&json!({"token": runner}))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), started.elapsed())
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let res = app
            .post(
                &format!("/projects/{id}/trigger/pipeline"),
                None,
                json!({"token": token, "ref": "main"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let (status, waited) = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 201);
        assert!(
            waited < std::time::Duration::from_secs(10),
            "woken by the trigger, not the timeout: {waited:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        scenario(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        scenario(Backend::Postgres).await
    }
}

both_backends!(the_seed_pipeline_runs_end_to_end_on_pipewrights_runner);

/// The seeds' three-stage config plus a job that prints the webhook payload.
fn seed_config() -> String {
    format!(
        "{}{}",
        crate::triggering::UPLOAD_CONFIG,
        r#"
show_payload:
  stage: package
  script:
    - cat $TRIGGER_PAYLOAD
    - echo "token is $CI_JOB_TOKEN"
"#
    )
}

pub const MAKEFILE: &str = "test:\n\t@echo tests passed\nbuild:\n\t@echo package built\nupload:\n\t@echo uploading package to S3\n";

pub async fn job_log(app: &TestApp, project: i64, jobs: &[Value], name: &str) -> String {
    let job = jobs.iter().find(|j| j["name"] == name).unwrap();
    app.get(
        &format!("/projects/{project}/jobs/{}/trace", job["id"]),
        Some(&app.root_token),
    )
    .await
    .text()
    .await
    .unwrap()
}

/// Waits for a pipeline to finish; returns it and its jobs.
pub async fn finished_pipeline(
    app: &TestApp,
    project: i64,
    pipeline: &Value,
) -> (Value, Vec<Value>) {
    let path = format!("/projects/{project}/pipelines/{}", pipeline["id"]);
    let done = wait_for(app, &path, |p| {
        matches!(
            p["status"].as_str(),
            Some("success" | "failed" | "canceled" | "skipped")
        )
    })
    .await;
    let jobs: Vec<Value> = app.root_json(&format!("{path}/jobs")).await;
    (done, jobs)
}

pub async fn wait_for(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    // A minute: a loaded two-core CI machine runs confined jobs of many tests at once.
    for _ in 0..600 {
        let v: Value = app.root_json(path).await;
        if done(&v) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {path}");
}

/// The specification's three-stage example, fired by a webhook with `UPLOAD_TO_S3`, run by
/// Pipewright's own runner (the code the embedded runner uses): `make upload` runs only when
/// asked, `cat $TRIGGER_PAYLOAD` prints the webhook body, and the job token never reaches a log.
async fn the_seed_pipeline_runs_end_to_end_on_pipewrights_runner(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let project = app.create_project(&app.root_token, "seed").await;
    let id = project["id"].as_i64().unwrap();
    let work = crate::git::local_repo(tmp.path(), &seed_config());
    std::fs::write(work.join("Makefile"), MAKEFILE).unwrap();
    crate::git::git_ok(&work, tmp.path(), &["add", "."]);
    crate::git::git_ok(&work, tmp.path(), &["commit", "-q", "-m", "Makefile"]);
    crate::git::git_ok(
        &work,
        tmp.path(),
        &[
            "push",
            "-q",
            "-o",
            "ci.skip",
            &crate::git::remote(&app, "root", &app.root_token, "root/seed"),
            "main",
        ],
    );
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "seed"}),
        )
        .await;
    let trigger: Value = res.json().await.unwrap();
    let token = trigger["token"].as_str().unwrap().to_string();

    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;

    let hook = format!(
        "{}/api/v4/projects/{id}/ref/main/trigger/pipeline?token={token}&variables[UPLOAD_TO_S3]=true",
        app.url
    );
    let res = app
        .client
        .post(hook)
        .header("X-Gitlab-Event", "Tag Push Hook")
        .json(&json!({"object_kind": "tag_push", "ref": "refs/tags/v1.0", "project": {"path_with_namespace": "group/a"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    let (done, jobs) = finished_pipeline(&app, id, &pipeline).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let tests = job_log(&app, id, &jobs, "run_tests").await;
    assert!(
        tests.contains("$ make test") && tests.contains("tests passed"),
        "{tests}"
    );
    let upload = job_log(&app, id, &jobs, "upload_package").await;
    assert!(upload.contains("uploading package to S3"), "{upload}");
    let payload = job_log(&app, id, &jobs, "show_payload").await;
    assert!(
        payload.contains("\"object_kind\":\"tag_push\""),
        "{payload}"
    );
    assert!(payload.contains("\"ref\":\"main\""), "{payload}");
    assert!(payload.contains("token is [MASKED]"), "{payload}");
    assert!(
        !payload.contains("glcbt-"),
        "the job token must never appear in a log"
    );
    // Stage order held: each job started after the previous stage finished.
    let finished = |name: &str| {
        jobs.iter().find(|j| j["name"] == name).unwrap()["finished_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let started = |name: &str| {
        jobs.iter().find(|j| j["name"] == name).unwrap()["started_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(started("build_package") >= finished("run_tests"));
    assert!(started("upload_package") >= finished("build_package"));

    // Without the variable the upload does not happen.
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": token, "ref": "main"}),
        )
        .await;
    let second: Value = res.json().await.unwrap();
    let (_, jobs) = finished_pipeline(&app, id, &second).await;
    let upload = job_log(&app, id, &jobs, "upload_package").await;
    assert!(!upload.contains("uploading package"), "{upload}");
    runner.abort();
}

/// A job's payload has the shape of GitLab's `JobRequest::Response` entity: images and services
/// as objects (a string is a name; one without a name is dropped, as GitLab drops it; `docker:`
/// becomes `executor_opts`), variables with `public` and `masked` always and `file` only when
/// true, `artifacts` and `dependencies` present — and it reads back as the protocol's types
/// into exactly the JSON that was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_payload_has_the_shape_of_gitlabs_job_request_entity() {
    let app = TestApp::start(crate::support::Backend::Sqlite).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = "\
build:
  image: ruby:3.3
  services:
    - postgres:16
    - name: redis:7
      alias: cache
      docker: {platform: linux/amd64}
    - alias: nameless
  variables: {GREETING: hello}
  script: [make]
  artifacts: {paths: [dist/], expire_in: 1 week}
";
    let id = project_in(&app, "shape", config, tmp.path()).await;
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let runner = register_runner(&app).await;
    let job = request(&app, &runner).await.expect("a job");

    assert_eq!(
        job["image"],
        json!({"name": "ruby:3.3", "entrypoint": null, "ports": null, "executor_opts": null,
               "pull_policy": null})
    );
    let services = job["services"].as_array().unwrap();
    assert_eq!(
        services.len(),
        2,
        "the nameless service is dropped: {services:?}"
    );
    assert_eq!(services[0]["name"], "postgres:16");
    assert_eq!(services[1]["alias"], "cache");
    assert_eq!(
        services[1]["executor_opts"],
        json!({"docker": {"platform": "linux/amd64"}})
    );
    for variable in job["variables"].as_array().unwrap() {
        assert!(variable["public"].is_boolean(), "{variable}");
        assert!(variable["masked"].is_boolean(), "{variable}");
        assert_ne!(variable.get("file"), Some(&json!(false)), "{variable}");
    }
    assert_eq!(vars(&job)["GREETING"]["value"], "hello");
    assert_eq!(job["dependencies"], json!([]));
    assert_eq!(job["artifacts"][0]["paths"], json!(["dist/"]));
    assert_eq!(job["artifacts"][0]["expire_in"], "1 week");
    assert_eq!(job["steps"][1]["name"], "after_script");

    let typed: pipewright_runner_proto::JobPayload =
        serde_json::from_value(job.clone()).expect("the payload reads as the protocol's types");
    assert_eq!(serde_json::to_value(&typed).unwrap(), job);
}

/// `PUT /jobs/:id` reads the same from a form as from JSON (GitLab merges both): an unknown
/// `state` is refused with Grape's message, and a failure's reason is recorded as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_reports_a_failure_with_a_form_and_an_unknown_state_is_refused() {
    let app = TestApp::start(crate::support::Backend::Sqlite).await;
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "forms", tmp.path()).await;
    let runner = register_runner(&app).await;
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": token, "ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let job = request(&app, &runner).await.expect("a job");
    let put = |form: Vec<(&'static str, String)>| {
        app.client
            .put(app.api(&format!("/jobs/{}", job["id"])))
            .form(&form)
            .send()
    };
    let job_token = job["token"].as_str().unwrap().to_string();

    let res = put(vec![
        ("token", job_token.clone()),
        ("state", "paused".into()),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "state does not have a valid value"})
    );

    let res = put(vec![
        ("token", job_token),
        ("state", "failed".into()),
        ("failure_reason", "runner_system_failure".into()),
        ("exit_code", "3".into()),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["job-status"], "failed");
    let jobs: Vec<Value> = app
        .root_json(&format!("/projects/{id}/jobs?scope=failed"))
        .await;
    assert_eq!(jobs[0]["failure_reason"], "runner_system_failure");
}
