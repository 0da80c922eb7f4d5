//! GitLab's runner protocol as types, shared by the server that hands out jobs and every
//! runner that takes them. It owns the wire shapes of `POST /api/v4/jobs/request` (the
//! runner's [`JobRequest`] and the server's [`JobPayload`]), `PUT /api/v4/jobs/:id`
//! ([`JobUpdate`]) and `PATCH /api/v4/jobs/:id/trace` ([`ContentRange`] and the header names),
//! named and shaped as GitLab's entities (`lib/api/entities/ci/job_request/*.rb`) and GitLab
//! Runner's `common/network.go` name them, so the server and its runners agree at compile
//! time. It must never do I/O: no HTTP client or server, no files, no clock — only data and
//! its serde mapping.
//!
//! Reading is forgiving, as GitLab's clients need it to be: unknown fields are ignored, most
//! missing ones take their defaults, and a word of a closed vocabulary that this version does
//! not know (a newer GitLab's failure reason, a newer step) is kept as `Other(text)` instead of
//! failing the whole payload. Writing is exact: the keys GitLab always sends are always
//! written, even when null (third-party runners reject a payload without them).

mod payload;
mod request;
mod secret;
mod trace;
mod update;
mod vocabulary;

pub use payload::{
    ArtifactFile, ArtifactSpec, Cache, Credential, Dependency, DockerOptions, ExecutorOptions,
    GitInfo, GitlabFeatures, Image, JobInfo, JobPayload, KubernetesOptions, Port, RunnerInfo,
    Service, ServiceVariable, Step, UserSpec, Variable,
};
pub use request::{ConfigInfo, Features, JobRequest, SessionInfo, VersionInfo};
pub use secret::SecretString;
pub use trace::{
    CONTENT_RANGE, ContentRange, ContentRangeError, JOB_STATUS, JOB_TOKEN, LAST_UPDATE, RANGE,
    TRACE_UPDATE_INTERVAL, range_size,
};
pub use update::{JobUpdate, TraceOutput};
pub use vocabulary::{
    ArtifactFormat, ArtifactType, CachePolicy, FailureReason, JobState, RefType, StepName, When,
};

/// `null` read as the type's default: GitLab sends `null` for an empty list in places
/// (`dependencies`, a variable's `value`) where the type has a natural empty value.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    let value: Option<T> = serde::Deserialize::deserialize(deserializer)?;
    Ok(value.unwrap_or_default())
}

/// For `skip_serializing_if`: GitLab leaves a flag out when it is false.
fn is_false(value: &bool) -> bool {
    !*value
}
