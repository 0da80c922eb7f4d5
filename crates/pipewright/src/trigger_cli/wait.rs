//! `--wait` and `--follow`: polling a triggered pipeline until it ends, playing manual jobs when
//! asked, and telling a blip from a refusal (a restarting server is asked again, up to
//! [`MAX_FAILURES`] times in a row; a 4xx ends the wait at once).
//!
//! "Ends" is GitLab's final statuses (success, failed, canceled, skipped). A pipeline whose
//! status is `manual` is blocked: only manual jobs with `allow_failure: false` stand between
//! it and the rest of its jobs. `--on-manual` decides what that means.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;

use super::api::{Api, ApiError, Job, Pipeline};
use super::args::OnManual;
use super::follow::Follower;
use super::progress::Progress;

/// Transient failures in a row before the wait gives up.
const MAX_FAILURES: u32 = 5;

pub struct Options {
    pub on_manual: OnManual,
    pub interval: Duration,
    pub follow: bool,
}

/// How the wait ended.
pub enum Ending {
    /// A final status, or a blocked pipeline under `--on-manual skip`.
    Finished,
    /// Blocked on manual jobs under `--on-manual fail`, or none of them could be played.
    Blocked,
}

/// One wait: what was seen last (for the summary, also after a timeout).
pub struct Watch<'a> {
    api: &'a Api,
    pipeline_id: i64,
    options: Options,
    follower: Follower,
    /// Manual jobs already played (or refused as unplayable): each is tried once.
    played: HashSet<i64>,
    pub last: Option<(Pipeline, Vec<Job>)>,
}

impl<'a> Watch<'a> {
    pub fn new(api: &'a Api, pipeline_id: i64, options: Options) -> Watch<'a> {
        Watch {
            api,
            pipeline_id,
            options,
            follower: Follower::default(),
            played: HashSet::new(),
            last: None,
        }
    }

    /// Polls until the pipeline ends.
    pub async fn run(&mut self, out: &mut Progress) -> Result<Ending, ApiError> {
        let mut failures = 0;
        loop {
            match self.step(out).await {
                Ok(Some(ending)) => return Ok(ending),
                Ok(None) => failures = 0,
                Err(err) if err.transient() && failures < MAX_FAILURES => {
                    failures += 1;
                    out.line(&format!("{err} (trying again, {failures}/{MAX_FAILURES})"));
                }
                Err(err) => return Err(err),
            }
            tokio::time::sleep(self.options.interval).await;
        }
    }

    /// One poll: read, play, print; `Some` when the wait is over.
    async fn step(&mut self, out: &mut Progress) -> Result<Option<Ending>, ApiError> {
        let pipeline = self.api.pipeline(self.pipeline_id).await?;
        let jobs = self.api.jobs(self.pipeline_id).await?;
        out.begin_poll(&jobs);
        if self.options.follow {
            self.follower.poll(self.api, &jobs, out).await?;
        }
        out.end_poll(&pipeline, &jobs);
        let played = match self.options.on_manual {
            OnManual::Play => self.play_manual_jobs(&jobs, out).await?,
            OnManual::Skip | OnManual::Fail => false,
        };
        let ending = if played {
            // The statuses just read are already stale.
            None
        } else {
            self.ending(&pipeline, &jobs)
        };
        self.last = Some((pipeline, jobs));
        Ok(ending)
    }

    fn ending(&self, pipeline: &Pipeline, jobs: &[Job]) -> Option<Ending> {
        match pipeline.status.as_str() {
            "success" | "failed" | "canceled" | "skipped" => Some(Ending::Finished),
            "manual" => match self.options.on_manual {
                OnManual::Skip => Some(Ending::Finished),
                OnManual::Fail => Some(Ending::Blocked),
                // Every manual job was tried and the pipeline still waits for one.
                OnManual::Play => jobs
                    .iter()
                    .filter(|j| j.status == "manual")
                    .all(|j| self.played.contains(&j.id))
                    .then_some(Ending::Blocked),
            },
            _ => None,
        }
    }

    /// Plays each manual job not tried yet; whether any was played.
    async fn play_manual_jobs(
        &mut self,
        jobs: &[Job],
        out: &mut Progress,
    ) -> Result<bool, ApiError> {
        let mut played = false;
        for job in jobs.iter().filter(|j| j.status == "manual") {
            if self.played.contains(&job.id) {
                continue;
            }
            match self.api.play(job.id).await {
                Ok(()) => {
                    out.line(&format!("playing the manual job {}", job.name));
                    played = true;
                }
                // Not playable (any more): someone else played it, or its stage is not reached.
                Err(ApiError::Refused {
                    status: StatusCode::BAD_REQUEST,
                    message,
                    ..
                }) => out.line(&format!(
                    "the manual job {} cannot be played: {message}",
                    job.name
                )),
                Err(err) => return Err(err),
            }
            self.played.insert(job.id);
        }
        Ok(played)
    }
}

/// The exit code for how a finished pipeline ended.
pub fn exit_code(status: &str) -> i32 {
    match status {
        "success" | "manual" => 0,
        "canceled" | "skipped" => 2,
        _ => 1,
    }
}
