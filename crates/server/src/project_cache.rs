//! A small cache keyed by a project (or pipeline) id for what the job path reads on every job
//! but changes rarely (a project's webhooks and CI/CD variables, what a pipeline's job
//! payloads share). Entries live for a short time-to-live and are
//! dropped at once when this process changes them, so a change made through this server is
//! seen immediately and one made through another replica within the TTL. The values cached
//! ([`OpenedVariables`], [`PayloadContext`]) are defined here, beside the cache `AppState`
//! holds them in; the domain loads them (`domain::ci_variables`, `domain::job_payload`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ProjectCache<T> {
    ttl: Duration,
    entries: Mutex<HashMap<i64, (Instant, Arc<T>)>>,
}

impl<T> ProjectCache<T> {
    pub fn new(ttl: Duration) -> Self {
        ProjectCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value for `project_id`, if there is a fresh one.
    pub fn get(&self, project_id: i64) -> Option<Arc<T>> {
        let entries = self.entries.lock().ok()?;
        let (at, value) = entries.get(&project_id)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// The cached value for `project_id`, or what `load` returns (then cached).
    pub async fn get_or_load<E, F>(&self, project_id: i64, load: F) -> Result<Arc<T>, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        if let Ok(entries) = self.entries.lock()
            && let Some((at, value)) = entries.get(&project_id)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let value = Arc::new(load.await?);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.clear();
            }
            entries.insert(project_id, (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    pub fn invalidate(&self, project_id: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&project_id);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// A project's and the instance's variables, opened once when they are (re)loaded: jobs and
/// log chunks read them all the time, and unsealing is not free.
pub struct OpenedVariables {
    /// Each variable's stored row (scope, flags) and its value as a job receives it.
    pub all: Vec<(pipewright_store::CiVariable, pipewright_config::Variable)>,
    /// The masked values, for masking logs on ingest.
    pub masked: Vec<String>,
}

/// What every job of a pipeline shares in its payload: read once per pipeline and kept for a
/// moment, since a pipeline's jobs are usually claimed together (none of it changes while the
/// pipeline runs, except the project's name).
pub struct PayloadContext {
    pub pipeline: pipewright_store::Pipeline,
    pub project: pipewright_store::Project,
    pub ctx: pipewright_config::PipelineContext,
    pub pipeline_vars: Vec<pipewright_config::Variable>,
    pub build_timeout: Option<u64>,
}
