//! git's smart HTTP protocol, served by the real `git upload-pack` and `git receive-pack`
//! (`--stateless-rpc`). Our code frames the advertisement, reads a push's command list so the
//! server can apply its policy before git runs, builds GitLab-style rejections that git prints
//! as `remote: …`, and works out which ref updates a push applied.
//!
//! git runs with an explicit, minimal environment: no system or user configuration can change
//! what it does, and its stderr goes to our logs, never to clients (it may contain paths).

use std::collections::HashMap;
use std::io::Read;
use std::process::Stdio;

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::pktline::{self, Packet};
use crate::{Error, Repositories, Result, ZERO_SHA};

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

/// One ref a push wants to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old_sha: String,
    pub new_sha: String,
    pub ref_name: String,
}

impl RefUpdate {
    pub fn is_create(&self) -> bool {
        self.old_sha == ZERO_SHA
    }

    pub fn is_delete(&self) -> bool {
        self.new_sha == ZERO_SHA
    }
}

/// The command list at the start of a receive-pack request.
#[derive(Debug, Clone)]
pub struct ReceiveRequest {
    pub commands: Vec<RefUpdate>,
    pub capabilities: Vec<String>,
    /// `git push -o …` values (`ci.skip`, `ci.variable=…`), sent after the commands when the
    /// client uses the `push-options` capability.
    pub push_options: Vec<String>,
}

impl ReceiveRequest {
    fn has(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

/// What a receive-pack run produced: the response for the client and the updates that applied.
#[derive(Debug)]
pub struct ReceiveOutcome {
    pub response: Vec<u8>,
    pub applied: Vec<RefUpdate>,
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses the commands (`old new ref`, capabilities after NUL on the first) that precede the
/// pack in a receive-pack request.
pub fn parse_receive_commands(body: &[u8]) -> Result<ReceiveRequest> {
    let mut rest = body;
    let mut commands = Vec::new();
    let mut capabilities = Vec::new();
    loop {
        let (packet, used) = pktline::decode(rest)?;
        rest = &rest[used..];
        let data = match packet {
            Packet::Flush => break,
            Packet::Special(_) => return Err(Error::Protocol("unexpected special packet".into())),
            Packet::Data(d) => d,
        };
        let line = std::str::from_utf8(data)
            .map_err(|_| Error::Protocol("command is not UTF-8".into()))?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        if line.starts_with("shallow ") {
            continue;
        }
        let (command, caps) = match line.split_once('\0') {
            Some((c, caps)) => (c, Some(caps)),
            None => (line, None),
        };
        if let Some(caps) = caps {
            capabilities = caps
                .split(' ')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
        }
        let mut parts = command.splitn(3, ' ');
        let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Protocol("malformed command".into()));
        };
        if !is_sha(old) || !is_sha(new) || !name.starts_with("refs/") {
            return Err(Error::Protocol("malformed command".into()));
        }
        commands.push(RefUpdate {
            old_sha: old.to_string(),
            new_sha: new.to_string(),
            ref_name: name.to_string(),
        });
        if commands.len() > 10_000 {
            return Err(Error::Protocol("too many commands".into()));
        }
    }
    if commands.is_empty() {
        return Err(Error::Protocol("no commands".into()));
    }
    let mut push_options = Vec::new();
    if capabilities.iter().any(|c| c == "push-options") {
        loop {
            let (packet, used) = pktline::decode(rest)?;
            rest = &rest[used..];
            match packet {
                Packet::Flush => break,
                Packet::Special(_) => {
                    return Err(Error::Protocol("unexpected special packet".into()));
                }
                Packet::Data(d) => {
                    let option = String::from_utf8_lossy(d);
                    push_options.push(option.trim_end_matches('\n').to_string());
                    if push_options.len() > 100 {
                        return Err(Error::Protocol("too many push options".into()));
                    }
                }
            }
        }
    }
    Ok(ReceiveRequest {
        commands,
        capabilities,
        push_options,
    })
}

/// A receive-pack response refusing every command: `message` on the progress side band (git
/// prints it as `remote: {message}`), and `ng <ref> pre-receive hook declined` for each ref.
pub fn reject_push(request: &ReceiveRequest, message: &str) -> Vec<u8> {
    let mut report = Vec::new();
    if request.has("report-status") || request.has("report-status-v2") {
        pktline::encode(&mut report, b"unpack ok\n");
        for cmd in &request.commands {
            pktline::encode(
                &mut report,
                format!("ng {} pre-receive hook declined\n", cmd.ref_name).as_bytes(),
            );
        }
        report.extend_from_slice(pktline::FLUSH);
    }
    let sideband = request.has("side-band-64k") || request.has("side-band");
    if !sideband {
        return report;
    }
    let max = if request.has("side-band-64k") {
        pktline::MAX_PAYLOAD - 1
    } else {
        999
    };
    let mut out = Vec::new();
    let mut progress = vec![2u8];
    progress.extend_from_slice(message.as_bytes());
    progress.push(b'\n');
    pktline::encode(&mut out, &progress);
    for chunk in report.chunks(max) {
        let mut band = vec![1u8];
        band.extend_from_slice(chunk);
        pktline::encode(&mut out, &band);
    }
    out.extend_from_slice(pktline::FLUSH);
    out
}

/// Decompresses a gzip request body (git gzips large fetch negotiations), refusing to inflate
/// past `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let decoder = flate2::read::GzDecoder::new(data);
    decoder.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(Error::TooLarge {
            limit: limit as u64,
        });
    }
    Ok(out)
}

impl Repositories {
    fn git_command(
        &self,
        service: Service,
        project_id: i64,
        git_protocol: Option<&str>,
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
            .args(["-c", "receive.advertisePushOptions=true"])
            .arg(service.subcommand())
            .arg("--stateless-rpc");
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
        let mut cmd = self.git_command(service, project_id, git_protocol)?;
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

    /// Runs `git upload-pack` on a fetch request and streams its output. Dropping the stream
    /// (the client went away) kills the process.
    pub async fn upload_pack(
        &self,
        project_id: i64,
        request: Vec<u8>,
        git_protocol: Option<&str>,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let mut cmd = self.git_command(Service::UploadPack, project_id, git_protocol)?;
        cmd.arg(self.repo_path(project_id));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Process("no stdin".into()))?;
        tokio::spawn(async move {
            // A write error means git exited early; its exit status tells why.
            let _ = stdin.write_all(&request).await;
            let _ = stdin.shutdown().await;
        });
        if let Some(mut stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut text = Vec::new();
                let _ = stderr.read_to_end(&mut text).await;
                if !text.is_empty() {
                    tracing::debug!(stderr = %String::from_utf8_lossy(&text), "git upload-pack");
                }
            });
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Process("no stdout".into()))?;
        struct State {
            child: Option<Child>,
            stdout: tokio::process::ChildStdout,
        }
        let state = State {
            child: Some(child),
            stdout,
        };
        Ok(futures_util::stream::unfold(
            state,
            |mut state| async move {
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
                    Err(e) => Some((
                        Err(e),
                        State {
                            child: None,
                            stdout: state.stdout,
                        },
                    )),
                }
            },
        ))
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

    /// Runs `git receive-pack` on a push the server has allowed, and reports which of its ref
    /// updates took effect (by reading the refs afterwards, which is exact whatever the
    /// client's report-status flavour).
    pub async fn receive_pack(&self, project_id: i64, request: Vec<u8>) -> Result<ReceiveOutcome> {
        let parsed = parse_receive_commands(&request)?;
        let mut cmd = self.git_command(Service::ReceivePack, project_id, None)?;
        cmd.arg(self.repo_path(project_id));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Process("no stdin".into()))?;
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&request).await;
            let _ = stdin.shutdown().await;
        });
        let output = child.wait_with_output().await?;
        let _ = writer.await;
        if !output.stderr.is_empty() {
            tracing::debug!(stderr = %String::from_utf8_lossy(&output.stderr), "git receive-pack");
        }
        if !output.status.success() && output.stdout.is_empty() {
            return Err(Error::Process(
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ));
        }
        let names: Vec<String> = parsed.commands.iter().map(|c| c.ref_name.clone()).collect();
        let this = self.clone();
        let after = tokio::task::spawn_blocking(move || this.ref_values(project_id, &names))
            .await
            .map_err(|e| Error::Process(e.to_string()))??;
        let applied = parsed
            .commands
            .into_iter()
            .filter(|c| match after.get(&c.ref_name) {
                Some(sha) => sha.eq_ignore_ascii_case(&c.new_sha),
                None => c.is_delete(),
            })
            .collect();
        Ok(ReceiveOutcome {
            response: output.stdout,
            applied,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(caps: &str) -> Vec<u8> {
        let mut body = Vec::new();
        let first = format!("{ZERO_SHA} {} refs/heads/main\0{caps}\n", "a".repeat(40));
        pktline::encode(&mut body, first.as_bytes());
        pktline::encode(
            &mut body,
            format!("{} {ZERO_SHA} refs/heads/old\n", "b".repeat(40)).as_bytes(),
        );
        body.extend_from_slice(pktline::FLUSH);
        body.extend_from_slice(b"PACK....");
        body
    }

    #[test]
    fn commands_and_capabilities_are_parsed() {
        let parsed = parse_receive_commands(&request("report-status side-band-64k agent=git/2.47"))
            .expect("parse");
        assert_eq!(parsed.commands.len(), 2);
        assert!(parsed.commands[0].is_create());
        assert!(parsed.commands[1].is_delete());
        assert_eq!(parsed.commands[1].ref_name, "refs/heads/old");
        assert!(parsed.has("side-band-64k"));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(parse_receive_commands(b"").is_err());
        assert!(parse_receive_commands(b"0000").is_err());
        let mut body = Vec::new();
        pktline::encode(&mut body, b"not a command\n");
        body.extend_from_slice(pktline::FLUSH);
        assert!(parse_receive_commands(&body).is_err());
    }

    #[test]
    fn rejection_uses_the_side_band_and_report_status() {
        let parsed =
            parse_receive_commands(&request("report-status side-band-64k")).expect("parse");
        let out = reject_push(&parsed, "GitLab: no");
        let (first, used) = pktline::decode(&out).expect("first");
        assert_eq!(first, Packet::Data(b"\x02GitLab: no\n"));
        let (second, _) = pktline::decode(&out[used..]).expect("second");
        let Packet::Data(band) = second else {
            panic!("data")
        };
        assert_eq!(band[0], 1);
        let report = String::from_utf8_lossy(&band[1..]);
        assert!(report.contains("unpack ok"));
        assert!(report.contains("ng refs/heads/main pre-receive hook declined"));
        assert!(out.ends_with(b"0000"));
    }

    #[test]
    fn gzip_bodies_are_inflated_within_a_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b'x'; 10_000]).expect("write");
        let gz = enc.finish().expect("finish");
        assert_eq!(gunzip(&gz, 20_000).expect("inflate").len(), 10_000);
        assert!(gunzip(&gz, 100).is_err());
        assert!(gunzip(b"not gzip", 100).is_err());
    }
}
