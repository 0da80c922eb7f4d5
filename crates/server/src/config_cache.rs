//! Parsed CI configs, cached by the git blob id of `.gitlab-ci.yml`, so repeated triggers on
//! the same commit skip YAML parsing. A config that includes other files is also keyed by the
//! commit (its includes may change while the main file does not). Errors are cached too: a
//! broken config stays broken until its blob changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pipewright_config::{Config, ConfigError, FileSource};

/// Entries kept before the cache starts over (a crude bound; configs are small).
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct ConfigCache {
    entries: Mutex<HashMap<String, Arc<Result<Config, ConfigError>>>>,
}

/// Reads included files from the same commit, remembering whether any were read.
struct Recording<'a> {
    inner: &'a dyn FileSource,
    used: std::cell::Cell<bool>,
}

impl FileSource for Recording<'_> {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        self.used.set(true);
        self.inner.read(path)
    }
}

impl ConfigCache {
    /// The cached result for blob `blob_id` at `commit`, if any.
    pub fn get(&self, blob_id: &str, commit: &str) -> Option<Arc<Result<Config, ConfigError>>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(blob_id)
            .or_else(|| entries.get(&format!("{blob_id}@{commit}")))
            .cloned()
    }

    /// The parsed config for blob `blob_id` at `commit`, parsing it if needed.
    pub fn get_or_parse(
        &self,
        blob_id: &str,
        commit: &str,
        source: impl FnOnce() -> Result<String, ConfigError>,
        files: &dyn FileSource,
    ) -> Arc<Result<Config, ConfigError>> {
        let with_commit = format!("{blob_id}@{commit}");
        if let Ok(entries) = self.entries.lock()
            && let Some(hit) = entries.get(blob_id).or_else(|| entries.get(&with_commit))
        {
            return hit.clone();
        }
        let recording = Recording {
            inner: files,
            used: std::cell::Cell::new(false),
        };
        let parsed = source().and_then(|text| {
            Config::parse(&text, &recording, &pipewright_config::Limits::default())
        });
        let parsed = Arc::new(parsed);
        let key = if recording.used.get() {
            with_commit
        } else {
            blob_id.to_string()
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, parsed.clone());
        }
        parsed
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
