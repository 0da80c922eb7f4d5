//! Turning the merged YAML (`include.rs` merged the included files in) into one
//! self-contained mapping: `!reference` tags replaced by what they point at, `extends` applied.
//! What comes out has no references left and every job carries all its keys; `default:` is
//! applied later, per job, because `inherit:` decides how much of it a job takes.

use crate::error::{ConfigError, Result};
use crate::yaml::{Map, Node, Yaml};

/// GitLab's limits: `!reference` nesting, `extends` depth.
const MAX_REFERENCE_DEPTH: usize = 10;
const MAX_EXTENDS_DEPTH: usize = 11;

pub const CONFIG_FILE: &str = ".gitlab-ci.yml";

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
