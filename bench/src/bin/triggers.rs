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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use pipewright_bench::{ROOT_TOKEN, Server};

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

#[tokio::main]
async fn main() {
    let args = args();
    // Only the trigger path: no runner takes the pipelines' jobs.
    let server = Server::start(args.database_url.as_deref(), &["--no-embedded-runner"]).await;
    let target = Target::create(&server).await;
    println!(
        "server pid {}, backend {}",
        server.child.id(),
        if args.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    saturate(&target, &args).await;
    let (rss, peak) = server.rss_kib();
    println!("server RSS {} MiB (peak {} MiB)", rss / 1024, peak / 1024);
    fixed_rate(&target, &args).await;
    let (rss, peak) = server.rss_kib();
    println!("server RSS {} MiB (peak {} MiB)", rss / 1024, peak / 1024);
}

/// What every request fires: the endpoint and the trigger form of a project made for it.
#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    endpoint: String,
    form: Arc<Vec<(String, String)>>,
}

impl Target {
    async fn create(server: &Server) -> Target {
        let (client, url) = (server.client.clone(), server.url.clone());
        let id = server.project_with("bench", CONFIG).await;
        let trigger: serde_json::Value = client
            .post(format!("{url}/api/v4/projects/{id}/triggers"))
            .header("PRIVATE-TOKEN", ROOT_TOKEN)
            .form(&[("description", "bench")])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("create trigger")
            .json()
            .await
            .expect("trigger json");
        let trigger_token = trigger["token"].as_str().unwrap_or_default().to_string();
        Target {
            client,
            endpoint: format!("{url}/api/v4/projects/{id}/trigger/pipeline"),
            form: Arc::new(vec![
                ("token".to_string(), trigger_token),
                ("ref".to_string(), "main".to_string()),
                ("variables[UPLOAD_TO_S3]".to_string(), "true".to_string()),
            ]),
        }
    }

    /// One trigger; its status once the body is read (so the connection goes back to the
    /// pool: keep-alive).
    async fn fire(&self) -> reqwest::Result<u16> {
        let r = self
            .client
            .post(&self.endpoint)
            .form(self.form.as_slice())
            .send()
            .await?;
        let status = r.status().as_u16();
        r.bytes().await.map(|_| status)
    }
}

/// 1. Saturation: `concurrency` clients firing back to back for `seconds`.
async fn saturate(target: &Target, args: &Args) {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let target = target.clone();
        let (ok, errors) = (ok.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            while Instant::now() < deadline {
                let t = Instant::now();
                if let Ok(201) = target.fire().await {
                    ok.fetch_add(1, Ordering::Relaxed);
                    let _ = hist.record(t.elapsed().as_micros() as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
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
}

/// 2. Fixed rate, open loop: latency counted from when each request was due.
async fn fixed_rate(target: &Target, args: &Args) {
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
        let target = target.clone();
        let (ok, errors, hist) = (ok.clone(), errors.clone(), hist.clone());
        tasks.push(tokio::spawn(async move {
            if let Ok(201) = target.fire().await {
                ok.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut h) = hist.lock() {
                    let _ = h.record(scheduled.elapsed().as_micros() as u64);
                }
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
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
}
