//! GitLab's pipeline and job statuses (`Ci::HasStatus`), with their API names.

use serde::{Deserialize, Serialize};

/// A job's or pipeline's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    WaitingForResource,
    Preparing,
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
    Manual,
    Scheduled,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::Created,
        Status::WaitingForResource,
        Status::Preparing,
        Status::Pending,
        Status::Running,
        Status::Success,
        Status::Failed,
        Status::Canceled,
        Status::Skipped,
        Status::Manual,
        Status::Scheduled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::WaitingForResource => "waiting_for_resource",
            Status::Preparing => "preparing",
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
            Status::Skipped => "skipped",
            Status::Manual => "manual",
            Status::Scheduled => "scheduled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Finished: nothing more will happen without a retry.
    pub fn is_complete(self) -> bool {
        matches!(
            self,
            Status::Success | Status::Failed | Status::Canceled | Status::Skipped
        )
    }
}

/// What started a pipeline (`CI_PIPELINE_SOURCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineSource {
    Push,
    Web,
    Trigger,
    Schedule,
    Api,
    External,
    Pipeline,
    Chat,
    Webide,
    MergeRequestEvent,
    ExternalPullRequestEvent,
    ParentPipeline,
}

impl PipelineSource {
    pub const ALL: [PipelineSource; 12] = [
        PipelineSource::Push,
        PipelineSource::Web,
        PipelineSource::Trigger,
        PipelineSource::Schedule,
        PipelineSource::Api,
        PipelineSource::External,
        PipelineSource::Pipeline,
        PipelineSource::Chat,
        PipelineSource::Webide,
        PipelineSource::MergeRequestEvent,
        PipelineSource::ExternalPullRequestEvent,
        PipelineSource::ParentPipeline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PipelineSource::Push => "push",
            PipelineSource::Web => "web",
            PipelineSource::Trigger => "trigger",
            PipelineSource::Schedule => "schedule",
            PipelineSource::Api => "api",
            PipelineSource::External => "external",
            PipelineSource::Pipeline => "pipeline",
            PipelineSource::Chat => "chat",
            PipelineSource::Webide => "webide",
            PipelineSource::MergeRequestEvent => "merge_request_event",
            PipelineSource::ExternalPullRequestEvent => "external_pull_request_event",
            PipelineSource::ParentPipeline => "parent_pipeline",
        }
    }

    pub fn parse(s: &str) -> Option<PipelineSource> {
        PipelineSource::ALL
            .into_iter()
            .find(|src| src.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for s in PipelineSource::ALL {
            assert_eq!(PipelineSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("nope"), None);
    }
}

/// How one job counts toward a composite status (GitLab's `Ci::Status::Composite`): a failed
/// or canceled job that may fail counts as success-with-warnings; a manual job that may fail
/// is ignored (it does not block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counted {
    Plain(Status),
    SuccessWithWarnings,
    Ignored,
}

/// The result of folding jobs' statuses into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Composite {
    pub status: Status,
    /// Some job was allowed to fail and did ("passed with warnings").
    pub warnings: bool,
}

/// Derives a stage's or pipeline's status from its jobs' `(status, allow_failure)`, as GitLab
/// does; `None` when there are no jobs. With `dag`, the jobs are a job's `needs` and the
/// answer says whether that job may start: `Skipped` if a need did not run, `Pending` while a
/// need is unfinished.
pub fn composite(jobs: impl IntoIterator<Item = (Status, bool)>, dag: bool) -> Option<Composite> {
    let mut set: Vec<Counted> = Vec::new();
    for (status, allow_failure) in jobs {
        let counted = match (status, allow_failure) {
            (Status::Failed | Status::Canceled, true) => Counted::SuccessWithWarnings,
            (Status::Manual, true) => Counted::Ignored,
            (s, _) => Counted::Plain(s),
        };
        if !set.contains(&counted) {
            set.push(counted);
        }
    }
    if set.is_empty() {
        return None;
    }
    let has = |c: Counted| set.contains(&c);
    let any = |statuses: &[Status]| statuses.iter().any(|s| has(Counted::Plain(*s)));
    // Every member of the set is one of `allowed` (plain statuses, plus the two special kinds
    // when `extra` says so).
    let only = |allowed: &[Status], warnings_ok: bool, ignored_ok: bool| {
        set.iter().all(|c| match c {
            Counted::Plain(s) => allowed.contains(s),
            Counted::SuccessWithWarnings => warnings_ok,
            Counted::Ignored => ignored_ok,
        })
    };
    use Status::*;
    let status = if dag && (has(Counted::Plain(Skipped)) || has(Counted::Ignored)) {
        Skipped
    } else if dag && !only(&[Success, Failed, Canceled, Skipped], true, false) {
        Pending
    } else if only(&[Skipped], false, true) {
        Skipped
    } else if only(&[Success, Skipped], true, true) {
        Success
    } else if only(&[Created], true, true) {
        Created
    } else if only(&[Preparing], true, true) {
        Preparing
    } else if only(&[Canceled, Success, Skipped], true, true) {
        Canceled
    } else if only(&[Pending, Created, Skipped], true, true) {
        Pending
    } else if any(&[Running, Pending]) {
        Running
    } else if any(&[WaitingForResource]) {
        WaitingForResource
    } else if any(&[Manual]) {
        Manual
    } else if any(&[Scheduled]) {
        Scheduled
    } else if any(&[Preparing]) {
        Preparing
    } else if any(&[Created]) {
        Running
    } else {
        Failed
    };
    Some(Composite {
        status,
        warnings: has(Counted::SuccessWithWarnings),
    })
}

/// What a job waiting on others becomes once their composite status is known: `prior` is
/// the status of the stages before it, or (the job has `needs`) of what it needs; `None` when
/// nothing comes before it. `None` back while it must keep waiting. The server applies this
/// as jobs finish and the config engine as it plans a pipeline, so a pipeline starts in the
/// state its first processing pass leaves it in.
/// GitLab: app/services/ci/pipeline_processing/atomic_processing_service.rb (`update_job!`:
/// nothing happens until what precedes the job is complete) and
/// app/services/ci/process_build_service.rb (`valid_statuses_for_build`). Two differences
/// remain, listed in docs/gitlab-compatibility.md: GitLab skips a `needs` job whose need did
/// not run (and resets it when that need is played), and skips `when: always` after a
/// canceled stage.
pub fn next_status(when: &str, prior: Option<Status>) -> Option<Status> {
    match prior {
        // Nothing before it, or everything before it succeeded (or was skipped).
        None | Some(Status::Success) | Some(Status::Skipped) => Some(match when {
            "on_failure" => Status::Skipped,
            "manual" => Status::Manual,
            "delayed" => Status::Scheduled,
            _ => Status::Pending,
        }),
        Some(Status::Failed) => Some(match when {
            "on_failure" | "always" => Status::Pending,
            _ => Status::Skipped,
        }),
        Some(Status::Canceled) => Some(match when {
            "always" => Status::Pending,
            _ => Status::Skipped,
        }),
        // Still running, pending, created, manual or scheduled: keep waiting.
        _ => None,
    }
}

#[cfg(test)]
mod next_status_tests {
    use super::Status::*;
    use super::next_status;

    #[test]
    fn a_waiting_job_follows_what_came_before_it() {
        assert_eq!(next_status("on_success", None,), Some(Pending));
        assert_eq!(next_status("on_failure", None), Some(Skipped));
        assert_eq!(next_status("manual", Some(Skipped)), Some(Manual));
        assert_eq!(next_status("delayed", Some(Success)), Some(Scheduled));
        assert_eq!(next_status("on_success", Some(Running)), None);
        assert_eq!(next_status("on_success", Some(Manual)), None);
        assert_eq!(next_status("on_success", Some(Failed)), Some(Skipped));
        assert_eq!(next_status("on_failure", Some(Failed)), Some(Pending));
        assert_eq!(next_status("always", Some(Failed)), Some(Pending));
    }
}

#[cfg(test)]
mod composite_tests {
    use super::Status::*;
    use super::*;

    fn of(jobs: &[(Status, bool)]) -> Option<Status> {
        composite(jobs.iter().copied(), false).map(|c| c.status)
    }

    #[test]
    fn pipelines_are_derived_from_their_jobs() {
        assert_eq!(of(&[]), None);
        assert_eq!(of(&[(Success, false), (Success, false)]), Some(Success));
        assert_eq!(of(&[(Success, false), (Skipped, false)]), Some(Success));
        assert_eq!(of(&[(Skipped, false)]), Some(Skipped));
        assert_eq!(of(&[(Created, false)]), Some(Created));
        assert_eq!(of(&[(Pending, false), (Created, false)]), Some(Pending));
        assert_eq!(of(&[(Success, false), (Created, false)]), Some(Running));
        assert_eq!(of(&[(Running, false), (Created, false)]), Some(Running));
        assert_eq!(of(&[(Success, false), (Failed, false)]), Some(Failed));
        assert_eq!(of(&[(Success, false), (Canceled, false)]), Some(Canceled));
        assert_eq!(of(&[(Success, false), (Manual, false)]), Some(Manual));
        assert_eq!(of(&[(Success, false), (Scheduled, false)]), Some(Scheduled));
    }

    #[test]
    fn jobs_that_may_fail_leave_the_pipeline_green_with_warnings() {
        let c = composite([(Success, false), (Failed, true)], false).unwrap_or(Composite {
            status: Failed,
            warnings: false,
        });
        assert_eq!(
            c,
            Composite {
                status: Success,
                warnings: true
            }
        );
        // A manual job that may fail does not block.
        assert_eq!(of(&[(Success, false), (Manual, true)]), Some(Success));
        assert_eq!(of(&[(Failed, true)]), Some(Success));
    }

    #[test]
    fn dag_needs() {
        let dag = |jobs: &[(Status, bool)]| composite(jobs.iter().copied(), true).map(|c| c.status);
        assert_eq!(dag(&[(Success, false)]), Some(Success));
        assert_eq!(
            dag(&[(Running, false)]),
            Some(Pending),
            "waits for its needs"
        );
        assert_eq!(
            dag(&[(Skipped, false)]),
            Some(Skipped),
            "a need that did not run skips it"
        );
        assert_eq!(dag(&[(Failed, false)]), Some(Failed));
        assert_eq!(dag(&[(Failed, true)]), Some(Success));
    }
}
