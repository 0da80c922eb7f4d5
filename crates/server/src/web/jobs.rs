//! The jobs pages: `/<ns>/<project>/-/jobs` (every job, with the `triggered` badge on jobs of
//! trigger-token pipelines) and `/<ns>/<project>/-/jobs/:id` (the log, live while the job runs;
//! the sidebar with timings, runner, pipeline, trigger token and trigger variables; artifacts;
//! retry, cancel and play), plus the log's JSON feed and the artifacts browser.

use std::collections::HashMap;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use pipewright_core::{PipelineSource, Status};
use pipewright_logview::Cursor;
use pipewright_store::{Job, Project};
use serde_json::json;

use super::access::{project_for, project_form};
use super::error::{WebError, WebResult};
use super::pipelines::{VariableRow, users_by_id, variable_rows};
use super::session::Viewer;
use super::view::{self, Flash, Layout, ProjectNav, StatusView, Window};
use crate::api::artifacts;
use crate::domain::dispatch;
use crate::domain::manual_actions::{self, JobAction};
use crate::params::Params;
use crate::permissions::Action;
use crate::state::AppState;

pub struct JobRow {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub status: StatusView,
    pub stage: String,
    pub pipeline_id: i64,
    pub pipeline_url: String,
    pub triggered: bool,
    pub ref_name: String,
    pub user: String,
    pub duration: String,
    pub created_ago: String,
    pub retried: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
    pub status: Option<String>,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct ListPage {
    layout: Layout,
    full_path: String,
    jobs: Vec<JobRow>,
    status: String,
    tabs: Vec<(&'static str, &'static str)>,
    page: u32,
    prev_url: Option<String>,
    next_url: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> WebResult<Response> {
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadPipelines).await?;
    let page = view::page_number(query.page.as_deref());
    let status = query.status.as_deref().and_then(Status::parse);
    let statuses: Vec<Status> = status.into_iter().collect();
    let window = Window { page };
    let (jobs, more) = window.split(
        state
            .store
            .project_jobs_window(project.id, &statuses, window.limit(), window.offset())
            .await?,
    );
    let mut pipeline_ids: Vec<i64> = jobs.iter().map(|j| j.pipeline_id).collect();
    pipeline_ids.sort_unstable();
    pipeline_ids.dedup();
    let pipelines: HashMap<i64, pipewright_store::Pipeline> = state
        .store
        .pipelines_by_ids(&pipeline_ids)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let ids = pipelines.values().filter_map(|p| p.user_id).collect();
    let users = users_by_id(&state, ids).await?;
    let full_path = project.full_path();
    let rows = jobs
        .iter()
        .map(|job| {
            let pipeline = pipelines.get(&job.pipeline_id);
            JobRow {
                id: job.id,
                name: job.name.clone(),
                url: format!("/{full_path}/-/jobs/{}", job.id),
                status: StatusView::of_job(job.status, job.allow_failure),
                stage: job.stage.clone(),
                pipeline_id: job.pipeline_id,
                pipeline_url: format!("/{full_path}/-/pipelines/{}", job.pipeline_id),
                triggered: pipeline.is_some_and(|p| p.source == PipelineSource::Trigger),
                ref_name: pipeline.map(|p| p.ref_name.clone()).unwrap_or_default(),
                user: pipeline
                    .and_then(|p| p.user_id)
                    .and_then(|id| users.get(&id))
                    .map(|u| u.username.clone())
                    .unwrap_or_default(),
                duration: view::seconds_between(job.started_at, job.finished_at)
                    .map(view::duration)
                    .unwrap_or_default(),
                created_ago: view::time_ago(job.created_at),
                retried: job.retried,
            }
        })
        .collect();
    let base = format!("/{full_path}/-/jobs");
    let status_q = status
        .map(|s| format!("status={}&", s.as_str()))
        .unwrap_or_default();
    let page_view = ListPage {
        layout: Layout::new(&viewer, &headers, format!("Jobs · {}", project.name))
            .with_project(ProjectNav::new(&project, &access, "jobs")),
        full_path: full_path.clone(),
        jobs: rows,
        status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        tabs: vec![
            ("", "All"),
            ("pending", "Pending"),
            ("running", "Running"),
            ("success", "Passed"),
            ("failed", "Failed"),
            ("manual", "Manual"),
        ],
        page,
        prev_url: (page > 1).then(|| format!("{base}?{status_q}page={}", page - 1)),
        next_url: more.then(|| format!("{base}?{status_q}page={}", page + 1)),
    };
    view::render(&state, &page_view.layout, &page_view)
}

async fn find_job(state: &AppState, project: &Project, id: &str) -> WebResult<Job> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    state
        .store
        .job(project.id, id)
        .await?
        .ok_or(WebError::NotFound)
}

#[derive(Template)]
#[template(path = "job.html")]
struct ShowPage {
    layout: Layout,
    full_path: String,
    job_id: i64,
    name: String,
    stage: String,
    status: StatusView,
    failure_reason: String,
    pipeline_id: i64,
    pipeline_url: String,
    ref_name: String,
    short_sha: String,
    triggered: bool,
    trigger_short_token: String,
    trigger_variables: Vec<VariableRow>,
    can_reveal: bool,
    duration: String,
    queued: String,
    started_ago: String,
    finished_ago: String,
    runner: String,
    log_html: String,
    log_cursor: String,
    log_complete: bool,
    trace_url: String,
    erased: bool,
    artifacts: Option<ArtifactsView>,
    can_retry: bool,
    can_cancel: bool,
    can_play: bool,
    can_keep: bool,
    live: bool,
}

pub struct ArtifactsView {
    pub size: String,
    pub expires: String,
}

pub fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b < 1024.0 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path, id)): Path<(String, String, String)>,
) -> WebResult<Response> {
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadPipelines).await?;
    if let Some(id) = id.strip_suffix(".json") {
        return details_json(&state, &project, &access, id).await;
    }
    let job = find_job(&state, &project, &id).await?;
    let pipeline = state
        .store
        .pipeline_by_id(job.pipeline_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let triggered = pipeline.source == PipelineSource::Trigger;
    let can_reveal = access.can(Action::ReadPipelineVariableValues);
    let trigger_variables = if triggered {
        variable_rows(&state, pipeline.id, can_reveal).await?
    } else {
        Vec::new()
    };
    let runner = match job.runner_id {
        Some(id) => match state.store.runner(id).await? {
            Some(r) if !r.description.is_empty() => format!("#{} ({})", r.id, r.description),
            Some(r) => format!("#{}", r.id),
            None => format!("#{id}"),
        },
        None => String::new(),
    };
    let complete = job.status.is_complete();
    let trace = state.store.job_trace(job.id).await?;
    let (items, cursor) = pipewright_logview::render(&trace, &Cursor::default(), complete);
    // On a protected branch, only those who may update it may act on its jobs.
    let can_update = access.can(Action::UpdatePipelines)
        && crate::domain::protected_refs::may_update(&state, &access, &pipeline).await?;
    let full_path = project.full_path();
    let page = ShowPage {
        layout: Layout::new(
            &viewer,
            &headers,
            format!("{} (#{}) · {}", job.name, job.id, project.name),
        )
        .with_project(ProjectNav::new(&project, &access, "jobs")),
        trace_url: format!("/{full_path}/-/jobs/{}/trace.json", job.id),
        pipeline_url: format!("/{full_path}/-/pipelines/{}", pipeline.id),
        full_path,
        job_id: job.id,
        name: job.name.clone(),
        stage: job.stage.clone(),
        status: StatusView::of_job(job.status, job.allow_failure),
        failure_reason: job.failure_reason.clone().unwrap_or_default(),
        pipeline_id: pipeline.id,
        ref_name: pipeline.ref_name.clone(),
        short_sha: view::short_sha(&pipeline.sha),
        triggered,
        trigger_short_token: pipeline.trigger_short_token.clone().unwrap_or_default(),
        trigger_variables,
        can_reveal,
        duration: view::seconds_between(job.started_at, job.finished_at)
            .map(view::duration)
            .unwrap_or_default(),
        queued: view::seconds_between(job.queued_at, job.started_at.or(job.finished_at))
            .map(view::duration)
            .unwrap_or_default(),
        started_ago: job.started_at.map(view::time_ago).unwrap_or_default(),
        finished_ago: job.finished_at.map(view::time_ago).unwrap_or_default(),
        runner,
        log_html: pipewright_logview::to_html(&items),
        log_cursor: cursor.encode(),
        log_complete: complete,
        erased: job.erased_at.is_some(),
        artifacts: job.artifacts.as_ref().map(|a| ArtifactsView {
            size: human_size(a.size),
            expires: a
                .expire_at
                .map(view::time_ago)
                .unwrap_or_else(|| "never".into()),
        }),
        can_retry: can_update
            && complete
            && !job.retried
            && !crate::domain::job_spec::is_bridge(&job),
        can_cancel: can_update && !complete,
        can_play: can_update
            && job.status == Status::Manual
            && (!crate::domain::job_spec::is_bridge(&job)
                || crate::domain::bridges::user_may_start(&state, viewer.user.as_ref(), &job)
                    .await?),
        live: view::is_live(job.status),
        can_keep: can_update
            && job
                .artifacts
                .as_ref()
                .is_some_and(|a| a.expire_at.is_some()),
    };
    view::render(&state, &page.layout, &page)
}

/// `GET …/-/jobs/:id.json`: GitLab's `BuildDetailsEntity` subset that scripts read for a
/// triggered job: `trigger.short_token` and `trigger.variables`, whose values only Maintainers
/// and Owners get (GitLab's `admin_build`).
async fn details_json(
    state: &AppState,
    project: &Project,
    access: &crate::permissions::ProjectAccess,
    id: &str,
) -> WebResult<Response> {
    let job = find_job(state, project, id).await?;
    let pipeline = state
        .store
        .pipeline_by_id(job.pipeline_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let status = StatusView::of_job(job.status, job.allow_failure);
    let mut body = json!({
        "id": job.id,
        "name": job.name,
        "stage": job.stage,
        "status": {"group": status.name, "label": status.label, "text": status.label},
        "pipeline": {"id": pipeline.id, "ref": pipeline.ref_name, "source": pipeline.source.as_str()},
        "started_at": job.started_at.map(view::iso),
        "finished_at": job.finished_at.map(view::iso),
        "duration": view::seconds_between(job.started_at, job.finished_at),
    });
    if pipeline.source == PipelineSource::Trigger {
        let reveal = access.can(Action::ReadPipelineVariableValues);
        let variables: Vec<_> = variable_rows(state, pipeline.id, reveal)
            .await?
            .into_iter()
            .map(|v| match v.value {
                Some(value) => json!({"key": v.key, "public": false, "value": value}),
                None => json!({"key": v.key, "public": false}),
            })
            .collect();
        body["trigger"] = json!({
            "short_token": pipeline.trigger_short_token,
            "variables": variables,
        });
    }
    Ok(Json(body).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct TraceQuery {
    pub cursor: Option<String>,
}

/// `GET …/-/jobs/:id/trace.json?cursor=…`: the log items after the cursor, for the live log.
pub async fn trace(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id)): Path<(String, String, String)>,
    Query(query): Query<TraceQuery>,
) -> WebResult<Response> {
    let (project, _) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadPipelines).await?;
    let job = find_job(&state, &project, &id).await?;
    let cursor = query
        .cursor
        .as_deref()
        .and_then(Cursor::decode)
        .unwrap_or_default();
    let complete = job.status.is_complete();
    // A cursor past the end (an erased log, a forged cursor) starts over.
    let cursor = if cursor.offset > job.trace_size.max(0) as u64 {
        Cursor::default()
    } else {
        cursor
    };
    let offset = i64::try_from(cursor.offset).unwrap_or(i64::MAX);
    let tail = state.store.job_trace_from(job.id, offset).await?;
    let (items, next) = pipewright_logview::render(&tail, &cursor, complete);
    let status = StatusView::of_job(job.status, job.allow_failure);
    Ok(Json(json!({
        "items": items,
        "cursor": next.encode(),
        "complete": complete,
        "status": status.name,
        "status_label": status.label,
    }))
    .into_response())
}

/// `POST …/-/jobs/:id/retry|cancel|play|erase`, and `…/artifacts/keep`.
pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id, action)): Path<(String, String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (action, needed) = match action.as_str() {
        "retry" => (JobAction::Retry, Action::UpdatePipelines),
        "cancel" => (JobAction::Cancel, Action::UpdatePipelines),
        "play" => (JobAction::Play, Action::UpdatePipelines),
        "keep" => (JobAction::KeepArtifacts, Action::UpdatePipelines),
        "erase" => (JobAction::Erase, Action::DeleteArtifacts),
        _ => return Err(WebError::NotFound),
    };
    let (project, access) =
        project_form(&state, &viewer, &namespace, &path, &params, needed).await?;
    let job = find_job(&state, &project, &id).await?;
    // As the API (a 403 there is a 404 page here).
    let pipeline = state
        .store
        .pipeline_by_id(job.pipeline_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let user = viewer.user.as_ref();
    if !manual_actions::may_change_job(&state, &access, user, &pipeline, &job, action).await? {
        return Err(WebError::NotFound);
    }
    let full_path = project.full_path();
    let mut back = format!("/{full_path}/-/jobs/{}", job.id);
    let flash = match action {
        JobAction::Retry => match dispatch::retry_job(&state, &job).await? {
            Some(new_job) => {
                back = format!("/{full_path}/-/jobs/{}", new_job.id);
                Flash::notice("The job is retrying.")
            }
            None => Flash::alert("This job cannot be retried."),
        },
        JobAction::Cancel => {
            if dispatch::cancel_job(&state, &job).await? {
                Flash::notice("The job was canceled.")
            } else {
                Flash::alert("This job cannot be canceled.")
            }
        }
        JobAction::Play => {
            if dispatch::play_job(&state, &job).await? {
                Flash::notice("The job is starting.")
            } else {
                Flash::alert("This job cannot be started.")
            }
        }
        JobAction::KeepArtifacts => {
            if !crate::domain::artifacts::keep_forever(&state, &job).await? {
                return Err(WebError::NotFound);
            }
            Flash::notice("The artifacts will be kept.")
        }
        // The pages do not erase jobs (the API does).
        JobAction::Erase => return Err(WebError::NotFound),
    };
    Ok(view::redirect_with(&state, &back, flash))
}

/// `GET …/-/jobs/:id/artifacts/download`: the archive.
pub async fn artifacts_download(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id)): Path<(String, String, String)>,
) -> WebResult<Response> {
    let (project, _) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadPipelines).await?;
    let job = find_job(&state, &project, &id).await?;
    Ok(artifacts::serve_archive(&state, &job).await?)
}

/// `GET …/-/jobs/:id/artifacts/file/*path`: one file from the archive.
pub async fn artifacts_file(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id, file)): Path<(String, String, String, String)>,
) -> WebResult<Response> {
    let (project, _) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadPipelines).await?;
    let job = find_job(&state, &project, &id).await?;
    let mut response = artifacts::serve_entry(&state, &job, &file).await?;
    // Served as a download, never rendered: an artifact is not trusted HTML.
    response.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment"),
    );
    Ok(response)
}

pub struct Entry {
    pub name: String,
    pub url: String,
    pub is_dir: bool,
    pub size: String,
}

#[derive(Template)]
#[template(path = "artifacts.html")]
struct BrowsePage {
    layout: Layout,
    full_path: String,
    job_id: i64,
    job_name: String,
    dir: String,
    parent: Option<String>,
    entries: Vec<Entry>,
}

/// `GET …/-/jobs/:id/artifacts/browse[/*dir]`.
pub async fn artifacts_browse(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(parts): Path<Vec<(String, String)>>,
) -> WebResult<Response> {
    let get = |key: &str| {
        parts
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (namespace, path, id) = (get("namespace"), get("repo"), get("id"));
    let dir = get("dir").trim_matches('/').to_string();
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadPipelines).await?;
    let job = find_job(&state, &project, &id).await?;
    let listing = crate::domain::artifacts::list_dir(&state, &job, &dir)
        .await?
        .ok_or(WebError::NotFound)?;
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    if listing.is_empty() && !dir.is_empty() {
        return Err(WebError::NotFound);
    }
    let full_path = project.full_path();
    let base = format!("/{full_path}/-/jobs/{}/artifacts", job.id);
    let mut entries: Vec<Entry> = listing
        .into_iter()
        .map(
            |crate::domain::artifacts::Listed { name, is_dir, size }| Entry {
                url: if is_dir {
                    format!("{base}/browse/{prefix}{name}")
                } else {
                    format!("{base}/file/{prefix}{name}")
                },
                name,
                is_dir,
                size: if is_dir {
                    String::new()
                } else {
                    human_size(size as i64)
                },
            },
        )
        .collect();
    entries.sort_by_key(|e| (!e.is_dir, e.name.clone()));
    let parent = (!dir.is_empty()).then(|| match dir.rsplit_once('/') {
        Some((up, _)) => format!("{base}/browse/{up}"),
        None => format!("{base}/browse"),
    });
    let page = BrowsePage {
        layout: Layout::new(&viewer, &headers, format!("Artifacts · {}", job.name))
            .with_project(ProjectNav::new(&project, &access, "jobs")),
        full_path,
        job_id: job.id,
        job_name: job.name.clone(),
        dir,
        parent,
        entries,
    };
    view::render(&state, &page.layout, &page)
}
