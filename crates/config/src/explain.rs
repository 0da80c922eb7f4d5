//! Why a job is in a pipeline or left out, in words: planning records only which part of the
//! job's config decided ([`DecidedBy`], a few bytes, no text), and [`Config::explain`] renders
//! it on demand (a dry run, the linter), so planning itself does no formatting.

use crate::Config;
use crate::keywords::{JobConfig, When};
use crate::rules::{Policy, Rule};

/// The part of a job's config that decided whether it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecidedBy {
    /// `rules[i]` (0-based) was the first to match: the job runs with its `when`, or not at all
    /// with `when: never`.
    Rule(usize),
    /// The job has rules and none matched.
    NoRuleMatched,
    /// `only:` has a key (refs, variables, changes, kubernetes) that is not satisfied.
    Only(PolicyKey),
    /// `except:` has a key that is satisfied.
    Except(PolicyKey),
    /// No rules: `only:` (GitLab's default, branches and tags, when absent) let the job in and
    /// `except:` did not keep it out.
    #[default]
    OnlyExcept,
}

/// One key of an `only`/`except` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKey {
    Refs,
    Variables,
    Changes,
    Kubernetes,
}

impl PolicyKey {
    fn as_str(self) -> &'static str {
        match self {
            PolicyKey::Refs => "refs",
            PolicyKey::Variables => "variables",
            PolicyKey::Changes => "changes",
            PolicyKey::Kubernetes => "kubernetes",
        }
    }
}

impl Config {
    /// Why job `name` is in or out of a pipeline, e.g. `rules[1]: if: $X == "y", when: manual`,
    /// `no rule matched`, `only:refs [main] does not match`, `except:variables [$SKIP] matches`,
    /// `only:refs [branches, tags]; when: manual`.
    pub fn explain(&self, name: &str, by: DecidedBy) -> String {
        let Some(job) = self.jobs.iter().find(|j| j.name == name) else {
            return String::new();
        };
        match by {
            DecidedBy::Rule(index) => match job.rules.as_ref().and_then(|r| r.get(index)) {
                Some(rule) => rule_text(index, rule),
                None => format!("rules[{index}]"),
            },
            DecidedBy::NoRuleMatched => "no rule matched".to_string(),
            DecidedBy::Only(key) => format!(
                "only:{} does not match",
                policy_key_text(job.only.as_ref(), key)
            ),
            DecidedBy::Except(key) => {
                format!(
                    "except:{} matches",
                    policy_key_text(job.except.as_ref(), key)
                )
            }
            DecidedBy::OnlyExcept => only_except_text(job),
        }
    }
}

/// `rules[i]: if: …, changes, exists, when: …` (what the rule says that matched).
fn rule_text(index: usize, rule: &Rule) -> String {
    let mut parts = Vec::new();
    if let Some(condition) = &rule.condition {
        parts.push(format!("if: {}", condition.source()));
    }
    if rule.changes.is_some() {
        parts.push("changes".to_string());
    }
    if rule.exists.is_some() {
        parts.push("exists".to_string());
    }
    if let Some(when) = rule.when {
        parts.push(format!("when: {}", when.as_str()));
    }
    if parts.is_empty() {
        return format!("rules[{index}]: (no conditions)");
    }
    format!("rules[{index}]: {}", parts.join(", "))
}

/// `refs [main, /^release/]`, `variables [$X == "y"]`, `changes`, `kubernetes`.
fn policy_key_text(policy: Option<&Policy>, key: PolicyKey) -> String {
    let values: Option<Vec<String>> = policy.and_then(|p| match key {
        PolicyKey::Refs => p.refs.clone(),
        PolicyKey::Variables => p
            .variables
            .as_ref()
            .map(|v| v.iter().map(|e| e.source().to_string()).collect()),
        PolicyKey::Changes | PolicyKey::Kubernetes => None,
    });
    match values {
        Some(values) => format!("{} [{}]", key.as_str(), values.join(", ")),
        None => key.as_str().to_string(),
    }
}

/// A job that `only`/`except` let in: the `only` refs that matched, and the job's `when` when
/// it is not the default.
fn only_except_text(job: &JobConfig) -> String {
    let mut text = match &job.only {
        Some(only) => {
            let keys = [
                only.refs.is_some().then_some(PolicyKey::Refs),
                only.variables.is_some().then_some(PolicyKey::Variables),
                only.changes.is_some().then_some(PolicyKey::Changes),
            ];
            let keys: Vec<String> = keys
                .into_iter()
                .flatten()
                .map(|k| policy_key_text(Some(only), k))
                .collect();
            format!("only:{}", keys.join(", only:"))
        }
        None => "no rules, only or except".to_string(),
    };
    if job.except.is_some() {
        text.push_str("; except does not match");
    }
    if job.when != When::OnSuccess {
        text.push_str(&format!("; when: {}", job.when.as_str()));
    }
    text
}
