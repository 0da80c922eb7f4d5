//! What every handler can reach: the store, the repositories, and the server's configuration.

use std::path::PathBuf;
use std::sync::Arc;

use pipewright_git::Repositories;
use pipewright_store::Store;

use crate::config_cache::ConfigCache;
use crate::rate_limit::RateLimiter;
use crate::sealing::Sealer;

/// Settings the server needs at run time (the binary builds this from flags, env and file).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Base URL every URL the API returns is built from, without a trailing slash.
    pub external_url: String,
    pub data_dir: PathBuf,
    /// Limit for API request bodies.
    pub max_body_bytes: usize,
    /// Limit for a git push's body, after gzip is inflated (packs are larger than API
    /// requests); GitLab's "Maximum push size". Bodies are streamed into git, never held.
    pub max_git_body_bytes: usize,
    /// Limit for a git fetch request's body (the wants and haves), after gzip is inflated:
    /// 10 MiB, git-http-backend's own limit for it (`GIT_HTTP_MAX_REQUEST_BUFFER`).
    pub max_git_fetch_body_bytes: usize,
    /// Largest file the raw-file API serves.
    pub max_raw_file_bytes: u64,
    /// The server key that seals trigger tokens (default `<data-dir>/pipewright.key`).
    pub secret_key_file: PathBuf,
    /// GitLab's `pipeline_limit_per_project_user_sha`: pipelines per minute per project, user
    /// and commit; 0 (the default) turns the limit off.
    pub pipeline_limit_per_project_user_sha: u32,
    /// How long `POST /jobs/request` waits for a job before answering 204.
    pub job_request_long_poll: std::time::Duration,
    /// A long poll looks for jobs again this often even without a wake-up (a missed
    /// notification never leaves a runner idle longer than this).
    pub job_request_recheck: std::time::Duration,
    /// How long a running job may go without hearing from its runner before it fails with
    /// `runner_system_failure`.
    pub job_lease: std::time::Duration,
    /// How often the maintenance loop looks for expired leases, due delayed jobs, expired
    /// artifacts and pushes waiting for pipelines.
    pub maintenance_interval: std::time::Duration,
    /// Largest artifacts archive a runner may upload.
    pub max_artifacts_bytes: usize,
    /// A job's log is cut at this size (GitLab's default, 4 MiB).
    pub max_trace_bytes: u64,
    /// The first webhook retry waits this long; later ones 6×, 30× and 180× as long.
    pub webhook_retry_base: std::time::Duration,
    /// What the admin page says about the embedded runner: whether it runs, where, and which
    /// job isolation is in force (set by `serve` at start-up).
    pub embedded_runner_status: String,
    /// How long planning one pipeline may take before it fails as a config error.
    pub plan_timeout: std::time::Duration,
    /// Who may scrape `/-/metrics` (`--monitoring-allowlist`; loopback by default).
    pub monitoring_allowlist: crate::metrics::Allowlist,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`--trusted-proxies`; none by
    /// default: the TCP peer is the client).
    pub trusted_proxies: crate::client_address::IpRanges,
}

impl ServerConfig {
    pub fn new(external_url: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        let external_url = external_url.into().trim_end_matches('/').to_string();
        let data_dir: PathBuf = data_dir.into();
        ServerConfig {
            external_url,
            secret_key_file: data_dir.join("pipewright.key"),
            pipeline_limit_per_project_user_sha: 0,
            job_request_long_poll: std::time::Duration::from_secs(5),
            job_request_recheck: std::time::Duration::from_secs(2),
            job_lease: std::time::Duration::from_secs(300),
            maintenance_interval: std::time::Duration::from_secs(1),
            max_artifacts_bytes: 100 * 1024 * 1024,
            max_trace_bytes: 4 * 1024 * 1024,
            webhook_retry_base: std::time::Duration::from_secs(10),
            embedded_runner_status: "No embedded runner runs in this process.".to_string(),
            plan_timeout: std::time::Duration::from_secs(10),
            monitoring_allowlist: crate::metrics::Allowlist::default(),
            trusted_proxies: crate::client_address::IpRanges::default(),
            data_dir,
            max_body_bytes: 10 * 1024 * 1024,
            max_git_body_bytes: 1024 * 1024 * 1024,
            max_git_fetch_body_bytes: 10 * 1024 * 1024,
            max_raw_file_bytes: 100 * 1024 * 1024,
        }
    }

    pub fn api_url(&self) -> String {
        format!("{}/api/v4", self.external_url)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub repos: Arc<Repositories>,
    pub config: Arc<ServerConfig>,
    pub sealer: Arc<Sealer>,
    pub config_cache: Arc<ConfigCache>,
    pub rate_limiter: Arc<RateLimiter>,
    /// Woken when jobs become pending, so long-polling runners answer at once.
    pub job_available: Arc<tokio::sync::Notify>,
    /// Held while this process turns recorded pushes into pipelines.
    pub push_processing: Arc<tokio::sync::Mutex<()>>,
    /// Projects' webhooks, read on every job and pipeline change.
    pub hooks_cache: Arc<crate::project_cache::ProjectCache<Vec<pipewright_store::ProjectHook>>>,
    /// Projects' (and the instance's) CI/CD variables, read on every job and log chunk.
    pub variables_cache:
        Arc<crate::project_cache::ProjectCache<crate::project_cache::OpenedVariables>>,
    /// Per pipeline: what its jobs' payloads share (keyed by pipeline id).
    pub payload_cache:
        Arc<crate::project_cache::ProjectCache<crate::project_cache::PayloadContext>>,
    /// Projects' `ci_config_path`, read by every pipeline creation.
    pub ci_config_path_cache: Arc<crate::project_cache::ProjectCache<Option<String>>>,
    /// What `/-/metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
}
