//! Resolving `serve`'s settings: flags > `PIPEWRIGHT_*` environment > TOML file > defaults.
//! clap reads flags and environment (so both land in `ServeArgs` as `Some`); the file and the
//! defaults only fill what is still `None`. `backup` finds the data directory and database the
//! same way ([`DataLocation`]), so it reads what `serve` writes given the same flags,
//! environment and file.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8929]
    #[arg(long, env = "PIPEWRIGHT_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the SQLite database, repositories, logs and artifacts [default: ./pipewright-data]
    #[arg(long, env = "PIPEWRIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://…` [default: a SQLite file in the data dir]
    #[arg(long, env = "PIPEWRIGHT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Base URL used in every URL the API returns [default: http://<listen>]
    #[arg(long, env = "PIPEWRIGHT_EXTERNAL_URL")]
    pub external_url: Option<String>,
    /// Log format [default: text]
    #[arg(long, env = "PIPEWRIGHT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Largest accepted API request body, in bytes [default: 10485760]
    #[arg(long, env = "PIPEWRIGHT_MAX_BODY_SIZE")]
    pub max_body_size: Option<usize>,
    /// Pipelines per minute per project, user and commit (GitLab's
    /// pipeline_limit_per_project_user_sha); 0 turns the limit off [default: 0]
    #[arg(long, env = "PIPEWRIGHT_PIPELINE_LIMIT_PER_PROJECT_USER_SHA")]
    pub pipeline_limit_per_project_user_sha: Option<u32>,
    /// Do not start the embedded runner (jobs then wait for external runners)
    #[arg(long, env = "PIPEWRIGHT_NO_EMBEDDED_RUNNER")]
    pub no_embedded_runner: bool,
    /// Jobs the embedded runner runs at once [default: the number of CPU cores]
    #[arg(long, env = "PIPEWRIGHT_RUNNER_CONCURRENCY")]
    pub runner_concurrency: Option<usize>,
    /// Where the embedded runner's jobs run, each in its own directory; never inside the data
    /// directory [default: <data-dir>-builds, next to the data directory]
    #[arg(long, env = "PIPEWRIGHT_BUILDS_DIR")]
    pub builds_dir: Option<PathBuf>,
    /// The user jobs run as when the server runs as root: a name, a uid or uid:gid (never
    /// root) [default: nobody]
    #[arg(long, env = "PIPEWRIGHT_JOB_USER")]
    pub job_user: Option<String>,
    /// Run the embedded runner's jobs even on a kernel without Landlock, where nothing stops
    /// them reading the server's key, database and tokens and other jobs' files
    #[arg(long, env = "PIPEWRIGHT_ALLOW_JOBS_TO_READ_SERVER_SECRETS")]
    pub allow_jobs_to_read_server_secrets: bool,
    /// How long `POST /api/v4/jobs/request` waits for a job before answering 204, in seconds
    /// (GitLab Workhorse's CI long polling) [default: 5; 0 answers at once]
    #[arg(long, env = "PIPEWRIGHT_JOB_REQUEST_LONG_POLL", value_parser = clap::value_parser!(u64).range(0..=300))]
    pub job_request_long_poll: Option<u64>,
    /// A job's log is cut at this many bytes (GitLab's default: 4 MiB) [default: 4194304]
    #[arg(long, env = "PIPEWRIGHT_MAX_LOG_SIZE")]
    pub max_log_size: Option<u64>,
    /// Largest artifacts archive a runner may upload, in bytes [default: 104857600]
    #[arg(long, env = "PIPEWRIGHT_MAX_ARTIFACTS_SIZE")]
    pub max_artifacts_size: Option<usize>,
    /// Largest git push, in bytes after decompression (GitLab's "Maximum push size"); larger
    /// pushes get 413 [default: 1073741824]
    #[arg(long, env = "PIPEWRIGHT_MAX_GIT_PUSH_SIZE")]
    pub max_git_push_size: Option<usize>,
    /// Largest git fetch request (the wants and haves a clone or fetch sends), in bytes after
    /// decompression (git-http-backend's limit) [default: 10485760]
    #[arg(long, env = "PIPEWRIGHT_MAX_GIT_FETCH_SIZE")]
    pub max_git_fetch_size: Option<usize>,
    /// Who may scrape `/-/metrics`: comma-separated addresses and CIDR ranges, matched
    /// against the client's address (the TCP peer, or the forwarded client behind
    /// --trusted-proxies; GitLab's monitoring IP allowlist); others get 404
    /// [default: 127.0.0.0/8,::1]
    #[arg(long, env = "PIPEWRIGHT_MONITORING_ALLOWLIST")]
    pub monitoring_allowlist: Option<String>,
    /// Reverse proxies whose X-Forwarded-For names the client: comma-separated addresses and
    /// CIDR ranges. When the TCP peer is one, the client's address (for sign-in throttling and
    /// the monitoring allowlist) is the rightmost X-Forwarded-For entry that is not a trusted
    /// proxy (GitLab's trusted_proxies) [default: none: X-Forwarded-For is ignored]
    #[arg(long, env = "PIPEWRIGHT_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Optional TOML configuration file (same keys as these options, with underscores)
    #[arg(long, env = "PIPEWRIGHT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Password for `root` on first start (otherwise one is generated and printed once)
    #[arg(
        long = "root-password",
        env = "PIPEWRIGHT_ROOT_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub root_password: Option<String>,
    /// Personal access token (≥ 20 characters, scope api) registered for `root` on first start
    #[arg(
        long = "root-token",
        env = "PIPEWRIGHT_ROOT_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    pub root_token: Option<String>,
}

/// The keys a config file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    external_url: Option<String>,
    log_format: Option<LogFormat>,
    max_body_size: Option<usize>,
    pipeline_limit_per_project_user_sha: Option<u32>,
    no_embedded_runner: Option<bool>,
    runner_concurrency: Option<usize>,
    builds_dir: Option<PathBuf>,
    job_user: Option<String>,
    allow_jobs_to_read_server_secrets: Option<bool>,
    job_request_long_poll: Option<u64>,
    max_log_size: Option<u64>,
    max_artifacts_size: Option<usize>,
    max_git_push_size: Option<usize>,
    max_git_fetch_size: Option<usize>,
    monitoring_allowlist: Option<String>,
    trusted_proxies: Option<String>,
}

#[derive(Debug)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub external_url: String,
    pub log_format: LogFormat,
    pub max_body_size: usize,
    pub pipeline_limit_per_project_user_sha: u32,
    pub embedded_runner: bool,
    pub runner_concurrency: usize,
    pub builds_dir: PathBuf,
    /// The TOML file the settings came from, if any (it may hold secrets jobs must not read).
    pub config_file: Option<PathBuf>,
    pub job_user: Option<String>,
    pub allow_jobs_to_read_server_secrets: bool,
    pub job_request_long_poll: std::time::Duration,
    pub max_log_size: u64,
    pub max_artifacts_size: usize,
    pub max_git_push_size: usize,
    pub max_git_fetch_size: usize,
    pub monitoring_allowlist: pipewright_server::metrics::Allowlist,
    pub trusted_proxies: pipewright_server::client_address::IpRanges,
    pub root_password: Option<String>,
    pub root_token: Option<String>,
}

/// Where a server keeps its state, as `backup` is told it.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// The server's data directory [default: ./pipewright-data]
    #[arg(long, env = "PIPEWRIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The server's database URL: `sqlite://PATH` or `postgres://…` [default: the SQLite file
    /// in the data dir]
    #[arg(long, env = "PIPEWRIGHT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The server's TOML configuration file, whose `data_dir` and `database_url` apply as for
    /// `serve`
    #[arg(long, env = "PIPEWRIGHT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The data directory and database a server with these flags, environment and file uses.
#[derive(Debug)]
pub struct DataLocation {
    pub data_dir: PathBuf,
    pub database_url: String,
}

impl DataLocation {
    pub fn resolve(args: DataArgs) -> anyhow::Result<Self> {
        let file = read_file(args.config.as_deref())?;
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| default_database_url(&data_dir));
        if pipewright_store::Backend::from_url(&database_url).is_none() {
            bail!("--database-url must start with sqlite:// or postgres://");
        }
        Ok(DataLocation {
            data_dir,
            database_url,
        })
    }
}

fn read_file(path: Option<&std::path::Path>) -> anyhow::Result<FileSettings> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str::<FileSettings>(&text)
        .with_context(|| format!("parsing config file {}", path.display()))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("pipewright-data")
}

/// The SQLite file in the data directory.
fn default_database_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}", data_dir.join("pipewright.sqlite3").display())
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = read_file(args.config.as_deref())?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8929".to_string());
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| default_database_url(&data_dir));
        let builds_dir = args
            .builds_dir
            .or(file.builds_dir)
            .unwrap_or_else(|| next_to(&data_dir, "-builds"));
        if pipewright_store::Backend::from_url(&database_url).is_none() {
            bail!("--database-url must start with sqlite:// or postgres://");
        }
        let external_url = args
            .external_url
            .or(file.external_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        if !(external_url.starts_with("http://") || external_url.starts_with("https://")) {
            bail!("--external-url must start with http:// or https://");
        }
        let monitoring_allowlist = match args.monitoring_allowlist.or(file.monitoring_allowlist) {
            Some(list) => pipewright_server::metrics::Allowlist::parse(&list)
                .map_err(|e| anyhow::anyhow!("--monitoring-allowlist: {e}"))?,
            None => pipewright_server::metrics::Allowlist::default(),
        };
        let trusted_proxies = pipewright_server::client_address::IpRanges::parse(
            args.trusted_proxies
                .or(file.trusted_proxies)
                .as_deref()
                .unwrap_or(""),
        )
        .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?;
        Ok(Settings {
            listen,
            data_dir,
            database_url,
            external_url,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            max_body_size: args
                .max_body_size
                .or(file.max_body_size)
                .unwrap_or(10 * 1024 * 1024),
            pipeline_limit_per_project_user_sha: args
                .pipeline_limit_per_project_user_sha
                .or(file.pipeline_limit_per_project_user_sha)
                .unwrap_or(0),
            embedded_runner: !(args.no_embedded_runner || file.no_embedded_runner.unwrap_or(false)),
            runner_concurrency: args
                .runner_concurrency
                .or(file.runner_concurrency)
                .unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(usize::from)
                        .unwrap_or(2)
                }),
            job_request_long_poll: {
                let seconds = args
                    .job_request_long_poll
                    .or(file.job_request_long_poll)
                    .unwrap_or(5);
                if seconds > 300 {
                    bail!("job_request_long_poll must be at most 300 seconds");
                }
                std::time::Duration::from_secs(seconds)
            },
            max_log_size: args
                .max_log_size
                .or(file.max_log_size)
                .unwrap_or(4 * 1024 * 1024),
            max_artifacts_size: args
                .max_artifacts_size
                .or(file.max_artifacts_size)
                .unwrap_or(100 * 1024 * 1024),
            max_git_push_size: args
                .max_git_push_size
                .or(file.max_git_push_size)
                .unwrap_or(1024 * 1024 * 1024),
            max_git_fetch_size: args
                .max_git_fetch_size
                .or(file.max_git_fetch_size)
                .unwrap_or(10 * 1024 * 1024),
            builds_dir,
            monitoring_allowlist,
            trusted_proxies,
            config_file: args.config.clone(),
            job_user: args.job_user.or(file.job_user),
            allow_jobs_to_read_server_secrets: args.allow_jobs_to_read_server_secrets
                || file.allow_jobs_to_read_server_secrets.unwrap_or(false),
            root_password: args.root_password,
            root_token: args.root_token,
        })
    }
}

/// `dir` with `suffix` added to its last component: a sibling, never a child (`.` and `..` are
/// resolved first).
fn next_to(dir: &std::path::Path, suffix: &str) -> PathBuf {
    let dir = match dir.file_name() {
        Some(_) => dir.to_path_buf(),
        None => std::path::absolute(dir)
            .ok()
            .and_then(|d| std::fs::canonicalize(&d).ok().or(Some(d)))
            .unwrap_or_else(|| dir.to_path_buf()),
    };
    match dir.file_name() {
        Some(name) => dir.with_file_name(format!("{}{suffix}", name.to_string_lossy())),
        None => dir.join(format!("pipewright{suffix}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            listen: None,
            data_dir: None,
            database_url: None,
            external_url: None,
            log_format: None,
            max_body_size: None,
            pipeline_limit_per_project_user_sha: None,
            no_embedded_runner: false,
            runner_concurrency: None,
            builds_dir: None,
            job_user: None,
            allow_jobs_to_read_server_secrets: false,
            job_request_long_poll: None,
            max_log_size: None,
            max_artifacts_size: None,
            max_git_push_size: None,
            max_git_fetch_size: None,
            monitoring_allowlist: None,
            trusted_proxies: None,
            config: None,
            root_password: None,
            root_token: None,
        }
    }

    #[test]
    fn the_monitoring_allowlist_is_parsed_and_a_bad_one_refused() {
        let mut a = args();
        a.monitoring_allowlist = Some("10.0.0.0/8, ::1".into());
        let s = Settings::resolve(a).expect("resolve");
        assert!(s.monitoring_allowlist.allows("10.2.3.4".parse().unwrap()));
        assert!(!s.monitoring_allowlist.allows("127.0.0.1".parse().unwrap()));
        let mut a = args();
        a.monitoring_allowlist = Some("10.0.0.0/99".into());
        let err = Settings::resolve(a).expect_err("refused");
        assert!(err.to_string().contains("--monitoring-allowlist"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_none_by_default_parsed_from_the_file_and_a_bad_one_refused() {
        assert!(
            Settings::resolve(args())
                .expect("resolve")
                .trusted_proxies
                .is_empty()
        );
        let dir = tempfile_dir();
        let file = dir.join("proxies.toml");
        std::fs::write(&file, "trusted_proxies = \"127.0.0.1, 10.0.0.0/8\"\n").expect("write");
        let mut a = args();
        a.config = Some(file);
        let s = Settings::resolve(a).expect("resolve");
        assert!(s.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
        assert!(!s.trusted_proxies.contains("::1".parse().unwrap()));
        let mut a = args();
        a.trusted_proxies = Some("proxy.internal".into());
        let err = Settings::resolve(a).expect_err("refused");
        assert!(err.to_string().contains("--trusted-proxies"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(args()).expect("resolve");
        assert_eq!(s.listen, "127.0.0.1:8929");
        assert_eq!(s.external_url, "http://127.0.0.1:8929");
        assert_eq!(
            s.database_url,
            "sqlite://pipewright-data/pipewright.sqlite3"
        );
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.job_request_long_poll, std::time::Duration::from_secs(5));
        assert_eq!(s.max_log_size, 4 * 1024 * 1024);
        assert_eq!(s.max_artifacts_size, 100 * 1024 * 1024);
        assert_eq!(s.max_git_push_size, 1024 * 1024 * 1024);
        assert_eq!(s.max_git_fetch_size, 10 * 1024 * 1024);
        assert_eq!(s.builds_dir, PathBuf::from("pipewright-data-builds"));
        assert!(!s.allow_jobs_to_read_server_secrets);
    }

    #[test]
    fn builds_go_next_to_the_data_directory_never_inside() {
        assert_eq!(
            next_to(std::path::Path::new("/var/lib/pipewright"), "-builds"),
            PathBuf::from("/var/lib/pipewright-builds")
        );
        assert_eq!(
            next_to(std::path::Path::new("/srv/ci/data/"), "-builds"),
            PathBuf::from("/srv/ci/data-builds")
        );
        let dot = next_to(std::path::Path::new("."), "-builds");
        assert!(dot.is_absolute() && dot.to_string_lossy().ends_with("-builds"));
    }

    #[test]
    fn the_long_poll_comes_from_the_file_and_is_bounded() {
        let dir = tempfile_dir();
        let file = dir.join("poll.toml");
        std::fs::write(&file, "job_request_long_poll = 30\n").expect("write");
        let mut a = args();
        a.config = Some(file.clone());
        let s = Settings::resolve(a).expect("resolve");
        assert_eq!(s.job_request_long_poll, std::time::Duration::from_secs(30));
        std::fs::write(&file, "job_request_long_poll = 3000\n").expect("write");
        let mut a = args();
        a.config = Some(file);
        assert!(Settings::resolve(a).is_err());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn flags_and_env_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile_dir();
        let file = dir.join("pipewright.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\nexternal_url = \"https://ci.example.com\"\nlog_format = \"json\"\n",
        )
        .expect("write");
        let mut a = args();
        a.config = Some(file.clone());
        a.listen = Some("127.0.0.1:1234".into()); // as if given by flag or PIPEWRIGHT_LISTEN
        let s = Settings::resolve(a).expect("resolve");
        assert_eq!(s.listen, "127.0.0.1:1234");
        assert_eq!(s.external_url, "https://ci.example.com");
        assert_eq!(s.log_format, LogFormat::Json);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_values_are_refused() {
        let mut a = args();
        a.database_url = Some("mysql://x".into());
        assert!(Settings::resolve(a).is_err());
        let dir = tempfile_dir();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "no_such_key = 1\n").expect("write");
        let mut a = args();
        a.config = Some(file);
        assert!(Settings::resolve(a).is_err());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn backup_finds_the_data_directory_and_database_as_serve_does() {
        let dir = tempfile_dir();
        let file = dir.join("location.toml");
        std::fs::write(&file, "data_dir = \"/srv/ci\"\nlisten = \"0.0.0.0:80\"\n").expect("write");
        let location = DataLocation::resolve(DataArgs {
            data_dir: None,
            database_url: None,
            config: Some(file.clone()),
        })
        .expect("resolve");
        let mut a = args();
        a.config = Some(file.clone());
        let serve = Settings::resolve(a).expect("resolve");
        assert_eq!(location.data_dir, serve.data_dir);
        assert_eq!(location.database_url, serve.database_url);
        assert_eq!(location.database_url, "sqlite:///srv/ci/pipewright.sqlite3");
        let location = DataLocation::resolve(DataArgs {
            data_dir: Some("/elsewhere".into()),
            database_url: Some("postgres://ci@db/ci".into()),
            config: Some(file),
        })
        .expect("resolve");
        assert_eq!(location.data_dir, PathBuf::from("/elsewhere"));
        assert_eq!(location.database_url, "postgres://ci@db/ci");
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pipewright-settings-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
