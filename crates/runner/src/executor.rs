//! The shell executor: one job, start to finish, in a clean directory, isolated as
//! `isolation.rs` describes.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use pipewright_runner_proto::{
    self as proto, ArtifactFormat, ArtifactSpec, ArtifactType, ContentRange, FailureReason,
    JobPayload, JobState, JobUpdate, StepName, Variable, When,
};
use tokio::io::AsyncReadExt;

use crate::RunnerConfig;
use crate::isolation::{JobUser, Limits, Sandbox};
use crate::mask::Masker;

/// Streams the job's log to the server, masked, at the right offsets.
struct Trace<'a> {
    client: &'a reqwest::Client,
    url: String,
    token: String,
    offset: usize,
    masker: Masker,
    /// Output not yet sent because its line is not complete.
    partial: String,
    canceled: bool,
    /// How often to tell the server the job is alive (GitLab's trace update interval).
    heartbeat: Duration,
    /// GitLab Runner's `FF_TIMESTAMPS`: every line of the log starts with when it was written.
    timestamps: bool,
    /// The last text sent ended inside a line (its next piece is a continuation).
    line_open: bool,
}

impl<'a> Trace<'a> {
    /// The log of the job at `url`: its masked variables and its token become `[MASKED]`.
    fn for_job(
        client: &'a reqwest::Client,
        url: &str,
        token: &str,
        variables: &[Variable],
    ) -> Self {
        let mut secrets: Vec<String> = variables
            .iter()
            .filter(|v| v.masked)
            .map(|v| v.value.clone())
            .collect();
        secrets.push(token.to_string());
        Trace {
            client,
            url: url.to_string(),
            token: token.to_string(),
            offset: 0,
            masker: Masker::new(secrets),
            partial: String::new(),
            canceled: false,
            heartbeat: Duration::from_secs(3),
            timestamps: variables
                .iter()
                .any(|v| v.key == "FF_TIMESTAMPS" && (v.value == "true" || v.value == "1")),
            line_open: false,
        }
    }

    /// Opens a collapsible log section, as GitLab Runner marks them
    /// (`section_start:<unix time>:<name>\r\e[0K<header>`); pages fold and time them.
    async fn section_start(&mut self, name: &str, header: &str) {
        let now = unix_now();
        self.write(&format!(
            "section_start:{now}:{name}\r\x1b[0K\x1b[32;1m{header}\x1b[0;m\n"
        ))
        .await;
    }

    async fn section_end(&mut self, name: &str) {
        let now = unix_now();
        self.write(&format!("section_end:{now}:{name}\r\x1b[0K\n"))
            .await;
    }

    async fn write(&mut self, text: &str) {
        self.partial.push_str(text);
        // Send whole lines (masking works per line); flush big partial lines too.
        let cut = match self.partial.rfind('\n') {
            Some(i) => i + 1,
            None if self.partial.len() > 64 * 1024 => self.partial.len(),
            None => return,
        };
        let ready: String = self.partial.drain(..cut).collect();
        self.send(&ready).await;
    }

    /// `PUT /jobs/:id` with `state=running`: renews the lease and learns of cancellation.
    async fn keep_alive(&mut self) {
        let res = self
            .client
            .put(&self.url)
            .json(&JobUpdate::new(self.token.as_str(), JobState::Running))
            .send()
            .await;
        if let Ok(r) = res
            && (r.status().as_u16() == 403
                || r.headers()
                    .get(proto::JOB_STATUS)
                    .is_some_and(|v| v == "canceled"))
        {
            self.canceled = true;
        }
    }

    async fn flush(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.send(&rest).await;
        }
    }

    async fn send(&mut self, text: &str) {
        let mut masked = self.masker.mask(text);
        if masked.is_empty() {
            return;
        }
        if self.timestamps {
            let now = chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            masked = stamp(&masked, &mut self.line_open, &now);
        }
        for _ in 0..3 {
            let Some(range) = ContentRange::of_chunk(self.offset as u64, masked.len() as u64)
            else {
                return;
            };
            let res = self
                .client
                .patch(format!("{}/trace", self.url))
                .header(proto::JOB_TOKEN, &self.token)
                .header(proto::CONTENT_RANGE, range.to_string())
                .header("Content-Type", "text/plain")
                .body(masked.clone())
                .send()
                .await;
            match res {
                Ok(r) if r.status().as_u16() == 202 => {
                    if r.headers()
                        .get(proto::JOB_STATUS)
                        .is_some_and(|v| v == "canceled")
                    {
                        self.canceled = true;
                    }
                    self.offset += masked.len();
                    return;
                }
                Ok(r) if r.status().as_u16() == 416 => {
                    // The server has a different length: continue from where it is.
                    let server_len = r
                        .headers()
                        .get(proto::RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(proto::range_size)
                        .and_then(|len| usize::try_from(len).ok());
                    match server_len {
                        Some(len) => self.offset = len,
                        None => return,
                    }
                }
                Ok(r) if r.status().as_u16() == 403 => {
                    self.canceled = true;
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// How every script the runner writes begins: output merged, stopping at the first failure,
/// and the job's hard limits set before any of its commands run (a non-root process cannot
/// raise them again; set on the child from outside they would race with it).
fn prologue(limits: Limits) -> String {
    format!(
        "exec 2>&1\nset -eo pipefail\nulimit -n {} -u {} -c 0\n",
        limits.open_files, limits.processes
    )
}

/// A bash script that echoes each command as GitLab Runner does, then runs it.
fn script_body(lines: &[String], limits: Limits) -> String {
    let mut body = prologue(limits);
    for line in lines {
        body.push_str(&format!(
            "printf '\\033[32;1m$ %s\\033[0;m\\n' {}\n",
            shell_quote(line)
        ));
        body.push_str(line);
        body.push('\n');
    }
    body
}

/// Fetches the job's commit into the project directory with the job token.
fn fetch_body(project_dir: &Path, repo_url: &str, sha: &str, limits: Limits) -> String {
    format!(
        "{prologue}git -c init.defaultBranch=main init -q {dir}\ncd {dir}\ngit fetch -q --depth 50 {url} {sha}\ngit checkout -q --detach {sha}\n",
        prologue = prologue(limits),
        dir = shell_quote(&project_dir.to_string_lossy()),
        url = shell_quote(repo_url),
        sha = shell_quote(sha),
    )
}

/// Runs one of the job's commands in its sandbox, streaming its output; returns its exit code,
/// or `None` if it was stopped (timeout or cancellation). Whatever the command left running in
/// its process group is killed when it ends.
async fn run_streamed(
    sandbox: &Sandbox,
    mut cmd: tokio::process::Command,
    trace: &mut Trace<'_>,
    timeout: Duration,
) -> anyhow::Result<Option<i32>> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = sandbox.spawn(cmd).await?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let pid = child.id();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut heartbeat = tokio::time::interval(trace.heartbeat);
    heartbeat.tick().await;
    let mut buf = vec![0u8; 16 * 1024];
    let mut ebuf = vec![0u8; 16 * 1024];
    let (mut out_open, mut err_open) = (true, true);
    let stopped = loop {
        if trace.canceled {
            break true;
        }
        tokio::select! {
            n = stdout.read(&mut buf), if out_open => match n {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => trace.write(&String::from_utf8_lossy(&buf[..n])).await,
            },
            n = stderr.read(&mut ebuf), if err_open => match n {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => trace.write(&String::from_utf8_lossy(&ebuf[..n])).await,
            },
            () = tokio::time::sleep_until(deadline) => break true,
            _ = heartbeat.tick() => trace.keep_alive().await,
            status = child.wait(), if !out_open && !err_open => {
                kill_process_group(pid);
                trace.flush().await;
                return Ok(status?.code().or(Some(-1)));
            }
        }
    };
    if stopped {
        kill_process_group(pid);
        let _ = child.kill().await;
    }
    trace.flush().await;
    Ok(None)
}

/// Kills a step's whole process group: a script's children go too. (Not via kill(1):
/// procps-ng 4.0's `kill -KILL -PGID` signals every process on the machine.)
fn kill_process_group(pid: Option<u32>) {
    if let Some(pgid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 1)
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
}

fn bash(script: &Path, cwd: &Path, env: &[(String, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("--noprofile")
        .arg("--norc")
        .arg(script)
        .current_dir(cwd)
        .env_clear();
    cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd.env("LANG", "C.UTF-8");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The lines of the job's step `name` (none if it has no such step).
fn steps<'j>(job: &'j JobPayload, name: &StepName) -> &'j [String] {
    job.step(name).map_or(&[], |step| &step.script)
}

/// A job's directory, `<builds>/<job id>`: the runner's, with `project/` (`CI_PROJECT_DIR`)
/// and `tmp/` (`HOME`, `TMPDIR`, file variables) owned by the job's user, and `scripts/` (the
/// runner's; the job may read, not change them).
#[derive(Clone)]
struct JobDir {
    root: PathBuf,
    project: PathBuf,
    tmp: PathBuf,
    scripts: PathBuf,
}

impl JobDir {
    fn new(builds_dir: &Path, id: i64) -> JobDir {
        let root = builds_dir.join(id.to_string());
        JobDir {
            project: root.join("project"),
            tmp: root.join("tmp"),
            scripts: root.join("scripts"),
            root,
        }
    }

    fn fetch_script(&self) -> PathBuf {
        self.scripts.join("fetch.sh")
    }

    fn script(&self) -> PathBuf {
        self.scripts.join("script.sh")
    }

    fn after_script(&self) -> PathBuf {
        self.scripts.join("after_script.sh")
    }
}

/// A file the runner writes before any of the job's processes starts, so no link a job could
/// plant is ever followed by the runner.
struct JobFile {
    path: PathBuf,
    contents: String,
    /// The job's (a file variable: mode 0600, the job user's) or the runner's (a script, 0644).
    private: bool,
}

/// Creates the job's directory afresh with its files. Runs before any of the job's processes.
fn prepare_job_dir(dir: &JobDir, user: Option<&JobUser>, files: &[JobFile]) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(&dir.root) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("removing {}", dir.root.display()));
        }
        _ => {}
    }
    // Modes are set after creating, not only asked for: the process's umask (a service
    // manager's `UMask=0077`) would otherwise leave the job user locked out of its scripts.
    for (path, mode) in [
        (&dir.root, 0o755),
        (&dir.scripts, 0o755),
        (&dir.project, 0o700),
        (&dir.tmp, 0o700),
    ] {
        std::fs::DirBuilder::new().mode(mode).create(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    for own in [&dir.project, &dir.tmp] {
        crate::artifacts::give(own, user)?;
    }
    for file in files {
        let mode = if file.private { 0o600 } else { 0o644 };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&file.path)
            .with_context(|| format!("writing {}", file.path.display()))?;
        out.set_permissions(std::fs::Permissions::from_mode(mode))?;
        out.write_all(file.contents.as_bytes())?;
        if file.private {
            crate::artifacts::give(&file.path, user)?;
        }
    }
    Ok(())
}

/// The job's environment: its variables (file variables become files in `tmp/`), and where it
/// runs. Also returns the files to write.
fn job_env(variables: &[Variable], dir: &JobDir) -> (Vec<(String, String)>, Vec<JobFile>) {
    let mut env = Vec::new();
    let mut files = Vec::new();
    for v in variables {
        let (key, value) = (v.key.as_str(), v.value.as_str());
        if v.file {
            // A key names a file: only GitLab's variable-key characters, never a path.
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let path = dir.tmp.join(key);
            env.push((key.to_string(), path.to_string_lossy().into_owned()));
            files.push(JobFile {
                path,
                contents: value.to_string(),
                private: true,
            });
        } else {
            env.push((key.to_string(), value.to_string()));
        }
    }
    let tmp = dir.tmp.to_string_lossy().into_owned();
    env.push(("HOME".into(), tmp.clone()));
    env.push(("TMPDIR".into(), tmp));
    // The job's own directory is the only builds directory it can see.
    env.push((
        "CI_BUILDS_DIR".into(),
        dir.root.to_string_lossy().into_owned(),
    ));
    env.push((
        "CI_PROJECT_DIR".into(),
        dir.project.to_string_lossy().into_owned(),
    ));
    (env, files)
}

/// Runs one job and reports its result.
pub async fn execute(
    client: &reqwest::Client,
    config: &RunnerConfig,
    job: JobPayload,
) -> anyhow::Result<()> {
    let id = job.id;
    let token = job.token.expose().to_string();
    let job_url = format!("{}/api/v4/jobs/{id}", config.url);
    let mut trace = Trace::for_job(client, &job_url, &token, &job.variables);
    let report_to = Report {
        client,
        job_url: &job_url,
        token: &token,
    };
    let dir = JobDir::new(&config.builds_dir, id);
    let sandbox = Sandbox::new(&config.isolation, dir.root.clone());
    trace
        .write(&format!(
            "Running with pipewright-runner {} (shell executor)\nJob isolation: {}\n",
            env!("CARGO_PKG_VERSION"),
            config.isolation
        ))
        .await;
    let outcome = match write_job_files(config, &job, &dir).await {
        Ok(env) => run_job(config, &job, &sandbox, &dir, &env, &mut trace, &report_to).await,
        Err(err) => Err(err),
    };
    // A job the runner could not run (its directory, its sandbox) fails at once rather than
    // when its lease runs out.
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::warn!(job_id = id, error = %format!("{err:#}"), "job execution failed");
            trace
                .write("\x1b[31;1mERROR: the runner could not run this job\x1b[0;m\n")
                .await;
            Outcome::failed(FailureReason::RunnerSystemFailure, None)
        }
    };
    trace.flush().await;
    let _ = tokio::fs::remove_dir_all(&dir.root).await;
    match outcome {
        Some(o) => report_to.send(o.state, o.reason, o.exit_code).await,
        None => Ok(()),
    }
}

/// How a job ended, as `PUT /jobs/:id` reports it.
struct Outcome {
    state: JobState,
    reason: Option<FailureReason>,
    exit_code: Option<i32>,
}

impl Outcome {
    fn failed(reason: FailureReason, exit_code: Option<i32>) -> Option<Outcome> {
        Some(Outcome {
            state: JobState::Failed,
            reason: Some(reason),
            exit_code,
        })
    }
}

/// Writes every file the runner puts into the job's directory (scripts, file variables)
/// before any of the job's processes exists; returns the job's environment.
async fn write_job_files(
    config: &RunnerConfig,
    job: &JobPayload,
    dir: &JobDir,
) -> anyhow::Result<Vec<(String, String)>> {
    let limits = config.isolation.limits();
    let (env, mut files) = job_env(&job.variables, dir);
    let repo_url = job.git_info.repo_url.expose();
    let sha = job.git_info.sha.as_str();
    for (path, contents) in [
        (
            dir.fetch_script(),
            fetch_body(&dir.project, repo_url, sha, limits),
        ),
        (
            dir.script(),
            script_body(steps(job, &StepName::Script), limits),
        ),
        (
            dir.after_script(),
            script_body(steps(job, &StepName::AfterScript), limits),
        ),
    ] {
        files.push(JobFile {
            path,
            contents,
            private: false,
        });
    }
    let (user, layout) = (config.isolation.job_user().cloned(), dir.clone());
    tokio::task::spawn_blocking(move || prepare_job_dir(&layout, user.as_ref(), &files)).await??;
    Ok(env)
}

/// The job's steps, in its sandbox: sources, dependencies, script, after_script, artifacts.
/// `None`: canceled (nothing to report).
async fn run_job(
    config: &RunnerConfig,
    job: &JobPayload,
    sandbox: &Sandbox,
    dir: &JobDir,
    env: &[(String, String)],
    trace: &mut Trace<'_>,
    report_to: &Report<'_>,
) -> anyhow::Result<Option<Outcome>> {
    if !fetch_sources(sandbox, dir, trace).await? {
        return Ok(Outcome::failed(FailureReason::RunnerSystemFailure, None));
    }
    if !download_dependencies(config, job, sandbox, dir, trace, report_to).await {
        return Ok(Outcome::failed(FailureReason::RunnerSystemFailure, None));
    }

    // before_script + script, stopping at the first failure.
    let timeout = Duration::from_secs(job.runner_info.timeout);
    trace
        .section_start(
            "step_script",
            "Executing \"step_script\" stage of the job script",
        )
        .await;
    let result = run_streamed(
        sandbox,
        bash(&dir.script(), &dir.project, env),
        trace,
        timeout,
    )
    .await?;
    trace.section_end("step_script").await;

    // after_script always runs; its failure does not fail the job.
    if !steps(job, &StepName::AfterScript).is_empty() && !trace.canceled {
        trace
            .section_start("after_script", "Running after_script")
            .await;
        let after = bash(&dir.after_script(), &dir.project, env);
        let _ = run_streamed(sandbox, after, trace, Duration::from_secs(300)).await?;
        trace.section_end("after_script").await;
    }

    // Artifacts, when the job's outcome matches their `when`.
    let succeeded = result == Some(0);
    if !trace.canceled
        && let Some(spec) = job.artifacts.as_deref().and_then(<[_]>::first)
    {
        let wanted = match spec.when.as_ref().unwrap_or(&When::OnSuccess) {
            When::Always => true,
            When::OnFailure => !succeeded,
            _ => succeeded,
        };
        if wanted
            && let Err(err) = upload_artifacts(report_to, sandbox, spec, dir, env, trace).await
        {
            trace
                .write(&format!(
                    "\x1b[31;1mERROR: Uploading artifacts to coordinator... {err:#}\x1b[0;m\n"
                ))
                .await;
            if succeeded {
                return Ok(Outcome::failed(FailureReason::UnknownFailure, None));
            }
        }
    }
    Ok(final_outcome(result, trace).await)
}

/// The job's result from its script's exit code (`None`: stopped), written to its log.
async fn final_outcome(result: Option<i32>, trace: &mut Trace<'_>) -> Option<Outcome> {
    match result {
        Some(0) => {
            trace.write("\x1b[32;1mJob succeeded\x1b[0;m\n").await;
            Some(Outcome {
                state: JobState::Success,
                reason: None,
                exit_code: Some(0),
            })
        }
        Some(code) => {
            trace
                .write(&format!(
                    "\x1b[31;1mERROR: Job failed: exit code {code}\x1b[0;m\n"
                ))
                .await;
            Outcome::failed(FailureReason::ScriptFailure, Some(code))
        }
        None if trace.canceled => None,
        None => {
            trace
                .write(
                    "\x1b[31;1mERROR: Job failed: execution took longer than the timeout\x1b[0;m\n",
                )
                .await;
            Outcome::failed(FailureReason::JobExecutionTimeout, None)
        }
    }
}

/// Fetches the repository at the job's commit, with the job token, as one of the job's
/// processes; whether it worked.
async fn fetch_sources(
    sandbox: &Sandbox,
    dir: &JobDir,
    trace: &mut Trace<'_>,
) -> anyhow::Result<bool> {
    trace
        .section_start("get_sources", "Fetching the repository")
        .await;
    let tmp = dir.tmp.to_string_lossy().into_owned();
    let mut fetch = bash(
        &dir.fetch_script(),
        &dir.project,
        &[("HOME".into(), tmp.clone()), ("TMPDIR".into(), tmp)],
    );
    fetch
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    let fetched = run_streamed(sandbox, fetch, trace, Duration::from_secs(600)).await?;
    trace.section_end("get_sources").await;
    if fetched != Some(0) {
        trace
            .write("\x1b[31;1mERROR: fetching the repository failed\x1b[0;m\n")
            .await;
    }
    Ok(fetched == Some(0))
}

/// Downloads and unpacks the artifacts of the jobs this one depends on; whether it worked.
async fn download_dependencies(
    config: &RunnerConfig,
    job: &JobPayload,
    sandbox: &Sandbox,
    dir: &JobDir,
    trace: &mut Trace<'_>,
    report_to: &Report<'_>,
) -> bool {
    for dep in &job.dependencies {
        let (dep_id, name) = (dep.id, &dep.name);
        trace
            .write(&format!(
                "\x1b[32;1mDownloading artifacts for {name} ({dep_id})...\x1b[0;m\n"
            ))
            .await;
        // GitLab sends the running job's token; an older GitLab, each dependency's own.
        let dep_token = Some(dep.token.expose())
            .filter(|t| !t.is_empty())
            .unwrap_or(report_to.token);
        let downloaded = download_artifacts(
            report_to.client,
            config,
            sandbox,
            dep_id,
            dep_token,
            &dir.project,
        );
        match downloaded.await {
            Ok(n) => {
                trace
                    .write(&format!("Downloaded {n} artifact entries\n"))
                    .await
            }
            Err(err) => {
                trace
                    .write(&format!(
                        "\x1b[31;1mERROR: Downloading artifacts from coordinator... {err:#}\x1b[0;m\n"
                    ))
                    .await;
                return false;
            }
        }
    }
    true
}

/// Where and how to report a job's result (`PUT /jobs/:id`) and upload its artifacts.
struct Report<'a> {
    client: &'a reqwest::Client,
    job_url: &'a str,
    token: &'a str,
}

impl Report<'_> {
    async fn send(
        &self,
        state: JobState,
        failure_reason: Option<FailureReason>,
        exit_code: Option<i32>,
    ) -> anyhow::Result<()> {
        let body = JobUpdate {
            failure_reason,
            exit_code: exit_code.map(i64::from),
            ..JobUpdate::new(self.token, state)
        };
        for _ in 0..5 {
            if let Ok(res) = self.client.put(self.job_url).json(&body).send().await
                && (res.status().is_success() || res.status().as_u16() == 403)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::bail!("could not report the job's result")
    }
}

/// Downloads a dependency's archive and unpacks it into the project directory, confined to the
/// job's directory (a link the repository or an archive holds cannot lead out of it).
async fn download_artifacts(
    client: &reqwest::Client,
    config: &RunnerConfig,
    sandbox: &Sandbox,
    dep_id: i64,
    token: &str,
    project_dir: &Path,
) -> anyhow::Result<usize> {
    let res = client
        .get(format!("{}/api/v4/jobs/{dep_id}/artifacts", config.url))
        .header(proto::JOB_TOKEN, token)
        .send()
        .await?;
    if !res.status().is_success() {
        anyhow::bail!("{}", res.status());
    }
    let bytes = res.bytes().await?;
    let root = project_dir.to_path_buf();
    let user = sandbox.isolation().job_user().cloned();
    sandbox
        .in_directory(move || crate::artifacts::unzip(&bytes, &root, user.as_ref()))
        .await
}

/// `git ls-files -o`, run as one of the job's processes (the repository's configuration is
/// the job's to change, so git runs with the job's rights, never the runner's).
async fn untracked_files(
    sandbox: &Sandbox,
    dir: &JobDir,
    env: &[(String, String)],
) -> anyhow::Result<Vec<String>> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(["ls-files", "-o", "-z"])
        .current_dir(&dir.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(env.iter().filter(|(k, _)| k == "HOME").cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = sandbox.spawn(cmd).await?;
    let pid = child.id();
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .context("listing untracked files took too long")?
        .context("listing untracked files")?;
    kill_process_group(pid);
    Ok(output
        .stdout
        .split(|b| *b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}

/// Collects, zips and uploads the job's artifacts (`POST /jobs/:id/artifacts`). The files are
/// read on a thread confined to the job's directory, regular files and links only.
async fn upload_artifacts(
    report: &Report<'_>,
    sandbox: &Sandbox,
    spec: &ArtifactSpec,
    dir: &JobDir,
    env: &[(String, String)],
    trace: &mut Trace<'_>,
) -> anyhow::Result<()> {
    let untracked = if spec.untracked.unwrap_or(false) {
        Some(untracked_files(sandbox, dir, env).await?)
    } else {
        None
    };
    let wanted = crate::artifacts::ArtifactSpec {
        paths: spec.paths.clone(),
        exclude: spec.exclude.clone().unwrap_or_default(),
        untracked,
    };
    trace
        .write("\x1b[32;1mUploading artifacts...\x1b[0;m\n")
        .await;
    let root = dir.project.clone();
    let (collected, archive) = sandbox
        .in_directory(move || {
            let collected = crate::artifacts::collect(&root, &wanted)?;
            let archive = if collected.files.is_empty() {
                None
            } else {
                Some(crate::artifacts::zip_files(&root, &collected.files)?)
            };
            anyhow::Ok((collected, archive))
        })
        .await?;
    for line in &collected.log {
        trace.write(&format!("{line}\n")).await;
    }
    let Some(data) = archive else {
        trace
            .write("\x1b[0;33mWARNING: No files to upload\x1b[0;m\n")
            .await;
        return Ok(());
    };
    let mut form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(data)
                .file_name("artifacts.zip")
                .mime_str("application/zip")?,
        )
        .text("artifact_format", ArtifactFormat::Zip.as_str().to_string())
        .text("artifact_type", ArtifactType::Archive.as_str().to_string());
    if let Some(expire_in) = &spec.expire_in {
        form = form.text("expire_in", expire_in.clone());
    }
    let res = report
        .client
        .post(format!("{}/artifacts", report.job_url))
        .header(proto::JOB_TOKEN, report.token)
        .multipart(form)
        .send()
        .await?;
    let status = res.status();
    trace
        .write(&format!(
            "Uploading artifacts as \"archive\" to coordinator... {status}\n"
        ))
        .await;
    if !status.is_success() {
        anyhow::bail!("{status}");
    }
    Ok(())
}

/// Prefixes each line of `text` as GitLab Runner's `FF_TIMESTAMPS` does: the time, a stream
/// id and `O` (stdout), then a space, or `+` when the piece continues a line already begun.
fn stamp(text: &str, line_open: &mut bool, now: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    for piece in text.split_inclusive('\n') {
        out.push_str(now);
        out.push_str(if *line_open { " 00O+" } else { " 00O " });
        out.push_str(piece);
        *line_open = !piece.ends_with('\n');
    }
    out
}

/// Seconds since the epoch, for section markers.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_prefix_every_line_and_mark_continuations() {
        let mut open = false;
        let now = "2026-11-30T10:11:12.123456Z";
        assert_eq!(
            super::stamp("a\nb", &mut open, now),
            "2026-11-30T10:11:12.123456Z 00O a\n2026-11-30T10:11:12.123456Z 00O b"
        );
        assert!(open);
        assert_eq!(
            super::stamp("c\n", &mut open, now),
            "2026-11-30T10:11:12.123456Z 00O+c\n"
        );
        assert!(!open);
    }

    use super::*;

    #[test]
    fn scripts_echo_each_command_and_stop_at_failures() {
        let limits = Limits {
            open_files: 1024,
            processes: 512,
        };
        let body = script_body(
            &["echo 'hi'".to_string(), "make upload".to_string()],
            limits,
        );
        assert!(body.starts_with("exec 2>&1\nset -eo pipefail\nulimit -n 1024 -u 512 -c 0\n"));
        assert!(body.contains(r"printf '\033[32;1m$ %s\033[0;m\n' 'echo '\''hi'\'''"));
        assert!(body.contains("\nmake upload\n"));
    }
}
