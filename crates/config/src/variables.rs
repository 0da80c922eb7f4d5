//! CI/CD variables: the predefined ones for a pipeline, GitLab's precedence, and expansion of
//! `$VAR` / `${VAR}` inside values.

use pipewright_core::RefKind;
use serde::{Deserialize, Serialize};

use crate::context::PipelineContext;

/// Where a variable came from, lowest precedence first (GitLab's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableSource {
    Predefined,
    Global,
    Job,
    Dotenv,
    Instance,
    Group,
    Project,
    Pipeline,
}

/// A variable with its provenance and flags, as a job will receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub source: VariableSource,
    /// Public variables may be shown to anyone who can see the job.
    pub public: bool,
    pub masked: bool,
    pub protected: bool,
    /// The value is written to a file; the variable holds its path.
    pub file: bool,
    /// `expand: false` / raw: `$` is literal.
    pub raw: bool,
}

impl Variable {
    pub fn new(key: &str, value: impl Into<String>, source: VariableSource) -> Self {
        Variable {
            key: key.to_string(),
            value: value.into(),
            source,
            public: matches!(
                source,
                VariableSource::Predefined | VariableSource::Global | VariableSource::Job
            ),
            masked: false,
            protected: false,
            file: false,
            raw: false,
        }
    }
}

/// GitLab's `CI_COMMIT_REF_SLUG`: lower-cased, anything but `a-z0-9` → `-`, at most 63
/// characters, no leading or trailing `-`.
pub fn slugify(text: &str) -> String {
    let lowered: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let truncated: String = lowered.chars().take(63).collect();
    truncated.trim_matches('-').to_string()
}

/// At most how many variables [`predefined`] returns.
const PREDEFINED_MAX: usize = 56;

/// The pipeline-level predefined variables. Job-level ones come from [`job_predefined`].
pub fn predefined(ctx: &PipelineContext) -> Vec<Variable> {
    // Room for all of them: growing the list step by step cost more than filling it.
    let mut v = Vec::with_capacity(PREDEFINED_MAX);
    let mut add = |k: &str, val: String| v.push(Variable::new(k, val, VariableSource::Predefined));
    let server = ctx.server_url.trim_end_matches('/');
    let host = server
        .split("://")
        .nth(1)
        .unwrap_or(server)
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let project_url = format!("{server}/{}", ctx.project.path_with_namespace);
    add("CI", "true".into());
    add("GITLAB_CI", "true".into());
    add("CI_SERVER", "yes".into());
    add("CI_SERVER_URL", server.to_string());
    add(
        "CI_SERVER_HOST",
        host.split(':').next().unwrap_or("").to_string(),
    );
    // GitLab: `Project#predefined_ci_server_variables` (`app/models/project.rb`):
    // `CI_SERVER_PROTOCOL`, `CI_SERVER_PORT` (the scheme's default when the URL names none)
    // and `CI_SERVER_FQDN` (host, with the port when it is not the default).
    let protocol = server.split("://").next().unwrap_or("http").to_string();
    let default_port = if protocol == "https" { "443" } else { "80" };
    let port = host
        .split_once(':')
        .map_or(default_port, |(_, p)| p)
        .to_string();
    add("CI_SERVER_PROTOCOL", protocol);
    add("CI_SERVER_PORT", port);
    add("CI_SERVER_FQDN", host.clone());
    add("CI_SERVER_NAME", "Pipewright".into());
    // The server's version, whole and in parts (GitLab: doc/ci/variables/predefined_variables.md,
    // `CI_SERVER_VERSION`, `_MAJOR`, `_MINOR`, `_PATCH`; the builder that sends them was not
    // checked). Pipewright's own version, as `GET /api/v4/version` answers it.
    let version = env!("CARGO_PKG_VERSION");
    add("CI_SERVER_VERSION", version.to_string());
    let mut parts = version.split(['.', '-', '+']);
    for key in [
        "CI_SERVER_VERSION_MAJOR",
        "CI_SERVER_VERSION_MINOR",
        "CI_SERVER_VERSION_PATCH",
    ] {
        add(key, parts.next().unwrap_or("0").to_string());
    }
    add("CI_API_V4_URL", format!("{server}/api/v4"));
    add("CI_PIPELINE_SOURCE", ctx.source.as_str().into());
    if let Some(id) = ctx.pipeline_id {
        add("CI_PIPELINE_ID", id.to_string());
        add("CI_PIPELINE_URL", format!("{project_url}/-/pipelines/{id}"));
    }
    if let Some(iid) = ctx.pipeline_iid {
        add("CI_PIPELINE_IID", iid.to_string());
    }
    if ctx.trigger_short_token.is_some() {
        add("CI_PIPELINE_TRIGGERED", "true".into());
    }
    if let Some(short) = &ctx.trigger_short_token {
        add("CI_TRIGGER_SHORT_TOKEN", short.clone());
    }
    add("CI_COMMIT_SHA", ctx.sha.clone());
    add("CI_COMMIT_SHORT_SHA", ctx.sha.chars().take(8).collect());
    add("CI_COMMIT_BEFORE_SHA", ctx.before_sha.clone());
    add("CI_COMMIT_REF_NAME", ctx.ref_name.clone());
    add("CI_COMMIT_REF_SLUG", slugify(&ctx.ref_name));
    add("CI_COMMIT_REF_PROTECTED", ctx.protected_ref.to_string());
    match ctx.ref_kind {
        RefKind::Branch => add("CI_COMMIT_BRANCH", ctx.ref_name.clone()),
        RefKind::Tag => add("CI_COMMIT_TAG", ctx.ref_name.clone()),
    }
    add("CI_COMMIT_MESSAGE", ctx.commit_message.clone());
    add(
        "CI_COMMIT_TITLE",
        ctx.commit_message.lines().next().unwrap_or("").to_string(),
    );
    add(
        "CI_COMMIT_DESCRIPTION",
        ctx.commit_message
            .split_once('\n')
            .map(|(_, d)| d.trim_start_matches('\n').to_string())
            .unwrap_or_default(),
    );
    add("CI_DEFAULT_BRANCH", ctx.project.default_branch.clone());
    add("CI_PROJECT_ID", ctx.project.id.to_string());
    add("CI_PROJECT_NAME", ctx.project.name.clone());
    add("CI_PROJECT_TITLE", ctx.project.name.clone());
    add("CI_PROJECT_PATH", ctx.project.path_with_namespace.clone());
    add(
        "CI_PROJECT_PATH_SLUG",
        slugify(&ctx.project.path_with_namespace),
    );
    add("CI_PROJECT_NAMESPACE", ctx.project.namespace.clone());
    add(
        "CI_PROJECT_ROOT_NAMESPACE",
        ctx.project
            .namespace
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string(),
    );
    add("CI_PROJECT_URL", project_url.clone());
    add(
        "CI_PROJECT_DIR",
        format!("/builds/{}", ctx.project.path_with_namespace),
    );
    add(
        "CI_PROJECT_VISIBILITY",
        ctx.project.visibility.as_str().into(),
    );
    add("CI_REPOSITORY_URL", format!("{project_url}.git"));
    // GitLab: `Project#predefined_project_variables` (`app/models/project.rb`) and
    // `Ci::Pipeline#predefined_variables`: the project's `ci_config_path_or_default`.
    // Runners read it (a third-party runner failed every job without it: issue 15 §4).
    add("CI_CONFIG_PATH", ctx.ci_config_path.clone());
    if let Some(user) = &ctx.user {
        add("GITLAB_USER_ID", user.id.to_string());
        add("GITLAB_USER_LOGIN", user.login.clone());
        add("GITLAB_USER_NAME", user.name.clone());
        add("GITLAB_USER_EMAIL", user.email.clone());
    }
    v
}

/// Variables that exist only once a job does: its id, name, stage, URL and token.
pub fn job_predefined(
    ctx: &PipelineContext,
    job_id: i64,
    name: &str,
    stage: &str,
    token: &str,
) -> Vec<Variable> {
    let server = ctx.server_url.trim_end_matches('/');
    let mut token_var = Variable::new("CI_JOB_TOKEN", token, VariableSource::Predefined);
    token_var.public = false;
    token_var.masked = true;
    vec![
        Variable::new("CI_JOB_ID", job_id.to_string(), VariableSource::Predefined),
        Variable::new("CI_JOB_NAME", name, VariableSource::Predefined),
        // GitLab: `Ci::Build#predefined_variables` (`CI_JOB_NAME_SLUG`, slugified to 63).
        Variable::new(
            "CI_JOB_NAME_SLUG",
            slugify(name),
            VariableSource::Predefined,
        ),
        Variable::new("CI_JOB_STAGE", stage, VariableSource::Predefined),
        Variable::new(
            "CI_JOB_URL",
            format!(
                "{server}/{}/-/jobs/{job_id}",
                ctx.project.path_with_namespace
            ),
            VariableSource::Predefined,
        ),
        token_var,
    ]
}

/// Folds variables so that each key keeps its highest-precedence definition (later sources
/// and, within a source, later definitions win), keeping first-seen order.
pub fn merge(layers: impl IntoIterator<Item = Variable>) -> Vec<Variable> {
    /// Up to this many keys a scan finds a key faster than hashing it (a job's variables, on
    /// the planning path, are usually a handful); past it an index is built, once.
    const SCANNED: usize = 16;
    let mut out: Vec<Variable> = Vec::new();
    let mut index: Option<std::collections::HashMap<String, usize>> = None;
    for var in layers {
        if index.is_none() && out.len() >= SCANNED {
            index = Some(
                out.iter()
                    .enumerate()
                    .map(|(i, v)| (v.key.clone(), i))
                    .collect(),
            );
        }
        let found = match &index {
            Some(index) => index.get(&var.key).copied(),
            None => out.iter().position(|v| v.key == var.key),
        };
        match found {
            Some(i) if var.source >= out[i].source => out[i] = var,
            Some(_) => {}
            None => {
                if let Some(index) = &mut index {
                    index.insert(var.key.clone(), out.len());
                }
                out.push(var);
            }
        }
    }
    out
}

/// Expands `$VAR`, `${VAR}` and `%VAR%` references in `value` using `lookup`; `$$` is a literal
/// `$`; references to undefined variables are left as written (GitLab's behaviour).
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    let name_len = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count()
    };
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => {
                out.push('$');
                i += 2;
            }
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                let n = name_len(i + 2);
                if n > 0 && bytes.get(i + 2 + n) == Some(&b'}') {
                    let name = &value[i + 2..i + 2 + n];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&value[i..i + 3 + n]),
                    }
                    i += 3 + n;
                } else {
                    out.push('$');
                    i += 1;
                }
            }
            b'$' => {
                let n = name_len(i + 1);
                if n > 0 {
                    let name = &value[i + 1..i + 1 + n];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&value[i..i + 1 + n]),
                    }
                    i += 1 + n;
                } else {
                    out.push('$');
                    i += 1;
                }
            }
            _ => {
                let ch_len = value[i..].chars().next().map(char::len_utf8).unwrap_or(1);
                out.push_str(&value[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    out
}

/// Expands every non-raw variable's value against the others (one level, as GitLab does for
/// variables passed to a job), returning `(key, value)` pairs.
pub fn expand_all(vars: &[Variable]) -> Vec<(String, String)> {
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|v| v.key == name)
            .map(|v| v.value.clone())
    };
    vars.iter()
        .map(|v| {
            let value = if v.raw || v.file {
                v.value.clone()
            } else {
                expand(&v.value, &lookup)
            };
            (v.key.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_project() -> crate::context::ProjectInfo {
        crate::context::ProjectInfo {
            id: 1,
            name: "Demo".into(),
            path_with_namespace: "group/demo".into(),
            namespace: "group".into(),
            default_branch: "main".into(),
            visibility: pipewright_core::Visibility::Private,
        }
    }

    #[test]
    fn server_variables_come_from_the_url() {
        let project = demo_project();
        let value = |url: &str, key: &str| {
            let ctx = PipelineContext::new(
                pipewright_core::PipelineSource::Push,
                "main",
                RefKind::Branch,
                "a".repeat(40),
                project.clone(),
                url,
            );
            predefined(&ctx)
                .into_iter()
                .find(|v| v.key == key)
                .map(|v| v.value)
        };
        let https = "https://ci.example.com";
        assert_eq!(value(https, "CI_SERVER_PORT").as_deref(), Some("443"));
        assert_eq!(value(https, "CI_SERVER_PROTOCOL").as_deref(), Some("https"));
        assert_eq!(
            value(https, "CI_SERVER_FQDN").as_deref(),
            Some("ci.example.com")
        );
        let local = "http://localhost:8080";
        assert_eq!(value(local, "CI_SERVER_PORT").as_deref(), Some("8080"));
        assert_eq!(
            value(local, "CI_SERVER_FQDN").as_deref(),
            Some("localhost:8080")
        );
        assert_eq!(
            value(local, "CI_CONFIG_PATH").as_deref(),
            Some(".gitlab-ci.yml")
        );
        assert_eq!(
            value(local, "CI_PROJECT_ROOT_NAMESPACE").as_deref(),
            Some("group")
        );
        let version = value(local, "CI_SERVER_VERSION").unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        let parts: Vec<String> = ["MAJOR", "MINOR", "PATCH"]
            .iter()
            .map(|p| value(local, &format!("CI_SERVER_VERSION_{p}")).unwrap())
            .collect();
        assert_eq!(parts.join("."), version);
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("feature/Login_Page"), "feature-login-page");
        assert_eq!(slugify("-x-"), "x");
        assert_eq!(slugify(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn expansion() {
        let lookup = |n: &str| match n {
            "A" => Some("alpha".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand("$A-${A}", &lookup), "alpha-alpha");
        assert_eq!(expand("cost: $$5", &lookup), "cost: $5");
        assert_eq!(
            expand("$UNDEFINED and ${UNDEFINED}", &lookup),
            "$UNDEFINED and ${UNDEFINED}"
        );
        assert_eq!(expand("[$EMPTY]", &lookup), "[]");
        assert_eq!(expand("price $ 5 é", &lookup), "price $ 5 é");
    }

    #[test]
    fn precedence_keeps_the_strongest_source() {
        let merged = merge([
            Variable::new("X", "predefined", VariableSource::Predefined),
            Variable::new("X", "pipeline", VariableSource::Pipeline),
            Variable::new("X", "job", VariableSource::Job),
            Variable::new("Y", "global", VariableSource::Global),
            Variable::new("Y", "job", VariableSource::Job),
        ]);
        assert_eq!(
            merged
                .iter()
                .map(|v| (v.key.as_str(), v.value.as_str()))
                .collect::<Vec<_>>(),
            vec![("X", "pipeline"), ("Y", "job")]
        );
    }

    /// Past the keys a scan looks through, an index answers the same.
    #[test]
    fn precedence_holds_for_many_variables() {
        let key = |i: usize| format!("V{i}");
        let globals = (0..40).map(|i| Variable::new(&key(i), "global", VariableSource::Global));
        let jobs = (0..40)
            .rev()
            .filter(|i| i % 3 == 0)
            .map(|i| Variable::new(&key(i), "job", VariableSource::Job));
        let predefined =
            (30..50).map(|i| Variable::new(&key(i), "predefined", VariableSource::Predefined));
        let merged = merge(globals.chain(jobs).chain(predefined));
        let expected: Vec<(String, &str)> = (0..50)
            .map(|i| {
                let value = match i {
                    40.. => "predefined",
                    _ if i % 3 == 0 => "job",
                    _ => "global",
                };
                (key(i), value)
            })
            .collect();
        let got: Vec<(String, &str)> = merged
            .iter()
            .map(|v| (v.key.clone(), v.value.as_str()))
            .collect();
        assert_eq!(got, expected);
    }

    /// `predefined` sets its list's room once; a variable added past it costs every plan.
    #[test]
    fn the_predefined_list_fits_its_room() {
        let mut ctx = PipelineContext::new(
            pipewright_core::PipelineSource::Trigger,
            "main",
            RefKind::Branch,
            "a".repeat(40),
            demo_project(),
            "https://ci.example.com",
        );
        ctx.pipeline_id = Some(1);
        ctx.pipeline_iid = Some(1);
        ctx.trigger_short_token = Some("abcd".into());
        ctx.user = Some(crate::context::UserInfo {
            id: 1,
            login: "root".into(),
            name: "Root".into(),
            email: "root@example.com".into(),
        });
        let all = predefined(&ctx);
        assert!(all.len() <= PREDEFINED_MAX, "{} variables", all.len());
        assert!(all.capacity() <= PREDEFINED_MAX);
    }
}
