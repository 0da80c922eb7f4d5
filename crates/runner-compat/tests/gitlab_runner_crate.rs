//! A runner built on Collabora's `gitlab-runner` crate (crates.io) against an in-process
//! Pipewright: it authenticates with a `glrt-` token created through Pipewright's API, takes
//! jobs from `POST /api/v4/jobs/request`, streams its log with `outputln!` (which the crate
//! sends as `PATCH /api/v4/jobs/:id/trace`) and reports success and failure with
//! `PUT /api/v4/jobs/:id`.
//!
//! The job handler interprets only `echo X` and `exit N`: this test is about the protocol, not
//! about executing shell scripts.

// Scenarios read like the docs, step after step, even when that takes more than the
// 120 lines product code keeps to.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use gitlab_runner::job::Job;
use gitlab_runner::{GitlabLayer, JobHandler, JobResult, Phase, RunnerBuilder, outputln};
use serde_json::{Value, json};
use tracing::instrument::WithSubscriber;
use tracing_subscriber::prelude::*;

const ROOT_PASSWORD: &str = "a-long-root-password-1";
const ROOT_TOKEN: &str = "glpat-compat-root-token-0001";

/// Two stages; `broken` fails but may, so the pipeline still succeeds.
const CI_CONFIG: &str = "\
stages: [build, test]
build:
  stage: build
  script: [\"echo building\"]
test:
  stage: test
  script: [\"echo testing\"]
broken:
  stage: test
  script: [\"exit 1\"]
  allow_failure: true
";

/// A Pipewright server on an ephemeral port, with a root user whose token is `ROOT_TOKEN`.
struct Pipewright {
    url: String,
    http: reqwest::Client,
}

impl Pipewright {
    async fn start(dir: &Path) -> Result<Pipewright> {
        let store = pipewright_store::connect(&format!(
            "sqlite://{}",
            dir.join("pipewright.sqlite3").display()
        ))
        .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut config = pipewright_server::ServerConfig::new(&url, dir);
        config.job_request_long_poll = Duration::from_millis(200);
        let state = pipewright_server::app_state(config, store)?;
        pipewright_server::bootstrap::ensure_root(&state, Some(ROOT_PASSWORD), Some(ROOT_TOKEN))
            .await?;
        tokio::spawn(pipewright_server::serve(
            listener,
            state,
            std::future::pending(),
        ));
        Ok(Pipewright {
            url,
            http: reqwest::Client::new(),
        })
    }

    /// An API call as root; fails unless the answer has status `expected`.
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Result<reqwest::Response> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/v4{path}", self.url))
            .header("PRIVATE-TOKEN", ROOT_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        if status != expected {
            let text = response.text().await.unwrap_or_default();
            bail!("{method} {path} answered {status} (expected {expected}): {text}");
        }
        Ok(response)
    }

    async fn get_json(&self, path: &str) -> Result<Value> {
        let response = self.api(reqwest::Method::GET, path, None, 200).await?;
        Ok(response.json().await?)
    }

    async fn post_json(&self, path: &str, body: Value) -> Result<Value> {
        let response = self
            .api(reqwest::Method::POST, path, Some(body), 201)
            .await?;
        Ok(response.json().await?)
    }

    async fn get_text(&self, path: &str) -> Result<String> {
        let response = self.api(reqwest::Method::GET, path, None, 200).await?;
        Ok(response.text().await?)
    }
}

/// Runs the real `git` with no user or system configuration and no prompts.
async fn git(dir: &Path, home: &Path, args: &[&str]) -> Result<()> {
    let out = tokio::process::Command::new("git")
        .args([
            "-c",
            "user.name=Pipewright Compat",
            "-c",
            "user.email=compat@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .output()
        .await
        .context("run git")?;
    ensure!(
        out.status.success(),
        "git {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// What the handler saw of one job, through the crate's `Job` API.
#[derive(Debug, Clone)]
struct Seen {
    name: Option<String>,
    /// `CI_JOB_TOKEN` as the crate displays it (masked variables show as `<MASKED>`).
    job_token_display: Option<String>,
    /// `CI_CONFIG_PATH`, which GitLab always sends (issue 15 §4: a third-party runner failed
    /// every job without it).
    config_path: Option<String>,
    phases: Vec<Phase>,
}

type SeenJobs = Arc<Mutex<BTreeMap<u64, Seen>>>;

/// The job handler: `echo X` prints X to the job log, `exit N` ends the step with N. Like
/// the third-party runner of issue 15, it refuses a job without `CI_CONFIG_PATH`.
struct Interpreter {
    id: u64,
    seen: SeenJobs,
    has_config_path: bool,
}

impl Interpreter {
    fn new(job: &Job, seen: SeenJobs) -> Interpreter {
        let record = Seen {
            name: job.variable("CI_JOB_NAME").map(|v| v.value().to_string()),
            job_token_display: job.variable("CI_JOB_TOKEN").map(|v| v.to_string()),
            config_path: job
                .variable("CI_CONFIG_PATH")
                .map(|v| v.value().to_string()),
            phases: Vec::new(),
        };
        let has_config_path = record.config_path.is_some();
        if let Ok(mut seen) = seen.lock() {
            seen.insert(job.id(), record);
        }
        Interpreter {
            id: job.id(),
            seen,
            has_config_path,
        }
    }
}

#[async_trait::async_trait]
impl JobHandler for Interpreter {
    async fn step(&mut self, script: &[String], phase: Phase) -> JobResult {
        if let Ok(mut seen) = self.seen.lock()
            && let Some(job) = seen.get_mut(&self.id)
        {
            job.phases.push(phase);
        }
        if !self.has_config_path {
            outputln!("CI_CONFIG_PATH is not set: is this a GitLab server?");
            return Err(());
        }
        for line in script {
            outputln!("$ {line}");
            let line = line.trim();
            if line == "echo" {
                outputln!("");
            } else if let Some(text) = line.strip_prefix("echo ") {
                outputln!("{text}");
            } else if let Some(code) = line.strip_prefix("exit ") {
                let code: i32 = code.trim().parse().unwrap_or(1);
                if code != 0 {
                    outputln!("exit status {code}");
                    return Err(());
                }
                return Ok(());
            } else {
                outputln!("unsupported command: {line}");
                return Err(());
            }
        }
        Ok(())
    }
}

/// A project `root/compat` holding `CI_CONFIG` on `main`, a pipeline for it and an instance
/// runner's token: `(project id, pipeline path, runner token)`.
async fn pipeline_and_runner(server: &Pipewright, tmp: &Path) -> Result<(i64, String, String)> {
    // A project with the CI config on `main`, pushed with the real git client. `[skip ci]`
    // keeps a push pipeline (should the server create one) out of the runner's way; the API
    // pipeline below ignores it, as GitLab's does.
    let project = server
        .post_json("/projects", json!({"name": "compat"}))
        .await?;
    let project_id = project["id"].as_i64().context("project id")?;
    let work = tmp.join("work");
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join(".gitlab-ci.yml"), CI_CONFIG)?;
    git(&work, tmp, &["init", "-q"]).await?;
    git(&work, tmp, &["add", "."]).await?;
    git(
        &work,
        tmp,
        &["commit", "-q", "-m", "Add CI config [skip ci]"],
    )
    .await?;
    let host = server.url.trim_start_matches("http://");
    let remote = format!("http://root:{ROOT_TOKEN}@{host}/root/compat.git");
    git(&work, tmp, &["push", "-q", &remote, "main"]).await?;

    // The runner token, created the way GitLab ≥ 16 does it.
    let runner = server
        .post_json(
            "/user/runners",
            json!({"runner_type": "instance_type", "run_untagged": true}),
        )
        .await?;
    let runner_token = runner["token"]
        .as_str()
        .context("runner token")?
        .to_string();
    ensure!(runner_token.starts_with("glrt-"), "token {runner_token}");

    let pipeline = server
        .post_json(
            &format!("/projects/{project_id}/pipeline"),
            json!({"ref": "main"}),
        )
        .await?;
    let pipeline_id = pipeline["id"].as_i64().context("pipeline id")?;
    let pipeline_path = format!("/projects/{project_id}/pipelines/{pipeline_id}");

    Ok((project_id, pipeline_path, runner_token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_runner_crate_runner_runs_a_pipeline() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let server = Pipewright::start(&data_dir).await?;
    let (project_id, pipeline_path, runner_token) =
        pipeline_and_runner(&server, tmp.path()).await?;

    // The runner. The crate's log lines reach the job log through its tracing layer, so the
    // runner runs under a subscriber with that layer (plus the crate's own warnings, printed
    // in the test's output, where a protocol error would show up).
    let (layer, jobs) = GitlabLayer::new();
    let subscriber = tracing_subscriber::registry().with(layer).with(
        tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(tracing_subscriber::EnvFilter::new("gitlab_runner=info")),
    );
    let build_dir = tmp.path().join("builds");
    std::fs::create_dir_all(&build_dir)?;
    let mut runner = RunnerBuilder::new(
        url::Url::parse(&server.url)?,
        runner_token,
        &build_dir,
        jobs,
    )
    .version("compat-test")
    .build()
    .await;

    let seen: SeenJobs = Arc::default();
    let driven = {
        let seen = seen.clone();
        let (server, pipeline_path, runner) = (&server, &pipeline_path, &mut runner);
        async move {
            // Polls the way `Runner::run` does, but checks the pipeline between polls and stops
            // once it has finished (or after a minute).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut request_errors = Vec::new();
            let mut taken = 0;
            let status = loop {
                runner.wait_for_space(2).await;
                let seen = seen.clone();
                match runner
                    .request_job(move |job| async move { Ok(Interpreter::new(&job, seen)) })
                    .await
                {
                    Ok(true) => {
                        taken += 1;
                        continue;
                    }
                    Ok(false) => {}
                    Err(err) => request_errors.push(format!("{err:?}")),
                }
                let status = server.get_json(pipeline_path).await?["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if matches!(
                    status.as_str(),
                    "success" | "failed" | "canceled" | "skipped"
                ) {
                    break status;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "pipeline still {status} after 60 s; {taken} jobs taken; \
                         request errors: {request_errors:?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            // Let the job tasks finish their last trace and update before stopping.
            tokio::time::timeout(Duration::from_secs(10), runner.drain())
                .await
                .context("runner did not drain")?;
            ensure!(
                request_errors.is_empty(),
                "POST /jobs/request failed in the crate: {request_errors:?}"
            );
            Ok::<_, anyhow::Error>((status, taken))
        }
        .with_subscriber(subscriber)
    };
    let (status, taken) = driven.await?;

    assert_eq!(taken, 3, "the runner takes build, test and broken");
    assert_eq!(
        status, "success",
        "broken fails but is allowed to, so the pipeline succeeds"
    );
    // GitLab: `lib/gitlab/ci/status/success_warning.rb`.
    let pipeline = server.get_json(&pipeline_path).await?;
    assert_eq!(
        pipeline["detailed_status"]["group"], "success-with-warnings",
        "{pipeline}"
    );

    let jobs = server
        .get_json(&format!("{pipeline_path}/jobs"))
        .await?
        .as_array()
        .cloned()
        .context("jobs list")?;
    let by_name: BTreeMap<String, Value> = jobs
        .into_iter()
        .filter_map(|j| Some((j["name"].as_str()?.to_string(), j)))
        .collect();
    let job = |name: &str| by_name.get(name).with_context(|| format!("job {name}"));
    let trace = |id: &Value| format!("/projects/{project_id}/jobs/{id}/trace");

    let build = job("build")?;
    assert_eq!(build["status"], "success", "build: {build}");
    let build_log = server.get_text(&trace(&build["id"])).await?;
    assert!(
        build_log.contains("$ echo building\nbuilding\n"),
        "build log: {build_log:?}"
    );

    let test = job("test")?;
    assert_eq!(test["status"], "success", "test: {test}");
    let test_log = server.get_text(&trace(&test["id"])).await?;
    assert!(
        test_log.contains("$ echo testing\ntesting\n"),
        "test log: {test_log:?}"
    );

    let broken = job("broken")?;
    assert_eq!(broken["status"], "failed", "broken: {broken}");
    assert_eq!(broken["allow_failure"], true, "broken: {broken}");
    let broken_log = server.get_text(&trace(&broken["id"])).await?;
    assert!(
        broken_log.contains("$ exit 1\nexit status 1\n"),
        "broken log: {broken_log:?}"
    );

    // What the crate parsed from Pipewright's job payload: the variables (a masked one shows
    // masked) and both steps, script then after_script.
    let seen = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (name, job) in [("build", build), ("test", test), ("broken", broken)] {
        let id = job["id"].as_u64().context("job id")?;
        let record = seen.get(&id).with_context(|| format!("{name} not seen"))?;
        assert_eq!(record.name.as_deref(), Some(name), "{record:?}");
        assert_eq!(
            record.config_path.as_deref(),
            Some(".gitlab-ci.yml"),
            "{record:?}"
        );
        assert_eq!(
            record.job_token_display.as_deref(),
            Some("<MASKED>"),
            "{record:?}"
        );
        assert_eq!(
            record.phases,
            [Phase::Script, Phase::AfterScript],
            "{record:?}"
        );
    }
    Ok(())
}

/// A runner registered the legacy way (`gitlab-runner register --registration-token`,
/// `POST /api/v4/runners`), as GitLab 17 allows it: refused with 410 until an administrator
/// turns registration tokens on, then an instance runner for the instance's token.
async fn registered_with_a_registration_token(server: &Pipewright) -> Result<String> {
    let token = server
        .post_json("/runners/reset_registration_token", json!({}))
        .await?["token"]
        .as_str()
        .context("registration token")?
        .to_string();
    let register = || {
        server
            .http
            .post(format!("{}/api/v4/runners", server.url))
            .json(
                &json!({"token": token, "description": "third-party", "info": {"name": "compat"}}),
            )
            .send()
    };
    let refused = register().await?;
    assert_eq!(
        refused.status(),
        410,
        "registration tokens are off by default"
    );
    server
        .api(
            reqwest::Method::PUT,
            "/application/settings",
            Some(json!({"allow_runner_registration_token": true})),
            200,
        )
        .await?;
    let registered = register().await?;
    assert_eq!(registered.status(), 201);
    let body: Value = registered.json().await?;
    Ok(body["token"].as_str().context("runner token")?.to_string())
}

/// What the crate's client sends and requires, spoken with the protocol's types by hand: its
/// poll (token, a 14-character `system_id`, `info` with its two features) gets a payload with
/// every key its `JobResponse` requires, that payload reads as Pipewright's `JobPayload` and
/// writes back to the same JSON, and the crate's final `PUT` (`token` and `state` alone)
/// finishes the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_payload_carries_what_the_gitlab_runner_crate_requires() -> Result<()> {
    use pipewright_runner_proto::{Features, JobPayload, JobRequest, JobState, JobUpdate};

    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let server = Pipewright::start(&data_dir).await?;
    let (_, _, _) = pipeline_and_runner(&server, tmp.path()).await?;
    let runner_token = registered_with_a_registration_token(&server).await?;

    // clients.md §4.1: the crate's poll.
    let poll = JobRequest {
        token: runner_token.into(),
        system_id: Some("s_0123456789ab".into()),
        info: Some(pipewright_runner_proto::VersionInfo {
            version: Some("0.0.1".into()),
            features: Features::supported(["upload_multiple_artifacts", "refspecs"]),
            ..Default::default()
        }),
        ..JobRequest::default()
    };
    let response = server
        .http
        .post(format!("{}/api/v4/jobs/request", server.url))
        .json(&poll)
        .send()
        .await?;
    ensure!(response.status() == 201, "poll: {}", response.status());
    let sent: Value = response.json().await?;

    // clients.md §4.2: what the crate's `JobResponse` fails without.
    for key in [
        "id",
        "token",
        "allow_git_fetch",
        "variables",
        "steps",
        "dependencies",
        "artifacts",
    ] {
        ensure!(sent.get(key).is_some(), "{key} missing from {sent}");
    }
    for variable in sent["variables"].as_array().context("variables")? {
        ensure!(
            variable["key"].is_string()
                && variable["public"].is_boolean()
                && variable["masked"].is_boolean(),
            "variable without key, public or masked: {variable}"
        );
    }
    let payload: JobPayload = serde_json::from_value(sent.clone())?;
    assert_eq!(
        serde_json::to_value(&payload)?,
        sent,
        "the types hold all of it"
    );
    ensure!(
        payload
            .step(&pipewright_runner_proto::StepName::Script)
            .is_some(),
        "the crate needs a script step"
    );

    // clients.md §4.1: the crate's final update.
    let finished = server
        .http
        .put(format!("{}/api/v4/jobs/{}", server.url, payload.id))
        .json(&JobUpdate::new(payload.token.clone(), JobState::Success))
        .send()
        .await?;
    assert_eq!(finished.status(), 200);
    assert_eq!(
        finished
            .headers()
            .get(pipewright_runner_proto::JOB_STATUS)
            .and_then(|v| v.to_str().ok()),
        Some("success")
    );
    Ok(())
}
