//! Turning the loaded YAML into one self-contained mapping: `include: local` files merged in,
//! `!reference` tags replaced by what they point at, `extends` applied. What comes out has no
//! references left and every job carries all its keys; `default:` is applied later, per job,
//! because `inherit:` decides how much of it a job takes.

use std::collections::HashSet;

use crate::FileSource;
use crate::error::{ConfigError, Result};
use crate::inputs::{self, Inputs, Interpolation};
use crate::yaml::{self, Limits, Map, Node, Yaml};

/// GitLab's limits: includes per pipeline, `!reference` nesting, `extends` depth.
const MAX_INCLUDES: usize = 150;
const MAX_REFERENCE_DEPTH: usize = 10;
const MAX_EXTENDS_DEPTH: usize = 11;

pub const CONFIG_FILE: &str = ".gitlab-ci.yml";

/// An `include:` keyword Pipewright accepts and ignores, and the file that uses it (for the
/// warnings in `compat.rs`).
pub type IgnoredInclude = (&'static str, String);

/// Loads `source` and everything it includes into one mapping; `ignored` collects the
/// `include:` keywords that were accepted but not acted on. Each file's `$[[ inputs.… ]]` are
/// interpolated before it is parsed (the root file's with the pipeline's inputs).
pub fn load_with_includes(
    source: &str,
    files: &dyn FileSource,
    limits: &Limits,
    ignored: &mut Vec<IgnoredInclude>,
    interpolation: &Interpolation,
) -> Result<Map> {
    let source = inputs::interpolate(source, Some(&interpolation.inputs), interpolation, limits)
        .map_err(ConfigError::new)?;
    let root = yaml::load(&source, CONFIG_FILE, limits)?;
    let mut seen = HashSet::new();
    let mut count = 0;
    let map = match root.value {
        Yaml::Map(m) => m,
        Yaml::Null => return Err(ConfigError::new("Please provide content of .gitlab-ci.yml")),
        _ => return Err(ConfigError::new("Invalid configuration format")),
    };
    let mut walk = IncludeWalk {
        files,
        limits,
        seen: &mut seen,
        count: &mut count,
        ignored,
        interpolation,
    };
    walk.expand(map, CONFIG_FILE, 0)
}

/// Notes the keys of `include:` entries Pipewright does not act on yet (`rules`): the file is
/// included as if they were absent.
fn note_ignored_include_keys(node: &Node, file: &str, ignored: &mut Vec<IgnoredInclude>) {
    let entries: &[Node] = match &node.value {
        Yaml::Seq(items) => items,
        _ => std::slice::from_ref(node),
    };
    for entry in entries.iter().filter_map(Node::as_map) {
        if entry.get("rules").is_some() {
            ignored.push(("include:rules", file.to_string()));
        }
    }
}

/// Each `include:` entry's path and the `inputs:` it gives the file, if any.
fn include_paths(node: &Node) -> Result<Vec<(String, Option<Inputs>)>> {
    let bad = || {
        ConfigError::new("Included file `include` config should be a string, a hash or an array")
    };
    let one = |n: &Node| -> Result<(String, Option<Inputs>)> {
        match &n.value {
            Yaml::Str(s) => Ok((s.clone(), None)),
            Yaml::Map(m) => {
                if let Some(local) = m.get("local").and_then(Node::as_str) {
                    let given = m.get("inputs").map(inputs::from_node).transpose();
                    return Ok((local.to_string(), given.map_err(ConfigError::new)?));
                }
                if let Some(remote) = m.get("remote").and_then(Node::as_str) {
                    return Err(ConfigError::new(format!(
                        "Remote file `{remote}` is not supported by Pipewright yet; use `include: local`"
                    )));
                }
                let kind = m.keys().next().unwrap_or("unknown").to_string();
                Err(ConfigError::new(format!(
                    "Included file `{kind}` is not supported by Pipewright yet; use `include: local`"
                )))
            }
            _ => Err(bad()),
        }
    };
    match &node.value {
        Yaml::Seq(items) => items.iter().map(one).collect(),
        Yaml::Str(_) | Yaml::Map(_) => Ok(vec![one(node)?]),
        _ => Err(bad()),
    }
}

/// What expanding includes carries from file to file.
struct IncludeWalk<'a> {
    files: &'a dyn FileSource,
    limits: &'a Limits,
    seen: &'a mut HashSet<String>,
    count: &'a mut usize,
    ignored: &'a mut Vec<IgnoredInclude>,
    interpolation: &'a Interpolation,
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
        note_ignored_include_keys(&include, file, self.ignored);
        let mut merged = Map::default();
        for (raw, given) in include_paths(&include)? {
            let path = raw.trim_start_matches('/').to_string();
            if raw.starts_with("http://") || raw.starts_with("https://") {
                return Err(ConfigError::new(format!(
                    "Remote file `{raw}` is not supported by Pipewright yet; use `include: local`"
                )));
            }
            *self.count += 1;
            if *self.count > MAX_INCLUDES {
                return Err(ConfigError::new(format!(
                    "Maximum of {MAX_INCLUDES} includes are allowed"
                )));
            }
            // The same file with other inputs is another include (GitLab documents including
            // one template several times with different inputs).
            let seen_as = match &given {
                Some(given) => format!("{path}\n{}", serde_json::Value::Object(given.clone())),
                None => path.clone(),
            };
            if !self.seen.insert(seen_as) {
                continue;
            }
            let text = self
                .files
                .read(&path)
                .map_err(ConfigError::new)?
                .ok_or_else(|| ConfigError::new(format!("Local file `{path}` does not exist!")))?;
            // GitLab: lib/gitlab/ci/config/external/file/base.rb — "`location`: error".
            let text = inputs::interpolate(&text, given.as_ref(), self.interpolation, self.limits)
                .map_err(|e| ConfigError::new(format!("`{path}`: {e}")))?;
            let node = yaml::load(&text, &path, self.limits)?;
            let included = match node.value {
                Yaml::Map(m) => m,
                Yaml::Null => Map::default(),
                _ => {
                    return Err(ConfigError::new(format!(
                        "Included file `{path}` does not have valid YAML syntax!"
                    )));
                }
            };
            let included = self.expand(included, &path, depth + 1)?;
            merged.deep_merge(&included);
        }
        // The including file wins over what it includes.
        merged.deep_merge(&map);
        Ok(merged)
    }
}

/// Replaces every `!reference [a, b, …]` with the value it names.
pub fn resolve_references(root: &Map) -> Result<Map> {
    let mut out = root.clone();
    for (_, node) in out.0.iter_mut() {
        resolve_node(node, root, 0)?;
    }
    Ok(out)
}

fn lookup<'a>(root: &'a Map, path: &[String]) -> Option<&'a Node> {
    let (first, rest) = path.split_first()?;
    let mut node = root.get(first)?;
    for key in rest {
        node = node.as_map()?.get(key)?;
    }
    Some(node)
}

fn resolve_node(node: &mut Node, root: &Map, depth: usize) -> Result<()> {
    match &mut node.value {
        Yaml::Reference(path) => {
            if depth >= MAX_REFERENCE_DEPTH {
                return Err(ConfigError::new(
                    "too many nested !reference tags (maximum is 10)",
                ));
            }
            let target = lookup(root, path).ok_or_else(|| {
                ConfigError::new(format!(
                    "!reference [\"{}\"] could not be found",
                    path.join("\", \"")
                ))
            })?;
            let mut value = target.clone();
            resolve_node(&mut value, root, depth + 1)?;
            node.value = value.value;
        }
        Yaml::Seq(items) => {
            for item in items {
                resolve_node(item, root, depth)?;
            }
        }
        Yaml::Map(m) => {
            for (_, v) in m.0.iter_mut() {
                resolve_node(v, root, depth)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Applies `extends` to every job (and hidden job): bases deep-merged in order, the job last.
pub fn apply_extends(root: &mut Map, global_keywords: &[&str]) -> Result<()> {
    let names: Vec<String> = root
        .keys()
        .filter(|k| !global_keywords.contains(k))
        .map(str::to_string)
        .collect();
    let original = root.clone();
    for name in names {
        let Some(node) = original.get(&name) else {
            continue;
        };
        if node.as_map().is_some_and(|m| m.get("extends").is_some()) {
            let mut chain = Vec::new();
            let resolved = extended(&original, &name, &mut chain)?;
            root.insert(
                name.clone(),
                Node {
                    value: Yaml::Map(resolved),
                    line: node.line,
                    column: node.column,
                },
            );
        }
    }
    Ok(())
}

fn extended(root: &Map, name: &str, chain: &mut Vec<String>) -> Result<Map> {
    if chain.iter().any(|c| c == name) {
        return Err(ConfigError::new(format!(
            "{}: circular dependency detected in `extends`",
            chain[0]
        )));
    }
    if chain.len() >= MAX_EXTENDS_DEPTH {
        return Err(ConfigError::new(format!(
            "{}: nesting too deep in `extends`",
            chain[0]
        )));
    }
    let job = root.get(name).and_then(Node::as_map).ok_or_else(|| {
        let who = chain.first().cloned().unwrap_or_else(|| name.to_string());
        ConfigError::new(format!("{who}: unknown key in `extends` ({name})"))
    })?;
    let bases: Vec<String> = match job.get("extends").map(|n| &n.value) {
        None => Vec::new(),
        Some(Yaml::Str(s)) => vec![s.clone()],
        Some(Yaml::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
        Some(_) => {
            return Err(ConfigError::new(format!(
                "jobs:{name}:extends config should be an array of strings or a string"
            )));
        }
    };
    chain.push(name.to_string());
    let mut merged = Map::default();
    for base in &bases {
        let base_map = extended(root, base, chain)?;
        merged.deep_merge(&base_map);
    }
    chain.pop();
    let mut own = job.clone();
    own.remove("extends");
    merged.deep_merge(&own);
    Ok(merged)
}
