//! The keywords that decide whether a job or a pipeline runs, parsed and validated with
//! GitLab's messages: `rules:` (a job's and `workflow:rules`) and the legacy `only:`/`except:`.
//! Planning evaluates them (`plan.rs`); nothing here looks at a pipeline.

use std::collections::HashMap;

use pipewright_expr::Expression;

use crate::error::{ConfigError, Result};
use crate::globs::PathGlobs;
use crate::keywords::{
    JobConfig, Need, When, YamlVariable, needs, plain_list, start_in, variables,
};
use crate::yaml::{Map, Node, Yaml};

/// How deep `rules:` may nest lists of rules (GitLab: `Processable::MAX_NESTING_LEVEL`).
const MAX_RULES_NESTING: usize = 10;

#[derive(Debug, Clone)]
pub struct Rule {
    pub condition: Option<Expression>,
    pub changes: Option<PathGlobs>,
    pub exists: Option<PathGlobs>,
    pub when: Option<When>,
    pub start_in: Option<String>,
    pub allow_failure: Option<bool>,
    pub variables: Vec<YamlVariable>,
    pub needs: Option<Vec<Need>>,
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub rules: Vec<Rule>,
    pub name: Option<String>,
}

/// Whose rules: a job's, or the pipeline's (`workflow:rules`). They differ in the keys and
/// `when` values they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleScope {
    Job,
    Workflow,
    /// An `include:` entry's rules (GitLab: lib/gitlab/ci/config/entry/include/rules/rule.rb:
    /// `ALLOWED_KEYS = if exists when changes`, `ALLOWED_WHEN = never always`).
    Include,
}

impl RuleScope {
    /// GitLab: lib/gitlab/ci/config/entry/workflow.rb (`allowed_keys`; `start_in`,
    /// `allow_failure` and `needs` are accepted there for compatibility and mean nothing) and
    /// the job keywords under `rules:` in GitLab's CI/CD YAML reference.
    fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            RuleScope::Job => &[
                "if",
                "changes",
                "exists",
                "when",
                "start_in",
                "allow_failure",
                "variables",
                "needs",
                "interruptible",
            ],
            RuleScope::Workflow => &[
                "if",
                "changes",
                "exists",
                "when",
                "start_in",
                "allow_failure",
                "variables",
                "needs",
                "auto_cancel",
            ],
            RuleScope::Include => &["if", "exists", "when", "changes"],
        }
    }

    /// GitLab: `allowed_when` in lib/gitlab/ci/config/entry/processable.rb and workflow.rb.
    fn allowed_when(self) -> &'static [When] {
        match self {
            RuleScope::Job => &[
                When::OnSuccess,
                When::OnFailure,
                When::Always,
                When::Never,
                When::Manual,
                When::Delayed,
            ],
            RuleScope::Workflow | RuleScope::Include => &[When::Always, When::Never],
        }
    }
}

/// A `rules:` list. `owner` is where it is written (`jobs:build`, `workflow`). Entries that
/// are themselves lists of rules — what `- !reference [.shared, rules]` produces — are
/// flattened into the list, as GitLab does (merge request 67922, "Flatten CI config rules":
/// `Entry::Rules` composes `[config].flatten`); a job's rules may nest so up to 10 levels
/// (GitLab: `validates :rules, nested_array_of_hashes_or_arrays: { max_level: 10 }` in
/// lib/gitlab/ci/config/entry/processable.rb).
pub fn rules(node: &Node, owner: &str, scope: RuleScope) -> Result<Vec<Rule>> {
    let shape_error = || {
        ConfigError::new(match scope {
            RuleScope::Job => {
                format!("{owner} rules should be an array containing hashes and arrays of hashes")
            }
            RuleScope::Workflow | RuleScope::Include => {
                format!("{owner}:rules config should be an array")
            }
        })
    };
    let Yaml::Seq(items) = &node.value else {
        return Err(shape_error());
    };
    let mut flat = Vec::with_capacity(items.len());
    let max_depth = match scope {
        RuleScope::Job => MAX_RULES_NESTING,
        // Workflow and include rules are flattened without a limit of their own; the YAML
        // loader's nesting limit bounds them.
        RuleScope::Workflow | RuleScope::Include => usize::MAX,
    };
    if !flatten_rules(items, 1, max_depth, scope, &mut flat) {
        return Err(shape_error());
    }
    let what = format!("{owner}:rules:rule");
    flat.into_iter().map(|m| rule(m, &what, scope)).collect()
}

/// Collects the hashes of a nested list of rules in order; false when a list nests deeper than
/// `max_depth` or (for a job) an entry is neither a hash nor a list. A workflow's non-hash
/// entry is left to [`rule`], which names it.
fn flatten_rules<'a>(
    items: &'a [Node],
    depth: usize,
    max_depth: usize,
    scope: RuleScope,
    out: &mut Vec<&'a Node>,
) -> bool {
    if depth > max_depth {
        return false;
    }
    items.iter().all(|item| match &item.value {
        Yaml::Seq(nested) => flatten_rules(nested, depth + 1, max_depth, scope, out),
        Yaml::Map(_) => {
            out.push(item);
            true
        }
        _ if scope != RuleScope::Job => {
            out.push(item);
            true
        }
        _ => false,
    })
}

/// One rule. `what` is its location (`jobs:build:rules:rule`).
fn rule(node: &Node, what: &str, scope: RuleScope) -> Result<Rule> {
    let m = node
        .as_map()
        .ok_or_else(|| ConfigError::new(format!("{what} config should be a hash")))?;
    let unknown: Vec<&str> = m
        .keys()
        .filter(|k| !scope.allowed_keys().contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(ConfigError::new(format!(
            "{what} config contains unknown keys: {}",
            unknown.join(", ")
        )));
    }
    let when = rule_when(m, what, scope)?;
    Ok(Rule {
        condition: m
            .get("if")
            .map(|n| expression(n, &format!("{what} if")))
            .transpose()?,
        changes: rule_paths(m, "changes", what)?,
        exists: rule_paths(m, "exists", what)?,
        when,
        start_in: rule_start_in(m, what, when)?,
        allow_failure: match m.get("allow_failure").map(|n| &n.value) {
            None => None,
            Some(Yaml::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(ConfigError::new(format!(
                    "{what} allow_failure should be a boolean value"
                )));
            }
        },
        variables: m
            .get("variables")
            .map(|n| variables(n, &format!("{what}:variables")))
            .transpose()?
            .unwrap_or_default(),
        needs: match scope {
            RuleScope::Job => m
                .get("needs")
                .map(|n| needs(n, &format!("{what}:needs")))
                .transpose()?,
            RuleScope::Workflow | RuleScope::Include => None,
        },
    })
}

/// A rule's `when`, one of the values its scope allows.
/// GitLab: `AllowedValuesValidator` ("unknown value: …") in lib/gitlab/config/entry/validators.rb.
fn rule_when(m: &Map, what: &str, scope: RuleScope) -> Result<Option<When>> {
    let Some(node) = m.get("when") else {
        return Ok(None);
    };
    if node.value == Yaml::Null {
        return Ok(None);
    }
    match node.as_str().and_then(When::parse) {
        Some(when) if scope.allowed_when().contains(&when) => Ok(Some(when)),
        _ => Err(ConfigError::new(format!(
            "{what} when unknown value: {}",
            node.scalar_text().unwrap_or_default()
        ))),
    }
}

/// A rule's `start_in`: required with `when: delayed` (a duration of at most a week) and
/// refused otherwise. GitLab: lib/gitlab/ci/config/entry/rules/rule.rb.
fn rule_start_in(m: &Map, what: &str, when: Option<When>) -> Result<Option<String>> {
    let given = m.get("start_in").filter(|n| n.value != Yaml::Null);
    if when != Some(When::Delayed) {
        return match given {
            Some(_) => Err(ConfigError::new(format!(
                "{what} config contains disallowed keys: start_in"
            ))),
            None => Ok(None),
        };
    }
    let Some(node) = given else {
        return Err(ConfigError::new(format!("{what} start in can't be blank")));
    };
    start_in(node, what).map(Some)
}

/// `changes:` or `exists:` — a list of globs, or a hash with `paths:`.
fn rule_paths(m: &Map, key: &str, what: &str) -> Result<Option<PathGlobs>> {
    let list = match m.get(key) {
        None => return Ok(None),
        Some(n) => match n.as_map().and_then(|mm| mm.get("paths")) {
            Some(p) => plain_list(p, &format!("{what}:{key}"))?,
            None => plain_list(n, &format!("{what}:{key}"))?,
        },
    };
    Ok(Some(PathGlobs::new(&list)))
}

/// Makes identical `rules:if` and `only`/`except: variables` conditions of `jobs` share one
/// parsed expression. Rules written once and used by many jobs (an anchor, `extends`,
/// `!reference`, `parallel:`) were parsed once per job; shared, a `=~` pattern's regex and the
/// match caches it builds on first use exist once per config instead of once per job.
pub fn share_conditions(jobs: &mut [JobConfig]) {
    let mut first: HashMap<String, Expression> = HashMap::new();
    let mut share = |condition: &mut Expression| match first.get(condition.source()) {
        Some(parsed) => *condition = parsed.clone(),
        None => {
            first.insert(condition.source().to_string(), condition.clone());
        }
    };
    for job in jobs {
        for rule in job.rules.iter_mut().flatten() {
            rule.condition.iter_mut().for_each(&mut share);
        }
        for policy in [&mut job.only, &mut job.except].into_iter().flatten() {
            policy.variables.iter_mut().flatten().for_each(&mut share);
        }
    }
}

/// A `rules:if` or `only:variables` expression. Anything that is not a string holding a
/// valid expression is GitLab's "invalid expression syntax" (`ExpressionValidator` in
/// lib/gitlab/config/entry/validators.rb; messages are lower-cased by `Entry::Validator`).
fn expression(node: &Node, what: &str) -> Result<Expression> {
    node.as_str()
        .and_then(|text| Expression::parse(text).ok())
        .ok_or_else(|| ConfigError::new(format!("{what} invalid expression syntax")))
}

/// `only:` / `except:` (GitLab's legacy job policy). Each key given is one specification
/// (GitLab's `Gitlab::Ci::Build::Policy::{Refs, Variables, Changes, Kubernetes}`): a job runs
/// when every specification of `only` is satisfied and none of `except` is.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub refs: Option<Vec<String>>,
    pub variables: Option<Vec<Expression>>,
    pub changes: Option<PathGlobs>,
    /// `kubernetes: active` (the only value GitLab accepts).
    pub kubernetes: bool,
}

impl Policy {
    /// `only:` when a job says nothing: branches and tags (GitLab: `Entry::Policy::DEFAULT_ONLY`).
    pub fn default_only() -> Policy {
        Policy {
            refs: Some(default_only_refs()),
            ..Policy::default()
        }
    }
}

fn default_only_refs() -> Vec<String> {
    vec!["branches".into(), "tags".into()]
}

/// Which of the two policies is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Only,
    Except,
}

/// Reads `only:` or `except:`. A list is refs; a hash may combine `refs`, `variables`,
/// `changes` and `kubernetes`. `only:` without `refs` still has GitLab's default refs
/// (`Entry::Policy#value` deep-merges `{refs: [branches, tags]}` under what `only:` gives).
/// GitLab: lib/gitlab/ci/config/entry/policy.rb
pub fn policy(node: &Node, what: &str, kind: PolicyKind) -> Result<Policy> {
    let mut policy = match &node.value {
        Yaml::Seq(_) | Yaml::Str(_) => Policy {
            refs: Some(plain_list(node, what)?),
            ..Policy::default()
        },
        Yaml::Map(m) => complex_policy(m, what)?,
        _ => {
            return Err(ConfigError::new(format!(
                "{what} config should be an array of strings or a hash"
            )));
        }
    };
    if kind == PolicyKind::Only && policy.refs.is_none() {
        policy.refs = Some(default_only_refs());
    }
    Ok(policy)
}

fn complex_policy(m: &Map, what: &str) -> Result<Policy> {
    let unknown: Vec<&str> = m
        .keys()
        .filter(|k| !["refs", "variables", "changes", "kubernetes"].contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(ConfigError::new(format!(
            "{what} config contains unknown keys: {}",
            unknown.join(", ")
        )));
    }
    let variables = match m.get("variables") {
        None => None,
        Some(n) => {
            let texts = plain_list(n, &format!("{what} variables"))?;
            let parsed = texts.into_iter().map(|text| {
                Expression::parse(&text).map_err(|_| {
                    ConfigError::new(format!("{what} variables invalid expression syntax"))
                })
            });
            Some(parsed.collect::<Result<Vec<_>>>()?)
        }
    };
    let kubernetes = match m.get("kubernetes") {
        None => false,
        Some(n) => match n.scalar_text().as_deref() {
            Some("active") => true,
            other => {
                return Err(ConfigError::new(format!(
                    "{what} kubernetes unknown value: {}",
                    other.unwrap_or_default()
                )));
            }
        },
    };
    Ok(Policy {
        refs: m
            .get("refs")
            .map(|n| plain_list(n, &format!("{what}:refs")))
            .transpose()?,
        variables,
        changes: m
            .get("changes")
            .map(|n| plain_list(n, &format!("{what}:changes")))
            .transpose()?
            .map(|list| PathGlobs::new(&list)),
        kubernetes,
    })
}
