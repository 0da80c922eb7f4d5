//! Pipewright's runner. It owns executing jobs and nothing else: it speaks only GitLab's runner
//! API (`POST /jobs/request`, `PATCH /jobs/:id/trace`, `PUT /jobs/:id`) over HTTP, so the runner
//! embedded in `pipewright serve` and one on another machine are the same code, and GitLab
//! Runner-compatible clients could take its place. The shell executor clones the repository at
//! the job's commit with the job token, writes file variables to files, runs `before_script` +
//! `script` in bash (each command echoed, stopping at the first failure), always runs
//! `after_script`, streams the log with masked values replaced by `[MASKED]`, and reports the
//! result. It never touches the server's database or files, and neither can its jobs: each
//! runs confined to its own directory (`isolation.rs`).

mod artifacts;
mod executor;
mod isolation;
mod mask;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use pipewright_runner_proto::{Features, JobPayload, JobRequest, VersionInfo};
use serde_json::{Value, json};

pub use isolation::{
    Isolation, IsolationOptions, JobUser, Limits, landlock_abi, protect_this_process,
};
pub use mask::Masker;

/// How to reach the server and where to work.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The server's base URL (`http://host:port`).
    pub url: String,
    /// The runner authentication token (`glrt-…`).
    pub token: String,
    /// Jobs run in `<builds_dir>/<job id>`; each job gets a clean directory.
    pub builds_dir: PathBuf,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How jobs are isolated ([`Isolation::detect`], once at start-up).
    pub isolation: Isolation,
}

/// Runs until `shutdown` resolves: `concurrency` workers each take a job, run it, report it.
pub async fn run(
    mut config: RunnerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    config.builds_dir = prepare_builds_dir(&config.builds_dir, &config.isolation)?;
    protect_this_process()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut workers = Vec::new();
    for n in 0..config.concurrency.max(1) {
        let (client, config) = (client.clone(), config.clone());
        workers.push(tokio::spawn(async move { worker(n, client, config).await }));
    }
    shutdown.await;
    for w in &workers {
        w.abort();
    }
    Ok(())
}

/// Creates the builds directory (or checks the one there) and returns its absolute path. It
/// must be the runner's own: jobs as another user may pass through it (mode 0711, no
/// listing), never write to it; and that user must be able to reach it.
pub fn prepare_builds_dir(dir: &Path, isolation: &Isolation) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let meta = std::fs::metadata(&dir)?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "the builds directory {} belongs to uid {}, not to the runner's user (uid {me})",
            dir.display(),
            meta.uid()
        );
    }
    let mode = if isolation.job_user().is_some() {
        0o711
    } else {
        0o700
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    if let Some(user) = isolation.job_user() {
        reachable_by(&dir, user)?;
    }
    Ok(dir)
}

/// Checks that every directory above `dir` lets `user` pass (search permission), or says
/// which one does not.
fn reachable_by(dir: &Path, user: &JobUser) -> anyhow::Result<()> {
    if let Some((parent, mode)) = isolation::first_barrier(dir, user)? {
        bail!(
            "jobs run as {} but cannot reach the builds directory {}: {} (mode {:o}) does \
             not let them pass; choose a builds directory they can reach (--builds-dir), \
             e.g. /var/lib/pipewright-builds",
            user.name,
            dir.display(),
            parent.display(),
            mode & 0o7777
        );
    }
    Ok(())
}

async fn worker(n: usize, client: reqwest::Client, config: RunnerConfig) {
    let system_id = format!("s_pipewright{n:02}");
    loop {
        match request_job(&client, &config, &system_id).await {
            Ok(Some(job)) => {
                let id = job.id;
                if let Err(err) = executor::execute(&client, &config, job).await {
                    tracing::warn!(job_id = id, error = %format!("{err:#}"), "job execution failed");
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "requesting a job failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// `POST /jobs/request`: a job (201) or nothing (204, after the server's long poll).
async fn request_job(
    client: &reqwest::Client,
    config: &RunnerConfig,
    system_id: &str,
) -> anyhow::Result<Option<JobPayload>> {
    let request = JobRequest {
        token: config.token.as_str().into(),
        system_id: Some(system_id.to_string()),
        info: Some(VersionInfo {
            name: Some("pipewright".into()),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            executor: Some("shell".into()),
            features: Features::supported(["refspecs", "trace_sections", "masking"]),
            ..VersionInfo::default()
        }),
        ..JobRequest::default()
    };
    let res = client
        .post(format!("{}/api/v4/jobs/request", config.url))
        .json(&request)
        .send()
        .await?;
    match res.status().as_u16() {
        201 => Ok(Some(res.json().await?)),
        204 => Ok(None),
        403 => anyhow::bail!("the server refused the runner token"),
        other => anyhow::bail!("jobs/request answered {other}"),
    }
}

/// What `pipewright runner register` asks the server for.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub description: String,
    pub tags: Vec<String>,
    /// `Some(id)`: a project runner; `None`: an instance runner (admins only).
    pub project_id: Option<i64>,
    pub run_untagged: bool,
}

/// Creates a runner with a personal access token (`POST /api/v4/user/runners`) and returns its
/// `glrt-` authentication token.
pub async fn register(
    url: &str,
    personal_access_token: &str,
    registration: &Registration,
) -> anyhow::Result<String> {
    let mut body = json!({
        "runner_type": if registration.project_id.is_some() { "project_type" } else { "instance_type" },
        "description": registration.description,
        "tag_list": registration.tags.join(","),
        "run_untagged": registration.run_untagged,
    });
    if let Some(id) = registration.project_id {
        body["project_id"] = json!(id);
    }
    let res = reqwest::Client::new()
        .post(format!("{}/api/v4/user/runners", url.trim_end_matches('/')))
        .header("PRIVATE-TOKEN", personal_access_token)
        .json(&body)
        .send()
        .await
        .context("reaching the server")?;
    let status = res.status();
    let reply: Value = res.json().await.unwrap_or(Value::Null);
    if status.as_u16() != 201 {
        let message = reply
            .get("message")
            .or_else(|| reply.get("error"))
            .map(Value::to_string)
            .unwrap_or_default();
        anyhow::bail!("the server answered {status} {message}");
    }
    reply
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .context("the server's answer has no token")
}
