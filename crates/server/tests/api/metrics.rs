//! `/-/metrics` (issue 16 §2): an operator scrapes the server from loopback and reads, through
//! the Prometheus project's own parser, that a trigger moved the counters — by outcome, by
//! pipeline source, by route template (never the raw path); an address outside the monitoring
//! allowlist gets a 404.

use std::path::PathBuf;

use serde_json::Value;

use crate::both_backends;
use crate::support::{Backend, TestApp};
use crate::triggering::{curl, triggerable_project};

both_backends!(a_trigger_moves_the_counters_a_scrape_reads);

/// One parsed sample.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

/// Scrapes `/-/metrics` and parses it with `prometheus_client` (Python, the reference parser);
/// `None` when the parser is not installed locally (CI always has it).
async fn scrape(app: &TestApp) -> Option<Vec<Sample>> {
    let res = app
        .client
        .get(format!("{}/-/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = res.text().await.unwrap();
    let python = match std::env::var_os("PIPEWRIGHT_PYTHON") {
        Some(p) => PathBuf::from(p),
        None if std::env::var_os("CI").is_some() => panic!("PIPEWRIGHT_PYTHON is not set"),
        None => {
            eprintln!("skipping the metrics parse: PIPEWRIGHT_PYTHON is not set");
            return None;
        }
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/parse_metrics.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the parser");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the scrape does not parse:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                Sample {
                    name: v["name"].as_str().unwrap().to_string(),
                    labels: v["labels"].as_object().unwrap().clone(),
                    value: v["value"].as_f64().unwrap(),
                }
            })
            .collect(),
    )
}

/// The value of the sample `name` whose labels include `labels` (0 when there is none).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).and_then(Value::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn a_trigger_moves_the_counters_a_scrape_reads(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "metered", tmp.path()).await;
    let Some(before) = scrape(&app).await else {
        return;
    };
    let url = format!("{}/api/v4/projects/{id}/trigger/pipeline", app.url);
    let trigger = |token: &str, r#ref: &str| {
        curl(&[
            "--request",
            "POST",
            "--form",
            &format!("token={token}"),
            "--form",
            &format!("ref={}", r#ref),
            &url,
        ])
        .0
    };
    assert_eq!(trigger(&token, "main"), 201);
    assert_eq!(
        trigger("glptt-not-a-token-of-this-project00000000", "main"),
        404
    );
    assert_eq!(trigger(&token, "no-such-branch"), 400);
    let after = scrape(&app).await.expect("parsed");

    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let triggers = "pipewright_trigger_requests_total";
    assert_eq!(moved(triggers, &[("outcome", "created")]), 1.0);
    assert_eq!(moved(triggers, &[("outcome", "not_found")]), 1.0);
    assert_eq!(moved(triggers, &[("outcome", "bad_ref")]), 1.0);
    assert_eq!(
        moved(
            "pipewright_pipelines_created_total",
            &[("source", "trigger")]
        ),
        1.0
    );
    // Requests are counted by the route table's template, never by the path asked for.
    let template = "/api/v4/projects/{id}/trigger/pipeline";
    assert_eq!(
        moved(
            "pipewright_http_requests_total",
            &[("route", template), ("method", "POST"), ("status", "201")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "pipewright_http_request_duration_seconds_count",
            &[("route", template)]
        ),
        3.0
    );
    let raw = format!("/api/v4/projects/{id}/trigger/pipeline");
    assert!(
        after
            .iter()
            .all(|s| s.labels.get("route").and_then(Value::as_str) != Some(raw.as_str())),
        "no series per raw path"
    );
    // The gauges a scrape reads: the trigger's job waits for a runner; memory is the process's.
    assert!(value(&after, "pipewright_jobs_pending", &[]) >= 1.0);
    assert!(value(&after, "pipewright_process_resident_memory_bytes", &[]) > 1_000_000.0);
    assert!(
        value(
            &after,
            "pipewright_database_connections",
            &[("state", "idle")]
        ) >= 0.0
    );
    assert_eq!(
        value(&after, "pipewright_runner_long_polls_in_flight", &[]),
        0.0
    );
}

/// An address outside the allowlist gets GitLab's 404, not the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_from_outside_the_monitoring_allowlist_is_a_404() {
    let allowlist = pipewright_server::metrics::Allowlist::parse("10.0.0.0/8").unwrap();
    let app = TestApp::start_with(Backend::Sqlite, |config| {
        config.monitoring_allowlist = allowlist
    })
    .await;
    let res = app
        .client
        .get(format!("{}/-/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(!res.text().await.unwrap().contains("pipewright_"));
}
