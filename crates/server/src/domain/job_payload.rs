//! The job payload a runner receives when it claims a job (GitLab's
//! `API::Entities::Ci::JobRequest::Response`), as `pipewright_runner_proto`'s types: the job's
//! variables in GitLab's precedence, its steps, image and services, the commit to fetch, the
//! artifacts it uploads and those of earlier jobs it downloads. What a pipeline's jobs share is
//! read once per pipeline and cached for a moment (`project_cache::PayloadContext`).

use pipewright_runner_proto as proto;
use pipewright_store::Job;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::project_cache::PayloadContext;
use crate::state::AppState;

async fn load_payload_context(state: &AppState, job: &Job) -> ApiResult<PayloadContext> {
    let pipeline = state
        .store
        .pipeline_by_id(job.pipeline_id)
        .await?
        .ok_or(ApiError::NotFound("Pipeline"))?;
    let project = state
        .store
        .project(job.project_id)
        .await?
        .ok_or(ApiError::NotFound("Project"))?;
    let user = match pipeline.user_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    };
    let commit = state
        .repos
        .commit_async(project.id, &pipeline.sha)
        .await
        .ok()
        .flatten();
    let pipeline_vars = crate::domain::pipeline_variables::opened(state, pipeline.id)
        .await
        .map_err(ApiError::Internal)?
        .iter()
        .map(crate::domain::pipeline_variables::PipelineVariable::to_config)
        .collect();
    let build_timeout = state
        .store
        .project_build_timeout(project.id)
        .await?
        .and_then(|t| u64::try_from(t).ok());
    let ctx = pipewright_config::PipelineContext {
        ci_config_path: crate::domain::projects::ci_config_path(state, project.id).await?,
        ..crate::domain::pipeline_context::build(
            state,
            &pipeline,
            &project,
            user.as_ref(),
            commit.as_ref().map_or("", |c| c.message.as_str()),
        )
    };
    Ok(PayloadContext {
        pipeline,
        project,
        ctx,
        pipeline_vars,
        build_timeout,
    })
}

/// GitLab's job payload for a runner (`API::Entities::Ci::JobRequest::Response`).
pub async fn payload(state: &AppState, job: &Job, token: &str) -> ApiResult<proto::JobPayload> {
    let shared = state
        .payload_cache
        .get_or_load(job.pipeline_id, load_payload_context(state, job))
        .await?;
    let PayloadContext {
        pipeline,
        project,
        ctx,
        pipeline_vars,
        build_timeout,
    } = shared.as_ref();
    let spec: pipewright_config::PlannedJob = serde_json::from_str(&job.spec)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("job spec: {e}")))?;
    let ci_vars =
        crate::domain::ci_variables::for_pipeline(state, project.id, pipeline.protected_ref)
            .await
            .map_err(ApiError::Internal)?;
    let variables = pipewright_config::merge_variables(
        pipewright_config::predefined(ctx)
            .into_iter()
            .chain(pipewright_config::job_predefined(
                ctx, job.id, &job.name, &job.stage, token,
            ))
            .chain(spec.variables.iter().cloned())
            .chain(ci_vars.instance)
            .chain(ci_vars.project)
            .chain(pipeline_vars.iter().cloned()),
    );
    // The job's `timeout:`, else the project's `build_timeout`, else GitLab's hour.
    let timeout = spec.timeout.or(*build_timeout).unwrap_or(3600);
    Ok(proto::JobPayload {
        id: job.id,
        token: token.into(),
        allow_git_fetch: true,
        job_info: proto::JobInfo {
            id: job.id,
            name: job.name.clone(),
            stage: job.stage.clone(),
            project_id: project.id,
            project_name: project.name.clone(),
            time_in_queue_seconds: Some(0),
            ..proto::JobInfo::default()
        },
        git_info: git_info(state, project, pipeline, token),
        runner_info: proto::RunnerInfo {
            timeout,
            runner_session_url: None,
        },
        variables: variables.iter().map(runner_variable).collect(),
        steps: steps(&spec, timeout),
        image: spec.image.as_ref().and_then(image),
        services: spec.services.iter().filter_map(service).collect(),
        artifacts: artifacts_spec(spec.artifacts.as_ref()),
        cache: Vec::new(),
        credentials: Vec::new(),
        dependencies: dependencies(state, job, &spec, token).await?,
        features: proto::GitlabFeatures {
            trace_sections: true,
            token_mask_prefixes: None,
            failure_reasons: vec![
                proto::FailureReason::UnknownFailure,
                proto::FailureReason::ScriptFailure,
                proto::FailureReason::RunnerSystemFailure,
                proto::FailureReason::JobExecutionTimeout,
            ],
        },
    })
}

/// Where the runner fetches the pipeline's commit: the repository with the job token in its
/// URL, and refspecs for the commit and its ref. GitLab: `job_request/git_info.rb`.
fn git_info(
    state: &AppState,
    project: &pipewright_store::Project,
    pipeline: &pipewright_store::Pipeline,
    token: &str,
) -> proto::GitInfo {
    let path = project.full_path();
    let external_url = &state.config.external_url;
    let repo_url = match external_url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://gitlab-ci-token:{token}@{rest}/{path}.git"),
        None => format!("{external_url}/{path}.git"),
    };
    let (ref_type, ref_refspec) = if pipeline.tag {
        (
            proto::RefType::Tag,
            format!("+refs/tags/{0}:refs/tags/{0}", pipeline.ref_name),
        )
    } else {
        (
            proto::RefType::Branch,
            format!("+refs/heads/{0}:refs/remotes/origin/{0}", pipeline.ref_name),
        )
    };
    proto::GitInfo {
        repo_url: repo_url.into(),
        ref_name: pipeline.ref_name.clone(),
        sha: pipeline.sha.clone(),
        before_sha: pipeline.before_sha.clone(),
        ref_type,
        refspecs: vec![
            format!("+{}:refs/pipelines/{}", pipeline.sha, pipeline.id),
            ref_refspec,
        ],
        depth: Some(20),
        repo_object_format: None,
        protected: None,
    }
}

/// A variable as the runner receives it.
fn runner_variable(v: &pipewright_config::Variable) -> proto::Variable {
    proto::Variable {
        key: v.key.clone(),
        value: v.value.clone(),
        public: v.public,
        masked: v.masked,
        file: v.file,
        raw: v.raw,
    }
}

/// `before_script` + `script` as the `script` step, then `after_script` (always, failures
/// allowed), each with the job's timeout.
fn steps(spec: &pipewright_config::PlannedJob, timeout: u64) -> Vec<proto::Step> {
    let mut script = spec.before_script.clone();
    script.extend(spec.script.iter().cloned());
    vec![
        proto::Step {
            name: proto::StepName::Script,
            script,
            timeout,
            when: proto::When::OnSuccess,
            allow_failure: false,
        },
        proto::Step {
            name: proto::StepName::AfterScript,
            script: spec.after_script.clone(),
            timeout,
            when: proto::When::Always,
            allow_failure: true,
        },
    ]
}

/// The job's `image:` as GitLab hands it to runners: a name alone is `{name}`; one without a
/// name is no image. GitLab: `Gitlab::Ci::Build::Image` (`lib/gitlab/ci/build/image.rb`).
fn image(config: &Value) -> Option<proto::Image> {
    match config {
        Value::String(name) if !name.is_empty() => Some(proto::Image::named(name)),
        Value::Object(_) => {
            let mut image: proto::Image = well_formed(Some(config))?;
            image.executor_opts = image.executor_opts.or_else(|| executor_opts(config));
            (!image.name.is_empty()).then_some(image)
        }
        _ => None,
    }
}

/// One of the job's `services:`, as [`image`] reads an image; one without a name is dropped.
fn service(config: &Value) -> Option<proto::Service> {
    match config {
        Value::String(name) if !name.is_empty() => Some(proto::Service::named(name)),
        Value::Object(_) => {
            let mut service: proto::Service = well_formed(Some(config))?;
            service.executor_opts = service.executor_opts.or_else(|| executor_opts(config));
            (!service.name.is_empty()).then_some(service)
        }
        _ => None,
    }
}

/// `docker:` and `kubernetes:` of an image or service in the YAML become its
/// `executor_opts`. GitLab: `lib/gitlab/ci/config/entry/image.rb` (`#value`).
fn executor_opts(config: &Value) -> Option<proto::ExecutorOptions> {
    let opts = proto::ExecutorOptions {
        docker: well_formed(config.get("docker")),
        kubernetes: well_formed(config.get("kubernetes")),
    };
    (opts != proto::ExecutorOptions::default()).then_some(opts)
}

/// The jobs whose artifacts this job downloads: its `dependencies:` if listed, else the jobs
/// it `needs` (with `artifacts: true`, the default), else every job of earlier stages, as GitLab
/// decides. Only successful jobs with an archive are listed. Each carries the running job's own
/// token, which is what the runner presents to download them.
async fn dependencies(
    state: &AppState,
    job: &Job,
    spec: &pipewright_config::PlannedJob,
    token: &str,
) -> ApiResult<Vec<proto::Dependency>> {
    let first_stage = spec.needs.is_none() && job.stage_idx == 0;
    if spec.dependencies.as_ref().is_some_and(Vec::is_empty)
        || spec.needs.as_ref().is_some_and(Vec::is_empty)
        || (first_stage && spec.dependencies.is_none())
    {
        return Ok(Vec::new());
    }
    let jobs = state.store.pipeline_all_jobs(job.pipeline_id).await?;
    let wanted = |other: &Job| -> bool {
        if let Some(names) = &spec.dependencies {
            return names.contains(&other.name);
        }
        if let Some(needs) = &spec.needs {
            return needs.iter().any(|n| n.job == other.name && n.artifacts);
        }
        other.stage_idx < job.stage_idx
    };
    Ok(jobs
        .iter()
        .filter(|other| other.id != job.id && wanted(other))
        .filter(|other| crate::domain::artifacts::has_artifacts(other))
        .filter_map(|other| {
            let a = other.artifacts.as_ref()?;
            Some(proto::Dependency {
                id: other.id,
                name: other.name.clone(),
                token: token.into(),
                artifacts_file: Some(proto::ArtifactFile {
                    filename: a.filename.clone(),
                    size: u64::try_from(a.size).unwrap_or(0),
                }),
            })
        })
        .collect())
}

/// GitLab's `artifacts` list for the runner, from the job's `artifacts:` keyword; `None` (sent
/// as `null`) when it keeps nothing. GitLab: `job_request/artifacts.rb`.
fn artifacts_spec(artifacts: Option<&Value>) -> Option<Vec<proto::ArtifactSpec>> {
    let a = artifacts.and_then(Value::as_object)?;
    let strings = |key: &str| -> Vec<String> {
        a.get(key)
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let paths = strings("paths");
    let untracked = a.get("untracked").and_then(Value::as_bool).unwrap_or(false);
    if paths.is_empty() && !untracked {
        return None;
    }
    Some(vec![proto::ArtifactSpec {
        name: Some(
            a.get("name")
                .and_then(Value::as_str)
                .unwrap_or("artifacts")
                .to_string(),
        ),
        untracked: Some(untracked),
        paths,
        exclude: Some(strings("exclude")),
        when: Some(proto::When::parse(
            a.get("when")
                .and_then(Value::as_str)
                .unwrap_or("on_success"),
        )),
        expire_in: a.get("expire_in").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        artifact_type: proto::ArtifactType::Archive,
        artifact_format: Some(proto::ArtifactFormat::Zip),
    }])
}

/// `value` as a protocol type, or `None` when it is absent or not that type's shape.
pub fn well_formed<T: serde::de::DeserializeOwned>(value: Option<&Value>) -> Option<T> {
    serde_json::from_value(value?.clone()).ok()
}
