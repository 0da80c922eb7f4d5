//! The job queue's two targets, measured against a real `pipewright serve` (release build):
//!
//! 1. **Trigger → first job running** with the embedded runner: fire `--triggers` triggers one
//!    after another and, for each, measure from the moment the trigger request was sent to the
//!    moment the server handed the pipeline's first job to a runner (`started_at`, same
//!    machine's clock). Target p50 ≤ 50 ms.
//! 2. **Queue throughput** with a protocol-level runner and no embedded runner: create
//!    `--pipelines` pipelines of `--jobs` parallel jobs each, then let `--runners` concurrent
//!    clients do what a runner does for each job — `POST /jobs/request`, one
//!    `PATCH /jobs/:id/trace`, `PUT /jobs/:id` with `success` — until the queue is empty.
//!    Target ≥ 2,000 jobs/s on SQLite.
//!
//! ```sh
//! cargo build --release -p pipewright -p pipewright-bench
//! target/release/queue [--triggers 200] [--pipelines 100] [--jobs 20] [--runners 16] [--database-url postgres://…]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pipewright_bench::{Server, histogram, quantiles};
use serde_json::{Value, json};

struct Args {
    triggers: usize,
    pipelines: usize,
    jobs: usize,
    runners: usize,
    database_url: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        triggers: 200,
        pipelines: 100,
        jobs: 20,
        runners: 16,
        database_url: None,
    };
    for (flag, value) in pipewright_bench::flags() {
        match flag.as_str() {
            "--triggers" => a.triggers = value.parse().unwrap_or(a.triggers),
            "--pipelines" => a.pipelines = value.parse().unwrap_or(a.pipelines),
            "--jobs" => a.jobs = value.parse().unwrap_or(a.jobs),
            "--runners" => a.runners = value.parse().unwrap_or(a.runners),
            "--database-url" => a.database_url = Some(value),
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// GitLab's `2026-11-30T09:12:34.567Z` as milliseconds since the epoch.
fn parse_time(text: &str) -> Option<i64> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>());
    let (h, min, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let millis: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + s * 1000 + millis)
}

async fn first_job_latency(args: &Args) {
    let server = Server::start(args.database_url.as_deref(), &[]).await;
    let id = server
        .project_with("latency", "quick:\n  script: [\"true\"]\n")
        .await;
    let trigger = server
        .post_form(
            &format!("/projects/{id}/triggers"),
            &[("description", "bench")],
        )
        .await;
    let token = trigger["token"].as_str().unwrap_or_default().to_string();
    let endpoint = format!("{}/api/v4/projects/{id}/trigger/pipeline", server.url);
    let mut hist = histogram();
    for _ in 0..args.triggers {
        let sent = SystemTime::now();
        let pipeline: Value = server
            .client
            .post(&endpoint)
            .form(&[("token", token.as_str()), ("ref", "main")])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("trigger")
            .json()
            .await
            .expect("json");
        let jobs_path = format!("/projects/{id}/pipelines/{}/jobs", pipeline["id"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let jobs = server.get(&jobs_path).await;
            let started = jobs[0]["started_at"].as_str().and_then(parse_time);
            let done = matches!(jobs[0]["status"].as_str(), Some("success" | "failed"));
            if let (Some(started), true) = (started, done) {
                let ms = (started - epoch_ms(sent)).max(0) as u64;
                let _ = hist.record(ms * 1000);
                break;
            }
            assert!(Instant::now() < deadline, "the job did not run");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!(
        "trigger → first job running (embedded runner, {} triggers, ms resolution): {}",
        args.triggers,
        quantiles(&hist)
    );
}

async fn throughput(args: &Args) {
    let server = Server::start(args.database_url.as_deref(), &["--no-embedded-runner"]).await;
    let mut config = String::from("stages: [work]\n");
    for n in 0..args.jobs {
        config.push_str(&format!("job_{n}:\n  stage: work\n  script: [\"true\"]\n"));
    }
    let id = server.project_with("queue", &config).await;
    let runner = server
        .post_form(
            "/user/runners",
            &[("runner_type", "instance_type"), ("run_untagged", "true")],
        )
        .await;
    let runner_token = runner["token"].as_str().unwrap_or_default().to_string();
    for _ in 0..args.pipelines {
        server
            .post_form(&format!("/projects/{id}/pipeline"), &[("ref", "main")])
            .await;
    }
    let total = (args.pipelines * args.jobs) as u64;
    println!("{total} jobs queued; {} runner clients", args.runners);
    let done = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.runners {
        let (client, url, token, done, last) = (
            server.client.clone(),
            server.url.clone(),
            runner_token.clone(),
            done.clone(),
            last.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut hists = [histogram(), histogram(), histogram(), histogram()];
            loop {
                let t = Instant::now();
                let res = client
                    .post(format!("{url}/api/v4/jobs/request"))
                    .json(&json!({"token": token, "info": {"features": {"trace_sections": true}}}))
                    .send()
                    .await
                    .expect("request");
                if res.status() == 204 {
                    return hists;
                }
                let _ = hists[1].record(t.elapsed().as_micros() as u64);
                let job: Value = res.json().await.expect("job");
                let (job_id, job_token) = (
                    job["id"].as_i64().unwrap_or_default(),
                    job["token"].as_str().unwrap_or_default().to_string(),
                );
                let line = "$ true\nJob succeeded\n";
                let t2 = Instant::now();
                let res = client
                    .patch(format!("{url}/api/v4/jobs/{job_id}/trace"))
                    .header("JOB-TOKEN", &job_token)
                    .header("Content-Range", format!("0-{}", line.len() - 1))
                    .body(line)
                    .send()
                    .await
                    .expect("trace");
                assert_eq!(res.status(), 202);
                let _ = res.bytes().await;
                let _ = hists[2].record(t2.elapsed().as_micros() as u64);
                let t3 = Instant::now();
                let res = client
                    .put(format!("{url}/api/v4/jobs/{job_id}"))
                    .json(&json!({"token": job_token, "state": "success", "exit_code": 0}))
                    .send()
                    .await
                    .expect("update");
                assert_eq!(res.status(), 200);
                let _ = res.bytes().await;
                let _ = hists[3].record(t3.elapsed().as_micros() as u64);
                let _ = hists[0].record(t.elapsed().as_micros() as u64);
                done.fetch_add(1, Ordering::Relaxed);
                // The run ends at the last job's report, not at the final long poll's 204.
                last.fetch_max(start.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        }));
    }
    let mut hists = [histogram(), histogram(), histogram(), histogram()];
    for w in workers {
        if let Ok(hs) = w.await {
            for (total, h) in hists.iter_mut().zip(hs) {
                let _ = total.add(h);
            }
        }
    }
    let elapsed = Duration::from_micros(last.load(Ordering::Relaxed));
    let n = done.load(Ordering::Relaxed);
    println!(
        "queue throughput: {n} jobs in {:.2}s = {:.0} jobs/s (request → trace → success); per job {}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        quantiles(&hists[0])
    );
    println!("  POST /jobs/request: {}", quantiles(&hists[1]));
    println!("  PATCH /jobs/:id/trace: {}", quantiles(&hists[2]));
    println!("  PUT /jobs/:id: {}", quantiles(&hists[3]));
    let (rss, peak) = server.rss_kib();
    println!("server RSS {} MiB (peak {} MiB)", rss / 1024, peak / 1024);
}

#[tokio::main]
async fn main() {
    let args = args();
    println!(
        "backend {}",
        if args.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    first_job_latency(&args).await;
    throughput(&args).await;
}
