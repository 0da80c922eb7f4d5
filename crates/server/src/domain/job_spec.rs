//! What a job's stored spec (its planned job, as JSON) says about it, read cheaply where a
//! whole `PlannedJob` is not needed: who runs it (a bridge's `trigger:` runs on the server,
//! `tags:` choose runners) and what it `needs`. Every claim and every pipeline advance asks.

use pipewright_store::Job;

/// Whether a job is a bridge (has `trigger:`).
pub fn is_bridge(job: &Job) -> bool {
    Routing::of(job).is_bridge()
}

/// What decides who runs a job — `trigger:` (the server, for a bridge) and `tags:` — read
/// from its spec without building the rest of it (the claim and every pipeline advance ask).
#[derive(Default, serde::Deserialize)]
pub struct Routing {
    #[serde(default)]
    trigger: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Routing {
    /// A spec that cannot be read routes like one without `trigger:` and `tags:`.
    pub fn of(job: &Job) -> Routing {
        serde_json::from_str(&job.spec).unwrap_or_default()
    }

    pub fn is_bridge(&self) -> bool {
        self.trigger.is_some()
    }
}

/// The job's `needs` names from its planned spec, if it has `needs`.
pub fn job_needs(job: &Job) -> Option<Vec<String>> {
    let spec: serde_json::Value = serde_json::from_str(&job.spec).ok()?;
    let needs = spec.get("needs")?.as_array()?;
    Some(
        needs
            .iter()
            .filter_map(|n| n.get("job").and_then(|j| j.as_str()).map(str::to_string))
            .collect(),
    )
}
