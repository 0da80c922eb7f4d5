//! `trigger:` jobs (GitLab's bridges). A bridge never goes to a runner: when it would start,
//! the server creates the downstream pipeline itself, as the upstream pipeline's user, through
//! the one creation chain — a multi-project pipeline (`trigger: project:`, source `pipeline`)
//! or a child pipeline from a file of the same commit (`trigger: include:`, source
//! `parent_pipeline`). Without `strategy: depend` the bridge succeeds once the downstream
//! pipeline exists; with it, the bridge mirrors the downstream pipeline's final status. A
//! missing project, missing permission or a downstream config error fails the bridge with a
//! reason in its log, never the server.
//!
//! Starting a bridge finishes it (or creates a pipeline), which moves pipelines on: each
//! function here returns what that made startable ([`ToStart`]) for
//! [`crate::domain::dispatch`] to start, rather than starting it itself.

use pipewright_config::PlannedJob;
use pipewright_core::{PipelineSource, Status};
use pipewright_store::{Job, Pipeline, Project, Upstream, User, VariableType};
use serde_json::Value;

use crate::domain::job_processing::{self, ToStart};
use crate::domain::pipeline_creation::{CreateError, CreatePipeline, PipelineUser};
use crate::domain::pipeline_variables::PipelineVariable;
use crate::permissions::{Action, ProjectAccess};
use crate::state::AppState;

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

/// Starts a pending bridge: marks it running and creates its downstream pipeline. Returns what
/// that made startable: the downstream pipeline's own first bridges, and what finishing this
/// bridge (when it does not wait for the downstream pipeline) made startable upstream.
pub async fn start(state: &AppState, bridge: &Job) -> anyhow::Result<ToStart> {
    if !state
        .store
        .transition_job(bridge.id, &[Status::Pending], Status::Running)
        .await?
    {
        return Ok(ToStart::default());
    }
    // A running bridge makes its pipeline `running`, as a runner's claim does.
    job_processing::set_pipeline_status(state, bridge.pipeline_id, Status::Running).await?;
    let to_start = match create_downstream(state, bridge).await? {
        Ok(downstream) => {
            let line = format!(
                "Created the downstream pipeline {} (project {})",
                downstream.pipeline.id, downstream.pipeline.project_id
            );
            crate::domain::job_logs::append_system_note(state, bridge.id, &line).await;
            let upstream = if !downstream.depend {
                job_processing::finish_job(state, bridge, Status::Success, None, None)
                    .await?
                    .unwrap_or_default()
            } else if downstream.pipeline.status.is_complete() {
                mirror(state, &downstream.pipeline).await?
            } else {
                ToStart::default()
            };
            upstream.and(downstream.to_start)
        }
        Err((reason, message)) => {
            let line = format!("ERROR: {message}");
            crate::domain::job_logs::append_system_line(state, bridge.id, &line).await;
            job_processing::finish_job(state, bridge, Status::Failed, Some(reason), None)
                .await?
                .unwrap_or_default()
        }
    };
    Ok(to_start)
}

/// A downstream pipeline a bridge created.
struct Downstream {
    pipeline: Pipeline,
    /// The bridge waits for it (`strategy: depend`).
    depend: bool,
    /// What creating it made startable (its first stage's bridges).
    to_start: ToStart,
}

/// Why a bridge failed: GitLab's failure reason, and the line its log says.
type Failure = (&'static str, String);

/// Creates a bridge's downstream pipeline, as the upstream pipeline's user: reads its
/// `trigger:`, finds where the pipeline runs, forwards the variables it asks for, and runs the
/// creation chain. A reason the bridge fails is an `Ok(Err(…))`; only the unexpected is an
/// `Err`.
async fn create_downstream(
    state: &AppState,
    bridge: &Job,
) -> anyhow::Result<Result<Downstream, Failure>> {
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
    let destination = match destination(state, &keyword.target, &upstream, Some(&user)).await? {
        Ok(destination) => destination,
        Err(failure) => return Ok(Err(failure)),
    };
    let request = CreatePipeline {
        ref_name: destination.ref_name,
        source: destination.source,
        run_as: PipelineUser::User {
            user,
            role: destination.access.role(),
        },
        project: destination.project,
        trigger: None,
        variables: forwarded_variables(state, &keyword, &spec, upstream.id).await?,
        upstream: Some(Upstream {
            job_id: bridge.id,
            pipeline_id: upstream.id,
            project_id: upstream.project_id,
        }),
        ignore_skip_ci: true,
        before_sha: None,
        config_path: destination.config_path,
        at_sha: destination.at_sha,
        inputs: pipewright_config::Inputs::new(),
        save_on_errors: true,
    };
    let created = crate::domain::pipeline_creation::create_pipeline(state, request).await;
    downstream_or_failure(created, keyword.depend)
}

/// Where a bridge's downstream pipeline runs, and what `user` may do there.
struct Destination {
    project: Project,
    access: ProjectAccess,
    ref_name: String,
    source: PipelineSource,
    /// A child pipeline's config file.
    config_path: Option<String>,
    /// A child pipeline runs at its parent's commit.
    at_sha: Option<String>,
}

/// Where `target` points from `upstream`: another project's branch (its default unless named)
/// that `user` can see, or a file of the upstream pipeline's own commit.
async fn destination(
    state: &AppState,
    target: &Target,
    upstream: &Pipeline,
    user: Option<&User>,
) -> anyhow::Result<Result<Destination, Failure>> {
    let (project, ref_name, source, config_path, at_sha) = match target {
        Target::Project { path, branch } => {
            let project = crate::domain::projects::lookup(state, path)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let Some(project) = project else {
                return Ok(Err(project_not_found(path)));
            };
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
    let access = crate::domain::projects::user_access(state, user, &project)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Target::Project { path, .. } = target
        && !access.can_see()
    {
        return Ok(Err(project_not_found(path)));
    }
    Ok(Ok(Destination {
        project,
        access,
        ref_name,
        source,
        config_path,
        at_sha,
    }))
}

fn project_not_found(path: &str) -> Failure {
    (
        "downstream_bridge_project_not_found",
        format!("downstream project {path} could not be found"),
    )
}

/// The variables a bridge passes down: its own YAML variables (unless
/// `forward: yaml_variables: false`) and, with `forward: pipeline_variables: true`, the
/// upstream pipeline's.
async fn forwarded_variables(
    state: &AppState,
    keyword: &TriggerKeyword,
    spec: &PlannedJob,
    upstream_id: i64,
) -> anyhow::Result<Vec<PipelineVariable>> {
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
        variables.extend(crate::domain::pipeline_variables::opened(state, upstream_id).await?);
    }
    Ok(variables)
}

/// The creation chain's answer as the bridge sees it: its downstream pipeline, or why it fails.
fn downstream_or_failure(
    created: Result<(Pipeline, ToStart), CreateError>,
    depend: bool,
) -> anyhow::Result<Result<Downstream, Failure>> {
    Ok(match created {
        Ok((pipeline, to_start)) => Ok(Downstream {
            pipeline,
            depend,
            to_start,
        }),
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
    })
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
    let Ok(destination) = destination(state, &keyword.target, &upstream, user).await? else {
        return Ok(false);
    };
    if !destination.access.can(Action::PushCode) {
        return Ok(false);
    }
    let rules = state
        .store
        .protected_branches(destination.project.id)
        .await?;
    Ok(crate::domain::protected_refs::update_allowed(
        &rules,
        &destination.ref_name,
        &destination.access,
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
            && crate::domain::job_spec::is_bridge(&job)
            && !user_may_start(state, user, &job).await?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// With `strategy: depend`, a finished downstream pipeline decides its bridge's status.
/// Returns what finishing the bridge made startable upstream.
pub async fn mirror(state: &AppState, downstream: &Pipeline) -> anyhow::Result<ToStart> {
    let Some(link) = &downstream.upstream else {
        return Ok(ToStart::default());
    };
    let Some(bridge) = state.store.job_by_id(link.job_id).await? else {
        return Ok(ToStart::default());
    };
    if bridge.status != Status::Running {
        return Ok(ToStart::default());
    }
    let depend = serde_json::from_str::<PlannedJob>(&bridge.spec)
        .ok()
        .and_then(|spec| spec.trigger.as_ref().and_then(parse))
        .is_some_and(|t| t.depend);
    if !depend {
        return Ok(ToStart::default());
    }
    let (status, reason) = match downstream.status {
        Status::Success | Status::Skipped => (Status::Success, None),
        Status::Canceled => (Status::Canceled, None),
        _ => (Status::Failed, Some("downstream_pipeline_failed")),
    };
    Ok(
        job_processing::finish_job(state, &bridge, status, reason, None)
            .await?
            .unwrap_or_default(),
    )
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
