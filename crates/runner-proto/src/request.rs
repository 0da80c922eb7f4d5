//! `POST /api/v4/jobs/request`: what a runner sends when it asks for a job. GitLab:
//! `post '/request'` in `lib/api/ci/runner.rb` (its `params` block); GitLab Runner:
//! `JobRequest` and `VersionInfo` in `common/network.go`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SecretString;

/// The body of `POST /jobs/request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    /// The runner's authentication token (`glrt-…`).
    pub token: SecretString,
    /// Which of the runner's machines asks (`s_`/`r_` + 12 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_id: Option<String>,
    /// The `X-GitLab-Last-Update` value of the runner's previous empty answer (long polling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<VersionInfo>,
    /// Where the runner's interactive web terminal listens, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionInfo>,
}

/// The runner's metadata (`info`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(default)]
    pub features: Features,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigInfo>,
}

/// What the runner supports (`info.features`): GitLab Runner's `FeaturesInfo` has a flag per
/// feature and new ones appear with each release, so they are kept by name. A feature that is
/// absent is not supported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Features(pub BTreeMap<String, bool>);

impl Features {
    /// Whether the runner says it supports `feature` (`refspecs`, `masking`, …).
    pub fn has(&self, feature: &str) -> bool {
        self.0.get(feature).copied().unwrap_or(false)
    }

    /// These features, each supported.
    pub fn supported<'a>(features: impl IntoIterator<Item = &'a str>) -> Features {
        Features(
            features
                .into_iter()
                .map(|f| (f.to_string(), true))
                .collect(),
        )
    }
}

/// `info.config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<String>,
}

/// `session`: the runner's session server, for interactive web terminals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<SecretString>,
}
