//! `trigger:` jobs (GitLab's bridges). A bridge never goes to a runner: when it would start,
//! the server creates the downstream pipeline itself, as the upstream pipeline's user, through
//! the one creation chain — a multi-project pipeline (`trigger: project:`, source `pipeline`)
//! or a child pipeline from a file of the same commit (`trigger: include:`, source
//! `parent_pipeline`). Without `strategy: depend` the bridge succeeds once the downstream
//! pipeline exists; with it, the bridge mirrors the downstream pipeline's final status. A
//! missing project, missing permission or a downstream config error fails the bridge with a
//! reason in its log, never the server.

use pipewright_config::PlannedJob;
use pipewright_core::{PipelineSource, Status};
use pipewright_store::{Job, Pipeline, Upstream, User, VariableType};
use serde_json::Value;

use crate::domain::pipeline_creation::{CreateError, CreatePipeline, PipelineUser};
use crate::domain::pipeline_variables::PipelineVariable;
use crate::permissions::Action;
use crate::state::AppState;

/// Whether a job is a bridge (has `trigger:`).
pub fn is_bridge(job: &Job) -> bool {
    Routing::of(job).is_bridge()
}

/// What decides who runs a job — `trigger:` (the server, for a bridge) and `tags:` — read
/// from its spec without building the rest of it (the claim and every pipeline advance ask).
#[derive(Default, serde::Deserialize)]
pub struct Routing {
    #[serde(default)]
    trigger: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Routing {
    /// A spec that cannot be read routes like one without `trigger:` and `tags:`.
    pub fn of(job: &Job) -> Routing {
        serde_json::from_str(&job.spec).unwrap_or_default()
    }

    pub fn is_bridge(&self) -> bool {
        self.trigger.is_some()
    }
}

/// What a bridge's `trigger:` asks for.
#[derive(Debug, PartialEq)]
enum Target {
    Project {
        path: String,
        branch: Option<String>,
    },
    Child {
        path: String,
    },
}

/// A bridge's `trigger:` keyword, read from its spec.
#[derive(Debug, PartialEq)]
struct TriggerKeyword {
    target: Target,
    depend: bool,
    forward_yaml_variables: bool,
    forward_pipeline_variables: bool,
}

fn parse(trigger: &Value) -> Option<TriggerKeyword> {
    let forward = trigger.get("forward");
    let flag = |key: &str, default: bool| {
        forward
            .and_then(|f| f.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(default)
    };
    let depend = trigger.get("strategy").and_then(Value::as_str) == Some("depend");
    let target = match trigger {
        Value::String(path) => Target::Project {
            path: path.clone(),
            branch: None,
        },
        Value::Object(map) => {
            if let Some(path) = map.get("project").and_then(Value::as_str) {
                Target::Project {
                    path: path.to_string(),
                    branch: map
                        .get("branch")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                }
            } else {
                // `include: file`, `include: {local: file}` or `include: [{local: file}]`.
                let include = map.get("include")?;
                let first = match include {
                    Value::Array(items) => items.first()?.clone(),
                    other => other.clone(),
                };
                let path = match &first {
                    Value::String(p) => p.clone(),
                    Value::Object(m) => m.get("local").and_then(Value::as_str)?.to_string(),
                    _ => return None,
                };
                Target::Child {
                    path: path.trim_start_matches('/').to_string(),
                }
            }
        }
        _ => return None,
    };
    Some(TriggerKeyword {
        target,
        depend,
        forward_yaml_variables: flag("yaml_variables", true),
        forward_pipeline_variables: flag("pipeline_variables", false),
    })
}

/// A boxed, `Send` future: bridges and job processing call each other, and naming the type
/// here breaks the cycle the compiler would otherwise have to see through.
pub type BoxFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Starts a pending bridge: marks it running and creates its downstream pipeline.
pub fn start<'a>(state: &'a AppState, bridge: &'a Job) -> BoxFuture<'a> {
    Box::pin(start_bridge(state, bridge))
}

async fn start_bridge(state: &AppState, bridge: &Job) -> anyhow::Result<()> {
    if !state
        .store
        .transition_job(bridge.id, &[Status::Pending], Status::Running)
        .await?
    {
        return Ok(());
    }
    // A running bridge makes its pipeline `running`, as a runner's claim does.
    crate::domain::job_processing::set_pipeline_status(state, bridge.pipeline_id, Status::Running)
        .await?;
    match create_downstream(state, bridge).await? {
        Ok((downstream, depend)) => {
            let line = format!(
                "Created the downstream pipeline {} (project {})",
                downstream.id, downstream.project_id
            );
            crate::domain::job_logs::append_system_note(state, bridge.id, &line).await;
            if !depend {
                crate::domain::job_processing::finish_job(
                    state,
                    bridge,
                    Status::Success,
                    None,
                    None,
                )
                .await?;
            } else if downstream.status.is_complete() {
                mirror_status(state, &downstream).await?;
            }
        }
        Err((reason, message)) => {
            crate::domain::job_logs::append_system_line(
                state,
                bridge.id,
                &format!("ERROR: {message}"),
            )
            .await;
            crate::domain::job_processing::finish_job(
                state,
                bridge,
                Status::Failed,
                Some(reason),
                None,
            )
            .await?;
        }
    }
    Ok(())
}

type Outcome = Result<(Pipeline, bool), (&'static str, String)>;

async fn create_downstream(state: &AppState, bridge: &Job) -> anyhow::Result<Outcome> {
    let spec: PlannedJob = serde_json::from_str(&bridge.spec)?;
    let Some(keyword) = spec.trigger.as_ref().and_then(parse) else {
        return Ok(Err((
            "downstream_pipeline_creation_failed",
            "the trigger: keyword could not be read".into(),
        )));
    };
    let Some(upstream) = state.store.pipeline_by_id(bridge.pipeline_id).await? else {
        return Ok(Err((
            "unknown_failure",
            "the upstream pipeline is gone".into(),
        )));
    };
    let Some(user) = (match upstream.user_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    }) else {
        return Ok(Err((
            "insufficient_bridge_permissions",
            "the upstream pipeline has no user to run the downstream pipeline as".into(),
        )));
    };
    let mut variables = Vec::new();
    if keyword.forward_yaml_variables {
        for v in &spec.variables {
            variables.push(PipelineVariable {
                key: v.key.clone(),
                value: v.value.clone(),
                variable_type: if v.file {
                    VariableType::File
                } else {
                    VariableType::EnvVar
                },
            });
        }
    }
    if keyword.forward_pipeline_variables {
        variables.extend(crate::domain::pipeline_variables::opened(state, upstream.id).await?);
    }
    let link = Upstream {
        job_id: bridge.id,
        pipeline_id: upstream.id,
        project_id: upstream.project_id,
    };
    let (project, ref_name, source, config_path, at_sha) = match &keyword.target {
        Target::Project { path, branch } => {
            let Some(project) = crate::domain::projects::lookup(state, path)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            else {
                return Ok(Err((
                    "downstream_bridge_project_not_found",
                    format!("downstream project {path} could not be found"),
                )));
            };
            let access = crate::domain::projects::user_access(state, Some(&user), &project)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if !access.can_see() {
                return Ok(Err((
                    "downstream_bridge_project_not_found",
                    format!("downstream project {path} could not be found"),
                )));
            }
            let branch = branch.clone().unwrap_or(project.default_branch.clone());
            (project, branch, PipelineSource::Pipeline, None, None)
        }
        Target::Child { path } => {
            let Some(project) = state.store.project(upstream.project_id).await? else {
                return Ok(Err(("unknown_failure", "the project is gone".into())));
            };
            (
                project,
                upstream.ref_name.clone(),
                PipelineSource::ParentPipeline,
                Some(path.clone()),
                Some(upstream.sha.clone()),
            )
        }
    };
    let role = crate::domain::projects::user_access(state, Some(&user), &project)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .role();
    let request = CreatePipeline {
        project,
        ref_name,
        source,
        run_as: PipelineUser::User { user, role },
        trigger: None,
        variables,
        upstream: Some(link),
        ignore_skip_ci: true,
        before_sha: None,
        config_path,
        at_sha,
    };
    Ok(
        match crate::domain::pipeline_creation::create_pipeline(state, request).await {
            Ok(pipeline) => Ok((pipeline, keyword.depend)),
            Err(CreateError::Rejected(message)) => Err((
                if message.contains("permission") {
                    "insufficient_bridge_permissions"
                } else {
                    "downstream_pipeline_creation_failed"
                },
                format!("downstream pipeline could not be created: {message}"),
            )),
            Err(CreateError::ConfigError(pipeline, message)) => Err((
                "downstream_pipeline_creation_failed",
                format!(
                    "downstream pipeline {} has a configuration error: {message}",
                    pipeline.id
                ),
            )),
            Err(CreateError::Internal(e)) => return Err(e),
        },
    )
}

/// Whether `user` may start `bridge` by hand (play or retry it): they must be able to update
/// the branch its downstream pipeline would run on. GitLab: app/policies/ci/bridge_policy.rb
/// (`can_update_downstream_branch` is what enables `play_job`). GitLab's retried bridge runs as
/// the retrier; Pipewright's runs as its pipeline's user, so a retry asks the same, rather than
/// letting someone start a downstream pipeline they could not start themselves.
pub async fn user_may_start(
    state: &AppState,
    user: Option<&User>,
    bridge: &Job,
) -> anyhow::Result<bool> {
    let Some(keyword) = serde_json::from_str::<PlannedJob>(&bridge.spec)
        .ok()
        .and_then(|spec| spec.trigger.as_ref().and_then(parse))
    else {
        return Ok(false);
    };
    let Some(upstream) = state.store.pipeline_by_id(bridge.pipeline_id).await? else {
        return Ok(false);
    };
    let (project, ref_name) = match &keyword.target {
        Target::Project { path, branch } => {
            let Some(project) = crate::domain::projects::lookup(state, path)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            else {
                return Ok(false);
            };
            let branch = branch.clone().unwrap_or(project.default_branch.clone());
            (project, branch)
        }
        Target::Child { .. } => match state.store.project(upstream.project_id).await? {
            Some(project) => (project, upstream.ref_name.clone()),
            None => return Ok(false),
        },
    };
    let access = crate::domain::projects::user_access(state, user, &project)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !access.can(Action::PushCode) {
        return Ok(false);
    }
    let rules = state.store.protected_branches(project.id).await?;
    Ok(crate::domain::protected_refs::update_allowed(
        &rules, &ref_name, &access,
    ))
}

/// Whether `user` may start every bridge a retry of the pipeline would start again (its failed
/// and canceled ones), as [`user_may_start`] asks for one.
pub async fn user_may_restart_bridges(
    state: &AppState,
    user: Option<&User>,
    pipeline_id: i64,
) -> anyhow::Result<bool> {
    for job in state.store.pipeline_all_jobs(pipeline_id).await? {
        if matches!(job.status, Status::Failed | Status::Canceled)
            && is_bridge(&job)
            && !user_may_start(state, user, &job).await?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// With `strategy: depend`, a finished downstream pipeline decides its bridge's status.
pub fn mirror<'a>(state: &'a AppState, downstream: &'a Pipeline) -> BoxFuture<'a> {
    Box::pin(mirror_status(state, downstream))
}

async fn mirror_status(state: &AppState, downstream: &Pipeline) -> anyhow::Result<()> {
    let Some(link) = &downstream.upstream else {
        return Ok(());
    };
    let Some(bridge) = state.store.job_by_id(link.job_id).await? else {
        return Ok(());
    };
    if bridge.status != Status::Running {
        return Ok(());
    }
    let depend = serde_json::from_str::<PlannedJob>(&bridge.spec)
        .ok()
        .and_then(|spec| spec.trigger.as_ref().and_then(parse))
        .is_some_and(|t| t.depend);
    if !depend {
        return Ok(());
    }
    let (status, reason) = match downstream.status {
        Status::Success | Status::Skipped => (Status::Success, None),
        Status::Canceled => (Status::Canceled, None),
        _ => (Status::Failed, Some("downstream_pipeline_failed")),
    };
    crate::domain::job_processing::finish_job(state, &bridge, status, reason, None).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trigger_forms() {
        assert_eq!(
            parse(&json!("group/b")).map(|t| t.target),
            Some(Target::Project {
                path: "group/b".into(),
                branch: None
            })
        );
        let t = parse(
            &json!({"project": "g/b", "branch": "stable", "strategy": "depend",
                              "forward": {"pipeline_variables": true}}),
        )
        .unwrap();
        assert!(t.depend && t.forward_yaml_variables && t.forward_pipeline_variables);
        for include in [
            json!({"include": "ci/child.yml"}),
            json!({"include": {"local": "/ci/child.yml"}}),
            json!({"include": [{"local": "ci/child.yml"}]}),
        ] {
            assert_eq!(
                parse(&include).map(|t| t.target),
                Some(Target::Child {
                    path: "ci/child.yml".into()
                })
            );
        }
        assert_eq!(parse(&json!(3)), None);
    }
}
