//! GitLab's `pipeline_limit_per_project_user_sha`: how many pipelines one user may create for
//! one commit of a project per minute, counted in this process (the pipeline creation chain's
//! step 4 asks it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// (project, user, commit sha).
type WindowKey = (i64, Option<i64>, String);

/// GitLab's per-project-user-commit pipeline creation limit (per minute; 0 = off).
#[derive(Default)]
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<WindowKey, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit_per_minute: u32) -> Self {
        RateLimiter {
            limit: limit_per_minute,
            windows: Mutex::default(),
        }
    }

    /// Whether one more creation would be allowed now, without counting it (a dry run).
    pub fn would_allow(&self, project: i64, user: Option<i64>, sha: &str) -> bool {
        if self.limit == 0 {
            return true;
        }
        let Ok(windows) = self.windows.lock() else {
            return true;
        };
        match windows.get(&(project, user, sha.to_string())) {
            Some((start, count)) if start.elapsed() < Duration::from_secs(60) => {
                *count < self.limit
            }
            _ => true,
        }
    }

    /// Counts one creation; false when over the limit.
    pub fn allow(&self, project: i64, user: Option<i64>, sha: &str) -> bool {
        if self.limit == 0 {
            return true;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        let now = Instant::now();
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = windows
            .entry((project, user, sha.to_string()))
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.limit
    }
}
