//! Parsed CI configs, cached by the git blob id of `.gitlab-ci.yml`, so repeated triggers on
//! the same commit skip YAML parsing. A config that includes other files of its commit (or
//! lists them, for wildcards and `exists:`) is also keyed by the commit (its includes may change
//! while the main file does not), and a pipeline's CI/CD inputs are part of the key (they change
//! the parsed config). Errors are cached too: a broken config stays broken until its blob
//! changes.
//!
//! A config that read another project (`include: project:`), a URL (`include: remote:`) or the
//! pipeline's variables (include `rules:if`, `$VARIABLES` in locations, `expand_vars` in
//! inputs) is not cached at all: its result depends on the user's access to that project, on
//! what the URL answers now, and on the pipeline. Other projects' files are cached instead, by
//! (project, commit sha, path) — a commit's file never changes — after the access check, which
//! runs every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pipewright_config::{Config, ConfigError, FileSource, Inputs, Interpolation};
use sha2::{Digest, Sha256};

/// Entries kept before the cache starts over (a crude bound; configs are small).
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub struct ConfigCache {
    entries: Mutex<HashMap<String, Arc<Result<Config, ConfigError>>>>,
    /// Other projects' files, for `include: project:`.
    pub project_files: ProjectFiles,
}

/// Files of other projects at a commit kept before that cache starts over.
const MAX_FILES: usize = 4096;

/// (project id, commit sha, path).
type FileKey = (i64, String, String);

/// Files of other projects' commits, read for `include: project:`.
#[derive(Default)]
pub struct ProjectFiles {
    entries: Mutex<HashMap<FileKey, Option<Arc<str>>>>,
}

impl ProjectFiles {
    /// The file at `key`, reading (and keeping) it with `read` when not cached. Read errors
    /// are not kept.
    pub fn get_or_read(
        &self,
        key: FileKey,
        read: impl FnOnce() -> Result<Option<String>, String>,
    ) -> Result<Option<Arc<str>>, String> {
        if let Ok(entries) = self.entries.lock()
            && let Some(hit) = entries.get(&key)
        {
            return Ok(hit.clone());
        }
        let text: Option<Arc<str>> = read()?.map(Arc::from);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_FILES {
                entries.clear();
            }
            entries.insert(key, text.clone());
        }
        Ok(text)
    }
}

/// What parsing asked its [`FileSource`] for: nothing, the commit's own files, or something
/// that is not the commit's (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Depends {
    Blob,
    Commit,
    Uncacheable,
}

/// Passes every question on to the real source, noting what the config depends on.
struct Recording<'a> {
    inner: &'a dyn FileSource,
    depends: std::cell::Cell<Depends>,
}

impl Recording<'_> {
    fn note(&self, depends: Depends) {
        self.depends.set(self.depends.get().max(depends));
    }
}

impl FileSource for Recording<'_> {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        self.note(Depends::Commit);
        self.inner.read(path)
    }

    fn list(&self) -> Result<Vec<String>, String> {
        self.note(Depends::Commit);
        self.inner.list()
    }

    fn read_project(
        &self,
        project: &str,
        git_ref: Option<&str>,
        path: &str,
    ) -> Result<Option<String>, String> {
        self.note(Depends::Uncacheable);
        self.inner.read_project(project, git_ref, path)
    }

    fn list_project(&self, project: &str, git_ref: Option<&str>) -> Result<Vec<String>, String> {
        self.note(Depends::Uncacheable);
        self.inner.list_project(project, git_ref)
    }

    fn read_remote(&self, url: &str) -> Result<String, String> {
        self.note(Depends::Uncacheable);
        self.inner.read_remote(url)
    }

    fn variables(&self) -> Vec<pipewright_config::Variable> {
        self.note(Depends::Uncacheable);
        self.inner.variables()
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
            depends: std::cell::Cell::new(Depends::Blob),
        };
        let parsed = source().and_then(|text| {
            let limits = pipewright_config::Limits::default();
            Config::parse_with(&text, &recording, &limits, interpolation)
        });
        let parsed = Arc::new(parsed);
        if interpolation.variables_used.get() {
            return parsed;
        }
        let key = match recording.depends.get() {
            Depends::Blob => base,
            Depends::Commit => with_commit,
            Depends::Uncacheable => return parsed,
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
