//! A job's life after it is created, as GitLab runs it: `needs` ahead of stages, `when`,
//! `allow_failure`, `retry`, timeouts, cancellation, manual jobs, artifacts passed between
//! stages and downloaded by ref, leases that expire when a runner disappears, job tokens that
//! stop working when their job ends, pipelines on push, and two servers sharing one database.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::running::{
    finish, finished_pipeline, job_log, register_runner, request, start_runner, wait_for,
};
use crate::support::{Backend, TestApp};

both_backends!(
    needs_start_a_job_before_its_stage,
    when_allow_failure_retry_and_artifacts_on_the_runner,
    timeout_and_cancel_stop_the_script,
    pipelines_are_retried_and_canceled_through_the_api,
    a_job_token_works_only_while_its_job_runs,
    pushes_create_pipelines,
    artifacts_expire_and_uploads_need_the_jobs_token,
    the_project_build_timeout_is_the_default_job_timeout,
    a_manual_job_blocks_its_pipeline_only_when_it_may_not_fail,
    a_delayed_job_that_starts_a_pipeline_runs_after_start_in
);

/// A project `root/<name>` whose `main` has `config` (pushed with `ci.skip`, so the push itself
/// makes no pipeline).
pub async fn project_with(app: &TestApp, name: &str, config: &str, tmp: &std::path::Path) -> i64 {
    let project = app.create_project(&app.root_token, name).await;
    let work = local_repo(tmp, config);
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(&work, tmp, &["push", "-q", "-o", "ci.skip", &url, "main"]);
    project["id"].as_i64().unwrap()
}

pub async fn run_pipeline(app: &TestApp, id: i64) -> Value {
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

fn job<'a>(jobs: &'a [Value], name: &str) -> &'a Value {
    jobs.iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {jobs:#?}"))
}

const NEEDS: &str = r#"stages: [build, test, deploy]
build:
  stage: build
  script: [echo build]
slow_test:
  stage: test
  script: [echo test]
deploy_early:
  stage: deploy
  needs: [build]
  script: [echo deploy]
deploy_late:
  stage: deploy
  script: [echo late]
"#;

/// A job with `needs` starts as soon as what it needs is done, while its stage's
/// predecessors are still running; a job without waits for the whole earlier stage.
async fn needs_start_a_job_before_its_stage(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "needs", NEEDS, tmp.path()).await;
    let runner = register_runner(&app).await;
    run_pipeline(&app, id).await;
    let build = request(&app, &runner).await.expect("build");
    assert_eq!(build["job_info"]["name"], "build");
    assert_eq!(finish(&app, &build, "success").await.status(), 200);
    let mut names = HashSet::new();
    let first = request(&app, &runner).await.expect("a job");
    let second = request(&app, &runner).await.expect("another job");
    names.insert(first["job_info"]["name"].as_str().unwrap().to_string());
    names.insert(second["job_info"]["name"].as_str().unwrap().to_string());
    assert_eq!(
        names,
        HashSet::from(["slow_test".to_string(), "deploy_early".to_string()]),
        "deploy_early runs beside the test stage"
    );
    assert!(request(&app, &runner).await.is_none(), "deploy_late waits");
    finish(&app, &first, "success").await;
    finish(&app, &second, "success").await;
    let late = request(&app, &runner).await.expect("deploy_late");
    assert_eq!(late["job_info"]["name"], "deploy_late");
}

/// A rule makes `approve` manual; the job says nothing about `allow_failure`.
const RULE_MANUAL: &str = "stages: [build, deploy]\napprove:\n  stage: build\n  script: [echo approve]\n  rules:\n    - when: manual\ndeploy:\n  stage: deploy\n  script: [echo deploy]\n";

/// GitLab (ci/yaml `allow_failure`; lib/gitlab/ci/config/entry/job.rb `ignored?`): a job
/// written `when: manual` may fail, so the pipeline goes on past it; a rule's `when: manual`
/// leaves `allow_failure` false, so the pipeline waits for someone to play the job and shows
/// `manual` (blocked) meanwhile.
async fn a_manual_job_blocks_its_pipeline_only_when_it_may_not_fail(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let statuses = |jobs: &[Value]| -> Vec<(String, String, bool)> {
        jobs.iter()
            .map(|j| {
                let name = j["name"].as_str().unwrap_or_default().to_string();
                let status = j["status"].as_str().unwrap_or_default().to_string();
                (
                    name,
                    status,
                    j["allow_failure"].as_bool().unwrap_or_default(),
                )
            })
            .collect()
    };

    let blocking = project_with(
        &app,
        "blocking",
        RULE_MANUAL,
        tmp.path().join("a").as_path(),
    )
    .await;
    let pipeline = run_pipeline(&app, blocking).await;
    let path = format!("/projects/{blocking}/pipelines/{}", pipeline["id"]);
    let shown = wait_for(&app, &path, |p| p["status"] != "created").await;
    assert_eq!(shown["status"], "manual");
    let mut jobs = statuses(&app.root_json::<Vec<Value>>(&format!("{path}/jobs")).await);
    jobs.sort();
    assert_eq!(
        jobs,
        [
            ("approve".to_string(), "manual".to_string(), false),
            ("deploy".to_string(), "created".to_string(), false)
        ]
    );

    let job_manual = RULE_MANUAL.replace("  rules:\n    - when: manual\n", "  when: manual\n");
    let optional = project_with(
        &app,
        "optional",
        &job_manual,
        tmp.path().join("b").as_path(),
    )
    .await;
    let pipeline = run_pipeline(&app, optional).await;
    let path = format!("/projects/{optional}/pipelines/{}", pipeline["id"]);
    let shown = wait_for(&app, &path, |p| p["status"] != "created").await;
    assert_eq!(shown["status"], "pending", "the deploy stage goes on");
    let mut jobs = statuses(&app.root_json::<Vec<Value>>(&format!("{path}/jobs")).await);
    jobs.sort();
    assert_eq!(
        jobs,
        [
            ("approve".to_string(), "manual".to_string(), true),
            ("deploy".to_string(), "pending".to_string(), false)
        ]
    );
}

/// `when: delayed` in the first stage: the job is `scheduled` at once and becomes `pending`
/// `start_in` later (GitLab: ci/yaml `when: delayed`), like a delayed job after a stage.
async fn a_delayed_job_that_starts_a_pipeline_runs_after_start_in(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let config = "later:\n  when: delayed\n  start_in: 1 second\n  script: [echo later]\n";
    let id = project_with(&app, "delayed", config, tmp.path()).await;
    let pipeline = run_pipeline(&app, id).await;
    let path = format!("/projects/{id}/pipelines/{}/jobs", pipeline["id"]);
    let jobs: Vec<Value> = app.root_json(&path).await;
    assert_eq!(jobs[0]["status"], "scheduled");
    wait_for(&app, &path, |jobs| jobs[0]["status"] == "pending").await;
}

const LIFECYCLE: &str = r#"stages: [build, test, deploy]
build:
  stage: build
  script:
    - mkdir -p out
    - echo "hello from build" > out/greeting.txt
    - echo "not this" > out/debug.log
  artifacts:
    paths: [out/]
    exclude: ["out/*.log"]
    expire_in: 1 week
flaky:
  stage: test
  script: [echo trying, exit 3]
  retry: 1
  allow_failure: true
reads_artifacts:
  stage: test
  script:
    - cat out/greeting.txt
    - test ! -e out/debug.log
    - echo "unpacked files are the job's own" >> out/greeting.txt
cleanup:
  stage: deploy
  when: always
  script: [echo cleaning up]
after_failure:
  stage: deploy
  when: on_failure
  script: [echo something failed]
release:
  stage: deploy
  when: manual
  script: [echo released]
"#;

/// Pipewright's runner runs a pipeline that uses `when`, `allow_failure`, `retry` and
/// artifacts; the artifacts are downloadable by job and by ref afterwards.
async fn when_allow_failure_retry_and_artifacts_on_the_runner(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "life", LIFECYCLE, tmp.path()).await;
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let pipeline = run_pipeline(&app, id).await;
    let path = format!("/projects/{id}/pipelines/{}", pipeline["id"]);
    // The manual job leaves the pipeline waiting for nothing: it ends `success`.
    let done = wait_for(&app, &path, |p| {
        matches!(
            p["status"].as_str(),
            Some("success" | "failed" | "canceled")
        )
    })
    .await;
    let (_, jobs) = finished_pipeline(&app, id, &pipeline).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    assert_eq!(job(&jobs, "flaky")["status"], "failed");
    assert_eq!(job(&jobs, "flaky")["allow_failure"], true);
    assert_eq!(job(&jobs, "flaky")["failure_reason"], "script_failure");
    assert_eq!(job(&jobs, "reads_artifacts")["status"], "success");
    assert_eq!(job(&jobs, "cleanup")["status"], "success");
    assert_eq!(job(&jobs, "after_failure")["status"], "skipped");
    assert_eq!(job(&jobs, "release")["status"], "manual");
    let log = job_log(&app, id, &jobs, "reads_artifacts").await;
    assert!(log.contains("hello from build"), "{log}");
    assert!(log.contains("Downloading artifacts for build"), "{log}");
    let build_log = job_log(&app, id, &jobs, "build").await;
    assert!(build_log.contains("Uploading artifacts"), "{build_log}");

    // `retry: 1`: the failed attempt is kept, the second one is what the pipeline shows.
    let all: Vec<Value> = app
        .root_json(&format!("/projects/{id}/jobs?scope[]=failed"))
        .await;
    assert_eq!(all.iter().filter(|j| j["name"] == "flaky").count(), 2);

    // The build's archive: by job id, one file out of it, and by ref.
    let build = job(&jobs, "build");
    assert_eq!(build["artifacts_file"]["filename"], "artifacts.zip");
    assert!(build["artifacts_expire_at"].is_string());
    let res = app
        .get(
            &format!("/projects/{id}/jobs/{}/artifacts", build["id"]),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let zip = res.bytes().await.unwrap();
    assert_eq!(&zip[..2], b"PK");
    let res = app
        .get(
            &format!(
                "/projects/{id}/jobs/{}/artifacts/out/greeting.txt",
                build["id"]
            ),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.text().await.unwrap(), "hello from build\n");
    let res = app
        .get(
            &format!("/projects/{id}/jobs/artifacts/main/raw/out/greeting.txt?job=build"),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello from build\n");
    let res = app
        .get(
            &format!("/projects/{id}/jobs/artifacts/main/download?job=build"),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), zip);
    let res = app
        .get(
            &format!("/projects/{id}/jobs/artifacts/main/raw/out/debug.log?job=build"),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.status(), 404, "excluded files are not in the archive");
    let res = app
        .get(
            &format!("/projects/{id}/jobs/artifacts/other/download?job=build"),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.status(), 404);

    // Play the manual job.
    let release = job(&jobs, "release");
    let res = app
        .post(
            &format!("/projects/{id}/jobs/{}/play", release["id"]),
            Some(&app.root_token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let job_path = format!("/projects/{id}/jobs/{}", release["id"]);
    wait_for(&app, &job_path, |j| j["status"] == "success").await;

    // Keep, then delete the archive.
    let res = app
        .post(
            &format!("/projects/{id}/jobs/{}/artifacts/keep", build["id"]),
            Some(&app.root_token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let kept: Value = res.json().await.unwrap();
    assert!(kept["artifacts_expire_at"].is_null());
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("/projects/{id}/jobs/{}/artifacts", build["id"]),
            Some(&app.root_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .get(
            &format!("/projects/{id}/jobs/{}/artifacts", build["id"]),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.status(), 404);
    runner.abort();
}

const SLOW: &str = r#"stages: [test]
too_slow:
  stage: test
  timeout: 2 seconds
  script:
    - echo started
    - sleep 30
    - echo never
canceled:
  stage: test
  script:
    - echo waiting
    - sleep 30
    - echo never
"#;

/// A job that outlives its `timeout` fails with `job_execution_timeout`; a canceled job's
/// script is stopped by the runner.
async fn timeout_and_cancel_stop_the_script(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "slow", SLOW, tmp.path()).await;
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let pipeline = run_pipeline(&app, id).await;
    let jobs_path = format!("/projects/{id}/pipelines/{}/jobs", pipeline["id"]);
    let mut canceled = Value::Null;
    for _ in 0..100 {
        let jobs: Vec<Value> = app.root_json(&jobs_path).await;
        let j = job(&jobs, "canceled").clone();
        let log = app
            .get(
                &format!("/projects/{id}/jobs/{}/trace", j["id"]),
                Some(&app.root_token),
            )
            .await
            .text()
            .await
            .unwrap();
        if j["status"] == "running" && log.contains("\nwaiting") {
            canceled = j;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(canceled["status"], "running");
    let res = app
        .post(
            &format!("/projects/{id}/jobs/{}/cancel", canceled["id"]),
            Some(&app.root_token),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "canceled");
    let (done, jobs) = finished_pipeline(&app, id, &pipeline).await;
    // A failed job outweighs a canceled one in the pipeline's status, as on GitLab.
    assert_eq!(done["status"], "failed", "{jobs:#?}");
    assert_eq!(job(&jobs, "canceled")["status"], "canceled");
    let slow = job(&jobs, "too_slow");
    assert_eq!(slow["status"], "failed");
    assert_eq!(slow["failure_reason"], "job_execution_timeout");
    let log = job_log(&app, id, &jobs, "too_slow").await;
    assert!(log.contains("started") && !log.contains("never"), "{log}");
    // The canceled script was stopped: its log never reaches the last line, even later.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let log = job_log(&app, id, &jobs, "canceled").await;
    assert!(log.contains("waiting") && !log.contains("never"), "{log}");
    runner.abort();
}

const TWO_STAGES: &str =
    "stages: [a, b]\nfirst:\n  stage: a\n  script: [x]\nsecond:\n  stage: b\n  script: [y]\n";

/// `POST …/pipelines/:id/retry` runs the failed job again and the jobs it had skipped;
/// `POST …/pipelines/:id/cancel` cancels what has not finished.
async fn pipelines_are_retried_and_canceled_through_the_api(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "retry", TWO_STAGES, tmp.path()).await;
    let runner = register_runner(&app).await;
    let pipeline = run_pipeline(&app, id).await;
    let path = format!("/projects/{id}/pipelines/{}", pipeline["id"]);
    let first = request(&app, &runner).await.expect("first");
    finish(&app, &first, "failed").await;
    let failed: Value = app.root_json(&path).await;
    assert_eq!(failed["status"], "failed");
    assert!(request(&app, &runner).await.is_none());
    // A developer may not be able to retry a successful pipeline, but anyone can retry a failed one.
    let res = app
        .post(&format!("{path}/retry"), Some(&app.root_token), json!({}))
        .await;
    assert_eq!(res.status(), 201);
    let again = request(&app, &runner).await.expect("first, again");
    assert_eq!(again["job_info"]["name"], "first");
    assert_ne!(again["id"], first["id"], "a new attempt");
    finish(&app, &again, "success").await;
    let second = request(&app, &runner).await.expect("second");
    assert_eq!(second["job_info"]["name"], "second");
    finish(&app, &second, "success").await;
    let done: Value = app.root_json(&path).await;
    assert_eq!(done["status"], "success");
    let res = app
        .post(&format!("{path}/retry"), Some(&app.root_token), json!({}))
        .await;
    assert_eq!(res.status(), 403, "a successful pipeline is not retryable");

    // Cancel a pipeline while its first job runs: the runner hears it on its next update.
    let pipeline = run_pipeline(&app, id).await;
    let path = format!("/projects/{id}/pipelines/{}", pipeline["id"]);
    let running = request(&app, &runner).await.expect("a job");
    let res = app
        .post(&format!("{path}/cancel"), Some(&app.root_token), json!({}))
        .await;
    assert_eq!(res.status(), 201);
    let canceled: Value = res.json().await.unwrap();
    assert_eq!(canceled["status"], "canceled");
    let res = finish(&app, &running, "success").await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["job-status"], "canceled");
    let jobs: Vec<Value> = app.root_json(&format!("{path}/jobs")).await;
    assert!(jobs.iter().all(|j| j["status"] == "canceled"), "{jobs:#?}");
    // Developers may retry and cancel; Reporters may not.
    let (reporter_id, reporter) = app.create_user("reporter").await;
    app.add_member(id, reporter_id, 20).await;
    let res = app
        .post(&format!("{path}/retry"), Some(&reporter), json!({}))
        .await;
    assert_eq!(res.status(), 403);
}

/// `CI_JOB_TOKEN` authenticates `GET /job`, git and artifact downloads while its job runs, and
/// gets 401 `Job is not running` afterwards.
async fn a_job_token_works_only_while_its_job_runs(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "tokens", TWO_STAGES, tmp.path()).await;
    let runner = register_runner(&app).await;
    run_pipeline(&app, id).await;
    let job = request(&app, &runner).await.expect("a job");
    let token = job["token"].as_str().unwrap().to_string();
    let res = app
        .client
        .get(app.api("/job"))
        .header("JOB-TOKEN", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], job["id"]);
    assert_eq!(me["status"], "running");
    let res = app
        .client
        .get(format!("{}?job_token={token}", app.api("/job")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // git fetch with the job token, as the runner does.
    let repo_url = job["git_info"]["repo_url"].as_str().unwrap();
    let out = crate::git::git(tmp.path(), tmp.path(), &["ls-remote", repo_url]);
    assert!(out.status.success(), "{out:?}");

    finish(&app, &job, "success").await;
    let res = app
        .client
        .get(app.api("/job"))
        .header("JOB-TOKEN", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"message": "Job is not running"}));
    let out = crate::git::git(tmp.path(), tmp.path(), &["ls-remote", repo_url]);
    assert!(!out.status.success(), "a finished job's token cannot fetch");
    let res = app
        .client
        .get(app.api("/job"))
        .header("JOB-TOKEN", "glcbt-not-a-real-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// A push runs a pipeline with source `push` and the push's before sha; `[skip ci]` in the
/// commit message and `git push -o ci.skip` do not; `-o ci.variable=` sets a variable.
async fn pushes_create_pipelines(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "pushed", TWO_STAGES, tmp.path()).await;
    let work = tmp.path().join("work");
    let url = remote(&app, "root", &app.root_token, "root/pushed");
    let before = git_ok(&work, tmp.path(), &["rev-parse", "HEAD"]);
    git_ok(
        &work,
        tmp.path(),
        &["commit", "-q", "--allow-empty", "-m", "Docs only [skip ci]"],
    );
    git_ok(&work, tmp.path(), &["push", "-q", &url, "main"]);
    git_ok(
        &work,
        tmp.path(),
        &["commit", "-q", "--allow-empty", "-m", "Quiet"],
    );
    git_ok(
        &work,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "main"],
    );
    let skipped_head = git_ok(&work, tmp.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    git_ok(
        &work,
        tmp.path(),
        &["commit", "-q", "--allow-empty", "-m", "Build me"],
    );
    git_ok(
        &work,
        tmp.path(),
        &[
            "push",
            "-q",
            "-o",
            "ci.variable=DEPLOY_TO=staging",
            &url,
            "main",
        ],
    );
    let sha = git_ok(&work, tmp.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    let mut list = Vec::new();
    for _ in 0..100 {
        list = pipelines(&app, id).await;
        if !list.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = if list.len() == 1 {
        pipelines(&app, id).await
    } else {
        list
    };
    assert_eq!(list.len(), 1, "{list:#?}");
    let pipeline: Value = app
        .root_json(&format!("/projects/{id}/pipelines/{}", list[0]["id"]))
        .await;
    assert_eq!(pipeline["source"], "push");
    assert_eq!(pipeline["sha"], sha);
    assert_eq!(pipeline["before_sha"], skipped_head);
    assert_ne!(pipeline["before_sha"], before);
    let vars: Vec<Value> = app
        .root_json(&format!(
            "/projects/{id}/pipelines/{}/variables",
            pipeline["id"]
        ))
        .await;
    assert!(
        vars.iter()
            .any(|v| v["key"] == "DEPLOY_TO" && v["value"] == "staging"),
        "{vars:#?}"
    );
}

async fn pipelines(app: &TestApp, id: i64) -> Vec<Value> {
    app.root_json::<Vec<Value>>(&format!("/projects/{id}/pipelines"))
        .await
}

/// A runner that takes a job and goes silent: once its lease runs out the job fails with
/// `runner_system_failure`, or runs again when its `retry` says so.
mod a_silent_runner_loses_its_job {
    use super::*;

    async fn scenario(backend: Backend) {
        let app = TestApp::start_with(backend, |config| {
            config.job_lease = Duration::from_millis(500);
        })
        .await;
        let tmp = tempfile::tempdir().unwrap();
        let config = "stages: [a]\nlost:\n  stage: a\n  script: [x]\nretried:\n  stage: a\n  script: [y]\n  retry:\n    max: 1\n    when: runner_system_failure\n";
        let id = project_with(&app, "silent", config, tmp.path()).await;
        let runner = register_runner(&app).await;
        let pipeline = run_pipeline(&app, id).await;
        let a = request(&app, &runner).await.expect("a job");
        let b = request(&app, &runner).await.expect("another job");
        // The runner vanishes. Both leases expire.
        let path = format!("/projects/{id}/pipelines/{}/jobs", pipeline["id"]);
        let mut jobs: Vec<Value> = Vec::new();
        for _ in 0..100 {
            jobs = app.root_json(&path).await;
            if job(&jobs, "lost")["status"] == "failed"
                && job(&jobs, "retried")["status"] == "pending"
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            job(&jobs, "lost")["failure_reason"],
            "runner_system_failure",
            "{jobs:#?}"
        );
        assert_eq!(job(&jobs, "retried")["status"], "pending", "{jobs:#?}");
        // The late runner's report is refused.
        for j in [&a, &b] {
            let res = finish(&app, j, "success").await;
            assert_eq!(res.status(), 403);
        }
        let log = job_log(&app, id, &jobs, "lost").await;
        assert!(log.contains("the runner stopped responding"), "{log}");
        let again = request(&app, &runner).await.expect("the retry");
        assert_eq!(again["job_info"]["name"], "retried");
        finish(&app, &again, "success").await;
        let done: Value = app
            .root_json(&format!("/projects/{id}/pipelines/{}", pipeline["id"]))
            .await;
        assert_eq!(done["status"], "failed");
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

/// Two servers on one PostgreSQL database, each with runners polling it: every job is handed
/// out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_sharing_postgres_never_hand_out_a_job_twice() {
    let first = TestApp::start(Backend::Postgres).await;
    let second = first.start_replica().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = String::from("stages: [a]\n");
    for n in 0..30 {
        config.push_str(&format!("job{n}:\n  stage: a\n  script: [x]\n"));
    }
    let id = project_with(&first, "shared", &config, tmp.path()).await;
    let runner_a = register_runner(&first).await;
    let runner_b = register_runner(&first).await;
    run_pipeline(&first, id).await;
    // The second replica creates one too (with a token the first one bootstrapped).
    let res = second
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&first.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let mut workers = Vec::new();
    for (app, token) in [
        (&first, &runner_a),
        (&second, &runner_b),
        (&first, &runner_b),
        (&second, &runner_a),
    ] {
        let (url, token) = (app.url.clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut taken = Vec::new();
            loop {
                let res = client
                    .post(format!("{url}/api/v4/jobs/request"))
                    .json(&json!({"token": token}))
                    .send()
                    .await
                    .unwrap();
                if res.status() == 204 {
                    return taken;
                }
                let job: Value = res.json().await.unwrap();
                let id = job["id"].as_i64().unwrap();
                let done = client
                    .put(format!("{url}/api/v4/jobs/{id}"))
                    .json(&json!({"token": job["token"], "state": "success"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(done.status(), 200);
                taken.push(id);
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 60, "every job ran");
    assert_eq!(unique.len(), 60, "no job ran twice");
}

/// A runner long-polling one server hears at once about a pipeline created on another server
/// sharing the database (PostgreSQL `LISTEN/NOTIFY`), not only at its next periodic look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_server_is_woken_by_another() {
    let first = TestApp::start(Backend::Postgres).await;
    let second = first
        .start_replica_with(|config| {
            config.job_request_long_poll = Duration::from_secs(30);
            // No periodic look during the test: only a notification can wake the poll.
            config.job_request_recheck = Duration::from_secs(120);
        })
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&first, "woken", TWO_STAGES, tmp.path()).await;
    let runner = register_runner(&first).await;
    let (url, token) = (second.url.clone(), runner.clone());
    let poll = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/api/v4/jobs/request"))
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap()
    });
    // Let the poll find nothing and start waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run_pipeline(&first, id).await;
    let res = poll.await.unwrap();
    assert_eq!(res.status(), 201, "the waiting runner got the new job");
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["job_info"]["name"], "first");
}

/// An empty zip archive: just the end-of-central-directory record.
pub const EMPTY_ZIP: &[u8] = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

pub async fn upload(
    app: &TestApp,
    job_id: &Value,
    token: &str,
    expire_in: &str,
    data: &'static [u8],
) -> u16 {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(data).file_name("artifacts.zip"),
        )
        .text("artifact_type", "archive")
        .text("artifact_format", "zip")
        .text("expire_in", expire_in.to_string());
    app.client
        .post(app.api(&format!("/jobs/{job_id}/artifacts")))
        .header("JOB-TOKEN", token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// An archive uploaded with `expire_in: 1 second` is gone soon after; only the job's own
/// running token may upload, and only zips are accepted.
async fn artifacts_expire_and_uploads_need_the_jobs_token(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "expiry", TWO_STAGES, tmp.path()).await;
    let runner = register_runner(&app).await;
    run_pipeline(&app, id).await;
    let job = request(&app, &runner).await.expect("a job");
    let token = job["token"].as_str().unwrap();
    // Anything but the job's own token: GitLab's `authenticate_job!` 403.
    assert_eq!(
        upload(&app, &job["id"], "glcbt-wrong", "1 day", EMPTY_ZIP).await,
        403
    );
    assert_eq!(
        upload(&app, &job["id"], token, "1 day", b"not a zip at all").await,
        400
    );
    assert_eq!(
        upload(&app, &job["id"], token, "soon-ish", EMPTY_ZIP).await,
        400
    );
    assert_eq!(
        upload(&app, &job["id"], token, "1 second", EMPTY_ZIP).await,
        201
    );
    let path = format!("/projects/{id}/jobs/{}/artifacts", job["id"]);
    assert_eq!(app.get(&path, Some(&app.root_token)).await.status(), 200);
    finish(&app, &job, "success").await;
    let job_path = format!("/projects/{id}/jobs/{}", job["id"]);
    let gone = wait_for(&app, &job_path, |j| j["artifacts_file"].is_null()).await;
    assert!(gone["artifacts"].as_array().unwrap().is_empty());
    assert_eq!(app.get(&path, Some(&app.root_token)).await.status(), 404);
    // A finished job's token cannot upload any more (GitLab: 403 `Job is not running`).
    assert_eq!(
        upload(&app, &job["id"], token, "1 day", EMPTY_ZIP).await,
        403
    );
}

/// GitLab's project `build_timeout` (10 minutes to a month) is the timeout of jobs without
/// `timeout:`; the runner receives it as `runner_info.timeout`.
async fn the_project_build_timeout_is_the_default_job_timeout(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let config = "stages: [a]\nplain:\n  stage: a\n  script: [x]\nquick:\n  stage: a\n  timeout: 2 minutes\n  script: [y]\n";
    let id = project_with(&app, "timeouts", config, tmp.path()).await;
    let project: Value = app.root_json(&format!("/projects/{id}")).await;
    assert_eq!(project["build_timeout"], 3600);
    let path = format!("/projects/{id}");
    let put = |value: i64| {
        app.request(
            reqwest::Method::PUT,
            &path,
            Some(&app.root_token),
            Some(json!({"build_timeout": value})),
        )
    };
    crate::support::assert_json(
        put(599).await,
        400,
        json!({"message": {"build_timeout": ["is too short (minimum is 10 minutes)"]}}),
    )
    .await;
    let res = put(7200).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["build_timeout"], 7200);
    let runner = register_runner(&app).await;
    run_pipeline(&app, id).await;
    for _ in 0..2 {
        let job = request(&app, &runner).await.expect("a job");
        let expected = if job["job_info"]["name"] == "quick" {
            120
        } else {
            7200
        };
        assert_eq!(
            job["runner_info"]["timeout"], expected,
            "{}",
            job["job_info"]["name"]
        );
    }
}
