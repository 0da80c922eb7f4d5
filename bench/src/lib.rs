//! Benchmark programs for Pipewright's performance targets. Each program is a binary under
//! `src/bin/`; run them with `cargo run --release -p pipewright-bench --bin NAME`. They measure
//! and print figures; no test asserts on time. This library holds what they share: starting a
//! real `pipewright serve` on a fresh data dir and setting up a project over HTTP and git.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub const ROOT_TOKEN: &str = "glpat-bench-token-0123456789abcdef";

/// A running `pipewright serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub port: u16,
    pub client: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

impl Server {
    /// Starts the release binary next to this program (or `$PIPEWRIGHT_BIN`) with `flags`.
    pub async fn start(database_url: Option<&str>, flags: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(server_binary());
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data.path())
        .args(flags)
        .env("PIPEWRIGHT_ROOT_TOKEN", ROOT_TOKEN)
        .env("PIPEWRIGHT_ROOT_PASSWORD", "bench-password")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if let Some(db) = database_url {
            cmd.args(["--database-url", db]);
        }
        let child = cmd
            .spawn()
            .expect("start pipewright serve (cargo build --release -p pipewright first)");
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
        Server {
            child,
            url,
            port,
            client,
            _data: data,
        }
    }

    /// `POST` as root with a form; the JSON answer.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
        self.client
            .post(format!("{}/api/v4{path}", self.url))
            .header("PRIVATE-TOKEN", ROOT_TOKEN)
            .form(form)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
            .json()
            .await
            .expect("json")
    }

    /// `GET` as root; the JSON answer.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        self.client
            .get(format!("{}/api/v4{path}", self.url))
            .header("PRIVATE-TOKEN", ROOT_TOKEN)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .expect("json")
    }

    /// A project `root/<name>` whose `main` holds `config` (pushed with `ci.skip`); its id.
    pub async fn project_with(&self, name: &str, config: &str) -> i64 {
        let project = self.post_form("/projects", &[("name", name)]).await;
        let work = tempfile::tempdir().expect("temp dir");
        std::fs::write(work.path().join(".gitlab-ci.yml"), config).expect("write config");
        git(work.path(), &["init", "-q"]);
        git(work.path(), &["add", "."]);
        git(work.path(), &["commit", "-q", "-m", "Bench pipeline"]);
        git(
            work.path(),
            &[
                "push",
                "-q",
                "-o",
                "ci.skip",
                &format!(
                    "http://root:{ROOT_TOKEN}@127.0.0.1:{}/root/{name}.git",
                    self.port
                ),
                "main",
            ],
        );
        project["id"].as_i64().unwrap_or(1)
    }

    /// The server's resident memory now and at its peak, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
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
}

pub fn git(dir: &Path, args: &[&str]) {
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

/// A histogram of microseconds up to a minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

/// `p50 … p99 … max` of a microsecond histogram.
pub fn quantiles(hist: &Histogram<u64>) -> String {
    let us = |q: f64| Duration::from_micros(hist.value_at_quantile(q));
    format!(
        "p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        us(0.5),
        us(0.9),
        us(0.99),
        Duration::from_micros(hist.max())
    )
}

/// Simple `--flag value` parsing for the benchmark programs.
pub fn flags() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        out.push((flag, it.next().unwrap_or_default()));
    }
    out
}
