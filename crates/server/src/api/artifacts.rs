//! Job artifacts over the API: the runner uploads a job's zip (`POST /jobs/:id/artifacts`),
//! later jobs and people download it whole or one file at a time, by job id or as "the `NAME`
//! job of the latest successful pipeline for this ref", keep it or delete it. Where archives
//! live and how they expire is [`crate::domain::artifacts`].

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pipewright_store::{Job, Project};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::auth::Caller;
use crate::auth::{JobTokenCaller, running_job};
use crate::domain::artifacts;
use crate::domain::manual_actions::{self, JobAction};
use crate::domain::projects::authorize_project;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes(max_upload: usize) -> Vec<Route> {
    use Access::*;
    vec![
        Route::post("/api/v4/jobs/{id}/artifacts", upload, OwnJobToken).body_limit(max_upload),
        Route::get(
            "/api/v4/jobs/{id}/artifacts",
            download_for_runner,
            OwnJobToken,
        ),
        Route::get(
            "/api/v4/projects/{id}/jobs/{job_id}/artifacts",
            download,
            ReadOrJobToken,
        ),
        Route::delete(
            "/api/v4/projects/{id}/jobs/{job_id}/artifacts",
            destroy,
            Maintainer,
        ),
        Route::post(
            "/api/v4/projects/{id}/jobs/{job_id}/artifacts/keep",
            keep,
            Developer,
        ),
        Route::get(
            "/api/v4/projects/{id}/jobs/{job_id}/artifacts/{*artifact_path}",
            download_file,
            ReadOrJobToken,
        ),
        Route::get(
            "/api/v4/projects/{id}/jobs/artifacts/{*rest}",
            download_by_ref,
            ReadOrJobToken,
        ),
    ]
}

fn internal(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::Internal(e.into())
}

/// `POST /jobs/:id/artifacts` (runner, `JOB-TOKEN`): multipart `file` plus `artifact_type`,
/// `artifact_format` and `expire_in`. Only the `archive` zip is kept; reports are accepted and
/// dropped, as a runner must not fail for them.
async fn upload(
    State(state): State<AppState>,
    seg: Segments,
    caller: Result<JobTokenCaller, ApiError>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let id = seg.id("id", "Job")?;
    // Only the job's own running token; anything else is 403, as GitLab's
    // `authenticate_job!` answers (lib/api/ci/helpers/runner.rb).
    let job = match caller.map_err(job_refusal)? {
        JobTokenCaller(Some(job)) if job.id == id => job,
        _ => return Err(ApiError::forbidden()),
    };
    // Not multipart at all: GitLab's 400, not axum's plain-text rejection.
    let mut multipart =
        multipart.map_err(|_| ApiError::BadRequest("invalid multipart body".into()))?;
    let tmp = artifacts::new_upload(&state, job.id).await?;
    let (fields, received) = read_upload(&mut multipart, &tmp).await?;
    let Some((filename, size)) = received else {
        return Err(ApiError::MissingParam("file".into()));
    };
    let artifact_type = fields
        .get("artifact_type")
        .map(String::as_str)
        .unwrap_or("archive");
    if artifact_type != "archive" {
        return Ok((StatusCode::CREATED, Json(json!({"id": job.id}))).into_response());
    }
    let expire_in = fields.get("expire_in").map(String::as_str);
    artifacts::keep_upload(&state, job.id, tmp, filename, size, expire_in).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": job.id}))).into_response())
}

/// The upload's form fields, and the `file` field's name and size; its bytes go to `tmp`,
/// synced.
async fn read_upload(
    multipart: &mut Multipart,
    tmp: &std::path::Path,
) -> ApiResult<(HashMap<String, String>, Option<(String, i64)>)> {
    let mut fields = HashMap::new();
    let mut received = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let filename = field.file_name().unwrap_or("artifacts.zip").to_string();
            let mut file = tokio::fs::File::create(tmp).await.map_err(internal)?;
            let mut size = 0i64;
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                size += chunk.len() as i64;
                file.write_all(&chunk).await.map_err(internal)?;
            }
            file.sync_all().await.map_err(internal)?;
            received = Some((filename, size));
        } else {
            let text = field.text().await.map_err(multipart_error)?;
            fields.insert(name, text);
        }
    }
    Ok((fields, received))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest("invalid multipart body".into())
    }
}

/// `GET /jobs/:id/artifacts` (runner): a dependency's archive, for a running job of the same
/// pipeline (or project).
async fn download_for_runner(
    State(state): State<AppState>,
    seg: Segments,
    caller: Result<JobTokenCaller, ApiError>,
    params: Params,
) -> ApiResult<Response> {
    let id = seg.id("id", "Job")?;
    // A missing, unknown or finished job token, an unknown job and another project's job are
    // all 403, as GitLab's `authenticate_job_via_dependent_job!` answers
    // (lib/api/ci/helpers/runner.rb).
    let requester = match caller.map_err(job_refusal)? {
        JobTokenCaller(Some(job)) => job,
        JobTokenCaller(None) => match params.str("token")? {
            Some(token) => running_job(&state, &token).await.map_err(job_refusal)?,
            None => return Err(ApiError::forbidden()),
        },
    };
    let job = state
        .store
        .job_by_id(id)
        .await?
        .filter(|job| job.project_id == requester.project_id)
        .ok_or_else(ApiError::forbidden)?;
    serve_archive(&state, &job).await
}

/// A job token the runner endpoints refuse: GitLab's 403, whatever the reason (a failure to
/// look it up stays a 500).
fn job_refusal(err: ApiError) -> ApiError {
    match err {
        ApiError::Internal(e) => ApiError::Internal(e),
        _ => ApiError::forbidden(),
    }
}

/// Who may read a project's artifacts: a user who can read its pipelines, or a running job
/// acting as its user, in its own project or one whose job token scope lets it in.
async fn readable_project(
    state: &AppState,
    caller: &Caller,
    job_caller: &Option<Job>,
    id: &str,
) -> ApiResult<Project> {
    if let Some(job) = job_caller {
        let project = crate::domain::projects::lookup(state, id)
            .await?
            .ok_or(ApiError::NotFound("Project"))?;
        let (_, access) = crate::domain::job_token::job_access(state, job, &project).await?;
        if !access.can(Action::ReadPipelines) {
            return Err(ApiError::forbidden());
        }
        return Ok(project);
    }
    let (project, _) = authorize_project(state, caller, id, Action::ReadPipelines).await?;
    Ok(project)
}

async fn project_job(state: &AppState, project: &Project, seg: &Segments) -> ApiResult<Job> {
    let id = seg.id("job_id", "")?;
    state
        .store
        .job(project.id, id)
        .await?
        .ok_or(ApiError::NotFound(""))
}

async fn download(
    State(state): State<AppState>,
    caller: Caller,
    JobTokenCaller(job_caller): JobTokenCaller,
    seg: Segments,
) -> ApiResult<Response> {
    let project = readable_project(&state, &caller, &job_caller, seg.get("id")?).await?;
    let job = project_job(&state, &project, &seg).await?;
    serve_archive(&state, &job).await
}

async fn download_file(
    State(state): State<AppState>,
    caller: Caller,
    JobTokenCaller(job_caller): JobTokenCaller,
    seg: Segments,
) -> ApiResult<Response> {
    let project = readable_project(&state, &caller, &job_caller, seg.get("id")?).await?;
    let job = project_job(&state, &project, &seg).await?;
    serve_entry(&state, &job, seg.get("artifact_path")?).await
}

/// `GET /projects/:id/jobs/artifacts/:ref_name/download?job=NAME` and
/// `…/:ref_name/raw/*artifact_path?job=NAME`: from the latest successful pipeline for the ref.
async fn download_by_ref(
    State(state): State<AppState>,
    caller: Caller,
    JobTokenCaller(job_caller): JobTokenCaller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let project = readable_project(&state, &caller, &job_caller, seg.get("id")?).await?;
    let rest = seg.get("rest")?;
    let (ref_name, entry) = if let Some(r) = rest.strip_suffix("/download") {
        (r, None)
    } else if let Some((r, path)) = rest.split_once("/raw/") {
        (r, Some(path))
    } else {
        return Err(ApiError::NotFound(""));
    };
    let name = params.non_blank("job")?;
    let job = state
        .store
        .latest_successful_job_for_ref(project.id, ref_name, &name)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    match entry {
        None => serve_archive(&state, &job).await,
        Some(path) => serve_entry(&state, &job, path).await,
    }
}

pub async fn serve_archive(state: &AppState, job: &Job) -> ApiResult<Response> {
    let (file, artifacts) = artifacts::open_archive(state, job)
        .await
        .ok_or(ApiError::NotFound(""))?;
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut res = Body::from_stream(stream).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        artifacts.filename.replace(['"', '\\', '\r', '\n'], "_")
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&artifacts.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    Ok(res)
}

/// One file out of a job's archive.
pub async fn serve_entry(state: &AppState, job: &Job, path: &str) -> ApiResult<Response> {
    let data = artifacts::read_entry(state, job, path)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    let mut res = (StatusCode::OK, data).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(res)
}

async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::DeleteArtifacts).await?;
    let job = project_job(&state, &project, &seg).await?;
    artifacts::remove(&state, &job).await.map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn keep(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::UpdatePipelines).await?;
    let job = project_job(&state, &project, &seg).await?;
    let pipeline = state
        .store
        .pipeline(project.id, job.pipeline_id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    // GitLab: `authorize!(:update_build, build)` (lib/api/ci/job_artifacts.rb), which a
    // protected branch the caller may not update prevents.
    let user = caller.0.as_ref().map(|a| &a.user);
    let keep = JobAction::KeepArtifacts;
    if !manual_actions::may_change_job(&state, &access, user, &pipeline, &job, keep).await? {
        return Err(ApiError::forbidden());
    }
    if !artifacts::keep_forever(&state, &job).await? {
        return Err(ApiError::NotFound(""));
    }
    let job = project_job(&state, &project, &seg).await?;
    Ok(Json(
        super::pipelines::job_json(&state, &project, &pipeline, &job).await?,
    ))
}
