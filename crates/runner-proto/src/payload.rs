//! The job payload: the `201` answer to `POST /api/v4/jobs/request`, everything a runner needs
//! to run one job. GitLab: `API::Entities::Ci::JobRequest::Response` and its parts
//! (`lib/api/entities/ci/job_request/*.rb`); GitLab Runner: `JobResponse` in
//! `common/network.go`.
//!
//! Keys GitLab always exposes are always written, `null` included: the `gitlab-runner` crate
//! refuses a payload without `dependencies` or `artifacts`, or a variable without `public` or
//! `masked`. Keys GitLab leaves out when empty (`file`/`raw` on a variable, `untracked` and
//! `exclude` on artifacts, `artifacts_file` on a dependency) are left out the same way.

use serde::{Deserialize, Serialize};

use crate::{
    ArtifactFormat, ArtifactType, CachePolicy, FailureReason, RefType, SecretString, StepName,
    When, is_false, null_as_default,
};

/// GitLab's job payload (`JobRequest::Response`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPayload {
    pub id: i64,
    /// The job token: `CI_JOB_TOKEN`, the `JOB-TOKEN` of trace and artifact requests and the
    /// `token` of `PUT /jobs/:id`; valid while the job runs.
    pub token: SecretString,
    #[serde(default)]
    pub allow_git_fetch: bool,
    #[serde(default)]
    pub job_info: JobInfo,
    #[serde(default)]
    pub git_info: GitInfo,
    #[serde(default)]
    pub runner_info: RunnerInfo,
    #[serde(default, deserialize_with = "null_as_default")]
    pub variables: Vec<Variable>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub steps: Vec<Step>,
    /// The job's `image:`; `null` when it has none.
    #[serde(default)]
    pub image: Option<Image>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub services: Vec<Service>,
    /// The archives to upload; `null` when the job keeps none.
    #[serde(default)]
    pub artifacts: Option<Vec<ArtifactSpec>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cache: Vec<Cache>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub credentials: Vec<Credential>,
    /// The jobs whose artifacts to download first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub features: GitlabFeatures,
}

impl JobPayload {
    /// The step called `name` (`script` is `before_script` + `script`).
    pub fn step(&self, name: &StepName) -> Option<&Step> {
        self.steps.iter().find(|step| &step.name == name)
    }

    /// The variable `key`'s value, the last one if the key repeats (as runners export them).
    pub fn variable(&self, key: &str) -> Option<&str> {
        self.variables
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.as_str())
    }
}

/// `job_info`. GitLab: `job_request/job_info.rb`. Pipewright writes the first six; the others
/// are what newer GitLab versions add, kept when read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub project_id: i64,
    #[serde(default)]
    pub project_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_queue_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_full_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// A number as text, or `+Inf` (GitLab Runner reads it as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_jobs_running_on_instance_runners_count: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<u64>,
}

/// `git_info`: where to fetch the job's commit. GitLab: `job_request/git_info.rb`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitInfo {
    /// The repository's URL with the job token in it (`gitlab-ci-token:<token>@`).
    #[serde(default)]
    pub repo_url: SecretString,
    #[serde(default, rename = "ref")]
    pub ref_name: String,
    #[serde(default)]
    pub sha: String,
    #[serde(default)]
    pub before_sha: String,
    #[serde(default)]
    pub ref_type: RefType,
    #[serde(default, deserialize_with = "null_as_default")]
    pub refspecs: Vec<String>,
    /// Fetch depth (GitLab's `git_depth`); `null`: a full clone.
    #[serde(default)]
    pub depth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_object_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
}

/// `runner_info`. GitLab: `job_request/runner_info.rb`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerInfo {
    /// The job's timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default)]
    pub runner_session_url: Option<String>,
}

/// GitLab's default job timeout: an hour.
fn default_timeout() -> u64 {
    3600
}

impl Default for RunnerInfo {
    fn default() -> RunnerInfo {
        RunnerInfo {
            timeout: default_timeout(),
            runner_session_url: None,
        }
    }
}

/// One of `variables`. GitLab: `Gitlab::Ci::Variables::Collection::Item#to_runner_variable`
/// (`lib/gitlab/ci/variables/collection/item.rb`), which always sends `public` and `masked`
/// and leaves `file` and `raw` out when false.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub key: String,
    /// `null` reads as empty, as GitLab Runner does.
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: String,
    /// Whether the value may be shown to anyone who can see the job.
    #[serde(default)]
    pub public: bool,
    /// Whether the runner must mask the value in the log.
    #[serde(default)]
    pub masked: bool,
    /// The value goes to a file; the variable holds its path.
    #[serde(default, skip_serializing_if = "is_false")]
    pub file: bool,
    /// `$` in the value is literal.
    #[serde(default, skip_serializing_if = "is_false")]
    pub raw: bool,
}

impl std::fmt::Debug for Variable {
    /// Only a public variable's value is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.public {
            self.value.as_str()
        } else {
            "[MASKED]"
        };
        f.debug_struct("Variable")
            .field("key", &self.key)
            .field("value", &value)
            .field("public", &self.public)
            .field("masked", &self.masked)
            .field("file", &self.file)
            .field("raw", &self.raw)
            .finish()
    }
}

/// One of `steps`. GitLab: `job_request/step.rb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: StepName,
    #[serde(default, deserialize_with = "null_as_default")]
    pub script: Vec<String>,
    /// Seconds.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    #[serde(default)]
    pub when: When,
    #[serde(default)]
    pub allow_failure: bool,
}

/// `image`. GitLab: `job_request/image.rb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub ports: Option<Vec<Port>>,
    #[serde(default)]
    pub executor_opts: Option<ExecutorOptions>,
    /// `always`, `never`, `if-not-present`.
    #[serde(default)]
    pub pull_policy: Option<Vec<String>>,
}

impl Image {
    /// An image given by name only (`image: ruby:3.3`).
    pub fn named(name: impl Into<String>) -> Image {
        Image {
            name: name.into(),
            entrypoint: None,
            ports: None,
            executor_opts: None,
            pull_policy: None,
        }
    }
}

/// One of `services`: an image run beside the job. GitLab: `job_request/service.rb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub ports: Option<Vec<Port>>,
    #[serde(default)]
    pub executor_opts: Option<ExecutorOptions>,
    #[serde(default)]
    pub pull_policy: Option<Vec<String>>,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub variables: Option<Vec<ServiceVariable>>,
}

impl Service {
    /// A service given by name only (`services: [postgres:16]`).
    pub fn named(name: impl Into<String>) -> Service {
        Service {
            name: name.into(),
            entrypoint: None,
            ports: None,
            executor_opts: None,
            pull_policy: None,
            alias: None,
            command: None,
            variables: None,
        }
    }
}

/// A port an image exposes. GitLab: `job_request/port.rb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub number: u16,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A service's own variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceVariable {
    pub key: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: String,
}

/// `executor_opts` of an image or service (`image:docker:`, `image:kubernetes:` in the YAML).
/// GitLab Runner: `ImageExecutorOptions` in `common/network.go`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserSpec>,
}

/// The user a container runs as: a name (`dave`, `1000:1000`) or a uid (GitLab Runner's
/// `StringOrInt64`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserSpec {
    Id(i64),
    Name(String),
}

/// One of `artifacts`. GitLab: `job_request/artifacts.rb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untracked: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// `null` means `on_success`.
    #[serde(default)]
    pub when: Option<When>,
    /// `30 days`, `never`, …; `null`: the instance's default.
    #[serde(default)]
    pub expire_in: Option<String>,
    pub artifact_type: ArtifactType,
    /// `null` means `zip`.
    #[serde(default)]
    pub artifact_format: Option<ArtifactFormat>,
}

/// One of `cache`. GitLab: `job_request/cache.rb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub untracked: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub paths: Vec<String>,
    #[serde(default)]
    pub policy: CachePolicy,
    #[serde(default)]
    pub when: When,
    #[serde(default, deserialize_with = "null_as_default")]
    pub fallback_keys: Vec<String>,
}

/// One of `credentials` (a registry login). GitLab: `job_request/credentials.rb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub username: String,
    pub password: SecretString,
}

/// One of `dependencies`. GitLab: `job_request/dependency.rb`: `token` is the *running* job's
/// token (what the runner presents to download), `artifacts_file` only when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub token: SecretString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts_file: Option<ArtifactFile>,
}

/// A dependency's archive. GitLab: `API::Entities::Ci::JobArtifactFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    pub filename: String,
    pub size: u64,
}

/// `features`: what the server supports. GitLab: `Ci::Build#features`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitlabFeatures {
    /// The log may carry `section_start`/`section_end` markers.
    #[serde(default)]
    pub trace_sections: bool,
    /// Token prefixes the runner should mask wherever they appear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_mask_prefixes: Option<Vec<String>>,
    /// The failure reasons the server accepts from this runner.
    #[serde(default, deserialize_with = "null_as_default")]
    pub failure_reasons: Vec<FailureReason>,
}
