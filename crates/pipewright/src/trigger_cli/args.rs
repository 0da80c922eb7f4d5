//! `pipewright trigger`'s flags, their parsers (`KEY=VALUE`, durations like `30s`, idempotency
//! keys) and which credentials a run uses: the trigger token for the trigger itself, and a
//! personal access token or the job token for reading the pipeline afterwards.

use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};

/// What `--help` says about exit codes; the README repeats it.
const AFTER_HELP: &str = "\
Exit codes:
  0  the pipeline was created (without --wait), or it succeeded
  1  the pipeline failed (or waits for a manual job, with --on-manual fail)
  2  the pipeline was canceled or skipped
  3  --timeout passed before the pipeline finished (it keeps running)
  4  a usage error, or the server refused a request or could not be reached (its message is \
printed)

Reading the pipeline (--wait, --follow) uses the API with a personal access token
(--api-token, PRIVATE-TOKEN header) or, when the trigger token is CI_JOB_TOKEN, that job token
(JOB-TOKEN header). Only GitLab's public API is used, so this works against GitLab too.

Example:
  pipewright trigger --url https://ci.example.com --project group/app --ref main \\
    --token glptt-… --var DEPLOY=staging --follow --api-token glpat-…";

#[derive(Debug, Args)]
#[command(
    after_long_help = AFTER_HELP,
    group(ArgGroup::new("waiting").args(["wait", "follow"]).multiple(true))
)]
pub struct TriggerArgs {
    /// The server's URL (Pipewright or GitLab), e.g. https://ci.example.com
    #[arg(long, env = "PIPEWRIGHT_URL")]
    pub url: String,
    /// The project: its numeric id or its path (group/project)
    #[arg(long, value_name = "ID_OR_PATH")]
    pub project: String,
    /// The branch or tag the pipeline runs for
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: String,
    /// The trigger token (glptt-…) [env: PIPEWRIGHT_TRIGGER_TOKEN, else CI_JOB_TOKEN]
    #[arg(long, value_name = "T")]
    pub token: Option<String>,
    /// A pipeline variable (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Sent as the Idempotency-Key header: a repeat with the same key answers the pipeline the
    /// first request created instead of creating another (on servers that support it)
    #[arg(long, value_name = "KEY", value_parser = parse_idempotency_key)]
    pub idempotency_key: Option<String>,
    /// Ask which jobs the pipeline would run and why, without running it (sends dry_run=true
    /// and prints a line per job with the rule that decided). A server without dry-run support
    /// creates a real pipeline; this then says so and exits 4
    #[arg(long, conflicts_with_all = ["wait", "follow"])]
    pub dry_run: bool,
    /// Wait until the pipeline finishes; the exit code says how it ended
    #[arg(long)]
    pub wait: bool,
    /// Wait, and stream each job's log as it runs (prefixed by the job's name), then a summary
    #[arg(long)]
    pub follow: bool,
    /// What to do when the pipeline waits for a manual job: play it (and any manual job met),
    /// skip (count the pipeline as finished when only manual jobs remain), or fail (exit 1)
    /// [default: fail]
    #[arg(long, value_enum, requires = "waiting")]
    pub on_manual: Option<OnManual>,
    /// Give up waiting after this long (30s, 10m, 1h, 1h30m) and exit 3
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "waiting")]
    pub timeout: Option<Duration>,
    /// How often to ask the server while waiting
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub poll_interval: Duration,
    /// A personal access token to read the pipeline, its jobs and logs (and play manual jobs)
    #[arg(
        long,
        value_name = "T",
        env = "PIPEWRIGHT_API_TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnManual {
    Play,
    Skip,
    Fail,
}

impl TriggerArgs {
    pub fn waits(&self) -> bool {
        self.wait || self.follow
    }
}

/// The credentials of one run.
pub struct Credentials {
    /// Sent as the trigger's `token` parameter.
    pub trigger_token: String,
    /// The header that authenticates reads (and plays), if the run has one.
    pub read: Option<ReadAuth>,
}

pub enum ReadAuth {
    /// A personal access token: `PRIVATE-TOKEN`.
    Private(String),
    /// A CI job token: `JOB-TOKEN`.
    Job(String),
}

/// Picks the tokens: `--token`, else `PIPEWRIGHT_TRIGGER_TOKEN`, else `CI_JOB_TOKEN` for the
/// trigger; `--api-token` (or its env) for reads, else the job token when the trigger token is
/// the job's own.
pub fn credentials(
    args: &TriggerArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Credentials> {
    let job_token = env("CI_JOB_TOKEN").filter(|t| !t.is_empty());
    let trigger_token = args
        .token
        .clone()
        .or_else(|| env("PIPEWRIGHT_TRIGGER_TOKEN"))
        .filter(|t| !t.is_empty())
        .or_else(|| job_token.clone())?;
    let is_job_token = job_token.as_deref() == Some(trigger_token.as_str());
    let read = match &args.api_token {
        Some(token) if !token.is_empty() => Some(ReadAuth::Private(token.clone())),
        _ if is_job_token => Some(ReadAuth::Job(trigger_token.clone())),
        _ => None,
    };
    Some(Credentials {
        trigger_token,
        read,
    })
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

/// 1–255 printable ASCII characters, as the server will require (issue 14 §4).
fn parse_idempotency_key(text: &str) -> Result<String, String> {
    if text.is_empty()
        || text.len() > 255
        || !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err("an idempotency key is 1 to 255 printable characters".into());
    }
    Ok(text.to_string())
}

/// `30s`, `10m`, `1h`, `1h30m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("expected a duration like 30s, 10m or 1h, got `{text}`");
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || unit_len == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let part = match &rest[digits..digits + unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(invalid()),
        };
        total = total.saturating_add(part);
        rest = &rest[digits + unit_len..];
    }
    if total.is_zero() && !text.starts_with('0') {
        return Err(invalid());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "s", "1d", "1.5h", "-3s", "m10", "10 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn parse(extra: &[&str]) -> TriggerArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: TriggerArgs,
        }
        let base = ["t", "--url", "http://h", "--project", "1", "--ref", "main"];
        let all: Vec<&str> = base.iter().chain(extra).copied().collect();
        <Cli as clap::Parser>::try_parse_from(all)
            .map(|c| c.args)
            .expect("valid flags")
    }

    #[test]
    fn the_job_token_triggers_and_reads_when_nothing_else_is_given() {
        let env = |name: &str| (name == "CI_JOB_TOKEN").then(|| "glcbt-job".to_string());
        let creds = credentials(&parse(&["--wait"]), env).expect("a token");
        assert_eq!(creds.trigger_token, "glcbt-job");
        assert!(matches!(creds.read, Some(ReadAuth::Job(ref t)) if t == "glcbt-job"));

        // A trigger token of its own does not borrow the job's token for reading.
        let creds = credentials(&parse(&["--token", "glptt-x"]), env).expect("a token");
        assert_eq!(creds.trigger_token, "glptt-x");
        assert!(creds.read.is_none());

        let creds = credentials(
            &parse(&["--token", "glptt-x", "--api-token", "glpat-y"]),
            env,
        )
        .expect("a token");
        assert!(matches!(creds.read, Some(ReadAuth::Private(ref t)) if t == "glpat-y"));
        assert!(credentials(&parse(&[]), |_| None).is_none());
    }

    #[test]
    fn variables_and_keys_are_checked_before_anything_is_sent() {
        assert_eq!(parse_var("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_var("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(parse_var("=x").is_err() && parse_var("novalue").is_err());
        assert!(parse_idempotency_key("deploy-42").is_ok());
        assert!(parse_idempotency_key("").is_err());
        assert!(parse_idempotency_key("line\nbreak").is_err());
        assert!(parse_idempotency_key(&"k".repeat(256)).is_err());
    }
}
