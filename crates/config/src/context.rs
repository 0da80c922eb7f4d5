//! What the planner needs to know about the pipeline being created: where, why, by whom, with
//! which user variables. The server fills it in; the engine never looks anything up itself.
//! Every context starts from [`PipelineContext::new`], so a field added here gets one default
//! in one place rather than one per caller.

use pipewright_core::{PipelineSource, RefKind, Visibility};

use crate::variables::Variable;

#[derive(Debug, Clone)]
pub struct ProjectInfo {
    pub id: i64,
    pub name: String,
    /// `namespace/path`.
    pub path_with_namespace: String,
    pub namespace: String,
    pub default_branch: String,
    pub visibility: Visibility,
}

#[derive(Debug, Clone)]
pub struct UserInfo {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct PipelineContext {
    pub source: PipelineSource,
    pub ref_name: String,
    pub ref_kind: RefKind,
    pub protected_ref: bool,
    pub sha: String,
    pub before_sha: String,
    pub commit_message: String,
    pub project: ProjectInfo,
    pub server_url: String,
    /// Known once the pipeline row exists; the plan does not depend on them.
    pub pipeline_id: Option<i64>,
    pub pipeline_iid: Option<i64>,
    pub user: Option<UserInfo>,
    /// Set for trigger-token pipelines: the 4 visible characters.
    pub trigger_short_token: Option<String>,
    /// Trigger, API, schedule and downstream variables (highest precedence).
    pub pipeline_variables: Vec<Variable>,
    pub project_variables: Vec<Variable>,
    pub instance_variables: Vec<Variable>,
    /// Files changed by the push; `None` when unknown (triggers), and then `changes` is true.
    pub changed_files: Option<Vec<String>>,
    /// Every file at the commit, for `exists`; `None` makes `exists` false.
    pub files: Option<Vec<String>>,
    /// The project's CI config path (`CI_CONFIG_PATH`): its `ci_config_path` setting, else
    /// `.gitlab-ci.yml`.
    pub ci_config_path: String,
}

/// The all-zero commit id git uses for "no commit": a pipeline without a previous commit.
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

impl PipelineContext {
    /// A pipeline of `source` on `ref_name` (a `ref_kind`) at commit `sha` of `project`, on the
    /// server at `server_url`, with nothing else known yet: an unprotected ref, no previous
    /// commit, an empty commit message, no pipeline row, no user or trigger, no variables and
    /// no file lists. Callers add what they know:
    /// `PipelineContext { protected_ref: true, ..PipelineContext::new(…) }`.
    pub fn new(
        source: PipelineSource,
        ref_name: impl Into<String>,
        ref_kind: RefKind,
        sha: impl Into<String>,
        project: ProjectInfo,
        server_url: impl Into<String>,
    ) -> Self {
        PipelineContext {
            source,
            ref_name: ref_name.into(),
            ref_kind,
            protected_ref: false,
            sha: sha.into(),
            before_sha: NO_COMMIT.to_string(),
            commit_message: String::new(),
            project,
            server_url: server_url.into(),
            pipeline_id: None,
            pipeline_iid: None,
            user: None,
            trigger_short_token: None,
            pipeline_variables: Vec::new(),
            project_variables: Vec::new(),
            instance_variables: Vec::new(),
            changed_files: None,
            files: None,
            ci_config_path: crate::resolve::CONFIG_FILE.to_string(),
        }
    }
}
