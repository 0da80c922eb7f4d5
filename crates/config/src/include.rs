//! `include:`: the files a config pulls in, merged underneath the file that includes them.
//! An `include:` value becomes a list of [`IncludeEntry`] (GitLab's `Mapper::Normalizer`:
//! a string is `local:` or, when it is a URL, `remote:`), each entry's text is fetched through
//! the caller's [`FileSource`] and turned into a mapping by [`IncludeWalk::load_entry`] — the
//! one place an included file's text becomes YAML (where `inputs:` interpolation hooks in) —
//! and what it includes is expanded the same way, depth first.
//!
//! GitLab: lib/gitlab/ci/config/external/mapper.rb and mapper/*.rb, file/*.rb.

use std::collections::HashSet;

use crate::FileSource;
use crate::error::{ConfigError, Result};
use crate::resolve::CONFIG_FILE;
use crate::yaml::{self, Limits, Map, Node, Yaml};

/// GitLab's limit of included files per pipeline.
const MAX_INCLUDES: usize = 150;

/// An `include:` keyword Pipewright accepts and ignores, and the file that uses it (for the
/// warnings in `compat.rs`).
pub type IgnoredInclude = (&'static str, String);

/// One `include:` entry: where the file comes from, and the entry's own `rules:` and
/// `inputs:` as written.
#[derive(Debug, Clone)]
pub struct IncludeEntry {
    pub kind: IncludeKind,
    pub rules: Option<Node>,
    pub inputs: Option<Node>,
}

/// Where an included file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeKind {
    /// A file of the same commit (`include: local:`, or a plain path).
    Local { path: String },
    /// Files of another project at a ref (its default branch when `git_ref` is `None`).
    Project {
        project: String,
        git_ref: Option<String>,
        files: Vec<String>,
    },
    /// A file fetched over HTTP(S).
    Remote { url: String },
    /// One of GitLab's bundled templates (refused: Pipewright bundles none).
    Template { name: String },
}

/// Loads `source` and everything it includes into one mapping; `ignored` collects the
/// `include:` keywords that were accepted but not acted on.
pub fn load_with_includes(
    source: &str,
    files: &dyn FileSource,
    limits: &Limits,
    ignored: &mut Vec<IgnoredInclude>,
) -> Result<Map> {
    let root = yaml::load(source, CONFIG_FILE, limits)?;
    let map = match root.value {
        Yaml::Map(m) => m,
        Yaml::Null => return Err(ConfigError::new("Please provide content of .gitlab-ci.yml")),
        _ => return Err(ConfigError::new("Invalid configuration format")),
    };
    let mut walk = IncludeWalk {
        files,
        limits,
        seen: HashSet::new(),
        count: 0,
        ignored,
    };
    walk.expand(map, CONFIG_FILE, 0)
}

/// GitLab's `URI` check for a plain string entry (`Gitlab::UrlSanitizer.valid?`).
fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// The entries of an `include:` value (a string, a hash, or a list of them).
pub fn entries(node: &Node) -> Result<Vec<IncludeEntry>> {
    let bad = || {
        ConfigError::new("Included file `include` config should be a string, a hash or an array")
    };
    match &node.value {
        Yaml::Seq(items) => items.iter().map(entry).collect(),
        Yaml::Str(_) | Yaml::Map(_) => Ok(vec![entry(node)?]),
        _ => Err(bad()),
    }
}

/// One entry. GitLab: mapper/normalizer.rb (strings) and mapper/matcher.rb (exactly one of
/// `local`, `project`, `remote`, `template`, `artifact` per hash).
fn entry(node: &Node) -> Result<IncludeEntry> {
    let m = match &node.value {
        Yaml::Str(s) if is_url(s) => return Ok(plain(IncludeKind::Remote { url: s.clone() })),
        Yaml::Str(s) => return Ok(plain(IncludeKind::Local { path: s.clone() })),
        Yaml::Map(m) => m,
        _ => {
            return Err(ConfigError::new(
                "Included file `include` config should be a string, a hash or an array",
            ));
        }
    };
    let subkeys = [
        "local",
        "project",
        "remote",
        "template",
        "artifact",
        "component",
    ];
    let given: Vec<&str> = subkeys
        .iter()
        .copied()
        .filter(|k| m.get(k).is_some())
        .collect();
    let text = |key: &str| m.get(key).and_then(Node::scalar_text);
    let kind = match given.as_slice() {
        ["local"] => IncludeKind::Local {
            path: text("local").unwrap_or_default(),
        },
        ["project"] => IncludeKind::Project {
            project: text("project").unwrap_or_default(),
            git_ref: text("ref"),
            files: project_files(m)?,
        },
        ["remote"] => IncludeKind::Remote {
            url: text("remote").unwrap_or_default(),
        },
        ["template"] => IncludeKind::Template {
            name: text("template").unwrap_or_default(),
        },
        [] => {
            return Err(ConfigError::new(format!(
                "`{}` does not have a valid subkey for include. Valid subkeys are: `local`, `project`, `remote`, `template`, `artifact`",
                m.keys().collect::<Vec<_>>().join(", ")
            )));
        }
        [other] => {
            return Err(ConfigError::new(format!(
                "Included file `{other}` is not supported by Pipewright"
            )));
        }
        _ => {
            return Err(ConfigError::new(
                "Each include must use only one of: `local`, `project`, `remote`, `template`, `artifact`",
            ));
        }
    };
    Ok(IncludeEntry {
        kind,
        rules: m.get("rules").cloned(),
        inputs: m.get("inputs").cloned(),
    })
}

fn plain(kind: IncludeKind) -> IncludeEntry {
    IncludeEntry {
        kind,
        rules: None,
        inputs: None,
    }
}

/// `file:` of a `project:` entry: a string or a list of strings. GitLab:
/// lib/gitlab/ci/config/external/mapper/location_expander.rb (`Array.wrap(location[:file])`).
fn project_files(m: &Map) -> Result<Vec<String>> {
    let files = match m.get("file").map(|n| &n.value) {
        Some(Yaml::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
        Some(_) => m
            .get("file")
            .and_then(Node::scalar_text)
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    if files.is_empty() {
        return Err(ConfigError::new(
            "Included file `project` config should have a `file`: a path or a list of paths",
        ));
    }
    Ok(files)
}

/// Notes the keys of `include:` entries Pipewright does not act on yet (`inputs`): the file
/// is included as if they were absent.
fn note_ignored_keys(entries: &[IncludeEntry], file: &str, ignored: &mut Vec<IgnoredInclude>) {
    for entry in entries {
        if entry.rules.is_some() {
            ignored.push(("include:rules", file.to_string()));
        }
        if entry.inputs.is_some() {
            ignored.push(("include:inputs", file.to_string()));
        }
    }
}

/// What expanding includes carries from file to file.
struct IncludeWalk<'a> {
    files: &'a dyn FileSource,
    limits: &'a Limits,
    seen: HashSet<String>,
    count: usize,
    ignored: &'a mut Vec<IgnoredInclude>,
}

impl IncludeWalk<'_> {
    /// `map` (read from `file`) with what it includes merged underneath.
    fn expand(&mut self, mut map: Map, file: &str, depth: usize) -> Result<Map> {
        let Some(include) = map.remove("include") else {
            return Ok(map);
        };
        if depth > 100 {
            return Err(ConfigError::new(
                "Maximum of 100 nested includes are allowed",
            ));
        }
        let entries = entries(&include)?;
        note_ignored_keys(&entries, file, self.ignored);
        let mut merged = Map::default();
        for entry in &entries {
            let path = match &entry.kind {
                IncludeKind::Local { path } => path.trim_start_matches('/').to_string(),
                IncludeKind::Remote { url } => {
                    return Err(ConfigError::new(format!(
                        "Remote file `{url}` is not supported by Pipewright yet; use `include: local`"
                    )));
                }
                IncludeKind::Project { .. } | IncludeKind::Template { .. } => {
                    let kind = if matches!(entry.kind, IncludeKind::Project { .. }) {
                        "project"
                    } else {
                        "template"
                    };
                    return Err(ConfigError::new(format!(
                        "Included file `{kind}` is not supported by Pipewright yet; use `include: local`"
                    )));
                }
            };
            self.count += 1;
            if self.count > MAX_INCLUDES {
                return Err(ConfigError::new(format!(
                    "Maximum of {MAX_INCLUDES} includes are allowed"
                )));
            }
            if !self.seen.insert(path.clone()) {
                continue;
            }
            let text = self
                .files
                .read(&path)
                .map_err(ConfigError::new)?
                .ok_or_else(|| ConfigError::new(format!("Local file `{path}` does not exist!")))?;
            let included = self.load_entry(entry, &text, &path)?;
            let included = self.expand(included, &path, depth + 1)?;
            merged.deep_merge(&included);
        }
        // The including file wins over what it includes.
        merged.deep_merge(&map);
        Ok(merged)
    }

    /// An included file's text as a mapping: the one step every entry's content goes
    /// through (the seam for `include: inputs:` interpolation). `name` says where it came
    /// from in error messages.
    fn load_entry(&mut self, _entry: &IncludeEntry, text: &str, name: &str) -> Result<Map> {
        let node = yaml::load(text, name, self.limits)?;
        match node.value {
            Yaml::Map(m) => Ok(m),
            Yaml::Null => Ok(Map::default()),
            _ => Err(ConfigError::new(format!(
                "Included file `{name}` does not have valid YAML syntax!"
            ))),
        }
    }
}
