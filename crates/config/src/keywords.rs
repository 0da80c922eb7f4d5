//! The typed configuration: global keywords and jobs, validated with GitLab's messages.
//! Keywords whose contents only runners care about (`artifacts`, `cache`, `image`, …) are kept
//! as JSON data; keywords that decide what runs (`stage`, `when`, `needs`, …) are parsed into
//! types (`rules` and `only/except` in `rules.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{ConfigError, Result};
use crate::rules::{Policy, PolicyKind, Rule, RuleScope, policy, rules};
use crate::yaml::{Map, Node, Yaml};

pub const DEFAULT_STAGES: [&str; 3] = ["build", "test", "deploy"];

pub const GLOBAL_KEYWORDS: &[&str] = &[
    "stages",
    "variables",
    "default",
    "workflow",
    "include",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "spec",
    "types",
];

const JOB_KEYWORDS: &[&str] = &[
    "script",
    "before_script",
    "after_script",
    "image",
    "services",
    "stage",
    "tags",
    "variables",
    "rules",
    "only",
    "except",
    "when",
    "start_in",
    "allow_failure",
    "needs",
    "dependencies",
    "artifacts",
    "cache",
    "retry",
    "timeout",
    "parallel",
    "trigger",
    "environment",
    "resource_group",
    "interruptible",
    "coverage",
    "inherit",
    "extends",
    "id_tokens",
    "secrets",
    "release",
    "pages",
    "hooks",
    "manual_confirmation",
    "dast_configuration",
    "identity",
    "type",
];

const DEFAULT_KEYWORDS: &[&str] = &[
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "id_tokens",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
];

/// When a job runs, relative to its stage's predecessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    OnSuccess,
    OnFailure,
    Always,
    Manual,
    Delayed,
    Never,
}

impl When {
    pub fn parse(s: &str) -> Option<When> {
        Some(match s {
            "on_success" => When::OnSuccess,
            "on_failure" => When::OnFailure,
            "always" => When::Always,
            "manual" => When::Manual,
            "delayed" => When::Delayed,
            "never" => When::Never,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::OnFailure => "on_failure",
            When::Always => "always",
            When::Manual => "manual",
            When::Delayed => "delayed",
            When::Never => "never",
        }
    }
}

/// A variable written in `.gitlab-ci.yml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct YamlVariable {
    pub key: String,
    pub value: String,
    /// `expand: false` keeps `$` references literal (GitLab's "raw" variables).
    pub expand: bool,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Need {
    pub job: String,
    pub artifacts: bool,
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AllowFailure {
    Bool(bool),
    ExitCodes { exit_codes: Vec<i64> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    pub max: u8,
    pub when: Vec<String>,
}

/// A job as the config defines it (before rules decide whether it runs).
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub name: String,
    pub stage: String,
    pub script: Vec<String>,
    pub before_script: Vec<String>,
    pub after_script: Vec<String>,
    pub image: Option<Json>,
    pub services: Vec<Json>,
    pub tags: Vec<String>,
    pub variables: Vec<YamlVariable>,
    pub inherit_global_variables: InheritList,
    pub rules: Option<Vec<Rule>>,
    pub only: Option<Policy>,
    pub except: Option<Policy>,
    pub when: When,
    pub start_in: Option<String>,
    pub allow_failure: Option<AllowFailure>,
    pub needs: Option<Vec<Need>>,
    pub dependencies: Option<Vec<String>>,
    pub artifacts: Option<Json>,
    pub cache: Option<Json>,
    pub retry: Option<Retry>,
    pub timeout: Option<u64>,
    pub trigger: Option<Json>,
    pub environment: Option<Json>,
    pub resource_group: Option<String>,
    pub interruptible: Option<bool>,
    pub coverage: Option<String>,
}

/// `inherit:` for one kind of inherited setting.
#[derive(Debug, Clone, PartialEq)]
pub enum InheritList {
    All,
    None,
    Only(Vec<String>),
}

impl InheritList {
    pub fn includes(&self, key: &str) -> bool {
        match self {
            InheritList::All => true,
            InheritList::None => false,
            InheritList::Only(keys) => keys.iter().any(|k| k == key),
        }
    }
}

/// Converts YAML data to JSON, for keywords kept as data.
pub fn to_json(node: &Node) -> Json {
    match &node.value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Int(i) => Json::from(*i),
        Yaml::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Yaml::Str(s) => Json::String(s.clone()),
        Yaml::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Yaml::Map(m) => Json::Object(m.0.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Yaml::Reference(path) => Json::String(format!("!reference [{}]", path.join(", "))),
    }
}

/// `script`-like keywords: a string or a nested array of strings up to 10 levels deep.
pub fn string_list(node: &Node, what: &str) -> Result<Vec<String>> {
    fn walk(node: &Node, depth: usize, out: &mut Vec<String>) -> bool {
        match &node.value {
            Yaml::Seq(items) if depth < 10 => items.iter().all(|i| walk(i, depth + 1, out)),
            Yaml::Seq(_) => false,
            _ => match node.scalar_text() {
                Some(t) => {
                    out.push(t);
                    true
                }
                None => false,
            },
        }
    }
    let mut out = Vec::new();
    if walk(node, 0, &mut out) {
        Ok(out)
    } else {
        Err(ConfigError::new(format!(
            "{what} config should be a string or a nested array of strings up to 10 levels deep"
        )))
    }
}

pub(crate) fn plain_list(node: &Node, what: &str) -> Result<Vec<String>> {
    match &node.value {
        Yaml::Seq(items) => items
            .iter()
            .map(|i| {
                i.scalar_text().ok_or_else(|| {
                    ConfigError::new(format!("{what} config should be an array of strings"))
                })
            })
            .collect(),
        _ => match node.scalar_text() {
            Some(t) => Ok(vec![t]),
            None => Err(ConfigError::new(format!(
                "{what} config should be an array of strings"
            ))),
        },
    }
}

pub fn variables(node: &Node, what: &str) -> Result<Vec<YamlVariable>> {
    let map = match &node.value {
        Yaml::Map(m) => m,
        Yaml::Null => return Ok(Vec::new()),
        _ => {
            return Err(ConfigError::new(format!(
                "{what} config should be a hash of key value pairs"
            )));
        }
    };
    let mut out = Vec::new();
    for (key, value) in &map.0 {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ConfigError::new(format!(
                "{what} config uses invalid variable name: {key} (letters, digits and _ only)"
            )));
        }
        let var = match &value.value {
            Yaml::Map(m) => {
                for k in m.keys() {
                    if !["value", "description", "expand", "options"].contains(&k) {
                        return Err(ConfigError::new(format!(
                            "{what}:{key} config uses invalid data keys: {k}"
                        )));
                    }
                }
                YamlVariable {
                    key: key.clone(),
                    value: m
                        .get("value")
                        .and_then(Node::scalar_text)
                        .unwrap_or_default(),
                    expand: !matches!(m.get("expand").map(|n| &n.value), Some(Yaml::Bool(false))),
                    description: m.get("description").and_then(Node::scalar_text),
                }
            }
            Yaml::Null => YamlVariable {
                key: key.clone(),
                value: String::new(),
                expand: true,
                description: None,
            },
            _ => match value.scalar_text() {
                Some(v) => YamlVariable {
                    key: key.clone(),
                    value: v,
                    expand: true,
                    description: None,
                },
                None => {
                    return Err(ConfigError::new(format!(
                        "{what} config should be a hash of key value pairs, value can be a hash"
                    )));
                }
            },
        };
        out.push(var);
    }
    Ok(out)
}

/// `needs:` — job names or hashes with `job`. Lists inside the list (what
/// `- !reference [.base, needs]` produces) are flattened into it, as GitLab's `Entry::Needs`
/// composes `[config].flatten` (lib/gitlab/ci/config/entry/needs.rb).
pub(crate) fn needs(node: &Node, what: &str) -> Result<Vec<Need>> {
    fn flatten<'a>(node: &'a Node, out: &mut Vec<&'a Node>) {
        match &node.value {
            Yaml::Seq(items) => items.iter().for_each(|item| flatten(item, out)),
            _ => out.push(node),
        }
    }
    let mut items = Vec::new();
    flatten(node, &mut items);
    items.into_iter().map(|item| need(item, what)).collect()
}

fn need(item: &Node, what: &str) -> Result<Need> {
    match &item.value {
        Yaml::Map(m) => {
            let job = m.get("job").and_then(Node::scalar_text).ok_or_else(|| {
                ConfigError::new(format!(
                    "{what} config has to be a string or a hash with job"
                ))
            })?;
            Ok(Need {
                job,
                artifacts: !matches!(
                    m.get("artifacts").map(|n| &n.value),
                    Some(Yaml::Bool(false))
                ),
                optional: matches!(m.get("optional").map(|n| &n.value), Some(Yaml::Bool(true))),
            })
        }
        _ => item
            .scalar_text()
            .map(|job| Need {
                job,
                artifacts: true,
                optional: false,
            })
            .ok_or_else(|| {
                ConfigError::new(format!("{what} config can only contain strings or hashes"))
            }),
    }
}

/// The longest `start_in` GitLab allows: a week (`duration: { limit: '1 week' }`).
const MAX_START_IN_SECONDS: u64 = 7 * 86_400;

/// A delayed job's or rule's `start_in`: a duration of at most a week. `what` is the owner
/// (`jobs:build`, `jobs:build:rules:rule`). GitLab: `DurationValidator` in
/// lib/gitlab/config/entry/validators.rb.
pub(crate) fn start_in(node: &Node, what: &str) -> Result<String> {
    let text = node.scalar_text().unwrap_or_default();
    match duration_seconds(&text) {
        None => Err(ConfigError::new(format!(
            "{what} start in should be a duration"
        ))),
        Some(seconds) if seconds > MAX_START_IN_SECONDS => Err(ConfigError::new(format!(
            "{what} start in should not exceed the limit"
        ))),
        Some(_) => Ok(text),
    }
}

/// GitLab's duration strings (`1h 30m`, `3 hours`, `90 minutes`, `3600`), in seconds.
pub fn duration_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut unit = String::new();
    let mut flush = |number: &mut String, unit: &mut String| -> Option<()> {
        if number.is_empty() {
            return if unit.is_empty() || unit == "and" {
                unit.clear();
                Some(())
            } else {
                None
            };
        }
        let n: f64 = number.parse().ok()?;
        let factor = match unit.trim_end_matches('s') {
            "" | "sec" | "second" | "s" => 1.0,
            "m" | "min" | "minute" | "mins" => 60.0,
            "h" | "hr" | "hour" => 3600.0,
            "d" | "day" => 86_400.0,
            "w" | "wk" | "week" => 604_800.0,
            "mo" | "month" => 2_629_746.0,
            _ => return None,
        };
        total = total.checked_add((n * factor) as u64)?;
        number.clear();
        unit.clear();
        Some(())
    };
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            if !unit.is_empty() {
                flush(&mut number, &mut unit)?;
            }
            number.push(c);
        } else if c.is_ascii_alphabetic() {
            unit.push(c.to_ascii_lowercase());
        } else if c == ' ' || c == ',' {
            continue;
        } else {
            return None;
        }
    }
    flush(&mut number, &mut unit)?;
    if total == 0 { None } else { Some(total) }
}

fn inherit(job: &Map, key: &str, name: &str) -> Result<InheritList> {
    let Some(inherit) = job.get("inherit") else {
        return Ok(InheritList::All);
    };
    let m = inherit
        .as_map()
        .ok_or_else(|| ConfigError::new(format!("jobs:{name}:inherit config should be a hash")))?;
    match m.get(key).map(|n| &n.value) {
        None | Some(Yaml::Bool(true)) => Ok(InheritList::All),
        Some(Yaml::Bool(false)) => Ok(InheritList::None),
        Some(_) => Ok(InheritList::Only(plain_list(
            m.get(key).unwrap_or(inherit),
            &format!("jobs:{name}:inherit:{key}"),
        )?)),
    }
}

/// Reads one job, with `default:` (as `inherit:` allows) already merged underneath.
pub fn job(name: &str, node: &Node, defaults: Option<&Map>) -> Result<JobConfig> {
    let what = format!("jobs:{name}");
    let own = node
        .as_map()
        .ok_or_else(|| ConfigError::new(format!("{what} config should be a hash")))?;
    let unknown: Vec<&str> = own.keys().filter(|k| !JOB_KEYWORDS.contains(k)).collect();
    if !unknown.is_empty() {
        return Err(ConfigError::at(
            format!(
                "{what} config contains unknown keys: {}",
                unknown.join(", ")
            ),
            node.location(".gitlab-ci.yml"),
        ));
    }
    let m = with_defaults(own, name, defaults)?;
    let script = commands(&m, "script", &what)?;
    let trigger = m.get("trigger").map(to_json);
    if script.is_empty() && trigger.is_none() {
        return Err(ConfigError::new(format!(
            "{what} config should implement the script:, run:, or trigger: keyword"
        )));
    }
    let (rules, only, except) = membership(&m, &what)?;
    let when = job_when(&m, &what, trigger.is_some())?;
    let start_in = job_start_in(&m, &what, when, rules.is_some())?;
    Ok(JobConfig {
        name: name.to_string(),
        stage: stage(&m, &what)?,
        before_script: commands(&m, "before_script", &what)?,
        after_script: commands(&m, "after_script", &what)?,
        script,
        image: m.get("image").map(to_json),
        services: services(&m, &what)?,
        tags: m
            .get("tags")
            .map(|n| plain_list(n, &format!("{what}:tags")))
            .transpose()?
            .unwrap_or_default(),
        variables: m
            .get("variables")
            .map(|n| variables(n, &format!("{what}:variables")))
            .transpose()?
            .unwrap_or_default(),
        inherit_global_variables: inherit(own, "variables", name)?,
        rules,
        only,
        except,
        when,
        start_in,
        allow_failure: allow_failure(&m, &what)?,
        needs: m
            .get("needs")
            .map(|n| needs(n, &format!("{what}:needs")))
            .transpose()?,
        dependencies: m
            .get("dependencies")
            .map(|n| plain_list(n, &format!("{what}:dependencies")))
            .transpose()?,
        artifacts: m.get("artifacts").map(to_json),
        cache: m.get("cache").map(to_json),
        retry: retry(&m, &what)?,
        timeout: timeout(&m, &what)?,
        trigger,
        environment: m.get("environment").map(to_json),
        resource_group: m.get("resource_group").and_then(Node::scalar_text),
        interruptible: match m.get("interruptible").map(|n| &n.value) {
            Some(Yaml::Bool(b)) => Some(*b),
            _ => None,
        },
        coverage: m.get("coverage").and_then(Node::scalar_text),
    })
}

/// The job's own keys over the `default:` keys its `inherit:` takes.
fn with_defaults(own: &Map, name: &str, defaults: Option<&Map>) -> Result<Map> {
    let inherit_default = inherit(own, "default", name)?;
    let mut m = Map::default();
    if let Some(defaults) = defaults {
        for (k, v) in &defaults.0 {
            if inherit_default.includes(k) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, v) in &own.0 {
        m.insert(k.clone(), v.clone());
    }
    Ok(m)
}

/// `script`, `before_script` or `after_script`; absent or null is empty.
fn commands(m: &Map, key: &str, what: &str) -> Result<Vec<String>> {
    match m.get(key) {
        None
        | Some(Node {
            value: Yaml::Null, ..
        }) => Ok(Vec::new()),
        Some(n) => string_list(n, &format!("{what}:{key}")),
    }
}

/// A key given a value other than null (GitLab ignores `only: null` next to `rules:`).
fn given<'m>(m: &'m Map, key: &str) -> Option<&'m Node> {
    m.get(key).filter(|n| n.value != Yaml::Null)
}

/// `rules:`, `only:` and `except:`. `rules:` excludes the other two and `start_in`
/// (GitLab: `disallowed_keys` in lib/gitlab/ci/config/entry/processable.rb, named in the
/// order the job writes them).
#[allow(clippy::type_complexity)]
fn membership(m: &Map, what: &str) -> Result<(Option<Vec<Rule>>, Option<Policy>, Option<Policy>)> {
    let rules = given(m, "rules")
        .map(|n| rules(n, what, RuleScope::Job))
        .transpose()?;
    if rules.is_some() {
        let clashing: Vec<&str> = m
            .keys()
            .filter(|k| ["only", "except", "start_in"].contains(k) && given(m, k).is_some())
            .collect();
        if !clashing.is_empty() {
            return Err(ConfigError::new(format!(
                "{what} config key may not be used with `rules`: {}",
                clashing.join(", ")
            )));
        }
    }
    let only = given(m, "only")
        .map(|n| policy(n, &format!("{what}:only"), PolicyKind::Only))
        .transpose()?;
    let except = given(m, "except")
        .map(|n| policy(n, &format!("{what}:except"), PolicyKind::Except))
        .transpose()?;
    Ok((rules, only, except))
}

/// A job's `when`. `never` belongs to rules only; a trigger job cannot be delayed.
/// GitLab: `ALLOWED_WHEN` in lib/gitlab/ci/config/entry/job.rb and bridge.rb.
fn job_when(m: &Map, what: &str, trigger: bool) -> Result<When> {
    let allowed: &[When] = if trigger {
        &[When::OnSuccess, When::OnFailure, When::Always, When::Manual]
    } else {
        &[
            When::OnSuccess,
            When::OnFailure,
            When::Always,
            When::Manual,
            When::Delayed,
        ]
    };
    let Some(node) = given(m, "when") else {
        return Ok(When::OnSuccess);
    };
    match node.as_str().and_then(When::parse) {
        Some(when) if allowed.contains(&when) => Ok(when),
        _ => {
            let names: Vec<&str> = allowed.iter().map(|w| w.as_str()).collect();
            Err(ConfigError::new(format!(
                "{what} when should be one of: {}",
                names.join(", ")
            )))
        }
    }
}

/// A job's `start_in`: a duration when the job is `delayed`, absent otherwise and with
/// `rules:` (there, a rule carries it). GitLab: lib/gitlab/ci/config/entry/job.rb.
fn job_start_in(m: &Map, what: &str, when: When, has_rules: bool) -> Result<Option<String>> {
    let node = given(m, "start_in");
    let start_in = match (when, node) {
        (When::Delayed, Some(node)) => Some(start_in(node, what)?),
        (When::Delayed, None) => {
            return Err(ConfigError::new(format!(
                "{what} start in should be a duration"
            )));
        }
        (_, _) => None,
    };
    if node.is_some() && (has_rules || when != When::Delayed) {
        return Err(ConfigError::new(format!("{what} start in must be blank")));
    }
    Ok(start_in)
}

/// `stage:` (or the deprecated `type:`); `test` by default.
fn stage(m: &Map, what: &str) -> Result<String> {
    match m.get("stage").or_else(|| m.get("type")) {
        None => Ok("test".to_string()),
        Some(n) => n
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ConfigError::new(format!("{what}:stage config should be a string"))),
    }
}

fn services(m: &Map, what: &str) -> Result<Vec<Json>> {
    match m.get("services") {
        Some(Node {
            value: Yaml::Seq(items),
            ..
        }) => Ok(items.iter().map(to_json).collect()),
        Some(_) => Err(ConfigError::new(format!(
            "{what}:services config should be an array"
        ))),
        None => Ok(Vec::new()),
    }
}

/// `allow_failure: true|false` or `allow_failure: {exit_codes: …}`.
fn allow_failure(m: &Map, what: &str) -> Result<Option<AllowFailure>> {
    let bad = || {
        ConfigError::new(format!(
            "{what}:allow_failure config should be a hash or a boolean value"
        ))
    };
    let af = match m.get("allow_failure").map(|n| &n.value) {
        None => return Ok(None),
        Some(Yaml::Bool(b)) => return Ok(Some(AllowFailure::Bool(*b))),
        Some(Yaml::Map(af)) => af,
        Some(_) => return Err(bad()),
    };
    let exit_codes = match af.get("exit_codes").map(|n| &n.value) {
        Some(Yaml::Int(i)) => vec![*i],
        Some(Yaml::Seq(items)) => items
            .iter()
            .map(|i| match i.value {
                Yaml::Int(n) => Ok(n),
                _ => Err(ConfigError::new(format!(
                    "{what}:allow_failure exit_codes should be an array of integers or an integer"
                ))),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(bad()),
    };
    Ok(Some(AllowFailure::ExitCodes { exit_codes }))
}

/// `retry: 0..=2` or `retry: {max, when}`.
fn retry(m: &Map, what: &str) -> Result<Option<Retry>> {
    match m.get("retry").map(|n| &n.value) {
        None => Ok(None),
        Some(Yaml::Int(n)) if (0..=2).contains(n) => Ok(Some(Retry {
            max: *n as u8,
            when: vec!["always".into()],
        })),
        Some(Yaml::Map(r)) => {
            let max = match r.get("max").map(|n| &n.value) {
                Some(Yaml::Int(n)) if (0..=2).contains(n) => *n as u8,
                None => 0,
                _ => {
                    return Err(ConfigError::new(format!(
                        "{what}:retry max config must be less than or equal to 2"
                    )));
                }
            };
            let when = r
                .get("when")
                .map(|n| plain_list(n, &format!("{what}:retry:when")))
                .transpose()?
                .unwrap_or_else(|| vec!["always".into()]);
            Ok(Some(Retry { max, when }))
        }
        Some(_) => Err(ConfigError::new(format!(
            "{what}:retry config has to be either an integer or a hash"
        ))),
    }
}

fn timeout(m: &Map, what: &str) -> Result<Option<u64>> {
    let Some(n) = m.get("timeout") else {
        return Ok(None);
    };
    n.scalar_text()
        .as_deref()
        .and_then(duration_seconds)
        .map(Some)
        .ok_or_else(|| ConfigError::new(format!("{what}:timeout config should be a duration")))
}

/// Validates `default:`.
pub fn defaults(node: &Node) -> Result<Map> {
    let m = node
        .as_map()
        .ok_or_else(|| ConfigError::new("default config should be a hash"))?;
    let unknown: Vec<&str> = m.keys().filter(|k| !DEFAULT_KEYWORDS.contains(k)).collect();
    if !unknown.is_empty() {
        return Err(ConfigError::new(format!(
            "default config contains unknown keys: {}",
            unknown.join(", ")
        )));
    }
    Ok(m.clone())
}

/// `parallel: N` and `parallel: matrix` expand one job into several, named as GitLab names
/// them (`job 1/3`, `job: [a, b]`).
pub fn expand_parallel(name: &str, node: &Node) -> Result<Vec<(String, Vec<YamlVariable>)>> {
    let what = format!("jobs:{name}:parallel");
    let Some(parallel) = node.as_map().and_then(|m| m.get("parallel")) else {
        return Ok(vec![(name.to_string(), Vec::new())]);
    };
    match &parallel.value {
        Yaml::Int(n) if (1..=200).contains(n) => Ok((1..=*n)
            .map(|i| (format!("{name} {i}/{n}"), Vec::new()))
            .collect()),
        Yaml::Map(m) => {
            let Some(Node {
                value: Yaml::Seq(rows),
                ..
            }) = m.get("matrix")
            else {
                return Err(ConfigError::new(format!(
                    "{what} should be an integer or a hash"
                )));
            };
            let mut out = Vec::new();
            for row in rows {
                let row = row.as_map().ok_or_else(|| {
                    ConfigError::new(format!("{what}:matrix config should be an array of hashes"))
                })?;
                // Each row is the cartesian product of its values.
                let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
                for (key, value) in &row.0 {
                    let values = plain_list(value, &format!("{what}:matrix"))?;
                    combos = combos
                        .into_iter()
                        .flat_map(|c| {
                            values.iter().map(move |v| {
                                let mut c = c.clone();
                                c.push((key.clone(), v.clone()));
                                c
                            })
                        })
                        .collect();
                }
                for combo in combos {
                    let label = combo
                        .iter()
                        .map(|(_, v)| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let vars = combo
                        .into_iter()
                        .map(|(key, value)| YamlVariable {
                            key,
                            value,
                            expand: true,
                            description: None,
                        })
                        .collect();
                    out.push((format!("{name}: [{label}]"), vars));
                }
            }
            if out.len() > 200 {
                return Err(ConfigError::new(format!(
                    "{what}:matrix config generates too many jobs (maximum is 200)"
                )));
            }
            Ok(out)
        }
        _ => Err(ConfigError::new(format!(
            "{what} config should be an integer or a hash"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::duration_seconds;

    #[test]
    fn durations() {
        assert_eq!(duration_seconds("3600"), Some(3600));
        assert_eq!(duration_seconds("1h 30m"), Some(5400));
        assert_eq!(duration_seconds("3 hours"), Some(10800));
        assert_eq!(duration_seconds("90 minutes"), Some(5400));
        assert_eq!(duration_seconds("1 day"), Some(86400));
        assert_eq!(duration_seconds("soon"), None);
        assert_eq!(duration_seconds(""), None);
    }
}
