//! The shell executor: one job, start to finish, in a clean directory.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::RunnerConfig;
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

impl Trace<'_> {
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
            .json(&json!({"token": self.token, "state": "running"}))
            .send()
            .await;
        if let Ok(r) = res
            && (r.status().as_u16() == 403
                || r.headers()
                    .get("job-status")
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
            let end = self.offset + masked.len() - 1;
            let res = self
                .client
                .patch(format!("{}/trace", self.url))
                .header("JOB-TOKEN", &self.token)
                .header("Content-Range", format!("{}-{end}", self.offset))
                .header("Content-Type", "text/plain")
                .body(masked.clone())
                .send()
                .await;
            match res {
                Ok(r) if r.status().as_u16() == 202 => {
                    if r.headers()
                        .get("job-status")
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
                        .get("range")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split('-').nth(1))
                        .and_then(|v| v.parse().ok());
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

/// A bash script that echoes each command as GitLab Runner does, then runs it.
fn script_body(lines: &[String]) -> String {
    let mut body = String::from("exec 2>&1\nset -eo pipefail\n");
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

/// Runs a command, streaming its output; returns its exit code, or `None` if it was stopped
/// (timeout or cancellation).
async fn run_streamed(
    mut cmd: tokio::process::Command,
    trace: &mut Trace<'_>,
    timeout: Duration,
) -> anyhow::Result<Option<i32>> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting a process")?;
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
                trace.flush().await;
                return Ok(status?.code().or(Some(-1)));
            }
        }
    };
    if stopped {
        // Kill the whole process group: a script's children go too. (Not via kill(1):
        // procps-ng 4.0's `kill -KILL -PGID` signals every process on the machine.)
        if let Some(pgid) = pid
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 1)
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = child.kill().await;
    }
    trace.flush().await;
    Ok(None)
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

fn steps(job: &Value, name: &str) -> Vec<String> {
    job["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .and_then(|s| s["script"].as_array())
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one job and reports its result.
pub async fn execute(
    client: &reqwest::Client,
    config: &RunnerConfig,
    job: Value,
) -> anyhow::Result<()> {
    let id = job["id"].as_i64().context("job without id")?;
    let token = job["token"]
        .as_str()
        .context("job without token")?
        .to_string();
    let job_url = format!("{}/api/v4/jobs/{id}", config.url);
    let variables = job["variables"].as_array().cloned().unwrap_or_default();
    let mut secrets: Vec<String> = variables
        .iter()
        .filter(|v| v["masked"] == true)
        .filter_map(|v| v["value"].as_str().map(str::to_string))
        .collect();
    secrets.push(token.clone());
    let mut trace = Trace {
        client,
        url: job_url.clone(),
        token: token.clone(),
        offset: 0,
        masker: Masker::new(secrets),
        partial: String::new(),
        canceled: false,
        heartbeat: Duration::from_secs(3),
        timestamps: variables.iter().any(|v| {
            v["key"] == "FF_TIMESTAMPS"
                && v["value"].as_str().is_some_and(|x| x == "true" || x == "1")
        }),
        line_open: false,
    };
    let timeout = Duration::from_secs(job["runner_info"]["timeout"].as_u64().unwrap_or(3600));

    let dir = config.builds_dir.join(id.to_string());
    let _ = tokio::fs::remove_dir_all(&dir).await;
    let project_dir = dir.join("project");
    let tmp = dir.join("tmp");
    tokio::fs::create_dir_all(&tmp).await?;
    trace
        .write(&format!(
            "Running with pipewright-runner {} (shell executor)\n",
            env!("CARGO_PKG_VERSION")
        ))
        .await;

    // The environment: variables, with file variables written to files.
    let mut env: Vec<(String, String)> = Vec::new();
    for v in &variables {
        let (Some(key), Some(value)) = (v["key"].as_str(), v["value"].as_str()) else {
            continue;
        };
        if v["file"] == true {
            let path = tmp.join(key);
            tokio::fs::write(&path, value).await?;
            env.push((key.to_string(), path.to_string_lossy().into_owned()));
        } else {
            env.push((key.to_string(), value.to_string()));
        }
    }
    env.push(("HOME".into(), tmp.to_string_lossy().into_owned()));
    env.push((
        "CI_BUILDS_DIR".into(),
        config.builds_dir.to_string_lossy().into_owned(),
    ));
    env.push((
        "CI_PROJECT_DIR".into(),
        project_dir.to_string_lossy().into_owned(),
    ));

    // Fetch the repository at the job's commit, with the job token.
    trace
        .section_start("get_sources", "Fetching the repository")
        .await;
    let repo_url = job["git_info"]["repo_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let sha = job["git_info"]["sha"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let fetch = format!(
        "exec 2>&1\nset -e\ngit -c init.defaultBranch=main init -q {dir}\ncd {dir}\ngit fetch -q --depth 50 {url} {sha}\ngit checkout -q --detach {sha}\n",
        dir = shell_quote(&project_dir.to_string_lossy()),
        url = shell_quote(&repo_url),
        sha = shell_quote(&sha),
    );
    let fetch_script = tmp.join("fetch.sh");
    tokio::fs::write(&fetch_script, fetch).await?;
    let mut fetch_cmd = bash(
        &fetch_script,
        &dir,
        &[("HOME".into(), tmp.to_string_lossy().into_owned())],
    );
    fetch_cmd
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    let fetched = run_streamed(fetch_cmd, &mut trace, Duration::from_secs(600)).await?;
    trace.section_end("get_sources").await;
    if fetched != Some(0) {
        trace
            .write("\x1b[31;1mERROR: fetching the repository failed\x1b[0;m\n")
            .await;
        trace.flush().await;
        return report(
            client,
            &job_url,
            &token,
            "failed",
            Some("runner_system_failure"),
            None,
        )
        .await;
    }

    // Artifacts of the jobs this one depends on.
    for dep in job["dependencies"].as_array().cloned().unwrap_or_default() {
        let (Some(dep_id), Some(name)) = (dep["id"].as_i64(), dep["name"].as_str()) else {
            continue;
        };
        trace
            .write(&format!(
                "\x1b[32;1mDownloading artifacts for {name} ({dep_id})...\x1b[0;m\n"
            ))
            .await;
        let dep_token = dep["token"].as_str().unwrap_or(&token);
        match download_artifacts(client, config, dep_id, dep_token, &tmp, &project_dir).await {
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
                trace.flush().await;
                return report(
                    client,
                    &job_url,
                    &token,
                    "failed",
                    Some("runner_system_failure"),
                    None,
                )
                .await;
            }
        }
    }

    // before_script + script, stopping at the first failure.
    let script_path = tmp.join("script.sh");
    tokio::fs::write(&script_path, script_body(&steps(&job, "script"))).await?;
    trace
        .section_start(
            "step_script",
            "Executing \"step_script\" stage of the job script",
        )
        .await;
    let result = run_streamed(bash(&script_path, &project_dir, &env), &mut trace, timeout).await?;
    trace.section_end("step_script").await;

    // after_script always runs; its failure does not fail the job.
    let after = steps(&job, "after_script");
    if !after.is_empty() && !trace.canceled {
        trace
            .section_start("after_script", "Running after_script")
            .await;
        let after_path = tmp.join("after_script.sh");
        tokio::fs::write(&after_path, script_body(&after)).await?;
        let _ = run_streamed(
            bash(&after_path, &project_dir, &env),
            &mut trace,
            Duration::from_secs(300),
        )
        .await?;
        trace.section_end("after_script").await;
    }

    // Artifacts, when the job's outcome matches their `when`.
    let succeeded = result == Some(0);
    if !trace.canceled
        && let Some(spec) = job["artifacts"].as_array().and_then(|a| a.first()).cloned()
    {
        let when = spec["when"].as_str().unwrap_or("on_success");
        let wanted = match when {
            "always" => true,
            "on_failure" => !succeeded,
            _ => succeeded,
        };
        if wanted
            && let Err(err) = upload_artifacts(
                client,
                &job_url,
                &token,
                &spec,
                &project_dir,
                &tmp,
                &mut trace,
            )
            .await
        {
            trace
                .write(&format!(
                    "\x1b[31;1mERROR: Uploading artifacts to coordinator... {err:#}\x1b[0;m\n"
                ))
                .await;
            if succeeded {
                trace.flush().await;
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return report(
                    client,
                    &job_url,
                    &token,
                    "failed",
                    Some("unknown_failure"),
                    None,
                )
                .await;
            }
        }
    }

    let outcome = match result {
        Some(0) => {
            trace.write("\x1b[32;1mJob succeeded\x1b[0;m\n").await;
            ("success", None, Some(0))
        }
        Some(code) => {
            trace
                .write(&format!(
                    "\x1b[31;1mERROR: Job failed: exit code {code}\x1b[0;m\n"
                ))
                .await;
            ("failed", Some("script_failure"), Some(code))
        }
        None if trace.canceled => ("canceled", None, None),
        None => {
            trace
                .write(
                    "\x1b[31;1mERROR: Job failed: execution took longer than the timeout\x1b[0;m\n",
                )
                .await;
            ("failed", Some("job_execution_timeout"), None)
        }
    };
    trace.flush().await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    if outcome.0 == "canceled" {
        return Ok(());
    }
    report(client, &job_url, &token, outcome.0, outcome.1, outcome.2).await
}

async fn report(
    client: &reqwest::Client,
    job_url: &str,
    token: &str,
    state: &str,
    failure_reason: Option<&str>,
    exit_code: Option<i32>,
) -> anyhow::Result<()> {
    let mut body = json!({"token": token, "state": state});
    if let Some(reason) = failure_reason {
        body["failure_reason"] = json!(reason);
    }
    if let Some(code) = exit_code {
        body["exit_code"] = json!(code);
    }
    for _ in 0..5 {
        if let Ok(res) = client.put(job_url).json(&body).send().await
            && (res.status().is_success() || res.status().as_u16() == 403)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("could not report the job's result")
}

/// Downloads a dependency's archive and unpacks it into the project directory.
async fn download_artifacts(
    client: &reqwest::Client,
    config: &RunnerConfig,
    dep_id: i64,
    token: &str,
    tmp: &Path,
    project_dir: &Path,
) -> anyhow::Result<usize> {
    let res = client
        .get(format!("{}/api/v4/jobs/{dep_id}/artifacts", config.url))
        .header("JOB-TOKEN", token)
        .send()
        .await?;
    if !res.status().is_success() {
        anyhow::bail!("{}", res.status());
    }
    let bytes = res.bytes().await?;
    let archive = tmp.join(format!("dependency-{dep_id}.zip"));
    tokio::fs::write(&archive, &bytes).await?;
    let root = project_dir.to_path_buf();
    let count =
        tokio::task::spawn_blocking(move || crate::artifacts::unzip(&archive, &root)).await??;
    Ok(count)
}

/// Collects, zips and uploads the job's artifacts (`POST /jobs/:id/artifacts`).
async fn upload_artifacts(
    client: &reqwest::Client,
    job_url: &str,
    token: &str,
    spec: &Value,
    project_dir: &Path,
    tmp: &Path,
    trace: &mut Trace<'_>,
) -> anyhow::Result<()> {
    let strings = |key: &str| -> Vec<String> {
        spec[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let wanted = crate::artifacts::ArtifactSpec {
        paths: strings("paths"),
        exclude: strings("exclude"),
        untracked: spec["untracked"].as_bool().unwrap_or(false),
    };
    trace
        .write("\x1b[32;1mUploading artifacts...\x1b[0;m\n")
        .await;
    let root = project_dir.to_path_buf();
    let archive = tmp.join("artifacts.zip");
    let out = archive.clone();
    let collected = tokio::task::spawn_blocking(move || {
        let collected = crate::artifacts::collect(&root, &wanted)?;
        if !collected.files.is_empty() {
            crate::artifacts::zip_files(&root, &collected.files, &out)?;
        }
        anyhow::Ok(collected)
    })
    .await??;
    for line in &collected.log {
        trace.write(&format!("{line}\n")).await;
    }
    if collected.files.is_empty() {
        trace
            .write("\x1b[0;33mWARNING: No files to upload\x1b[0;m\n")
            .await;
        return Ok(());
    }
    let data = tokio::fs::read(&archive).await?;
    let mut form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(data)
                .file_name("artifacts.zip")
                .mime_str("application/zip")?,
        )
        .text("artifact_format", "zip")
        .text("artifact_type", "archive");
    if let Some(expire_in) = spec["expire_in"].as_str() {
        form = form.text("expire_in", expire_in.to_string());
    }
    let res = client
        .post(format!("{job_url}/artifacts"))
        .header("JOB-TOKEN", token)
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
        let body = script_body(&["echo 'hi'".to_string(), "make upload".to_string()]);
        assert!(body.starts_with("exec 2>&1\nset -eo pipefail\n"));
        assert!(body.contains(r"printf '\033[32;1m$ %s\033[0;m\n' 'echo '\''hi'\'''"));
        assert!(body.contains("\nmake upload\n"));
    }
}
