//! `pipewright trigger`: fire a pipeline with a trigger token, print its URL, and optionally
//! wait for it (`--wait`), stream its jobs' logs (`--follow`) and play its manual jobs, with an
//! exit code scripts can branch on. It is an API client only — GitLab's public API v4
//! (`api.rs`) — so it works against GitLab as well as Pipewright.
//!
//! - `args.rs`: flags, parsers and which token is used for what.
//! - `api.rs`: the HTTP calls and the server's error messages.
//! - `wait.rs`: the polling loop, manual jobs, transient failures.
//! - `follow.rs`: job logs, incrementally, made safe for a terminal.
//! - `progress.rs`: the status line or plain lines, and the summary table.

mod api;
mod args;
mod follow;
mod progress;
mod wait;

use std::io::IsTerminal;

use anyhow::Context;
use serde_json::Value;

pub use args::TriggerArgs;

use api::{Api, Job, Pipeline, Triggered};
use args::OnManual;
use progress::Progress;
use wait::{Ending, Watch};

/// The pipeline did not finish within `--timeout`.
pub const EXIT_TIMEOUT: i32 = 3;
/// A usage error, or a request the server refused or that did not reach it.
pub const EXIT_ERROR: i32 = 4;

/// Runs the command; the process's exit code.
pub fn run(args: TriggerArgs) -> i32 {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(trigger(args)));
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            EXIT_ERROR
        }
    }
}

async fn trigger(args: TriggerArgs) -> anyhow::Result<i32> {
    let credentials = args::credentials(&args, |name| std::env::var(name).ok()).context(
        "no trigger token: pass --token, or set PIPEWRIGHT_TRIGGER_TOKEN (in a CI job, \
         CI_JOB_TOKEN is used)",
    )?;
    if args.waits() && credentials.read.is_none() {
        anyhow::bail!(
            "--wait and --follow read the pipeline through the API: pass --api-token (or set \
             PIPEWRIGHT_API_TOKEN), or trigger with CI_JOB_TOKEN"
        );
    }
    let mut api = Api::new(&args.url, &args.project, credentials.read.as_ref())?;
    // A job token may read pipelines without reading the project (GitLab's job token
    // permissions), so only a personal access token is checked before triggering.
    if args.waits() && matches!(credentials.read, Some(args::ReadAuth::Private(_))) {
        let id = api.project_id().await?;
        api.use_project_id(id);
    }
    let triggered = api
        .trigger(
            &credentials.trigger_token,
            &args.git_ref,
            &args.vars,
            args.idempotency_key.as_deref(),
            args.dry_run,
        )
        .await?;
    if args.dry_run {
        return Ok(print_dry_run(&triggered));
    }
    let pipeline: Pipeline = serde_json::from_value(triggered.body)
        .context("the server's answer to the trigger is not a pipeline")?;
    print_line(&web_url(&pipeline));
    if triggered.replayed {
        eprintln!(
            "note: the server answered with the pipeline an earlier request with this \
             idempotency key created"
        );
    }
    if !args.waits() {
        return Ok(0);
    }
    if let Some(project_id) = pipeline.project_id {
        api.use_project_id(project_id);
    }
    let waited = wait_for(&api, &pipeline, &args).await;
    match waited {
        Err(err) if job_token_refused(&credentials, &err) => Err(err.context(
            "the server let the CI job token trigger the pipeline but not read it (GitLab does \
             not let job tokens read pipelines: gitlab-org/gitlab#506668); pass --api-token to wait",
        )),
        other => other,
    }
}

/// A read with a job token was refused as unauthenticated or not allowed.
fn job_token_refused(credentials: &args::Credentials, err: &anyhow::Error) -> bool {
    matches!(credentials.read, Some(args::ReadAuth::Job(_)))
        && matches!(
            err.downcast_ref::<api::ApiError>(),
            Some(api::ApiError::Refused { status, .. }) if matches!(status.as_u16(), 401 | 403 | 404)
        )
}

/// Waits (and follows), then says how the pipeline ended.
async fn wait_for(api: &Api, pipeline: &Pipeline, args: &TriggerArgs) -> anyhow::Result<i32> {
    let mut out = Progress::new(std::io::stdout().is_terminal());
    let options = wait::Options {
        on_manual: args.on_manual.unwrap_or(OnManual::Fail),
        // Never hammer the server, whatever was asked.
        interval: args
            .poll_interval
            .max(std::time::Duration::from_millis(100)),
        follow: args.follow,
    };
    let mut watch = Watch::new(api, pipeline.id, options);
    let ending = match args.timeout {
        Some(limit) => tokio::time::timeout(limit, watch.run(&mut out)).await.ok(),
        None => Some(watch.run(&mut out).await),
    };
    out.clear();
    let ending = ending.transpose()?;
    let (last, jobs) = match watch.last.take() {
        Some((last, jobs)) => (last, jobs),
        None => (pipeline.clone(), Vec::new()),
    };
    if args.follow && !jobs.is_empty() {
        out.line("");
        out.line(progress::summary(&jobs).trim_end());
    }
    let url = web_url(&last);
    let code = match ending {
        None => {
            let limit = args.timeout.map(|t| progress::clock(t.as_secs_f64()));
            out.line(&format!(
                "timed out after {}: pipeline #{} is still {}: {url}",
                limit.unwrap_or_default(),
                last.id,
                last.status
            ));
            EXIT_TIMEOUT
        }
        Some(Ending::Blocked) => {
            out.line(&format!(
                "pipeline #{} waits for manual jobs ({}): {url}\n\
                 (--on-manual play plays them, --on-manual skip counts the pipeline as finished)",
                last.id,
                names(&jobs, |j| j.status == "manual"),
            ));
            1
        }
        Some(Ending::Finished) => {
            out.line(&format!("pipeline #{} {}: {url}", last.id, last.status));
            for job in jobs
                .iter()
                .filter(|j| j.status == "failed" && !j.allow_failure)
            {
                let reason = job.failure_reason.as_deref().unwrap_or("failed");
                let job_url = job.web_url.as_deref().unwrap_or("");
                out.line(&format!("  failed: {} ({reason}) {job_url}", job.name));
            }
            wait::exit_code(&last.status)
        }
    };
    Ok(code)
}

fn names(jobs: &[Job], which: impl Fn(&Job) -> bool) -> String {
    let names: Vec<&str> = jobs
        .iter()
        .filter(|j| which(j))
        .map(|j| j.name.as_str())
        .collect();
    names.join(", ")
}

/// A line on stdout; a closed stdout (`| head -1`) is not an error worth a panic.
fn print_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn web_url(pipeline: &Pipeline) -> String {
    pipeline
        .web_url
        .clone()
        .unwrap_or_else(|| format!("pipeline #{}", pipeline.id))
}

/// Prints the dry run's answer (which jobs would run, which not, and why), one line each. A
/// server that ignores `dry_run` (GitLab) has created a real pipeline: that is said loudly and
/// is an error, so a script notices.
fn print_dry_run(triggered: &Triggered) -> i32 {
    if triggered.body.get("dry_run") == Some(&Value::Bool(true)) {
        for line in dry_run_lines(&triggered.body) {
            print_line(&line);
        }
        return 0;
    }
    let url = triggered
        .body
        .get("web_url")
        .and_then(Value::as_str)
        .unwrap_or("(no URL in the answer)");
    eprintln!(
        "error: the server does not support dry runs: it answered {} and created a real \
         pipeline: {url}",
        triggered.status
    );
    EXIT_ERROR
}

/// `dry run: main at 1a2b3c4d (source trigger), nothing was created`, then a line per job
/// that would run (`run   name  stage  when [allow_failure] [needs: …]  — reason`) and per job
/// left out (`skip  name  — reason`).
fn dry_run_lines(body: &Value) -> Vec<String> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let sha = text(body, "sha");
    let mut lines = vec![format!(
        "dry run: {} at {} (source {}), nothing was created",
        text(body, "ref"),
        sha.get(..8).unwrap_or(&sha),
        text(body, "source")
    )];
    let list = |key: &str| {
        body.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for job in list("jobs") {
        let mut what = format!("{} {}", text(&job, "stage"), text(&job, "when"));
        if job.get("allow_failure") == Some(&Value::Bool(true)) {
            what.push_str(" allow_failure");
        }
        let needs: Vec<String> = job
            .get("needs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        if !needs.is_empty() {
            what.push_str(&format!(" needs: {}", needs.join(", ")));
        }
        lines.push(format!(
            "run   {}  {what}  — {}",
            text(&job, "name"),
            text(&job, "reason")
        ));
    }
    for job in list("excluded") {
        lines.push(format!(
            "skip  {}  — {}",
            text(&job, "name"),
            text(&job, "reason")
        ));
    }
    lines
}
