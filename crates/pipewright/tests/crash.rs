//! Crash safety with the real binary: `kill -9` while the embedded runner runs a job, start
//! again, and the pipeline carries on. Nothing acknowledged is lost: the pipeline, its jobs'
//! states and the log lines the server had accepted are all there; the job that was running
//! is failed with `runner_system_failure` and, as its `retry` allows, runs again.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "glpat-crash-test-token-0123456789";

const CONFIG: &str = r#"stages: [work, after]
slow:
  stage: work
  retry:
    max: 1
    when: runner_system_failure
  script:
    - echo "first line"
    - sleep 4
    - echo "finished the work"
after:
  stage: after
  script: [echo after]
"#;

fn serve(dir: &Path, addr: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pipewright"))
        .args(["serve", "--listen", addr, "--data-dir"])
        .arg(dir)
        .env("PIPEWRIGHT_ROOT_TOKEN", TOKEN)
        .env("PIPEWRIGHT_ROOT_PASSWORD", "a-long-crash-test-password")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

async fn ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = client.get(format!("{base}/-/readiness")).send().await
            && res.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> reqwest::Response {
    client
        .get(format!("{base}/api/v4{path}"))
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Crash Test",
            "-c",
            "user.email=crash@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_loses_nothing_and_the_pipeline_finishes() {
    let tmp = std::env::temp_dir().join(format!("pipewright-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (data, work) = (tmp.join("data"), tmp.join("work"));
    std::fs::create_dir_all(&work).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let mut server = serve(&data, &addr);
    ready(&client, &base).await;

    let res = client
        .post(format!("{base}/api/v4/projects"))
        .header("PRIVATE-TOKEN", TOKEN)
        .json(&json!({"name": "crash"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    std::fs::write(work.join(".gitlab-ci.yml"), CONFIG).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "CI"]);
    let remote = format!("http://root:{TOKEN}@{addr}/root/crash.git");
    git(&work, &["push", "-q", "-o", "ci.skip", &remote, "main"]);
    let res = client
        .post(format!("{base}/api/v4/projects/{id}/pipeline"))
        .header("PRIVATE-TOKEN", TOKEN)
        .json(&json!({"ref": "main"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let pipeline = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    // Wait until the embedded runner is inside the job and the server has its first line.
    let jobs_path = format!("/projects/{id}/pipelines/{pipeline}/jobs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let slow_id = loop {
        let jobs: Vec<Value> = get(&client, &base, &jobs_path).await.json().await.unwrap();
        let slow = jobs.iter().find(|j| j["name"] == "slow").unwrap();
        let log = get(
            &client,
            &base,
            &format!("/projects/{id}/jobs/{}/trace", slow["id"]),
        )
        .await
        .text()
        .await
        .unwrap();
        if slow["status"] == "running" && log.contains("\nfirst line") {
            break slow["id"].as_i64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the job never started: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = serve(&data, &addr);
    ready(&client, &base).await;

    let path = format!("/projects/{id}/pipelines/{pipeline}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let p: Value = get(&client, &base, &path).await.json().await.unwrap();
        if matches!(
            p["status"].as_str(),
            Some("success" | "failed" | "canceled")
        ) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline did not finish: {p:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let jobs: Vec<Value> = get(&client, &base, &format!("/projects/{id}/jobs"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let interrupted = jobs.iter().find(|j| j["id"] == slow_id).unwrap();
    assert_eq!(interrupted["status"], "failed");
    assert_eq!(interrupted["failure_reason"], "runner_system_failure");
    // The log lines the server acknowledged before the crash are still there.
    let log = get(
        &client,
        &base,
        &format!("/projects/{id}/jobs/{slow_id}/trace"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(log.contains("\nfirst line"), "{log}");
    let retried = jobs
        .iter()
        .find(|j| j["name"] == "slow" && j["id"] != slow_id)
        .expect("the retry");
    assert_eq!(retried["status"], "success");
    assert_eq!(
        jobs.iter().find(|j| j["name"] == "after").unwrap()["status"],
        "success"
    );

    server.kill().unwrap();
    let _ = server.wait();
    std::fs::remove_dir_all(&tmp).ok();
}
