//! Acting on jobs and pipelines: `GET /projects/:id/jobs` (with `scope[]`),
//! `POST …/jobs/:job_id/cancel|retry|play|erase`, `POST …/pipelines/:pipeline_id/cancel|retry`,
//! and `GET /job` for a `CI_JOB_TOKEN`. The state changes themselves live in
//! [`crate::domain::job_processing`]; this module checks permissions and answers as GitLab does.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_store::{Job, Pipeline, Project};
use serde_json::Value;

use super::pipelines::{find_pipeline, job_json, parse_statuses, pipeline_json};
use crate::auth::Caller;
use crate::auth::JobTokenCaller;
use crate::domain::linked_pipelines::LinkedProjects;
use crate::domain::manual_actions::{self, JobAction, PipelineAction};
use crate::domain::projects::authorize_project;
use crate::domain::{dispatch, job_processing};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let job = "/api/v4/projects/{id}/jobs/{job_id}";
    let pipeline = "/api/v4/projects/{id}/pipelines/{pipeline_id}";
    vec![
        Route::get("/api/v4/projects/{id}/jobs", list, SignedInToRead),
        Route::post(format!("{job}/cancel"), cancel, Developer),
        Route::post(format!("{job}/retry"), retry, Developer),
        Route::post(format!("{job}/play"), play, Developer),
        Route::post(format!("{job}/erase"), erase, Maintainer),
        Route::post(format!("{pipeline}/cancel"), cancel_pipeline, Developer),
        Route::post(format!("{pipeline}/retry"), retry_pipeline, Developer),
        Route::get("/api/v4/job", current_job, JobToken),
        Route::get(format!("{pipeline}/bridges"), bridges, Read),
    ]
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::Internal(e)
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    // GitLab's jobs API is for signed-in callers only (lib/api/ci/jobs.rb,
    // `before { authenticate! }`), even on public projects.
    caller.required()?;
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let page = page_from(&params)?;
    let scope = parse_statuses(&params, "scope")?;
    let result = state.store.project_jobs(project.id, &scope, page).await?;
    let mut items = Vec::with_capacity(result.items.len());
    for job in &result.items {
        items.push(render(&state, &project, job).await?);
    }
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

async fn render(state: &AppState, project: &Project, job: &Job) -> ApiResult<Value> {
    let pipeline = state
        .store
        .pipeline(project.id, job.pipeline_id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    job_json(state, project, &pipeline, job).await
}

/// The project and job for a change by hand, if the caller has the role `needed` and may
/// `action` the job ([`manual_actions::may_change_job`]: its protected ref, a bridge's
/// downstream branch); `403 Forbidden` otherwise, as GitLab's `authorize!` answers.
async fn target(
    state: &AppState,
    caller: &Caller,
    seg: &Segments,
    needed: Action,
    action: JobAction,
) -> ApiResult<(Project, Job)> {
    let (project, access) = authorize_project(state, caller, seg.get("id")?, needed).await?;
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
    let user = caller.0.as_ref().map(|a| &a.user);
    if !manual_actions::may_change_job(state, &access, user, &pipeline, &job, action).await? {
        return Err(ApiError::forbidden());
    }
    Ok((project, job))
}

/// The project and pipeline for a change by hand, as [`target`] finds a job's.
async fn target_pipeline(
    state: &AppState,
    caller: &Caller,
    seg: &Segments,
    action: PipelineAction,
) -> ApiResult<(Project, Pipeline)> {
    let (project, access) =
        authorize_project(state, caller, seg.get("id")?, Action::UpdatePipelines).await?;
    let pipeline = find_pipeline(state, &project, seg).await?;
    let user = caller.0.as_ref().map(|a| &a.user);
    if !manual_actions::may_change_pipeline(state, &access, user, &pipeline, action).await? {
        return Err(ApiError::forbidden());
    }
    Ok((project, pipeline))
}

/// Answers an action with the job as it is now.
async fn answer(
    state: &AppState,
    project: &Project,
    id: i64,
    status: StatusCode,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let job = state
        .store
        .job(project.id, id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    Ok((status, Json(render(state, project, &job).await?)))
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, job) = target(
        &state,
        &caller,
        &seg,
        Action::UpdatePipelines,
        JobAction::Cancel,
    )
    .await?;
    // Canceling a finished job is a no-op that still answers with the job, as GitLab does.
    dispatch::cancel_job(&state, &job).await.map_err(internal)?;
    answer(&state, &project, job.id, StatusCode::CREATED).await
}

async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, job) = target(
        &state,
        &caller,
        &seg,
        Action::UpdatePipelines,
        JobAction::Retry,
    )
    .await?;
    let Some(new_job) = dispatch::retry_job(&state, &job).await.map_err(internal)? else {
        return Err(ApiError::Forbidden(Some("Job is not retryable".into())));
    };
    answer(&state, &project, new_job.id, StatusCode::CREATED).await
}

async fn play(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, job) = target(
        &state,
        &caller,
        &seg,
        Action::UpdatePipelines,
        JobAction::Play,
    )
    .await?;
    if !dispatch::play_job(&state, &job).await.map_err(internal)? {
        return Err(ApiError::BadRequest(format!(
            "Unplayable Job: {}",
            job.name
        )));
    }
    answer(&state, &project, job.id, StatusCode::OK).await
}

async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, job) = target(
        &state,
        &caller,
        &seg,
        Action::DeleteArtifacts,
        JobAction::Erase,
    )
    .await?;
    if !manual_actions::erase_job(&state, &job).await? {
        return Err(ApiError::Forbidden(Some("Job is not erasable!".into())));
    }
    answer(&state, &project, job.id, StatusCode::CREATED).await
}

async fn cancel_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, pipeline) =
        target_pipeline(&state, &caller, &seg, PipelineAction::Cancel).await?;
    dispatch::cancel_pipeline(&state, pipeline.id)
        .await
        .map_err(internal)?;
    let pipeline = find_pipeline(&state, &project, &seg).await?;
    Ok((
        StatusCode::CREATED,
        Json(pipeline_json(&state, &caller, &project, &pipeline).await?),
    ))
}

async fn retry_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, pipeline) = target_pipeline(&state, &caller, &seg, PipelineAction::Retry).await?;
    if !job_processing::pipeline_retryable(pipeline.status) {
        return Err(ApiError::Forbidden(Some(
            "Pipeline is not retryable".into(),
        )));
    }
    dispatch::retry_pipeline(&state, pipeline.id)
        .await
        .map_err(internal)?;
    let pipeline = find_pipeline(&state, &project, &seg).await?;
    Ok((
        StatusCode::CREATED,
        Json(pipeline_json(&state, &caller, &project, &pipeline).await?),
    ))
}

/// `GET /job`: the job a `CI_JOB_TOKEN` belongs to.
async fn current_job(
    State(state): State<AppState>,
    JobTokenCaller(job): JobTokenCaller,
) -> ApiResult<Json<Value>> {
    let job = job.ok_or(ApiError::Unauthorized)?;
    let project = state
        .store
        .project(job.project_id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    Ok(Json(render(&state, &project, &job).await?))
}

/// `GET /projects/:id/pipelines/:pipeline_id/bridges`: the pipeline's `trigger:` jobs, each
/// with the `downstream_pipeline` it started.
async fn bridges(
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
    let bridges: Vec<Job> = state
        .store
        .pipeline_all_jobs(pipeline.id)
        .await?
        .into_iter()
        .filter(crate::domain::job_spec::is_bridge)
        .filter(|j| scope.is_empty() || scope.contains(&j.status))
        .collect();
    let total = bridges.len() as i64;
    let start = (page.page.saturating_sub(1) as usize) * page.per_page as usize;
    let mut linked = LinkedProjects::new(&state, caller.clone(), &project);
    let mut items = Vec::new();
    for bridge in bridges.iter().skip(start).take(page.per_page as usize) {
        let mut item = job_json(&state, &project, &pipeline, bridge).await?;
        let downstream = state.store.downstream_pipeline(bridge.id).await?;
        item["downstream_pipeline"] = match downstream {
            // A pipeline in a project the caller may not read is `null`, like one not yet
            // created: its project's path must not show.
            Some(d) => match linked.readable(d.project_id).await? {
                None => Value::Null,
                Some(p) => serde_json::json!({
                    "id": d.id, "iid": d.iid, "project_id": d.project_id, "sha": d.sha,
                    "ref": d.ref_name, "status": d.status.as_str(), "source": d.source.as_str(),
                    "created_at": crate::entities::time(d.created_at),
                    "updated_at": crate::entities::time(d.updated_at),
                    "web_url": format!(
                        "{}/{}/-/pipelines/{}",
                        state.config.external_url,
                        p.full_path(),
                        d.id
                    ),
                }),
            },
            None => Value::Null,
        };
        items.push(item);
    }
    Ok(Paginated::new(items, total, page, &state.config.external_url, &uri).into_response())
}
