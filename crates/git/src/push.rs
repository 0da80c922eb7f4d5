//! A push as the server sees it before `git receive-pack` runs: the command list at the front
//! of the request body (`old new ref` per ref, capabilities, push options), read as it arrives
//! so the server can apply its policy first, and the GitLab-style rejection git prints as
//! `remote: …` when the policy says no.

use bytes::Bytes;

use crate::body::RequestBody;
use crate::pktline::{self, Packet};
use crate::{Error, Result, ZERO_SHA};

/// Commands a push may carry.
const MAX_COMMANDS: usize = 10_000;
/// Push options a push may carry.
const MAX_PUSH_OPTIONS: usize = 100;
/// The command list and push options together, at most (10,000 commands with long names).
const MAX_COMMAND_BYTES: usize = 8 * 1024 * 1024;

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
#[derive(Debug, Clone, Default)]
pub struct ReceiveRequest {
    pub commands: Vec<RefUpdate>,
    pub capabilities: Vec<String>,
    /// `git push -o …` values (`ci.skip`, `ci.variable=…`), sent after the commands when the
    /// client uses the `push-options` capability.
    pub push_options: Vec<String>,
}

impl ReceiveRequest {
    pub(crate) fn has(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

/// A push whose command list has been read; the pack behind it has not.
#[derive(Debug)]
pub struct IncomingPush {
    pub request: ReceiveRequest,
    /// Every byte read so far (the command list, perhaps the start of the pack), for git.
    pub(crate) prefix: Bytes,
    /// The rest of the body.
    pub(crate) body: RequestBody,
}

impl IncomingPush {
    /// Reads the command list off the front of `body`, no further than it needs.
    pub async fn read(mut body: RequestBody) -> Result<IncomingPush> {
        let mut reader = CommandReader::default();
        while !reader.advance()? {
            if reader.buf.len() > MAX_COMMAND_BYTES {
                return Err(Error::Protocol("command list too long".into()));
            }
            match body.next_piece().await? {
                Some(piece) => reader.buf.extend_from_slice(&piece),
                None => return Err(Error::Protocol("truncated receive-pack request".into())),
            }
        }
        Ok(IncomingPush {
            request: reader.parsed,
            prefix: Bytes::from(reader.buf),
            body,
        })
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Commands,
    PushOptions,
    Done,
}

/// Decodes the command list packet by packet as bytes arrive (never re-reading what it has
/// decoded, so a long list costs linear time).
#[derive(Debug, Default)]
struct CommandReader {
    buf: Vec<u8>,
    /// Where the first packet not yet decoded starts.
    pos: usize,
    phase: Phase,
    parsed: ReceiveRequest,
}

impl CommandReader {
    /// Decodes the complete packets buffered so far; true once the list (and the push
    /// options) are whole.
    fn advance(&mut self) -> Result<bool> {
        while self.phase != Phase::Done {
            let Some((packet, used)) = pktline::decode_partial(&self.buf[self.pos..])? else {
                return Ok(false);
            };
            step(&mut self.parsed, &mut self.phase, packet)?;
            self.pos += used;
        }
        Ok(true)
    }
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Takes one packet of the command list or the push options.
fn step(parsed: &mut ReceiveRequest, phase: &mut Phase, packet: Packet<'_>) -> Result<()> {
    let data = match packet {
        Packet::Special(_) => return Err(Error::Protocol("unexpected special packet".into())),
        Packet::Flush => {
            *phase = match *phase {
                Phase::Commands if parsed.commands.is_empty() => {
                    return Err(Error::Protocol("no commands".into()));
                }
                Phase::Commands if parsed.has("push-options") => Phase::PushOptions,
                _ => Phase::Done,
            };
            return Ok(());
        }
        Packet::Data(data) => data,
    };
    if *phase == Phase::PushOptions {
        let option = String::from_utf8_lossy(data);
        parsed
            .push_options
            .push(option.trim_end_matches('\n').to_string());
        if parsed.push_options.len() > MAX_PUSH_OPTIONS {
            return Err(Error::Protocol("too many push options".into()));
        }
        return Ok(());
    }
    let line =
        std::str::from_utf8(data).map_err(|_| Error::Protocol("command is not UTF-8".into()))?;
    let line = line.strip_suffix('\n').unwrap_or(line);
    if line.starts_with("shallow ") {
        return Ok(());
    }
    let (command, caps) = match line.split_once('\0') {
        Some((c, caps)) => (c, Some(caps)),
        None => (line, None),
    };
    if let Some(caps) = caps {
        parsed.capabilities = caps
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
    parsed.commands.push(RefUpdate {
        old_sha: old.to_string(),
        new_sha: new.to_string(),
        ref_name: name.to_string(),
    });
    if parsed.commands.len() > MAX_COMMANDS {
        return Err(Error::Protocol("too many commands".into()));
    }
    Ok(())
}

/// Parses the commands (`old new ref`, capabilities after NUL on the first) and push options
/// that precede the pack in a receive-pack request held in memory.
pub fn parse_receive_commands(body: &[u8]) -> Result<ReceiveRequest> {
    let mut reader = CommandReader {
        buf: body.to_vec(),
        ..CommandReader::default()
    };
    if reader.advance()? {
        Ok(reader.parsed)
    } else {
        Err(Error::Protocol("truncated receive-pack request".into()))
    }
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

    #[tokio::test]
    async fn the_command_list_is_read_as_it_arrives_and_no_further() {
        let mut body = Vec::new();
        let first = format!(
            "{ZERO_SHA} {} refs/heads/main\0push-options\n",
            "a".repeat(40)
        );
        pktline::encode(&mut body, first.as_bytes());
        body.extend_from_slice(pktline::FLUSH);
        pktline::encode(&mut body, b"ci.skip\n");
        body.extend_from_slice(pktline::FLUSH);
        let head = body.len();
        body.extend_from_slice(b"PACK and the rest of the pack");
        // Three bytes at a time: packets and headers split across reads.
        let chunks: Vec<std::io::Result<Bytes>> = body
            .chunks(3)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures_util::stream::iter(chunks);
        let push = IncomingPush::read(RequestBody::new(stream, false, 1 << 20))
            .await
            .expect("read");
        assert_eq!(push.request.commands.len(), 1);
        assert_eq!(push.request.push_options, vec!["ci.skip".to_string()]);
        assert!(push.prefix.len() >= head && push.prefix.len() < head + 3);
    }

    #[tokio::test]
    async fn a_truncated_or_endless_command_list_is_refused() {
        let cut = request("report-status")[..30].to_vec();
        let push = IncomingPush::read(RequestBody::from_bytes(cut, false, 1 << 20)).await;
        assert!(matches!(push, Err(Error::Protocol(_))));
        // Valid command packets that never end with a flush stop at the body's limit.
        let mut endless = Vec::new();
        let line = format!("{} {} refs/heads/x\n", "a".repeat(40), "b".repeat(40));
        while endless.len() < 200_000 {
            pktline::encode(&mut endless, line.as_bytes());
        }
        let push = IncomingPush::read(RequestBody::from_bytes(endless, false, 100_000)).await;
        assert!(matches!(push, Err(Error::TooLarge { .. })), "{push:?}");
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
}
