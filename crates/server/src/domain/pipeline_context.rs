//! The config engine's view of a pipeline ([`PipelineContext`]), built here and only here:
//! for planning a pipeline about to be created (`pipeline_creation`, which every source and
//! every downstream pipeline goes through) and for a stored pipeline's jobs, whose predefined
//! `CI_*` variables come from the same context (`api/runner_jobs`). One builder keeps the two
//! from drifting apart.

use pipewright_config::{PipelineContext, ProjectInfo, UserInfo};
use pipewright_core::{PipelineSource, RefKind};
use pipewright_store::{NewPipeline, Pipeline, Project, User};

use crate::state::AppState;

/// What a pipeline is, whether about to be written ([`NewPipeline`]) or stored ([`Pipeline`]).
pub struct PipelineFacts<'a> {
    source: PipelineSource,
    ref_name: &'a str,
    tag: bool,
    protected_ref: bool,
    sha: &'a str,
    before_sha: &'a str,
    trigger_short_token: Option<&'a str>,
    /// The row's id and per-project iid, once it exists.
    ids: Option<(i64, i64)>,
}

impl<'a> From<&'a NewPipeline> for PipelineFacts<'a> {
    fn from(p: &'a NewPipeline) -> Self {
        PipelineFacts {
            source: p.source,
            ref_name: &p.ref_name,
            tag: p.tag,
            protected_ref: p.protected_ref,
            sha: &p.sha,
            before_sha: &p.before_sha,
            trigger_short_token: p.trigger_short_token.as_deref(),
            ids: None,
        }
    }
}

impl<'a> From<&'a Pipeline> for PipelineFacts<'a> {
    fn from(p: &'a Pipeline) -> Self {
        PipelineFacts {
            source: p.source,
            ref_name: &p.ref_name,
            tag: p.tag,
            protected_ref: p.protected_ref,
            sha: &p.sha,
            before_sha: &p.before_sha,
            trigger_short_token: p.trigger_short_token.as_deref(),
            ids: Some((p.id, p.iid)),
        }
    }
}

/// The context of `pipeline` in `project`, run as `user`, at a commit with `commit_message`.
/// It carries no variables and no file lists: planning adds those; a job's payload merges its
/// variables itself.
pub fn build<'a>(
    state: &AppState,
    pipeline: impl Into<PipelineFacts<'a>>,
    project: &Project,
    user: Option<&User>,
    commit_message: &str,
) -> PipelineContext {
    let p = pipeline.into();
    let ref_kind = if p.tag { RefKind::Tag } else { RefKind::Branch };
    PipelineContext {
        protected_ref: p.protected_ref,
        before_sha: p.before_sha.to_string(),
        commit_message: commit_message.to_string(),
        pipeline_id: p.ids.map(|(id, _)| id),
        pipeline_iid: p.ids.map(|(_, iid)| iid),
        user: user.map(user_info),
        trigger_short_token: p.trigger_short_token.map(str::to_string),
        ..PipelineContext::new(
            p.source,
            p.ref_name,
            ref_kind,
            p.sha,
            project_info(project),
            &state.config.external_url,
        )
    }
}

fn project_info(project: &Project) -> ProjectInfo {
    ProjectInfo {
        id: project.id,
        name: project.name.clone(),
        path_with_namespace: project.full_path(),
        namespace: project.namespace.path.clone(),
        default_branch: project.default_branch.clone(),
        visibility: project.visibility,
    }
}

fn user_info(user: &User) -> UserInfo {
    UserInfo {
        id: user.id,
        login: user.username.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
    }
}
