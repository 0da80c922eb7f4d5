//! Crash safety with the real binary: `kill -9` while the embedded runner runs a job, start
//! again, and the pipeline carries on. Nothing acknowledged is lost: the pipeline, its jobs'
//! states and the log lines the server had accepted are all there; the job that was running
//! is failed with `runner_system_failure` and, as its `retry` allows, runs again. And the
//! server is not brought down by request bodies built to exhaust its memory: its peak
//! resident size is read from `/proc` while several gzip bombs arrive at once.

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
    serve_with(dir, addr, &[])
}

fn serve_with(dir: &Path, addr: &str, flags: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pipewright"))
        .args(["serve", "--listen", addr, "--data-dir"])
        .arg(dir)
        .args(flags)
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

/// A gzip body of one member that inflates to `copies` MiB of fetch-request lines git reads
/// on and on (`shallow` lines for a commit that does not exist), about 3 KiB per MiB. Built
/// from one compressed MiB repeated: each copy ends with a full flush, so it does not refer
/// to the ones before it, and the copies chain into one valid deflate stream.
fn fetch_request_bomb(copies: usize) -> Vec<u8> {
    let line = format!("0035shallow {}\n", "0".repeat(40));
    assert_eq!(line.len(), 0x35);
    let block = line.repeat(1024 * 1024 / line.len());
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let mut deflated = Vec::with_capacity(block.len());
    compress
        .compress_vec(block.as_bytes(), &mut deflated, flate2::FlushCompress::Full)
        .unwrap();
    assert_eq!(compress.total_in() as usize, block.len());
    let mut block_crc = flate2::Crc::new();
    block_crc.update(block.as_bytes());
    let mut crc = flate2::Crc::new();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..copies {
        out.extend_from_slice(&deflated);
        crc.combine(&block_crc);
    }
    // The last block: final, fixed Huffman codes, nothing but its end.
    out.extend_from_slice(&[0x03, 0x00]);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
}

/// The process's peak resident set size (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bombs_over_git_http_do_not_exhaust_the_servers_memory() {
    let tmp = std::env::temp_dir().join(format!("pipewright-bombs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let mut server = serve_with(&tmp, &addr, &["--no-embedded-runner"]);
    ready(&client, &base).await;
    let res = client
        .post(format!("{base}/api/v4/projects"))
        .header("PRIVATE-TOKEN", TOKEN)
        .json(&json!({"name": "public", "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // About 3 MB that inflates to 1 GiB, four times at once, anonymously.
    let bomb = fetch_request_bomb(1024);
    assert!(bomb.len() < 4 * 1024 * 1024, "{}", bomb.len());
    let url = format!("{base}/root/public.git/git-upload-pack");
    let requests = (0..4).map(|_| {
        client
            .post(&url)
            .header("Content-Type", "application/x-git-upload-pack-request")
            .header("Content-Encoding", "gzip")
            .body(bomb.clone())
            .send()
    });
    let mut refused = 0;
    // 413 once the inflated request passes the limit; the server may also close the
    // connection on the rest of a body it will not read, which the client sees as an error
    // while still sending.
    for res in futures_util::future::join_all(requests)
        .await
        .into_iter()
        .flatten()
    {
        assert_eq!(res.status(), 413, "{:?}", res.text().await);
        refused += 1;
    }
    let peak = peak_rss(server.id());
    eprintln!(
        "{refused} of 4 answered 413; peak resident size {} MiB",
        peak / (1024 * 1024)
    );
    assert!(
        peak < 200 * 1024 * 1024,
        "the server's peak resident size reached {} MiB",
        peak / (1024 * 1024)
    );
    // And it keeps serving.
    let res = client
        .get(format!(
            "{base}/root/public.git/info/refs?service=git-upload-pack"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    ready(&client, &base).await;

    server.kill().unwrap();
    let _ = server.wait();
    std::fs::remove_dir_all(&tmp).ok();
}
