//! What the planner needs to know about the pipeline being created: where, why, by whom, with
//! which user variables. The server fills it in; the engine never looks anything up itself.

use pipewright_core::{PipelineSource, RefKind};

use crate::variables::Variable;

#[derive(Debug, Clone, Default)]
pub struct ProjectInfo {
    pub id: i64,
    pub name: String,
    /// `namespace/path`.
    pub path_with_namespace: String,
    pub namespace: String,
    pub default_branch: String,
    pub visibility: String,
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
}
