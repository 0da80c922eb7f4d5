//! What a waiting `pipewright trigger` prints. On a terminal: one status line, redrawn in
//! place, above which finished jobs and log lines scroll. Anywhere else (a CI log, a file): plain
//! lines, one per change, nothing redrawn. Ends with a summary table of the jobs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Instant;

use super::api::{Job, Pipeline};

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
/// Log prefixes are padded to the longest job name, up to this.
const MAX_PREFIX: usize = 24;

pub struct Progress {
    tty: bool,
    colors: bool,
    started: Instant,
    /// A status line is on screen and must be cleared before anything else is printed.
    status_shown: bool,
    ticks: usize,
    prefix_width: usize,
    /// The last status printed for each job, and for the pipeline.
    seen: HashMap<i64, String>,
    pipeline_seen: String,
}

impl Progress {
    pub fn new(tty: bool) -> Progress {
        Progress {
            tty,
            colors: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            started: Instant::now(),
            status_shown: false,
            ticks: 0,
            prefix_width: 0,
            seen: HashMap::new(),
            pipeline_seen: String::new(),
        }
    }

    /// Whether a log's colours may be passed through.
    pub fn colors(&self) -> bool {
        self.colors
    }

    /// A line that stays.
    pub fn line(&mut self, text: &str) {
        self.clear();
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head`) must not stop the wait: its exit code still matters.
        let _ = writeln!(out, "{text}");
    }

    /// One line of a job's log, behind the job's name.
    pub fn log_line(&mut self, job: &str, text: &str) {
        let width = self.prefix_width.max(job.len().min(MAX_PREFIX));
        let prefix = format!("{job:<width$} |");
        let prefix = if self.colors {
            format!("\x1b[2m{prefix}\x1b[0m")
        } else {
            prefix
        };
        if text.is_empty() {
            self.line(&prefix);
        } else {
            self.line(&format!("{prefix} {text}"));
        }
    }

    /// Before a poll's log lines: measures the log prefixes and prints the jobs that started
    /// (so a job's "running" comes before its log).
    pub fn begin_poll(&mut self, jobs: &[Job]) {
        self.prefix_width = jobs
            .iter()
            .map(|j| j.name.len())
            .max()
            .unwrap_or(0)
            .min(MAX_PREFIX);
        self.print_transitions(jobs, |status| !ended(status));
    }

    /// After a poll's log lines: prints the jobs that ended (after their last log line) and the
    /// pipeline's new status, and redraws the status line.
    pub fn end_poll(&mut self, pipeline: &Pipeline, jobs: &[Job]) {
        self.print_transitions(jobs, |_| true);
        if self.pipeline_seen != pipeline.status {
            self.pipeline_seen = pipeline.status.clone();
            if !self.tty {
                let text = format!(
                    "[{}] pipeline #{}: {}",
                    self.elapsed(),
                    pipeline.id,
                    pipeline.status
                );
                self.line(&text);
            }
        }
        if self.tty {
            self.draw_status(pipeline, jobs);
        }
    }

    fn print_transitions(&mut self, jobs: &[Job], which: impl Fn(&str) -> bool) {
        for job in jobs.iter().filter(|j| which(&j.status)) {
            if self.seen.get(&job.id) == Some(&job.status) {
                continue;
            }
            let first_sight = !self.seen.contains_key(&job.id);
            self.seen.insert(job.id, job.status.clone());
            if let Some(text) = self.transition(job, first_sight) {
                self.line(&text);
            }
        }
    }

    /// The line a job's new status deserves: every change in plain mode (but a job merely
    /// created), only the ends of jobs on a terminal, where the status line shows the rest.
    fn transition(&self, job: &Job, first_sight: bool) -> Option<String> {
        let status = job.status.as_str();
        if first_sight && status == "created" {
            return None;
        }
        let ended = matches!(
            status,
            "success" | "failed" | "canceled" | "skipped" | "manual"
        );
        if self.tty && !ended {
            return None;
        }
        let mut text = format!(
            "[{}] {} ({}): {}",
            self.elapsed(),
            job.name,
            job.stage,
            status
        );
        if let Some(seconds) = job.duration.filter(|_| ended) {
            let _ = write!(text, " in {}", clock(seconds));
        }
        if status == "failed" && job.allow_failure {
            text.push_str(" (allowed to fail)");
        }
        if self.colors {
            let colour = match status {
                "success" => "32",
                "failed" if !job.allow_failure => "31",
                "failed" | "canceled" | "manual" => "33",
                _ => "2",
            };
            text = format!("\x1b[{colour}m{text}\x1b[0m");
        }
        Some(text)
    }

    fn draw_status(&mut self, pipeline: &Pipeline, jobs: &[Job]) {
        self.ticks = self.ticks.wrapping_add(1);
        let done = jobs
            .iter()
            .filter(|j| {
                matches!(
                    j.status.as_str(),
                    "success" | "failed" | "canceled" | "skipped"
                )
            })
            .count();
        let running: Vec<&str> = jobs
            .iter()
            .filter(|j| j.status == "running")
            .map(|j| j.name.as_str())
            .collect();
        let mut text = format!(
            "{} pipeline #{} {} {} · {done}/{} jobs done",
            SPINNER[self.ticks % SPINNER.len()],
            pipeline.id,
            pipeline.status,
            self.elapsed(),
            jobs.len(),
        );
        if !running.is_empty() {
            let _ = write!(text, " · running: {}", running.join(", "));
        }
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(80);
        let text: String = text.chars().take(columns.saturating_sub(1)).collect();
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K{text}");
        let _ = out.flush();
        self.status_shown = true;
    }

    /// Removes the status line, if one is shown.
    pub fn clear(&mut self) {
        if self.status_shown {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            self.status_shown = false;
        }
    }

    fn elapsed(&self) -> String {
        clock(self.started.elapsed().as_secs_f64())
    }
}

/// A status after which a job's log does not grow (until someone plays or retries it).
fn ended(status: &str) -> bool {
    matches!(
        status,
        "success" | "failed" | "canceled" | "skipped" | "manual"
    )
}

/// `m:ss`, or `h:mm:ss` past an hour.
pub fn clock(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The jobs as a table: name, stage, status, duration.
pub fn summary(jobs: &[Job]) -> String {
    let header = ["JOB", "STAGE", "STATUS", "DURATION"];
    let rows: Vec<[String; 4]> = jobs
        .iter()
        .map(|j| {
            let status = if j.status == "failed" && j.allow_failure {
                "failed (allowed)".to_string()
            } else {
                j.status.clone()
            };
            let duration = j.duration.map(clock).unwrap_or_else(|| "-".into());
            [j.name.clone(), j.stage.clone(), status, duration]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut table = String::new();
    let mut push_row = |cells: [&str; 4]| {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
        table.push_str(line.trim_end());
        table.push('\n');
    };
    push_row(header);
    for row in &rows {
        push_row([&row[0], &row[1], &row[2], &row[3]]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, stage: &str, status: &str, duration: Option<f64>) -> Job {
        Job {
            id: 1,
            name: name.into(),
            stage: stage.into(),
            status: status.into(),
            allow_failure: false,
            duration,
            failure_reason: None,
            web_url: None,
        }
    }

    #[test]
    fn the_summary_is_an_aligned_table() {
        let jobs = [
            job("build", "build", "success", Some(3.2)),
            job("integration-tests", "test", "failed", Some(75.0)),
            job("deploy", "deploy", "manual", None),
        ];
        assert_eq!(
            summary(&jobs),
            "JOB                STAGE   STATUS   DURATION\n\
             build              build   success  0:03\n\
             integration-tests  test    failed   1:15\n\
             deploy             deploy  manual   -\n"
        );
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
