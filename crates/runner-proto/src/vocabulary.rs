//! The protocol's closed vocabularies (step names, `when`, job states, failure reasons,
//! artifact formats and types, ref types, cache policies) as enums that read and write
//! GitLab's exact words. Each keeps an `Other(text)` for a word a newer GitLab or runner may
//! send: reading never fails on one, and writing sends it back unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares an enum of GitLab's words plus `Other(String)`, with `as_str`, `parse`, `Display`
/// and serde as the bare string.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A word this version does not know, kept as it was sent. Build values with
            /// [`Self::parse`], which never puts a known word here.
            Other(String),
        }

        impl $name {
            /// The word on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(text) => text,
                }
            }

            /// The variant for a word; an unknown word becomes [`Self::Other`].
            pub fn parse(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok(Self::parse(&text))
            }
        }
    };
}

words! {
    /// A step of the job payload. GitLab: `lib/gitlab/ci/build/step.rb` (`script`, `release`,
    /// `after_script`); GitLab Runner: `StepName` in `common/network.go` (also `run`).
    pub enum StepName {
        /// `before_script` + `script`, as one list.
        Script = "script",
        AfterScript = "after_script",
        Release = "release",
        Run = "run",
    }
}

words! {
    /// When a step runs, or when artifacts and caches are kept, relative to the job's outcome.
    /// GitLab Runner: `StepWhen`, `ArtifactWhen`, `CacheWhen` in `common/network.go`. GitLab's
    /// default is `on_success`.
    #[derive(Default)]
    pub enum When {
        #[default]
        OnSuccess = "on_success",
        OnFailure = "on_failure",
        Always = "always",
    }
}

words! {
    /// The state a runner reports with `PUT /jobs/:id` (`running` is a keep-alive). GitLab
    /// Runner: `JobState` in `common/network.go`; GitLab: `put '/:id'` in
    /// `lib/api/ci/runner.rb`.
    pub enum JobState {
        Pending = "pending",
        Running = "running",
        Success = "success",
        Failed = "failed",
    }
}

words! {
    /// Why a job failed. The runner-side reasons are GitLab Runner's `JobFailureReason`
    /// (`common/network.go`); the server-side ones are GitLab's
    /// (`app/models/concerns/enums/ci/commit_status.rb`).
    pub enum FailureReason {
        UnknownFailure = "unknown_failure",
        ScriptFailure = "script_failure",
        RunnerSystemFailure = "runner_system_failure",
        JobExecutionTimeout = "job_execution_timeout",
        ImagePullFailure = "image_pull_failure",
        StuckOrTimeoutFailure = "stuck_or_timeout_failure",
        ApiFailure = "api_failure",
        MissingDependencyFailure = "missing_dependency_failure",
        RunnerUnsupported = "runner_unsupported",
        ArchivedFailure = "archived_failure",
        UnmetPrerequisites = "unmet_prerequisites",
        SchedulerFailure = "scheduler_failure",
        DataIntegrityFailure = "data_integrity_failure",
    }
}

words! {
    /// An artifact archive's format. GitLab: `Ci::JobArtifact.file_formats`; GitLab Runner:
    /// `ArtifactFormat` in `common/network.go`.
    pub enum ArtifactFormat {
        Zip = "zip",
        Gzip = "gzip",
        Raw = "raw",
        ZipZstd = "zipzstd",
        TarZstd = "tarzstd",
    }
}

words! {
    /// What an artifact is for. GitLab: `Ci::JobArtifact.file_types` (only the common ones are
    /// named here; the reports are many).
    pub enum ArtifactType {
        Archive = "archive",
        Metadata = "metadata",
        Trace = "trace",
        Junit = "junit",
        Dotenv = "dotenv",
        Cobertura = "cobertura",
    }
}

words! {
    /// Whether the job's ref is a branch or a tag. GitLab Runner: `GitInfoRefType`.
    #[derive(Default)]
    pub enum RefType {
        #[default]
        Branch = "branch",
        Tag = "tag",
    }
}

words! {
    /// A cache's policy. GitLab Runner: `CachePolicy` in `common/network.go`. GitLab's
    /// default is `pull-push`.
    #[derive(Default)]
    pub enum CachePolicy {
        #[default]
        PullPush = "pull-push",
        Pull = "pull",
        Push = "push",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_and_write_as_gitlab_spells_them() {
        assert_eq!(StepName::parse("after_script"), StepName::AfterScript);
        assert_eq!(CachePolicy::PullPush.as_str(), "pull-push");
        assert_eq!(
            serde_json::to_string(&FailureReason::JobExecutionTimeout).ok(),
            Some("\"job_execution_timeout\"".to_string())
        );
    }

    #[test]
    fn an_unknown_word_is_kept_not_refused() {
        let reason: FailureReason =
            serde_json::from_str("\"ci_quota_exceeded\"").expect("an unknown reason reads");
        assert_eq!(reason, FailureReason::Other("ci_quota_exceeded".into()));
        assert_eq!(
            serde_json::to_string(&reason).ok(),
            Some("\"ci_quota_exceeded\"".to_string())
        );
    }
}
