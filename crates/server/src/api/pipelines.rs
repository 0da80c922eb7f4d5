//! Reading pipelines and their jobs (what every client does right after triggering):
//! `GET /projects/:id/pipelines`, `…/pipelines/:pipeline_id`, `…/pipelines/latest`,
//! `…/pipelines/:pipeline_id/variables`, `…/pipelines/:pipeline_id/jobs`, `GET …/jobs/:job_id`,
//! `DELETE …/pipelines/:pipeline_id`.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::{PipelineSource, Status, Timestamp};
use pipewright_store::{Job, Pipeline, PipelineFilter, PipelineOrder, Project, VariableType};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::linked_pipelines::LinkedProjects;
use crate::domain::pipeline_creation::{CreateError, CreatePipeline, DryRunOutcome};
use crate::domain::projects::authorize_project;
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::state::{AppState, ServerConfig};

pub fn routes() -> Vec<Route> {
    use Access::*;
    let pipeline = "/api/v4/projects/{id}/pipelines/{pipeline_id}";
    vec![
        Route::get("/api/v4/projects/{id}/pipelines", list, Read),
        Route::get("/api/v4/projects/{id}/pipelines/latest", latest, Read),
        Route::get(pipeline, show, Read),
        Route::delete(pipeline, destroy, Owner),
        Route::get(format!("{pipeline}/variables"), variables, Maintainer),
        Route::get(format!("{pipeline}/jobs"), jobs, Read),
        Route::get("/api/v4/projects/{id}/jobs/{job_id}", job, SignedInToRead),
        Route::post("/api/v4/projects/{id}/pipeline", create, Developer),
    ]
}

/// `POST /projects/:id/pipeline`: run a pipeline for a ref as the caller (source `api`), with
/// `variables: [{key, value, variable_type}]`. Shares the creation chain with triggers;
/// `Idempotency-Key` and `dry_run=true` as there.
async fn create(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?.clone();
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::CreatePipeline).await?;
    let ref_name = params.non_blank("ref")?;
    let mut variables = Vec::new();
    match params.get("variables") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let key = item.get("key").and_then(Value::as_str);
                let value = item.get("value").map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let kind = match item.get("variable_type").and_then(Value::as_str) {
                    None | Some("env_var") => VariableType::EnvVar,
                    Some("file") => VariableType::File,
                    Some(_) => {
                        return Err(ApiError::ParamError(
                            "variables[variable_type] does not have a valid value".into(),
                        ));
                    }
                };
                match (key, value) {
                    (Some(key), Some(value))
                        if !key.is_empty() && crate::validate::variable_key_chars(key) =>
                    {
                        variables.push(crate::domain::pipeline_variables::PipelineVariable {
                            key: key.to_string(),
                            value,
                            variable_type: kind,
                        });
                    }
                    _ => return Err(ApiError::InvalidParam("variables".into())),
                }
            }
        }
        Some(_) => return Err(ApiError::InvalidParam("variables".into())),
    }
    let inputs = params.hash("inputs")?;
    let key = super::idempotency::key(&headers)?;
    // GitLab's API creates no pipeline for a config error (`save_on_errors: false`): 400.
    // GitLab: lib/api/ci/pipelines.rb (`post ':id/pipeline'`).
    let request = |project: Project| CreatePipeline {
        inputs: inputs.clone(),
        save_on_errors: false,
        ..CreatePipeline::run_by(
            project,
            ref_name.clone(),
            PipelineSource::Api,
            actor.user.clone(),
            access.role(),
            variables.clone(),
        )
    };
    if params.bool("dry_run")?.unwrap_or(false) {
        let request = request(project);
        return respond_dry_run(crate::domain::pipeline_creation::dry_run(&state, request).await);
    }
    let fingerprint = crate::domain::idempotency::fingerprint(
        &ref_name,
        &variables
            .iter()
            .map(|v| {
                (
                    v.key.clone(),
                    v.value.clone(),
                    v.variable_type.as_str().to_string(),
                )
            })
            .collect::<Vec<_>>(),
        params.get("inputs"),
    );
    let credential = format!("user:{}", actor.user.id);
    let project_id = project.id;
    let request = request(project.clone());
    let creating = state.clone();
    let create = async move {
        let result = crate::domain::dispatch::create_pipeline(&creating, request).await;
        respond(&creating, &project, result, Some(&actor.user)).await
    };
    super::idempotency::guard(&state, key, project_id, credential, &fingerprint, create).await
}

/// GitLab's `detailed_status` for a pipeline's status; `warnings` when a job that was allowed
/// to fail did (`Ci::Pipeline#has_warnings?`), which turns a success into GitLab's
/// `Gitlab::Ci::Status::SuccessWarning` (`lib/gitlab/ci/status/success_warning.rb`: text
/// `passed`, label `passed with warnings`, icon `status_warning`, group
/// `success-with-warnings`).
pub fn detailed_status(status: Status, warnings: bool, details_path: &str) -> Value {
    let (text, label) = match status {
        Status::Success => ("passed", "passed"),
        Status::Failed => ("failed", "failed"),
        Status::Running => ("running", "running"),
        Status::Pending => ("pending", "pending"),
        Status::Canceled => ("canceled", "canceled"),
        Status::Skipped => ("skipped", "skipped"),
        Status::Manual => ("manual", "manual action"),
        Status::Scheduled => ("scheduled", "scheduled"),
        Status::Created => ("created", "created"),
        Status::Preparing => ("preparing", "preparing"),
        Status::WaitingForResource => ("waiting", "waiting for resource"),
    };
    let (label, group, icon) = if status == Status::Success && warnings {
        ("passed with warnings", "success-with-warnings", "warning")
    } else {
        (label, status.as_str(), status.as_str())
    };
    json!({
        "icon": format!("status_{icon}"),
        "text": text,
        "label": label,
        "group": group,
        "tooltip": label,
        "has_details": true,
        "details_path": details_path,
        "illustration": null,
        "favicon": format!("/assets/ci_favicons/favicon_status_{icon}.png"),
    })
}

/// Whether a pipeline passed with warnings (asked only of successful ones: one indexed query).
pub async fn passed_with_warnings(state: &AppState, p: &Pipeline) -> ApiResult<bool> {
    if p.status != Status::Success {
        return Ok(false);
    }
    Ok(state.store.pipeline_has_warnings(p.id).await?)
}

/// Which of a page's pipelines passed with warnings, with one query for the whole page
/// (only successful pipelines are asked about, as [`passed_with_warnings`] does).
pub async fn passed_with_warnings_among<'p>(
    state: &AppState,
    pipelines: impl IntoIterator<Item = &'p Pipeline>,
) -> ApiResult<HashSet<i64>> {
    let passed: Vec<i64> = pipelines
        .into_iter()
        .filter(|p| p.status == Status::Success)
        .map(|p| p.id)
        .collect();
    Ok(state.store.pipelines_with_warnings(&passed).await?)
}

fn seconds_between(a: Option<Timestamp>, b: Option<Timestamp>) -> Value {
    match (a, b) {
        (Some(a), Some(b)) => json!(((b.millis() - a.millis()).max(0)) / 1000),
        _ => Value::Null,
    }
}

/// `Entities::Ci::Pipeline` as `caller` may see it: the `upstream` link of a multi-project
/// pipeline is `null` when the caller may not read the upstream project's pipelines
/// (`crate::domain::linked_pipelines`).
pub async fn pipeline_json(
    state: &AppState,
    caller: &Caller,
    project: &Project,
    p: &Pipeline,
) -> ApiResult<Value> {
    let mut json = pipeline_json_for(state, project, p, None).await?;
    if let Some(upstream) = &p.upstream {
        let mut linked = LinkedProjects::new(state, caller.clone(), project);
        if linked.readable(upstream.project_id).await?.is_none() {
            json["upstream"] = Value::Null;
        }
    }
    Ok(json)
}

/// As [`pipeline_json`], reusing `known_user` when it is the pipeline's user (saves a query on
/// the trigger endpoint's hot path).
pub async fn pipeline_json_for(
    state: &AppState,
    project: &Project,
    p: &Pipeline,
    known_user: Option<&pipewright_store::User>,
) -> ApiResult<Value> {
    let config: &ServerConfig = &state.config;
    let path = format!("/{}/-/pipelines/{}", project.full_path(), p.id);
    let warnings = passed_with_warnings(state, p).await?;
    let user = match p.user_id {
        Some(id) if known_user.is_some_and(|u| u.id == id) => {
            known_user.map(|u| entities::user_basic(config, u))
        }
        Some(id) => state
            .store
            .user(id)
            .await?
            .map(|u| entities::user_basic(config, &u)),
        None => None,
    };
    Ok(json!({
        "id": p.id,
        "iid": p.iid,
        "project_id": p.project_id,
        "sha": p.sha,
        "ref": p.ref_name,
        "status": p.status.as_str(),
        "source": p.source.as_str(),
        "name": p.name,
        "created_at": entities::time(p.created_at),
        "updated_at": entities::time(p.updated_at),
        "web_url": format!("{}{}", config.external_url, path),
        "before_sha": p.before_sha,
        "tag": p.tag,
        "yaml_errors": p.yaml_errors,
        // The job whose CI_JOB_TOKEN started this multi-project pipeline (source `pipeline`).
        "upstream": p.upstream.as_ref().map(|u| json!({
            "job_id": u.job_id, "pipeline_id": u.pipeline_id, "project_id": u.project_id,
        })),
        "user": user,
        "started_at": entities::opt_time(p.started_at),
        "finished_at": entities::opt_time(p.finished_at),
        "committed_at": entities::opt_time(p.committed_at),
        "duration": seconds_between(p.started_at, p.finished_at),
        "queued_duration": seconds_between(Some(p.created_at), p.started_at),
        "coverage": null,
        "detailed_status": detailed_status(p.status, warnings, &path),
    }))
}

/// The short form in lists (`Entities::Ci::PipelineBasic`).
pub(crate) fn pipeline_basic(config: &ServerConfig, project: &Project, p: &Pipeline) -> Value {
    json!({
        "id": p.id,
        "iid": p.iid,
        "project_id": p.project_id,
        "sha": p.sha,
        "ref": p.ref_name,
        "status": p.status.as_str(),
        "source": p.source.as_str(),
        "name": p.name,
        "created_at": entities::time(p.created_at),
        "updated_at": entities::time(p.updated_at),
        "web_url": format!("{}/{}/-/pipelines/{}", config.external_url, project.full_path(), p.id),
    })
}

pub async fn job_json(
    state: &AppState,
    project: &Project,
    pipeline: &Pipeline,
    job: &Job,
) -> ApiResult<Value> {
    let config: &ServerConfig = &state.config;
    let user = match pipeline.user_id {
        Some(id) => state
            .store
            .user(id)
            .await?
            // GitLab's job entity shows `Entities::User`: no email, no admin flag.
            .map(|u| entities::user(config, &u)),
        None => None,
    };
    let commit = state
        .repos
        .commit_async(project.id, &pipeline.sha)
        .await
        .ok()
        .flatten()
        .map(|c| super::repository::commit_json(config, &project.full_path(), &c));
    let spec: Value = serde_json::from_str(&job.spec).unwrap_or(Value::Null);
    Ok(json!({
        "id": job.id,
        "name": job.name,
        "stage": job.stage,
        "status": job.status.as_str(),
        "ref": pipeline.ref_name,
        "tag": pipeline.tag,
        "allow_failure": job.allow_failure,
        "when": job.when,
        "created_at": entities::time(job.created_at),
        "started_at": entities::opt_time(job.started_at),
        "finished_at": entities::opt_time(job.finished_at),
        "erased_at": entities::opt_time(job.erased_at),
        "duration": seconds_between(job.started_at, job.finished_at),
        "queued_duration": seconds_between(job.queued_at, job.started_at),
        "coverage": null,
        "failure_reason": job.failure_reason,
        "user": user,
        "commit": commit,
        "pipeline": {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "project_id": pipeline.project_id,
            "ref": pipeline.ref_name,
            "sha": pipeline.sha,
            "status": pipeline.status.as_str(),
            "source": pipeline.source.as_str(),
        },
        "web_url": format!("{}/{}/-/jobs/{}", config.external_url, project.full_path(), job.id),
        "project": {"ci_job_token_scope_enabled": true},
        "artifacts_file": job.artifacts.as_ref().map(|a| json!({"filename": a.filename, "size": a.size})),
        "artifacts": job.artifacts.as_ref().map(|a| vec![json!({
            "file_type": "archive", "size": a.size, "filename": a.filename, "file_format": "zip",
        })]).unwrap_or_default(),
        "artifacts_expire_at": entities::opt_time(job.artifacts.as_ref().and_then(|a| a.expire_at)),
        "tag_list": spec.get("tags").cloned().unwrap_or_else(|| json!([])),
        "runner": job.runner_id.map(|id| json!({"id": id})),
        "runner_manager": null,
        "archived": false,
    }))
}

pub(super) fn parse_statuses(params: &Params, key: &str) -> ApiResult<Vec<Status>> {
    let Some(values) = params.string_list(key)? else {
        return Ok(Vec::new());
    };
    values
        .iter()
        .map(|v| {
            Status::parse(v)
                .ok_or_else(|| ApiError::ParamError(format!("{key} does not have a valid value")))
        })
        .collect()
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let page = page_from(&params)?;
    let mut filter = PipelineFilter {
        statuses: parse_statuses(&params, "status")?,
        ..PipelineFilter::default()
    };
    match params.str("scope")?.as_deref() {
        None => {}
        Some("running") => filter.statuses = vec![Status::Running],
        Some("pending") => filter.statuses = vec![Status::Pending],
        Some("finished") => {
            filter.statuses = vec![
                Status::Success,
                Status::Failed,
                Status::Canceled,
                Status::Skipped,
            ]
        }
        Some("branches") | Some("tags") => {}
        Some(_) => {
            return Err(ApiError::ParamError(
                "scope does not have a valid value".into(),
            ));
        }
    }
    if let Some(source) = params.str("source")? {
        filter.source =
            Some(PipelineSource::parse(&source).ok_or_else(|| {
                ApiError::ParamError("source does not have a valid value".into())
            })?);
    }
    filter.ref_name = params.str("ref")?;
    filter.sha = params.str("sha")?;
    if let Some(username) = params.str("username")? {
        match state.store.user_by_username(&username).await? {
            Some(u) => filter.user_id = Some(u.id),
            None => filter.user_id = Some(-1),
        }
    }
    for (key, slot) in [
        ("updated_after", &mut filter.updated_after),
        ("updated_before", &mut filter.updated_before),
    ] {
        if let Some(text) = params.str(key)? {
            *slot =
                Some(Timestamp::parse(&text).ok_or_else(|| ApiError::InvalidParam(key.into()))?);
        }
    }
    filter.order_by = match params.str("order_by")?.as_deref() {
        None | Some("id") => PipelineOrder::Id,
        Some("status") => PipelineOrder::Status,
        Some("ref") => PipelineOrder::Ref,
        Some("updated_at") => PipelineOrder::UpdatedAt,
        Some("user_id") => PipelineOrder::UserId,
        Some(_) => {
            return Err(ApiError::ParamError(
                "order_by does not have a valid value".into(),
            ));
        }
    };
    filter.ascending = match params.str("sort")?.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => {
            return Err(ApiError::ParamError(
                "sort does not have a valid value".into(),
            ));
        }
    };
    let result = state.store.pipelines(project.id, &filter, page).await?;
    let items: Vec<Value> = result
        .items
        .iter()
        .map(|p| pipeline_basic(&state.config, &project, p))
        .collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

pub(super) async fn find_pipeline(
    state: &AppState,
    project: &Project,
    seg: &Segments,
) -> ApiResult<Pipeline> {
    let id = seg.id("pipeline_id", "")?;
    state
        .store
        .pipeline(project.id, id)
        .await?
        .ok_or(ApiError::NotFound(""))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let pipeline = find_pipeline(&state, &project, &seg).await?;
    Ok(Json(
        pipeline_json(&state, &caller, &project, &pipeline).await?,
    ))
}

async fn latest(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let ref_name = params
        .str("ref")?
        .unwrap_or_else(|| project.default_branch.clone());
    let filter = PipelineFilter {
        ref_name: Some(ref_name),
        ..PipelineFilter::default()
    };
    let page = pipewright_store::Page {
        page: 1,
        per_page: 1,
    };
    let pipeline = state
        .store
        .pipelines(project.id, &filter, page)
        .await?
        .items
        .into_iter()
        .next();
    let pipeline = pipeline.ok_or(ApiError::NotFound(""))?;
    Ok(Json(
        pipeline_json(&state, &caller, &project, &pipeline).await?,
    ))
}

async fn variables(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let pipeline = find_pipeline(&state, &project, &seg).await?;
    // Values of pipeline (trigger) variables are for Maintainers and Owners only.
    if !access.can(Action::ReadPipelineVariableValues) {
        return Err(ApiError::forbidden());
    }
    let out = crate::domain::pipeline_variables::opened(&state, pipeline.id)
        .await
        .map_err(ApiError::Internal)?
        .into_iter()
        .map(|v| {
            json!({
                "key": v.key,
                "value": v.value,
                "variable_type": v.variable_type.as_str(),
                "raw": false,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

async fn jobs(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let pipeline = find_pipeline(&state, &project, &seg).await?;
    let page = page_from(&params)?;
    let scope = parse_statuses(&params, "scope")?;
    let result = state.store.pipeline_jobs(pipeline.id, &scope, page).await?;
    let mut items = Vec::with_capacity(result.items.len());
    for job in &result.items {
        items.push(job_json(&state, &project, &pipeline, job).await?);
    }
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

async fn job(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    // GitLab's jobs API is for signed-in callers only (lib/api/ci/jobs.rb).
    caller.required()?;
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let id = seg.id("job_id", "")?;
    let job = state
        .store
        .job(project.id, id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    let pipeline = state
        .store
        .pipeline(project.id, job.pipeline_id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    Ok(Json(job_json(&state, &project, &pipeline, &job).await?))
}

async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::DeletePipelines).await?;
    let pipeline = find_pipeline(&state, &project, &seg).await?;
    state.store.delete_pipeline(pipeline.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Maps the creation chain's outcome to GitLab's responses: 201, 400 or 422.
pub async fn respond(
    state: &AppState,
    project: &Project,
    result: Result<pipewright_store::Pipeline, CreateError>,
    user: Option<&pipewright_store::User>,
) -> ApiResult<Response> {
    match result {
        Ok(pipeline) => Ok((
            StatusCode::CREATED,
            Json(pipeline_json_for(state, project, &pipeline, user).await?),
        )
            .into_response()),
        Err(error) => Err(creation_error(error)),
    }
}

/// GitLab's answer to a creation chain's error: 400 (nothing saved), 422 (a config error).
fn creation_error(error: CreateError) -> ApiError {
    match error {
        CreateError::Rejected(message) => ApiError::base(&message),
        CreateError::ConfigError(_, message) => config_error(message),
        CreateError::Internal(e) => ApiError::Internal(e),
    }
}

fn config_error(message: String) -> ApiError {
    ApiError::Custom(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": {"base": [message]}}),
    )
}

/// `dry_run=true`'s answer (issue 14 §6): 200 with the pipeline the request would create and
/// why each job is in or out, or the error the real request would get.
pub fn respond_dry_run(result: Result<DryRunOutcome, CreateError>) -> ApiResult<Response> {
    let dry_run = match result {
        Ok(DryRunOutcome::Planned(dry_run)) => dry_run,
        Ok(DryRunOutcome::ConfigError(message)) => return Err(config_error(message)),
        Err(error) => return Err(creation_error(error)),
    };
    let jobs: Vec<Value> = dry_run
        .jobs
        .iter()
        .map(|job| {
            json!({
                "name": job.name,
                "stage": job.stage,
                "when": job.when,
                "allow_failure": job.allow_failure,
                "needs": job.needs,
                "reason": job.reason,
            })
        })
        .collect();
    let excluded: Vec<Value> = dry_run
        .excluded
        .iter()
        .map(|(name, reason)| json!({"name": name, "reason": reason}))
        .collect();
    Ok(Json(json!({
        "dry_run": true,
        "ref": dry_run.ref_name,
        "sha": dry_run.sha,
        "source": dry_run.source.as_str(),
        "jobs": jobs,
        "excluded": excluded,
    }))
    .into_response())
}
