//! git's smart HTTP protocol, served by the real `git upload-pack` and `git receive-pack`
//! (`--stateless-rpc`). Our code frames the advertisement, streams each request body into git
//! as it arrives (inflated and bounded by [`RequestBody`]; never held whole in memory), and
//! works out which ref updates a push applied. Reading a push's command list before git runs
//! is `push.rs`; refusing force pushes is `hooks.rs`.
//!
//! git runs with an explicit, minimal environment: no system or user configuration can change
//! what it does, and its stderr goes to our logs, never to clients (it may contain paths).

use std::collections::HashMap;
use std::process::Stdio;

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

use crate::body::RequestBody;
use crate::pktline;
use crate::push::{IncomingPush, RefUpdate};
use crate::{Error, Repositories, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }

    fn subcommand(self) -> &'static str {
        match self {
            Service::UploadPack => "upload-pack",
            Service::ReceivePack => "receive-pack",
        }
    }
}

/// What a receive-pack run produced: the response for the client and the updates that applied.
#[derive(Debug)]
pub struct ReceiveOutcome {
    pub response: Vec<u8>,
    pub applied: Vec<RefUpdate>,
}

/// GitLab Workhorse gives an upload-pack request this long to arrive
/// (`workhorse/internal/git/upload-pack.go`, `uploadPackTimeout`); a client that sends its
/// body slower is cut off rather than holding a `git` process open.
const UPLOAD_PACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Copies `prefix`, then the rest of `body`, into git's stdin. `Ok(true)` when all of it went
/// in, `Ok(false)` when git stopped reading first (it had what it needed, or it failed, which
/// its exit status tells). Body errors — too large, not gzip, the client went away — are
/// returned, for the caller to stop git and answer.
async fn feed(mut stdin: ChildStdin, prefix: Bytes, mut body: RequestBody) -> Result<bool> {
    if !prefix.is_empty() && stdin.write_all(&prefix).await.is_err() {
        return Ok(false);
    }
    while let Some(piece) = body.next_piece().await? {
        if stdin.write_all(&piece).await.is_err() {
            return Ok(false);
        }
    }
    let _ = stdin.shutdown().await;
    Ok(true)
}

/// What the task feeding git its request ended with: `Ok` when all of it went in, git stopped
/// reading, or the client was too slow (git then sees the request end and answers or fails as
/// it will); the body's error (too large, not gzip) otherwise.
fn request_fed(
    fed: std::result::Result<
        std::result::Result<Result<bool>, tokio::time::error::Elapsed>,
        tokio::task::JoinError,
    >,
) -> Result<()> {
    match fed {
        Ok(Ok(Ok(_)) | Err(_)) => Ok(()),
        Ok(Ok(Err(err))) => Err(err),
        Err(join) => Err(Error::Process(join.to_string())),
    }
}

/// Aborts a task when dropped (the response stream owns the task feeding git its request).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Repositories {
    /// `git <service> --stateless-rpc` for a project, with `extra_config` as `-c` settings.
    fn git_command(
        &self,
        service: Service,
        project_id: i64,
        git_protocol: Option<&str>,
        extra_config: &[String],
    ) -> Result<Command> {
        let path = self.repo_path(project_id);
        if !path.is_dir() {
            return Err(Error::RepositoryNotFound);
        }
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            // Let clients send `git push -o ci.skip` (GitLab advertises push options too).
            .args(["-c", "receive.advertisePushOptions=true"]);
        for setting in extra_config {
            cmd.arg("-c").arg(setting);
        }
        cmd.arg(service.subcommand()).arg("--stateless-rpc");
        if let Some(protocol) = git_protocol
            && service == Service::UploadPack
            && protocol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=:._-".contains(&b))
        {
            cmd.env("GIT_PROTOCOL", protocol);
        }
        cmd.kill_on_drop(true);
        Ok(cmd)
    }

    /// The ref advertisement for `GET …/info/refs?service=…`.
    pub async fn info_refs(
        &self,
        project_id: i64,
        service: Service,
        git_protocol: Option<&str>,
    ) -> Result<Vec<u8>> {
        let v2 =
            service == Service::UploadPack && git_protocol.is_some_and(|p| p.contains("version=2"));
        let mut cmd = self.git_command(service, project_id, git_protocol, &[])?;
        cmd.arg("--advertise-refs").arg(self.repo_path(project_id));
        let output = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await?;
        if !output.status.success() {
            return Err(Error::Process(
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ));
        }
        let mut body = Vec::with_capacity(output.stdout.len() + 64);
        // git-http-backend omits the service header for protocol v2.
        if !v2 {
            pktline::encode(
                &mut body,
                format!("# service={}\n", service.name()).as_bytes(),
            );
            body.extend_from_slice(pktline::FLUSH);
        }
        body.extend_from_slice(&output.stdout);
        Ok(body)
    }

    /// Runs `git upload-pack` on a fetch request streamed from the client, and streams its
    /// output back. A request over its limit (or not gzip when it says so) is an error as
    /// long as git has not started answering — which it does only once it has read the
    /// request — so the client gets a clean 413 or 400. Dropping the stream (the client went
    /// away) kills the process.
    pub async fn upload_pack(
        &self,
        project_id: i64,
        body: RequestBody,
        git_protocol: Option<&str>,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let mut cmd = self.git_command(Service::UploadPack, project_id, git_protocol, &[])?;
        cmd.arg(self.repo_path(project_id));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Process("no stdin".into()))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Process("no stdout".into()))?;
        if let Some(stderr) = child.stderr.take() {
            log_stderr(stderr, "git upload-pack");
        }
        let mut feeder = tokio::spawn(tokio::time::timeout(
            UPLOAD_PACK_TIMEOUT,
            feed(stdin, Bytes::new(), body),
        ));
        let mut first = vec![0u8; 64 * 1024];
        // `biased`: when the feeder has failed, its error wins even if git's stdout has also
        // just closed (git exits on the early end of its input the feeder's failure caused).
        let first_len = tokio::select! {
            biased;
            fed = &mut feeder => {
                request_fed(fed)?;
                None
            }
            read = stdout.read(&mut first) => Some(read?),
        };
        let first = match first_len {
            // git ended without a byte of output: if that is because the request failed (over
            // its limit, not gzip), the client must get that error, never an empty 200. git
            // is gone, so the feeder stops at its next write.
            Some(0) => {
                request_fed((&mut feeder).await)?;
                None
            }
            Some(n) => {
                first.truncate(n);
                Some(Bytes::from(first))
            }
            None => None,
        };
        Ok(output_stream(child, stdout, first, AbortOnDrop(feeder)))
    }

    fn ref_values(&self, project_id: i64, names: &[String]) -> Result<HashMap<String, String>> {
        let repo = self.open(project_id)?;
        let mut out = HashMap::new();
        for name in names {
            if let Ok(reference) = repo.find_reference(name)
                && let Some(target) = reference.target()
            {
                out.insert(name.clone(), target.to_string());
            }
        }
        Ok(out)
    }

    /// The commands of `updates` whose refs now hold their new value (or are gone, for a
    /// deletion): exact whatever the client's report-status flavour.
    async fn applied(&self, project_id: i64, updates: &[RefUpdate]) -> Result<Vec<RefUpdate>> {
        let names: Vec<String> = updates.iter().map(|c| c.ref_name.clone()).collect();
        let this = self.clone();
        let after = tokio::task::spawn_blocking(move || this.ref_values(project_id, &names))
            .await
            .map_err(|e| Error::Process(e.to_string()))??;
        Ok(updates
            .iter()
            .filter(|c| match after.get(&c.ref_name) {
                Some(sha) => sha.eq_ignore_ascii_case(&c.new_sha),
                None => c.is_delete(),
            })
            .cloned()
            .collect())
    }

    /// Runs `git receive-pack` on a push the server has allowed, streaming the rest of its
    /// body in, and reports which of its ref updates took effect. Non-fast-forward updates of
    /// `fast_forward_only` refs are refused (see `hooks.rs`). A body over its limit ends git's
    /// input and is [`Error::TooLarge`] — unless git had already moved refs, in which case the push
    /// happened and its outcome is returned.
    pub async fn receive_pack(
        &self,
        project_id: i64,
        push: IncomingPush,
        fast_forward_only: &[String],
    ) -> Result<ReceiveOutcome> {
        let IncomingPush {
            request,
            prefix,
            body,
        } = push;
        let guard = self.force_push_guard(fast_forward_only).await;
        let mut cmd = self.git_command(Service::ReceivePack, project_id, None, &guard.config)?;
        cmd.envs(guard.env).arg(self.repo_path(project_id));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Process("no stdin".into()))?;
        // Read git's output while feeding it, so neither side waits on a full pipe.
        let stdout = read_all(child.stdout.take());
        let stderr = read_all(child.stderr.take());
        // On a body error `feed` has closed git's stdin: git sees the pack end early, refuses
        // it and removes its quarantined objects (killing it would leave them behind).
        let fed = feed(stdin, prefix, body).await;
        let status = child.wait().await?;
        let (stdout, stderr) = (stdout.await, stderr.await);
        if !stderr.is_empty() {
            tracing::debug!(stderr = %String::from_utf8_lossy(&stderr), "git receive-pack");
        }
        let applied = self.applied(project_id, &request.commands).await?;
        match fed {
            Err(err) if applied.is_empty() => return Err(err),
            Err(err) => {
                tracing::warn!(error = %err, "push body failed after git had applied it");
            }
            Ok(_) => {}
        }
        if !status.success() && stdout.is_empty() {
            return Err(Error::Process(
                String::from_utf8_lossy(&stderr).into_owned(),
            ));
        }
        Ok(ReceiveOutcome {
            response: stdout,
            applied,
        })
    }
}

/// Logs what a git process writes to stderr (never sent to clients: it may hold paths).
fn log_stderr(mut stderr: tokio::process::ChildStderr, what: &'static str) {
    tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text).await;
        if !text.is_empty() {
            tracing::debug!(stderr = %String::from_utf8_lossy(&text), "{what}");
        }
    });
}

/// Reads a pipe to its end in a task; the handle gives the bytes (empty if it failed).
fn read_all(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
) -> impl std::future::Future<Output = Vec<u8>> {
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut out).await;
        }
        out
    });
    async move { task.await.unwrap_or_default() }
}

/// git's stdout as a response body: `first` (already read), then the rest as it comes; the
/// process is reaped at the end, and the task feeding it stops with the stream.
fn output_stream(
    child: Child,
    stdout: tokio::process::ChildStdout,
    first: Option<Bytes>,
    feeder: AbortOnDrop<impl Send + 'static>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    struct State<F> {
        child: Option<Child>,
        stdout: tokio::process::ChildStdout,
        first: Option<Bytes>,
        _feeder: AbortOnDrop<F>,
    }
    let state = State {
        child: Some(child),
        stdout,
        first: first.filter(|b| !b.is_empty()),
        _feeder: feeder,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if let Some(first) = state.first.take() {
            return Some((Ok(first), state));
        }
        // After a read error the process is no longer ours to read.
        state.child.as_ref()?;
        let mut buf = vec![0u8; 64 * 1024];
        match state.stdout.read(&mut buf).await {
            Ok(0) => {
                if let Some(mut child) = state.child.take() {
                    let _ = child.wait().await;
                }
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), state))
            }
            Err(e) => {
                state.child = None;
                Some((Err(e), state))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// A request whose body goes over its limit is that error, never an empty success — also
    /// when git has already exited without a byte of output (here: the request starts with a
    /// flush, so git has nothing to do) before the body's excess arrives. Before, the server
    /// answered 200 with an empty body whenever git's exit was noticed first.
    #[tokio::test]
    async fn a_request_over_its_limit_is_too_large_even_after_git_exited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repos = Repositories::new(dir.path());
        repos.create(1, "main").expect("create");
        let chunks = futures_util::stream::iter([
            Bytes::from_static(b"0000"),
            Bytes::from(vec![b'0'; 128 * 1024]),
        ])
        .then(|chunk| async move {
            if chunk.len() > 4 {
                // Long enough for git to have read the flush and exited.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            Ok(chunk)
        });
        let body = RequestBody::new(chunks, false, 64 * 1024);
        match repos.upload_pack(1, body, None).await {
            Err(Error::TooLarge { limit }) => assert_eq!(limit, 64 * 1024),
            Err(other) => panic!("{other}"),
            Ok(stream) => {
                let out: Vec<_> = stream.collect().await;
                panic!("answered with {out:?}");
            }
        }
    }
}
