//! The one binary. `pipewright serve` runs the server; more subcommands arrive with their
//! features. Configuration comes from flags, then `PIPEWRIGHT_*` environment variables, then an
//! optional TOML file, then defaults, in that order of precedence and never the reverse.

mod backup;
mod health_check;
mod lint;
mod settings;
mod trigger_cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pipewright_runner::{Isolation, IsolationOptions};
use pipewright_server::bootstrap::{self, Bootstrap};
use tokio::net::TcpListener;

use settings::{LogFormat, ServeArgs, Settings};

/// mimalloc instead of glibc's allocator: the trigger endpoint allocates many small, short-lived
/// buffers per request, and glibc's malloc/free were ~15% of its profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pipewright",
    version,
    about = "A self-hosted CI server with GitLab's pipeline triggers, API and runner protocol",
    long_about = "A self-hosted CI server with GitLab's pipeline triggers, API and runner protocol.\n\n\
Every `serve` option can also be set with its PIPEWRIGHT_* environment variable or in a TOML \
file given with --config (keys as the long option names with underscores, e.g. \
`external_url = \"https://ci.example.com\"`). Precedence: flags > environment > file > defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (API v4, git over HTTP, the web UI, health endpoints).
    Serve(ServeArgs),
    /// Run a runner that takes jobs from a Pipewright (or GitLab-compatible) server.
    Runner(RunnerArgs),
    /// Work with CI configuration files.
    #[command(subcommand)]
    Ci(CiCommand),
    /// Trigger a pipeline with a trigger token and print its URL; optionally wait for it,
    /// follow its jobs' logs and play its manual jobs (exit 0 success, 1 failed, 2 canceled or
    /// skipped, 3 timeout, 4 error).
    Trigger(trigger_cli::TriggerArgs),
    /// Back up a server while it runs: its SQLite database, repositories, artifacts and key,
    /// in one archive (PostgreSQL: prints how to pg_dump the database). The archive holds the
    /// server key: keep it secret.
    Backup(backup::BackupArgs),
    /// Restore a backup into a new data directory (then start `serve` on it).
    Restore(backup::RestoreArgs),
    /// Ask a running server whether it is ready (`GET /-/readiness`); exit 0 when it is. The
    /// container image's health check.
    HealthCheck(health_check::HealthCheckArgs),
}

#[derive(Subcommand)]
enum CiCommand {
    /// Check a .gitlab-ci.yml and show which jobs a pipeline would run (exit 0 valid, 1 invalid).
    Lint(lint::LintArgs),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct RunnerArgs {
    #[command(subcommand)]
    command: Option<RunnerCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum RunnerCommand {
    /// Create a runner on the server with a personal access token and print its glrt- token.
    Register(RegisterArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The server's URL, e.g. http://ci.example.com:8929
    #[arg(long, env = "PIPEWRIGHT_RUNNER_URL", required = true)]
    url: Option<String>,
    /// The runner authentication token (glrt-…) from `pipewright runner register` or
    /// POST /api/v4/user/runners. A runner's tags are set when it is registered.
    #[arg(
        long,
        env = "PIPEWRIGHT_RUNNER_TOKEN",
        hide_env_values = true,
        required = true
    )]
    token: Option<String>,
    /// Jobs run at once [default: the number of CPU cores]
    #[arg(long)]
    concurrency: Option<usize>,
    /// Where jobs run; each gets a clean directory [default: ./pipewright-builds]
    #[arg(long, env = "PIPEWRIGHT_BUILDS_DIR")]
    builds_dir: Option<std::path::PathBuf>,
    /// The user jobs run as when the runner runs as root: a name, a uid or uid:gid (never
    /// root) [default: nobody]
    #[arg(long, env = "PIPEWRIGHT_JOB_USER")]
    job_user: Option<String>,
    /// Run jobs even on a kernel without Landlock, where nothing stops them reading this
    /// machine's secrets the runner's user can read and other jobs' files
    #[arg(long, env = "PIPEWRIGHT_ALLOW_JOBS_TO_READ_SERVER_SECRETS")]
    allow_jobs_to_read_server_secrets: bool,
    /// Log format
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(clap::Args)]
struct RegisterArgs {
    /// The server's URL, e.g. http://ci.example.com:8929
    #[arg(long, env = "PIPEWRIGHT_RUNNER_URL")]
    url: String,
    /// A personal access token with the api (or create_runner) scope
    #[arg(long, env = "PIPEWRIGHT_PERSONAL_ACCESS_TOKEN", hide_env_values = true)]
    personal_access_token: String,
    /// Tags this runner takes jobs for, comma-separated (jobs' `tags:` must all be among them)
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Also take jobs without tags [default: true when no tags are given]
    #[arg(long)]
    run_untagged: Option<bool>,
    /// A project runner for this project id (Maintainer); without it an instance runner (admin)
    #[arg(long)]
    project_id: Option<i64>,
    /// A description shown in the runner list
    #[arg(long, default_value = "pipewright runner")]
    description: String,
}

fn main() -> anyhow::Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `trigger`'s exit codes 1–3 describe the pipeline; its usage errors are 4, not clap's 2.
        Err(err)
            if err.use_stderr() && std::env::args_os().nth(1).is_some_and(|a| a == "trigger") =>
        {
            let _ = err.print();
            std::process::exit(trigger_cli::EXIT_ERROR);
        }
        Err(err) => err.exit(),
    };
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(args)?;
            init_tracing(settings.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(settings))
        }
        Command::Runner(RunnerArgs {
            command: Some(RunnerCommand::Register(args)),
            ..
        }) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let registration = pipewright_runner::Registration {
                run_untagged: args.run_untagged.unwrap_or(args.tags.is_empty()),
                description: args.description,
                tags: args.tags,
                project_id: args.project_id,
            };
            let token = runtime.block_on(pipewright_runner::register(
                &args.url,
                &args.personal_access_token,
                &registration,
            ))?;
            println!("{token}");
            Ok(())
        }
        Command::Runner(RunnerArgs {
            command: None,
            run: args,
        }) => {
            init_tracing(args.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let (Some(url), Some(token)) = (args.url, args.token) else {
                anyhow::bail!("--url and --token are required");
            };
            let isolation = pipewright_runner::Isolation::detect(&IsolationOptions {
                job_user: args.job_user,
                allow_unconfined: args.allow_jobs_to_read_server_secrets,
            })?;
            log_isolation(&isolation, "runner");
            let config = pipewright_runner::RunnerConfig {
                url: url.trim_end_matches('/').to_string(),
                token,
                builds_dir: args
                    .builds_dir
                    .unwrap_or_else(|| "pipewright-builds".into()),
                concurrency: args.concurrency.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(usize::from)
                        .unwrap_or(2)
                }),
                isolation,
            };
            runtime.block_on(pipewright_runner::run(config, shutdown_signal()))
        }
        Command::Trigger(args) => std::process::exit(trigger_cli::run(args)),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::HealthCheck(args) => health_check::run(args),
        Command::Ci(CiCommand::Lint(args)) => {
            let valid = lint::run(&args)?;
            std::process::exit(if valid { 0 } else { 1 });
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Says which isolation jobs get: loudly when there is none.
fn log_isolation(isolation: &Isolation, who: &str) {
    if isolation.confined() {
        tracing::info!(%isolation, "{who}: job isolation");
    } else {
        tracing::error!(%isolation, "{who}: JOBS ARE NOT ISOLATED");
    }
}

/// Creates the data directory, readable by the server's user only (jobs run as another user
/// when the server runs as root).
fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(err).with_context(|| format!("creating data directory {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// What the embedded runner needs before it can start: the isolation jobs get and its builds
/// directory, which must not be inside the data directory. An error keeps it from starting.
fn prepare_embedded_runner(settings: &Settings) -> anyhow::Result<(Isolation, PathBuf)> {
    let isolation = Isolation::detect(&IsolationOptions {
        job_user: settings.job_user.clone(),
        allow_unconfined: settings.allow_jobs_to_read_server_secrets,
    })?;
    // Checked as written first (before anything is created), then as resolved.
    let inside = |builds: &std::path::Path, data: &std::path::Path| -> anyhow::Result<()> {
        if builds.starts_with(data) || data.starts_with(builds) {
            anyhow::bail!(
                "the builds directory {} must not be inside the data directory {} (nor contain it)",
                builds.display(),
                data.display()
            );
        }
        Ok(())
    };
    inside(
        &std::path::absolute(&settings.builds_dir)?,
        &std::path::absolute(&settings.data_dir)?,
    )?;
    let data = std::fs::canonicalize(&settings.data_dir)?;
    isolation.ensure_private(&data)?;
    if let Some(config) = &settings.config_file {
        isolation.ensure_private(config)?;
    }
    let builds = pipewright_runner::prepare_builds_dir(&settings.builds_dir, &isolation)?;
    inside(&builds, &data)?;
    Ok((isolation, builds))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    create_data_dir(&settings.data_dir)?;
    let store = pipewright_store::connect(&settings.database_url)
        .await
        .context("opening the database")?;
    let mut config =
        pipewright_server::ServerConfig::new(&settings.external_url, &settings.data_dir);
    config.max_body_bytes = settings.max_body_size;
    config.job_request_long_poll = settings.job_request_long_poll;
    config.monitoring_allowlist = settings.monitoring_allowlist.clone();
    config.trusted_proxies = settings.trusted_proxies.clone();
    config.max_trace_bytes = settings.max_log_size;
    config.max_artifacts_bytes = settings.max_artifacts_size;
    config.max_git_body_bytes = settings.max_git_push_size;
    config.max_git_fetch_body_bytes = settings.max_git_fetch_size;
    config.pipeline_limit_per_project_user_sha = settings.pipeline_limit_per_project_user_sha;
    let embedded = settings
        .embedded_runner
        .then(|| prepare_embedded_runner(&settings));
    config.embedded_runner_status = match &embedded {
        None => "The embedded runner is off (--no-embedded-runner).".to_string(),
        Some(Ok((isolation, builds))) => format!(
            "The embedded runner runs jobs in {}. {isolation}.",
            builds.display()
        ),
        Some(Err(err)) => format!("The embedded runner did not start: {err:#}."),
    };
    let state = pipewright_server::app_state(config, store.clone())?;

    match bootstrap::ensure_root(
        &state,
        settings.root_password.as_deref(),
        settings.root_token.as_deref(),
    )
    .await?
    {
        Bootstrap::Existing => {}
        Bootstrap::CreatedRoot {
            generated_password,
            token_registered,
        } => {
            println!("Created the administrator account `root`.");
            if let Some(password) = generated_password {
                println!("Its generated password (shown only this once): {password}");
            }
            if token_registered {
                println!(
                    "PIPEWRIGHT_ROOT_TOKEN is registered as root's personal access token (scope api)."
                );
            }
        }
    }

    let listener = TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!(listen = %local, external_url = %settings.external_url, backend = ?store.backend(), "pipewright is serving");
    let (stop_runner, runner_stopped) = tokio::sync::oneshot::channel::<()>();
    match embedded {
        None => {}
        Some(Err(err)) => tracing::error!(
            error = %format!("{err:#}"),
            "the embedded runner did not start; jobs wait for external runners"
        ),
        Some(Ok((isolation, builds_dir))) => {
            let token = bootstrap::embedded_runner_token(&state).await?;
            log_isolation(&isolation, "embedded runner");
            let config = pipewright_runner::RunnerConfig {
                url: format!("http://{local}"),
                token,
                builds_dir,
                concurrency: settings.runner_concurrency,
                isolation,
            };
            tracing::info!(concurrency = config.concurrency, builds_dir = %config.builds_dir.display(), "embedded runner started");
            tokio::spawn(async move {
                let stopped = async {
                    let _ = runner_stopped.await;
                };
                if let Err(err) = pipewright_runner::run(config, stopped).await {
                    tracing::error!(error = %format!("{err:#}"), "embedded runner stopped");
                }
            });
        }
    }
    pipewright_server::serve(listener, state, shutdown_signal()).await?;
    let _ = stop_runner.send(());
    tracing::info!("shutting down: closing the database");
    store.close().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("signal received: finishing in-flight requests");
}
