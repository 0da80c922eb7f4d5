//! Parsed CI configs, cached by the git blob id of `.gitlab-ci.yml`, so repeated triggers on
//! the same commit skip YAML parsing. A config that includes other files is also keyed by the
//! commit (its includes may change while the main file does not), and a pipeline's CI/CD
//! inputs are part of the key (they change the parsed config). A config whose `expand_vars`
//! read the pipeline's variables is not cached: it is only good for those variables. Errors
//! are cached too: a broken config stays broken until its blob changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pipewright_config::{Config, ConfigError, FileSource, Inputs, Interpolation};
use sha2::{Digest, Sha256};

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

/// The cache keys of blob `blob_id` with `inputs`: alone, and at `commit` (for a config that
/// includes files).
fn keys(blob_id: &str, commit: &str, inputs: &Inputs) -> (String, String) {
    let base = if inputs.is_empty() {
        blob_id.to_string()
    } else {
        let json = serde_json::Value::Object(inputs.clone()).to_string();
        format!("{blob_id}#{}", hex::encode(Sha256::digest(json.as_bytes())))
    };
    let with_commit = format!("{base}@{commit}");
    (base, with_commit)
}

impl ConfigCache {
    /// The cached result for blob `blob_id` at `commit` with `inputs`, if any.
    pub fn get(
        &self,
        blob_id: &str,
        commit: &str,
        inputs: &Inputs,
    ) -> Option<Arc<Result<Config, ConfigError>>> {
        let (base, with_commit) = keys(blob_id, commit, inputs);
        let entries = self.entries.lock().ok()?;
        entries
            .get(&base)
            .or_else(|| entries.get(&with_commit))
            .cloned()
    }

    /// The parsed config for blob `blob_id` at `commit` with `interpolation`'s inputs, parsing
    /// it if needed.
    pub fn get_or_parse(
        &self,
        blob_id: &str,
        commit: &str,
        source: impl FnOnce() -> Result<String, ConfigError>,
        files: &dyn FileSource,
        interpolation: &Interpolation,
    ) -> Arc<Result<Config, ConfigError>> {
        let (base, with_commit) = keys(blob_id, commit, &interpolation.inputs);
        if let Ok(entries) = self.entries.lock()
            && let Some(hit) = entries.get(&base).or_else(|| entries.get(&with_commit))
        {
            return hit.clone();
        }
        let recording = Recording {
            inner: files,
            used: std::cell::Cell::new(false),
        };
        let parsed = source().and_then(|text| {
            let limits = pipewright_config::Limits::default();
            Config::parse_with(&text, &recording, &limits, interpolation)
        });
        let parsed = Arc::new(parsed);
        if interpolation.variables_used.get() {
            return parsed;
        }
        let key = if recording.used.get() {
            with_commit
        } else {
            base
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
