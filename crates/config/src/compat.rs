//! What Pipewright accepts from GitLab's CI/CD YAML but does not act on, and the warnings that
//! say so: a file that uses them stays valid (it is valid on GitLab), and `ci lint` — the CLI
//! and the CI Lint API — names each ignored keyword and where it is written instead of dropping
//! it silently. `docs/gitlab-compatibility.md` lists the same keywords (a test keeps the two in
//! step).

use crate::yaml::{Map, Node, Yaml};

/// An accepted keyword Pipewright ignores, and why.
pub struct Ignored {
    /// As GitLab's reference names it (`cache`, `artifacts:reports`, `workflow:auto_cancel`).
    pub keyword: &'static str,
    pub reason: &'static str,
}

/// Job keywords ignored wherever a job (or `default:`) sets them.
const JOB_KEYWORDS: &[Ignored] = &[
    Ignored {
        keyword: "cache",
        reason: "Pipewright sends no caches to runners",
    },
    Ignored {
        keyword: "coverage",
        reason: "Pipewright does not read coverage from job logs",
    },
    Ignored {
        keyword: "dast_configuration",
        reason: "Pipewright has no DAST profiles",
    },
    Ignored {
        keyword: "environment",
        reason: "Pipewright has no environments or deployments",
    },
    Ignored {
        keyword: "hooks",
        reason: "Pipewright sends no hooks to runners",
    },
    Ignored {
        keyword: "id_tokens",
        reason: "Pipewright issues no ID tokens",
    },
    Ignored {
        keyword: "identity",
        reason: "Pipewright has no identity federation",
    },
    Ignored {
        keyword: "interruptible",
        reason: "Pipewright does not auto-cancel redundant pipelines",
    },
    Ignored {
        keyword: "manual_confirmation",
        reason: "Pipewright asks for no confirmation before a manual job runs",
    },
    Ignored {
        keyword: "pages",
        reason: "Pipewright has no Pages",
    },
    Ignored {
        keyword: "release",
        reason: "Pipewright creates no releases from jobs",
    },
    Ignored {
        keyword: "resource_group",
        reason: "Pipewright does not limit concurrency by resource group",
    },
    Ignored {
        keyword: "secrets",
        reason: "Pipewright has no external secret providers",
    },
];

/// Parts of job keywords ignored where they are written: (keyword, part, why).
const JOB_SUBKEYS: &[(&str, &str, Ignored)] = &[
    (
        "artifacts",
        "reports",
        Ignored {
            keyword: "artifacts:reports",
            reason: "Pipewright uploads the archive only, not reports",
        },
    ),
    (
        "artifacts",
        "expose_as",
        Ignored {
            keyword: "artifacts:expose_as",
            reason: "Pipewright has no merge request widgets",
        },
    ),
    (
        "artifacts",
        "public",
        Ignored {
            keyword: "artifacts:public",
            reason: "Pipewright serves artifacts to whoever may read the project",
        },
    ),
    (
        "artifacts",
        "access",
        Ignored {
            keyword: "artifacts:access",
            reason: "Pipewright serves artifacts to whoever may read the project",
        },
    ),
    (
        "retry",
        "exit_codes",
        Ignored {
            keyword: "retry:exit_codes",
            reason: "Pipewright retries by failure reason only",
        },
    ),
];

/// Parts of a rule ignored where they are written: (clause, part, why); an empty clause is the
/// rule itself.
const RULE_SUBKEYS: &[(&str, &str, Ignored)] = &[
    (
        "",
        "interruptible",
        Ignored {
            keyword: "rules:interruptible",
            reason: "Pipewright does not auto-cancel redundant pipelines",
        },
    ),
    (
        "",
        "auto_cancel",
        Ignored {
            keyword: "workflow:rules:auto_cancel",
            reason: "Pipewright does not auto-cancel pipelines",
        },
    ),
    (
        "changes",
        "compare_to",
        Ignored {
            keyword: "rules:changes:compare_to",
            reason: "Pipewright compares with the push's previous commit",
        },
    ),
    (
        "exists",
        "project",
        Ignored {
            keyword: "rules:exists:project",
            reason: "Pipewright looks in the pipeline's own commit",
        },
    ),
    (
        "exists",
        "ref",
        Ignored {
            keyword: "rules:exists:ref",
            reason: "Pipewright looks in the pipeline's own commit",
        },
    ),
];

/// Keywords of the file as a whole.
static AUTO_CANCEL: Ignored = Ignored {
    keyword: "workflow:auto_cancel",
    reason: "Pipewright does not auto-cancel pipelines",
};
/// A `spec:` in the content document: inputs are declared in a header, the first of two YAML
/// documents (`spec:` … `---` … jobs), as GitLab reads them.
static SPEC: Ignored = Ignored {
    keyword: "spec",
    reason: "a `spec:` header must be its own YAML document, followed by a `---` line",
};
static VARIABLE_PREFILL: Ignored = Ignored {
    keyword: "variables:description and variables:options",
    reason: "Pipewright has no run-pipeline form to prefill",
};

/// Every keyword Pipewright accepts and ignores (for the documentation test).
pub fn ignored_keywords() -> impl Iterator<Item = &'static str> {
    let parts = JOB_SUBKEYS.iter().chain(RULE_SUBKEYS).map(|(_, _, i)| i);
    JOB_KEYWORDS
        .iter()
        .chain(parts)
        .chain([&AUTO_CANCEL, &SPEC, &VARIABLE_PREFILL])
        .map(|i| i.keyword)
}

/// How many places one warning names before it says "and N more".
const MAX_PLACES: usize = 5;

/// The warnings for `root` (the whole config, includes merged, `extends` applied): one per
/// ignored keyword, naming where it is written, in the order keywords first appear.
pub fn warnings(root: &Map, global_keywords: &[&str]) -> Vec<String> {
    let mut found: Vec<(&Ignored, Vec<String>)> = Vec::new();
    let mut note = |ignored: &'static Ignored, place: String| match found
        .iter_mut()
        .find(|(i, _)| i.keyword == ignored.keyword)
    {
        Some((_, places)) => places.push(place),
        None => found.push((ignored, vec![place])),
    };
    if root.get("spec").is_some() {
        note(&SPEC, "spec".into());
    }
    if let Some(vars) = root.get("variables").and_then(Node::as_map)
        && vars.0.iter().any(|(_, v)| {
            v.as_map()
                .is_some_and(|m| m.get("description").is_some() || m.get("options").is_some())
        })
    {
        note(&VARIABLE_PREFILL, "variables".into());
    }
    if let Some(workflow) = root.get("workflow").and_then(Node::as_map) {
        if workflow.get("auto_cancel").is_some() {
            note(&AUTO_CANCEL, "workflow".into());
        }
        rule_parts(workflow, "workflow:rules", &mut note);
    }
    // `default:` and the deprecated global `cache` act as defaults for every job.
    if let Some(default) = root.get("default").and_then(Node::as_map) {
        job_keywords(default, "default", &mut note);
    }
    if root.get("cache").is_some()
        && let Some(cache) = JOB_KEYWORDS.iter().find(|i| i.keyword == "cache")
    {
        note(cache, "cache".into());
    }
    for (name, node) in &root.0 {
        if global_keywords.contains(&name.as_str()) || name.starts_with('.') {
            continue;
        }
        let Some(job) = node.as_map() else { continue };
        let place = format!("jobs:{name}");
        job_keywords(job, &place, &mut note);
        rule_parts(job, &format!("{place}:rules"), &mut note);
    }
    found
        .into_iter()
        .map(|(ignored, places)| {
            let shown = places.len().min(MAX_PLACES);
            let mut list = places[..shown].join(", ");
            if places.len() > shown {
                list.push_str(&format!(" and {} more", places.len() - shown));
            }
            format!(
                "`{}` is ignored ({}): {list}",
                ignored.keyword, ignored.reason
            )
        })
        .collect()
}

/// Notes the ignored job keywords (and parts of keywords) `m` — a job or `default:` — sets.
fn job_keywords(m: &Map, place: &str, note: &mut impl FnMut(&'static Ignored, String)) {
    for ignored in JOB_KEYWORDS {
        if m.get(ignored.keyword).is_some() {
            note(ignored, place.to_string());
        }
    }
    for (keyword, part, ignored) in JOB_SUBKEYS {
        if m.get(keyword)
            .and_then(Node::as_map)
            .is_some_and(|k| k.get(part).is_some())
        {
            note(ignored, place.to_string());
        }
    }
}

/// Notes the ignored parts of the rules of `m` (a job or `workflow:`), nested lists included.
fn rule_parts(m: &Map, place: &str, note: &mut impl FnMut(&'static Ignored, String)) {
    fn each_rule<'a>(node: &'a Node, depth: usize, out: &mut Vec<&'a Map>) {
        match &node.value {
            Yaml::Seq(items) if depth < 16 => {
                items.iter().for_each(|i| each_rule(i, depth + 1, out))
            }
            Yaml::Map(rule) => out.push(rule),
            _ => {}
        }
    }
    let mut rules = Vec::new();
    if let Some(node) = m.get("rules") {
        each_rule(node, 0, &mut rules);
    }
    for (clause, part, ignored) in RULE_SUBKEYS {
        let used = rules.iter().any(|rule| match *clause {
            "" => rule.get(part).is_some(),
            _ => rule
                .get(clause)
                .and_then(Node::as_map)
                .is_some_and(|c| c.get(part).is_some()),
        });
        if used {
            note(ignored, place.to_string());
        }
    }
}
