//! Load benchmark for `POST /projects/:id/trigger/pipeline`: starts a real `pipewright serve`
//! (release build) on a fresh data dir, sets up a project whose repository holds a realistic
//! `.gitlab-ci.yml` and a trigger token, then
//!
//! 1. saturates the endpoint with `--concurrency` clients for `--seconds` (triggers/s), and
//! 2. fires `--rate` triggers per second, open-loop, for `--seconds` (latency measured from
//!    each request's scheduled time, so a stalled server cannot hide its queueing),
//!
//! and prints throughput, p50/p99/p99.9 latency and the server's resident memory. Every
//! counted trigger is a 201, which Pipewright only sends after the pipeline is committed.
//!
//!     cargo build --release -p pipewright -p pipewright-bench
//!     target/release/triggers [--seconds 10] [--concurrency 64] [--rate 1000] [--database-url postgres://…]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

const CONFIG: &str = r#"stages: [test, build, package, deploy]
variables:
  GLOBAL: "1"
.rules: &rules
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
      when: never
    - if: $CI_COMMIT_BRANCH || $CI_COMMIT_TAG
run_tests:
  stage: test
  script: [make test]
  <<: *rules
lint:
  stage: test
  script: [make lint]
  <<: *rules
build_package:
  stage: build
  script: [make build]
  artifacts: {paths: [dist/]}
upload_package:
  stage: package
  script:
    - if [ -n "${UPLOAD_TO_S3}" ]; then make upload; fi
  rules:
    - if: $UPLOAD_TO_S3 == "true"
deploy:
  stage: deploy
  when: manual
  script: [make deploy]
"#;

struct Args {
    seconds: u64,
    concurrency: usize,
    rate: u64,
    database_url: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 10,
        concurrency: 64,
        rate: 1000,
        database_url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().unwrap_or(a.seconds),
            "--concurrency" => a.concurrency = value.parse().unwrap_or(a.concurrency),
            "--rate" => a.rate = value.parse().unwrap_or(a.rate),
            "--database-url" => a.database_url = Some(value),
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

fn server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("PIPEWRIGHT_BIN") {
        return PathBuf::from(p);
    }
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name("pipewright")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18930)
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .status();
    assert!(status.is_ok_and(|s| s.success()), "git {args:?} failed");
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report(name: &str, hist: &Histogram<u64>, ok: u64, errors: u64, elapsed: Duration) {
    let us = |q: f64| Duration::from_micros(hist.value_at_quantile(q));
    println!(
        "{name}: {ok} triggers in {:.1}s = {:.0}/s ({errors} errors); latency p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        us(0.5),
        us(0.99),
        us(0.999),
        Duration::from_micros(hist.max()),
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let token = "glpat-bench-token-0123456789abcdef";
    let mut cmd = Command::new(server_binary());
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data.path())
    .env("PIPEWRIGHT_ROOT_TOKEN", token)
    .env("PIPEWRIGHT_ROOT_PASSWORD", "bench-password")
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    if let Some(db) = &args.database_url {
        cmd.args(["--database-url", db]);
    }
    let server = Server(
        cmd.spawn()
            .expect("start pipewright serve (cargo build --release -p pipewright first)"),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client");
    let ready = Instant::now();
    loop {
        let up = client
            .get(format!("{url}/-/readiness"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if up {
            break;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A project with the config, pushed with git, and a trigger token.
    let project: serde_json::Value = client
        .post(format!("{url}/api/v4/projects"))
        .header("PRIVATE-TOKEN", token)
        .form(&[("name", "bench")])
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("create project")
        .json()
        .await
        .expect("project json");
    let id = project["id"].as_i64().unwrap_or(1);
    let work = tempfile::tempdir().expect("temp dir");
    std::fs::write(work.path().join(".gitlab-ci.yml"), CONFIG).expect("write config");
    git(work.path(), &["init", "-q"]);
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "-q", "-m", "Bench pipeline"]);
    git(
        work.path(),
        &[
            "push",
            "-q",
            &format!("http://root:{token}@127.0.0.1:{port}/root/bench.git"),
            "main",
        ],
    );
    let trigger: serde_json::Value = client
        .post(format!("{url}/api/v4/projects/{id}/triggers"))
        .header("PRIVATE-TOKEN", token)
        .form(&[("description", "bench")])
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("create trigger")
        .json()
        .await
        .expect("trigger json");
    let trigger_token = trigger["token"].as_str().unwrap_or_default().to_string();
    let endpoint = format!("{url}/api/v4/projects/{id}/trigger/pipeline");
    let form = Arc::new(vec![
        ("token".to_string(), trigger_token),
        ("ref".to_string(), "main".to_string()),
        ("variables[UPLOAD_TO_S3]".to_string(), "true".to_string()),
    ]);
    println!(
        "server pid {}, backend {}",
        server.0.id(),
        if args.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );

    // 1. Saturation.
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, endpoint, form, ok, errors) = (
            client.clone(),
            endpoint.clone(),
            form.clone(),
            ok.clone(),
            errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            while Instant::now() < deadline {
                let t = Instant::now();
                let res = client.post(&endpoint).form(form.as_slice()).send().await;
                // Read the body so the connection goes back to the pool (keep-alive).
                let res = match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes().await.map(|_| status)
                    }
                    Err(e) => Err(e),
                };
                match res {
                    Ok(201) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        let _ = hist.record(t.elapsed().as_micros() as u64);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for w in workers {
        if let Ok(h) = w.await {
            let _ = hist.add(h);
        }
    }
    report(
        &format!("saturation ({} clients)", args.concurrency),
        &hist,
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        start.elapsed(),
    );
    let (rss, peak) = rss_kib(server.0.id());
    println!("server RSS {} MiB (peak {} MiB)", rss / 1024, peak / 1024);

    // 2. Fixed rate, open loop.
    let total = args.rate * args.seconds;
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (client, endpoint, form, ok, errors, hist) = (
            client.clone(),
            endpoint.clone(),
            form.clone(),
            ok.clone(),
            errors.clone(),
            hist.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = match client.post(&endpoint).form(form.as_slice()).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    r.bytes().await.map(|_| status)
                }
                Err(e) => Err(e),
            };
            match res {
                Ok(201) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut h) = hist.lock() {
                        let _ = h.record(scheduled.elapsed().as_micros() as u64);
                    }
                }
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let hist = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"));
    report(
        &format!("fixed rate {}/s", args.rate),
        &hist,
        ok.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        start.elapsed(),
    );
    let (rss, peak) = rss_kib(server.0.id());
    println!("server RSS {} MiB (peak {} MiB)", rss / 1024, peak / 1024);
}
