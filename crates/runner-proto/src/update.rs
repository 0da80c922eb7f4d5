//! `PUT /api/v4/jobs/:id`: a runner's keep-alive (`state: running`) and its report of how a
//! job ended. GitLab: `put '/:id'` in `lib/api/ci/runner.rb` (its `params` block); GitLab
//! Runner: `UpdateJobRequest` and `JobTraceOutput` in `common/network.go`.

use serde::{Deserialize, Serialize};

use crate::{FailureReason, JobState, SecretString, VersionInfo};

/// The body of `PUT /jobs/:id`. Only `token` is required; GitLab Runner leaves out what it has
/// not got, and the `gitlab-runner` crate sends `token` and `state` alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobUpdate {
    /// The job's token (the payload's `token`).
    pub token: SecretString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<FailureReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The log's CRC32 (deprecated by GitLab for `output.checksum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<TraceOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<VersionInfo>,
}

impl JobUpdate {
    /// An update of the job with this token to `state`.
    pub fn new(token: impl Into<SecretString>, state: JobState) -> JobUpdate {
        JobUpdate {
            token: token.into(),
            state: Some(state),
            ..JobUpdate::default()
        }
    }
}

/// `output`: what the runner sent of the log, so the server can check it has it all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytesize: Option<u64>,
}
