//! `--follow`: each job's log, read as it grows and printed line by line behind the job's name.
//! A log is the job's own output, so it is untrusted: escape sequences other than colours are
//! dropped (on a terminal; everything is dropped when stdout is not one), and a `\r` keeps
//! only what a terminal would finally show on that line.

use std::collections::BTreeMap;

use super::api::{Api, ApiError, Job};
use super::progress::Progress;

/// Where each job's log has been read to.
#[derive(Default)]
pub struct Follower {
    logs: BTreeMap<i64, JobLog>,
}

struct JobLog {
    name: String,
    /// Bytes of the log read so far.
    offset: u64,
    /// The last line, until its newline arrives.
    partial: Vec<u8>,
    /// Finished and read to the end.
    done: bool,
}

/// Statuses whose log may have grown since the last read.
fn has_log(status: &str) -> bool {
    matches!(
        status,
        "running" | "success" | "failed" | "canceled" | "canceling"
    )
}

fn finished(status: &str) -> bool {
    matches!(status, "success" | "failed" | "canceled" | "skipped")
}

impl Follower {
    /// Reads what is new in the logs of the jobs that have started. A finished job is read one
    /// last time and then left alone; so is a job that left the list (it was retried).
    pub async fn poll(
        &mut self,
        api: &Api,
        jobs: &[Job],
        out: &mut Progress,
    ) -> Result<(), ApiError> {
        for job in jobs.iter().filter(|j| has_log(&j.status)) {
            let log = self.logs.entry(job.id).or_insert_with(|| JobLog {
                name: job.name.clone(),
                offset: 0,
                partial: Vec::new(),
                done: false,
            });
            if !log.done {
                read(api, job.id, log, finished(&job.status), out).await?;
            }
        }
        let gone: Vec<i64> = self
            .logs
            .iter()
            .filter(|(id, log)| !log.done && !jobs.iter().any(|j| j.id == **id))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(log) = self.logs.get_mut(&id) {
                read(api, id, log, true, out).await?;
            }
        }
        Ok(())
    }
}

/// Prints the log's new whole lines (all of it when `last`).
async fn read(
    api: &Api,
    id: i64,
    log: &mut JobLog,
    last: bool,
    out: &mut Progress,
) -> Result<(), ApiError> {
    let tail = api.trace_from(id, log.offset).await?;
    log.offset = tail.end;
    log.partial.extend_from_slice(&tail.bytes);
    let mut start = 0;
    while let Some(newline) = log.partial[start..].iter().position(|b| *b == b'\n') {
        emit(&log.name, &log.partial[start..start + newline], out);
        start += newline + 1;
    }
    log.partial.drain(..start);
    if last {
        if !log.partial.is_empty() {
            emit(&log.name, &std::mem::take(&mut log.partial), out);
        }
        log.done = true;
    }
    Ok(())
}

fn emit(name: &str, raw: &[u8], out: &mut Progress) {
    if let Some(line) = terminal_line(raw, out.colors()) {
        out.log_line(name, &line);
    }
}

/// What a terminal would show for one log line, made safe to print; `None` for a line that
/// shows nothing but had something (a `section_end:…\r\e[0K` marker).
pub fn terminal_line(raw: &[u8], colors: bool) -> Option<String> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let shown = match raw.iter().rposition(|b| *b == b'\r') {
        Some(cr) => &raw[cr + 1..],
        None => raw,
    };
    let text = String::from_utf8_lossy(shown);
    let mut line = String::with_capacity(text.len());
    let mut styled = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    let mut sequence = String::from("\x1b[");
                    for p in chars.by_ref() {
                        sequence.push(p);
                        if ('\x40'..='\x7e').contains(&p) {
                            break;
                        }
                    }
                    let sgr = sequence.ends_with('m')
                        && sequence[2..sequence.len() - 1]
                            .chars()
                            .all(|p| p.is_ascii_digit() || p == ';');
                    if colors && sgr {
                        line.push_str(&sequence);
                        styled = true;
                    }
                }
                // OSC (titles, hyperlinks, clipboard): up to BEL or ST, dropped.
                Some(']') => {
                    while let Some(p) = chars.next() {
                        if p == '\x07' || (p == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => line.push(c),
            c if c.is_control() => {}
            c => line.push(c),
        }
    }
    if styled {
        line.push_str("\x1b[0m");
    }
    if only_escapes(&line) && !raw.is_empty() {
        return None;
    }
    Some(line)
}

/// True when the line shows nothing: it is empty or made of SGR sequences only.
fn only_escapes(line: &str) -> bool {
    let mut rest = line;
    while let Some(after) = rest.strip_prefix("\x1b[") {
        match after.find('m') {
            Some(end) => rest = &after[end + 1..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::terminal_line;

    #[test]
    fn a_line_shows_what_a_terminal_would() {
        let plain = |raw: &str| terminal_line(raw.as_bytes(), false);
        assert_eq!(plain("hello\r").as_deref(), Some("hello"));
        assert_eq!(plain("10%\r50%\r100%").as_deref(), Some("100%"));
        assert_eq!(plain("").as_deref(), Some(""));
        assert_eq!(
            plain("section_start:1:step_script\r\x1b[0K\x1b[32;1mRunning the script\x1b[0;m")
                .as_deref(),
            Some("Running the script")
        );
        assert_eq!(plain("section_end:1:step_script\r\x1b[0K"), None);
    }

    #[test]
    fn a_hostile_log_cannot_drive_the_terminal() {
        let raw = "a\x1b]0;owned title\x07b\x1b]8;;http://x\x1b\\c\x1b[2Jd\x1b[1;31me\x07\x08";
        assert_eq!(
            terminal_line(raw.as_bytes(), false).as_deref(),
            Some("abcde")
        );
        assert_eq!(
            terminal_line(raw.as_bytes(), true).as_deref(),
            Some("abcd\x1b[1;31me\x1b[0m"),
            "only colours are kept, and reset at the end of the line"
        );
    }
}
