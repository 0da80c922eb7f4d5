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
