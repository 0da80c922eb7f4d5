//! The pipelines pages: `/<ns>/<project>/-/pipelines` (filterable, paginated without counting
//! the project's history) and `/<ns>/<project>/-/pipelines/:id` (jobs by stage with their
//! `needs`, upstream and downstream pipelines, variables, cancel and retry).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_core::{PipelineSource, Status};
use pipewright_store::{Job, Pipeline, PipelineFilter, Project, User};

use super::access::{project_for, project_form};
use super::error::{WebError, WebResult};
use super::session::Viewer;
use super::view::{self, Flash, Layout, ProjectNav, StatusView, Window};
use crate::domain::linked_pipelines::LinkedProjects;
use crate::domain::manual_actions::{self, PipelineAction};
use crate::domain::{dispatch, job_processing};
use crate::params::Params;
use crate::permissions::Action;
use crate::state::AppState;

/// A pipeline as a row of the pipelines table.
pub struct PipelineRow {
    pub id: i64,
    pub iid: i64,
    pub url: String,
    pub status: StatusView,
    pub source: &'static str,
    pub triggered: bool,
    pub trigger_short_token: String,
    /// `project/path #id` of the upstream pipeline, for multi-project pipelines.
    pub upstream: Option<(String, String)>,
    pub ref_name: String,
    pub tag: bool,
    pub short_sha: String,
    pub user: String,
    pub duration: String,
    pub created_ago: String,
    pub created_at: String,
}

/// Users by id, read once per page.
pub async fn users_by_id(state: &AppState, ids: Vec<i64>) -> WebResult<HashMap<i64, User>> {
    let mut users = HashMap::new();
    for id in ids {
        if !users.contains_key(&id)
            && let Some(user) = state.store.user(id).await?
        {
            users.insert(id, user);
        }
    }
    Ok(users)
}

/// Where a linked pipeline lives on the web (its URL and `path #id`), if the viewer may read
/// its project's pipelines; a private project's path is never shown to anyone else.
pub async fn pipeline_link(
    linked: &mut LinkedProjects<'_>,
    project_id: i64,
    pipeline_id: i64,
) -> WebResult<Option<(String, String)>> {
    Ok(linked.readable(project_id).await?.map(|p| {
        let path = p.full_path();
        (
            format!("/{path}/-/pipelines/{pipeline_id}"),
            format!("{path} #{pipeline_id}"),
        )
    }))
}

pub async fn rows(
    state: &AppState,
    viewer: &Viewer,
    project: &Project,
    pipelines: &[Pipeline],
) -> WebResult<Vec<PipelineRow>> {
    let ids = pipelines.iter().filter_map(|p| p.user_id).collect();
    let users = users_by_id(state, ids).await?;
    let warned = crate::api::pipelines::passed_with_warnings_among(state, pipelines).await?;
    let mut linked = LinkedProjects::new(state, viewer.caller(), project);
    let mut out = Vec::with_capacity(pipelines.len());
    for p in pipelines {
        let upstream = match &p.upstream {
            Some(u) => pipeline_link(&mut linked, u.project_id, u.pipeline_id).await?,
            None => None,
        };
        out.push(PipelineRow {
            id: p.id,
            iid: p.iid,
            url: format!("/{}/-/pipelines/{}", project.full_path(), p.id),
            status: StatusView::of_pipeline(p.status, warned.contains(&p.id)),
            source: p.source.as_str(),
            triggered: p.source == PipelineSource::Trigger,
            trigger_short_token: p.trigger_short_token.clone().unwrap_or_default(),
            upstream,
            ref_name: p.ref_name.clone(),
            tag: p.tag,
            short_sha: view::short_sha(&p.sha),
            user: p
                .user_id
                .and_then(|id| users.get(&id))
                .map(|u| u.username.clone())
                .unwrap_or_default(),
            duration: view::seconds_between(p.started_at, p.finished_at)
                .map(view::duration)
                .unwrap_or_default(),
            created_ago: view::time_ago(p.created_at),
            created_at: view::iso(p.created_at),
        });
    }
    Ok(out)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
    pub status: Option<String>,
    pub source: Option<String>,
    #[serde(rename = "ref")]
    pub ref_name: Option<String>,
}

#[derive(Template)]
#[template(path = "pipelines.html")]
struct ListPage {
    layout: Layout,
    full_path: String,
    pipelines: Vec<PipelineRow>,
    status: String,
    source: String,
    ref_name: String,
    statuses: Vec<&'static str>,
    sources: Vec<&'static str>,
    page: u32,
    prev_url: Option<String>,
    next_url: Option<String>,
    /// Some pipeline on the page is still moving: the table refreshes itself.
    live: bool,
    /// The viewer may run pipelines (Developer+): the "Run pipeline" form is shown.
    can_run: bool,
    default_branch: String,
}

fn list_url(base: &str, status: &str, source: &str, ref_name: &str, page: u32) -> String {
    let mut query = Vec::new();
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    if !status.is_empty() {
        query.push(format!("status={}", enc(status)));
    }
    if !source.is_empty() {
        query.push(format!("source={}", enc(source)));
    }
    if !ref_name.is_empty() {
        query.push(format!("ref={}", enc(ref_name)));
    }
    if page > 1 {
        query.push(format!("page={page}"));
    }
    if query.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", query.join("&"))
    }
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
    let status = query.status.clone().unwrap_or_default();
    let source = query.source.clone().unwrap_or_default();
    let ref_name: String = query
        .ref_name
        .clone()
        .unwrap_or_default()
        .chars()
        .take(255)
        .collect();
    let mut filter = PipelineFilter::default();
    if let Some(s) = Status::parse(&status) {
        filter.statuses = vec![s];
    }
    filter.source = PipelineSource::parse(&source);
    if !ref_name.is_empty() {
        filter.ref_name = Some(ref_name.clone());
    }
    let window = Window { page };
    let (found, more) = window.split(
        state
            .store
            .pipelines_window(project.id, &filter, window.limit(), window.offset())
            .await?,
    );
    let base = format!("/{}/-/pipelines", project.full_path());
    let status_shown = if filter.statuses.is_empty() {
        String::new()
    } else {
        status
    };
    let source_shown = filter
        .source
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let live = found.iter().any(|p| view::is_live(p.status));
    let page_view = ListPage {
        live,
        can_run: access.can(Action::CreatePipeline),
        default_branch: project.default_branch.clone(),
        layout: Layout::new(&viewer, &headers, format!("Pipelines · {}", project.name))
            .with_project(ProjectNav::new(&project, &access, "pipelines")),
        full_path: project.full_path(),
        pipelines: rows(&state, &viewer, &project, &found).await?,
        prev_url: (page > 1)
            .then(|| list_url(&base, &status_shown, &source_shown, &ref_name, page - 1)),
        next_url: more.then(|| list_url(&base, &status_shown, &source_shown, &ref_name, page + 1)),
        status: status_shown,
        source: source_shown,
        ref_name,
        statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
        sources: PipelineSource::ALL.iter().map(|s| s.as_str()).collect(),
        page,
    };
    view::render(&state, &page_view.layout, &page_view)
}

/// A job as a node of the pipeline graph.
pub struct JobNode {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub status: StatusView,
    /// The jobs it `needs`, by name, with the node id of each when it is in this pipeline.
    pub needs: Vec<(String, Option<i64>)>,
    pub duration: String,
    /// For `trigger:` jobs: the pipeline it started.
    pub downstream: Option<(String, String, StatusView)>,
}

pub struct StageColumn {
    pub name: String,
    pub jobs: Vec<JobNode>,
}

pub struct VariableRow {
    pub key: String,
    pub value: Option<String>,
}

/// A pipeline's variables as pages show them: every key, and the values only when `reveal`
/// (they are opened only then).
pub async fn variable_rows(
    state: &AppState,
    pipeline_id: i64,
    reveal: bool,
) -> WebResult<Vec<VariableRow>> {
    Ok(if reveal {
        crate::domain::pipeline_variables::opened(state, pipeline_id)
            .await?
            .into_iter()
            .map(|v| VariableRow {
                key: v.key,
                value: Some(v.value),
            })
            .collect()
    } else {
        state
            .store
            .pipeline_variables(pipeline_id)
            .await?
            .into_iter()
            .map(|v| VariableRow {
                key: v.key,
                value: None,
            })
            .collect()
    })
}

#[derive(Template)]
#[template(path = "pipeline.html")]
struct ShowPage {
    layout: Layout,
    full_path: String,
    pipeline: PipelineRow,
    detailed: String,
    stages: Vec<StageColumn>,
    has_needs: bool,
    upstream: Option<(String, String, StatusView)>,
    yaml_errors: String,
    variables: Vec<VariableRow>,
    can_reveal: bool,
    can_cancel: bool,
    can_retry: bool,
    queued: String,
    finished_ago: String,
    live: bool,
}

pub async fn find_pipeline(state: &AppState, project: &Project, id: &str) -> WebResult<Pipeline> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    state
        .store
        .pipeline(project.id, id)
        .await?
        .ok_or(WebError::NotFound)
}

pub async fn job_nodes(
    state: &AppState,
    linked: &mut LinkedProjects<'_>,
    project: &Project,
    jobs: &[Job],
) -> WebResult<Vec<StageColumn>> {
    let mut stages: Vec<(i64, StageColumn)> = Vec::new();
    let current: Vec<&Job> = jobs.iter().filter(|j| !j.retried).collect();
    for job in current.iter().copied() {
        let downstream = if crate::domain::job_spec::is_bridge(job) {
            match state.store.downstream_pipeline(job.id).await? {
                Some(d) => pipeline_link(linked, d.project_id, d.id)
                    .await?
                    .map(|(url, label)| (url, label, StatusView::of(d.status))),
                None => None,
            }
        } else {
            None
        };
        let node = JobNode {
            id: job.id,
            name: job.name.clone(),
            url: format!("/{}/-/jobs/{}", project.full_path(), job.id),
            status: StatusView::of_job(job.status, job.allow_failure),
            needs: crate::domain::job_spec::job_needs(job)
                .unwrap_or_default()
                .into_iter()
                .map(|name| {
                    let id = current.iter().find(|j| j.name == name).map(|j| j.id);
                    (name, id)
                })
                .collect(),
            duration: view::seconds_between(job.started_at, job.finished_at)
                .map(view::duration)
                .unwrap_or_default(),
            downstream,
        };
        match stages.iter_mut().find(|(idx, _)| *idx == job.stage_idx) {
            Some((_, column)) => column.jobs.push(node),
            None => stages.push((
                job.stage_idx,
                StageColumn {
                    name: job.stage.clone(),
                    jobs: vec![node],
                },
            )),
        }
    }
    stages.sort_by_key(|(idx, _)| *idx);
    Ok(stages.into_iter().map(|(_, c)| c).collect())
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path, id)): Path<(String, String, String)>,
) -> WebResult<Response> {
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadPipelines).await?;
    let pipeline = find_pipeline(&state, &project, &id).await?;
    let jobs = state.store.pipeline_all_jobs(pipeline.id).await?;
    let mut linked = LinkedProjects::new(&state, viewer.caller(), &project);
    let stages = job_nodes(&state, &mut linked, &project, &jobs).await?;
    let has_needs = stages
        .iter()
        .flat_map(|s| &s.jobs)
        .any(|j| !j.needs.is_empty());
    let upstream = match &pipeline.upstream {
        Some(u) => match state.store.pipeline_by_id(u.pipeline_id).await? {
            Some(up) => pipeline_link(&mut linked, up.project_id, up.id)
                .await?
                .map(|(url, label)| (url, label, StatusView::of(up.status))),
            None => None,
        },
        None => None,
    };
    let can_reveal = access.can(Action::ReadPipelineVariableValues);
    let variables = variable_rows(&state, pipeline.id, can_reveal).await?;
    // On a protected branch, only those who may update it may cancel or retry.
    let can_update = access.can(Action::UpdatePipelines)
        && crate::domain::protected_refs::may_update(&state, &access, &pipeline).await?;
    let row = rows(&state, &viewer, &project, std::slice::from_ref(&pipeline))
        .await?
        .remove(0);
    let page = ShowPage {
        layout: Layout::new(
            &viewer,
            &headers,
            format!("Pipeline #{} · {}", pipeline.id, project.name),
        )
        .with_project(ProjectNav::new(&project, &access, "pipelines")),
        full_path: project.full_path(),
        detailed: row.status.label.to_string(),
        pipeline: row,
        stages,
        has_needs,
        upstream,
        yaml_errors: pipeline.yaml_errors.clone().unwrap_or_default(),
        variables,
        can_reveal,
        can_cancel: can_update && !pipeline.status.is_complete(),
        can_retry: can_update
            && job_processing::pipeline_retryable(pipeline.status)
            && crate::domain::bridges::user_may_restart_bridges(
                &state,
                viewer.user.as_ref(),
                pipeline.id,
            )
            .await?,
        queued: view::seconds_between(Some(pipeline.created_at), pipeline.started_at)
            .map(view::duration)
            .unwrap_or_default(),
        finished_ago: pipeline.finished_at.map(view::time_ago).unwrap_or_default(),
        live: view::is_live(pipeline.status),
    };
    view::render(&state, &page.layout, &page)
}

/// `POST …/-/pipelines/:id/cancel` and `…/retry`.
pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id, action)): Path<(String, String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, access) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::UpdatePipelines,
    )
    .await?;
    let action = match action.as_str() {
        "cancel" => PipelineAction::Cancel,
        "retry" => PipelineAction::Retry,
        _ => return Err(WebError::NotFound),
    };
    let pipeline = find_pipeline(&state, &project, &id).await?;
    // As the API (a 403 there is a 404 page here).
    let user = viewer.user.as_ref();
    if !manual_actions::may_change_pipeline(&state, &access, user, &pipeline, action).await? {
        return Err(WebError::NotFound);
    }
    let back = format!("/{}/-/pipelines/{}", project.full_path(), pipeline.id);
    let flash = match action {
        PipelineAction::Cancel => {
            dispatch::cancel_pipeline(&state, pipeline.id).await?;
            Flash::notice("The pipeline was canceled.")
        }
        PipelineAction::Retry if job_processing::pipeline_retryable(pipeline.status) => {
            dispatch::retry_pipeline(&state, pipeline.id).await?;
            Flash::notice("The pipeline's failed and canceled jobs are retrying.")
        }
        PipelineAction::Retry => Flash::alert("Only a failed or canceled pipeline can be retried."),
    };
    Ok(view::redirect_with(&state, &back, flash))
}

/// `POST …/-/pipelines`: "Run pipeline" for a branch or tag, with an optional variable, as
/// the viewer (source `web`), through the same creation chain as every other pipeline.
pub async fn run(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, access) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::CreatePipeline,
    )
    .await?;
    let user = viewer.required()?.clone();
    let back = format!("/{}/-/pipelines", project.full_path());
    let field = |key: &str| params.str(key).ok().flatten().unwrap_or_default();
    let ref_name = field("ref").trim().to_string();
    if ref_name.is_empty() {
        return Ok(view::redirect_with(
            &state,
            &back,
            Flash::alert("Choose a branch or tag to run."),
        ));
    }
    let key = field("variable_key").trim().to_string();
    let mut variables = Vec::new();
    if !key.is_empty() {
        if !crate::validate::variable_key_chars(&key) || key.len() > 255 {
            return Ok(view::redirect_with(
                &state,
                &back,
                Flash::alert("Variable keys may contain only letters, digits and _."),
            ));
        }
        variables.push(crate::domain::pipeline_variables::PipelineVariable {
            key,
            value: field("variable_value"),
            variable_type: pipewright_store::VariableType::EnvVar,
        });
    }
    let request = crate::domain::pipeline_creation::CreatePipeline::run_by(
        project.clone(),
        ref_name,
        PipelineSource::Web,
        user,
        access.role(),
        variables,
    );
    use crate::domain::pipeline_creation::CreateError;
    match crate::domain::dispatch::create_pipeline(&state, request).await {
        Ok(pipeline) => Ok(view::redirect_with(
            &state,
            &format!("{back}/{}", pipeline.id),
            Flash::notice(format!("Pipeline #{} was created.", pipeline.id)),
        )),
        Err(CreateError::ConfigError(pipeline, message)) => Ok(view::redirect_with(
            &state,
            &format!("{back}/{}", pipeline.id),
            Flash::alert(message),
        )),
        Err(CreateError::Rejected(message)) => {
            Ok(view::redirect_with(&state, &back, Flash::alert(message)))
        }
        Err(CreateError::Internal(e)) => Err(WebError::Internal(e)),
    }
}
