//! `/<ns>/<project>/-/pipeline_schedules`: a project's pipeline schedules (description, target,
//! last pipeline's status, next run, owner), with the form to add or edit one and its
//! variables, and the buttons to play, take over or delete one — each shown only to those who
//! may use it (GitLab's `PipelineSchedulePolicy`, `schedules::abilities`).
//!
//! Every change goes through the API operation a `curl` would reach (`api::pipeline_schedules`),
//! so the page and the API cannot disagree; an API error becomes the flash message.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_store::{Page, PipelineSchedule, Project};
use serde_json::Value;

use super::access::{project_for, project_form};
use super::error::{WebError, WebResult};
use super::session::Viewer;
use super::settings::{api_message, outcome};
use super::view::{self, Flash, Layout, ProjectNav, StatusView};
use crate::api::pipeline_schedules as schedules_api;
use crate::auth::Caller;
use crate::domain::schedules;
use crate::error::ApiError;
use crate::params::{Params, Segments};
use crate::permissions::{Action, ProjectAccess};
use crate::sealing::Purpose;
use crate::state::AppState;

const PER_PAGE: u32 = 20;
/// Empty variable rows the form offers for new variables.
const BLANK_VARIABLE_ROWS: usize = 3;

pub struct ScheduleRow {
    pub id: i64,
    pub description: String,
    pub target: String,
    pub is_tag: bool,
    /// The last pipeline's status and page.
    pub last: Option<(StatusView, String)>,
    pub next_run: String,
    pub next_run_at: String,
    pub owner: String,
    pub active: bool,
    pub can_play: bool,
    pub can_take_ownership: bool,
    pub can_edit: bool,
    pub can_delete: bool,
}

#[derive(Template)]
#[template(path = "pipeline_schedules.html")]
struct ListPage {
    layout: Layout,
    full_path: String,
    scope: &'static str,
    schedules: Vec<ScheduleRow>,
    can_create: bool,
    page: u32,
    prev_url: Option<String>,
    next_url: Option<String>,
}

pub struct VariableRow {
    pub index: usize,
    pub key: String,
    pub value: String,
    pub file: bool,
    /// An existing variable (its key cannot change; it can be removed).
    pub existing: bool,
}

#[derive(Template)]
#[template(path = "pipeline_schedule_form.html")]
struct FormPage {
    layout: Layout,
    full_path: String,
    /// The schedule being edited; `None` for a new one.
    id: Option<i64>,
    description: String,
    ref_name: String,
    cron: String,
    cron_timezone: String,
    active: bool,
    variables: Vec<VariableRow>,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    pub scope: Option<String>,
    pub page: Option<String>,
}

fn list_url(project: &Project, scope: &str) -> String {
    match scope {
        "" => format!("/{}/-/pipeline_schedules", project.full_path()),
        scope => format!(
            "/{}/-/pipeline_schedules?scope={scope}",
            project.full_path()
        ),
    }
}

/// `GET …/-/pipeline_schedules[?scope=active|inactive]`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> WebResult<Response> {
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadPipelines).await?;
    let (scope, active) = match query.scope.as_deref() {
        Some("active") => ("active", Some(true)),
        Some("inactive") => ("inactive", Some(false)),
        _ => ("", None),
    };
    let page = view::page_number(query.page.as_deref());
    let listed = state
        .store
        .pipeline_schedules(
            project.id,
            active,
            Page {
                page,
                per_page: PER_PAGE,
            },
        )
        .await?;
    let more = i64::from(page) * i64::from(PER_PAGE) < listed.total;
    let mut rows = Vec::with_capacity(listed.items.len());
    for schedule in &listed.items {
        rows.push(row(&state, &viewer, &project, &access, schedule).await?);
    }
    let base = list_url(&project, scope);
    let join = if base.contains('?') { '&' } else { '?' };
    let page_view = ListPage {
        layout: Layout::new(
            &viewer,
            &headers,
            format!("Pipeline schedules · {}", project.name),
        )
        .with_project(ProjectNav::new(&project, &access, "schedules")),
        full_path: project.full_path(),
        scope,
        schedules: rows,
        can_create: viewer.user.is_some() && access.can(Action::CreatePipeline),
        page,
        prev_url: (page > 1).then(|| format!("{base}{join}page={}", page - 1)),
        next_url: more.then(|| format!("{base}{join}page={}", page + 1)),
    };
    view::render(&state, &page_view.layout, &page_view)
}

async fn row(
    state: &AppState,
    viewer: &Viewer,
    project: &Project,
    access: &ProjectAccess,
    s: &PipelineSchedule,
) -> WebResult<ScheduleRow> {
    let last = state
        .store
        .last_pipeline_schedule_pipeline(s.id)
        .await?
        .map(|p| {
            let url = format!("/{}/-/pipelines/{}", project.full_path(), p.id);
            (StatusView::of(p.status), url)
        });
    let owner = match s.owner_id {
        Some(id) => state.store.user(id).await?.map(|u| u.username),
        None => None,
    };
    let (abilities, can_play) = match &viewer.user {
        Some(user) => (
            Some(schedules::abilities(user, access, s)),
            schedules::may_play(state, access, s).await?,
        ),
        None => (None, false),
    };
    let owned = viewer.user.as_ref().map(|u| u.id) == s.owner_id;
    Ok(ScheduleRow {
        id: s.id,
        description: s.description.clone(),
        is_tag: s.ref_name.starts_with("refs/tags/"),
        target: short_ref(&s.ref_name).to_string(),
        last,
        next_run: match (s.active, s.next_run_at) {
            (true, Some(at)) => view::time_ago(at),
            _ => "Inactive".into(),
        },
        next_run_at: s.next_run_at.map(view::iso).unwrap_or_default(),
        owner: owner.unwrap_or_else(|| "(none)".into()),
        active: s.active,
        can_play,
        can_take_ownership: abilities.is_some_and(|a| a.admin) && !owned,
        can_edit: abilities.is_some_and(|a| a.update),
        can_delete: abilities.is_some_and(|a| a.admin),
    })
}

/// `main` for `refs/heads/main` (GitLab's `ref_for_display`).
fn short_ref(full: &str) -> &str {
    full.strip_prefix("refs/heads/")
        .or_else(|| full.strip_prefix("refs/tags/"))
        .unwrap_or(full)
}

fn blank_rows(from: usize) -> impl Iterator<Item = VariableRow> {
    (from..from + BLANK_VARIABLE_ROWS).map(|index| VariableRow {
        index,
        key: String::new(),
        value: String::new(),
        file: false,
        existing: false,
    })
}

/// `GET …/-/pipeline_schedules/new`.
pub async fn new(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
) -> WebResult<Response> {
    viewer.required()?;
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::CreatePipeline).await?;
    let page = FormPage {
        layout: Layout::new(&viewer, &headers, "New pipeline schedule")
            .with_project(ProjectNav::new(&project, &access, "schedules")),
        full_path: project.full_path(),
        id: None,
        description: String::new(),
        ref_name: project.default_branch.clone(),
        cron: "0 4 * * *".into(),
        cron_timezone: "UTC".into(),
        active: true,
        variables: blank_rows(0).collect(),
    };
    view::render(&state, &page.layout, &page)
}

/// The schedule `{id}` of a page's project, for a viewer who may edit it (404 otherwise, as
/// pages answer where the API answers 403).
async fn editable(
    state: &AppState,
    viewer: &Viewer,
    project: &Project,
    id: &str,
) -> WebResult<schedules_api::Found> {
    let seg = segments(project, id);
    match schedules_api::find_schedule(state, &viewer.caller(), &seg).await {
        Ok(found) if found.abilities().update => Ok(found),
        Ok(_) => Err(WebError::NotFound),
        Err(ApiError::Internal(e)) => Err(WebError::Internal(e)),
        Err(_) => Err(WebError::NotFound),
    }
}

fn segments(project: &Project, id: &str) -> Segments {
    Segments::from_pairs(&[
        ("id", project.id.to_string()),
        ("schedule_id", id.to_string()),
    ])
}

/// `GET …/-/pipeline_schedules/:id/edit`: its owner's form, with its variables.
pub async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path, id)): Path<(String, String, String)>,
) -> WebResult<Response> {
    viewer.required()?;
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::CreatePipeline).await?;
    let found = editable(&state, &viewer, &project, &id).await?;
    let s = &found.schedule;
    let mut variables = Vec::new();
    for (index, v) in state
        .store
        .pipeline_schedule_variables(s.id)
        .await?
        .into_iter()
        .enumerate()
    {
        variables.push(VariableRow {
            index,
            value: state
                .sealer
                .open(Purpose::ScheduleVariable, &v.value_sealed)?,
            file: v.variable_type == pipewright_store::VariableType::File,
            key: v.key,
            existing: true,
        });
    }
    variables.extend(blank_rows(variables.len()));
    let page = FormPage {
        layout: Layout::new(&viewer, &headers, "Edit pipeline schedule")
            .with_project(ProjectNav::new(&project, &access, "schedules")),
        full_path: project.full_path(),
        id: Some(s.id),
        description: s.description.clone(),
        ref_name: short_ref(&s.ref_name).to_string(),
        cron: s.cron.clone(),
        cron_timezone: s.cron_timezone.clone(),
        active: s.active,
        variables,
    };
    view::render(&state, &page.layout, &page)
}

/// `POST …/-/pipeline_schedules`: a new schedule (owned by the viewer), then its variables.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::CreatePipeline,
    )
    .await?;
    let seg = Segments::from_pairs(&[("id", project.id.to_string())]);
    let caller = viewer.caller();
    let created = schedules_api::create_schedule(&state, &caller, &seg, &params).await;
    let schedule = match created {
        Ok((_, schedule)) => schedule,
        Err(ApiError::Internal(e)) => return Err(WebError::Internal(e)),
        Err(e) => {
            let back = format!("/{}/-/pipeline_schedules/new", project.full_path());
            return Ok(view::redirect_with(
                &state,
                &back,
                Flash::alert(api_message(&e)),
            ));
        }
    };
    let result = apply_variables(&state, &caller, &project, &schedule, &params).await;
    finish(
        &state,
        &project,
        &schedule,
        "Pipeline schedule was created.",
        result,
    )
}

/// `POST …/-/pipeline_schedules/:id`: the owner's edit, with its variables.
pub async fn update(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id)): Path<(String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::CreatePipeline,
    )
    .await?;
    let found = editable(&state, &viewer, &project, &id).await?;
    let caller = viewer.caller();
    let seg = segments(&project, &id);
    let result = match schedules_api::update_schedule(&state, &caller, &seg, &params).await {
        Ok(_) => apply_variables(&state, &caller, &project, &found.schedule, &params).await,
        Err(e) => Err(e),
    };
    finish(
        &state,
        &project,
        &found.schedule,
        "Pipeline schedule was updated.",
        result,
    )
}

/// Back to the list on success; back to the form with the API's error otherwise.
fn finish(
    state: &AppState,
    project: &Project,
    schedule: &PipelineSchedule,
    done: &str,
    result: Result<(), ApiError>,
) -> WebResult<Response> {
    match result {
        Ok(()) => Ok(view::redirect_with(
            state,
            &list_url(project, ""),
            Flash::notice(done),
        )),
        Err(ApiError::Internal(e)) => Err(WebError::Internal(e)),
        Err(e) => {
            let back = format!(
                "/{}/-/pipeline_schedules/{}/edit",
                project.full_path(),
                schedule.id
            );
            Ok(view::redirect_with(
                state,
                &back,
                Flash::alert(api_message(&e)),
            ))
        }
    }
}

/// The form's variable rows (`variables[N][key]`, `[value]`, `[variable_type]`, `[destroy]`),
/// each through the API: a new key is created, an existing one updated, or removed when
/// `destroy` is ticked; rows without a key are left out.
async fn apply_variables(
    state: &AppState,
    caller: &Caller,
    project: &Project,
    schedule: &PipelineSchedule,
    params: &Params,
) -> Result<(), ApiError> {
    let rows: Vec<&Value> = match params.get("variables") {
        Some(Value::Object(map)) => map.values().collect(),
        Some(Value::Array(items)) => items.iter().collect(),
        _ => return Ok(()),
    };
    let existing: Vec<String> = state
        .store
        .pipeline_schedule_variables(schedule.id)
        .await?
        .into_iter()
        .map(|v| v.key)
        .collect();
    let text = |row: &Value, field: &str| {
        row.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for row in rows {
        let key = text(row, "key");
        if key.is_empty() {
            continue;
        }
        let id = schedule.id.to_string();
        let seg = Segments::from_pairs(&[
            ("id", project.id.to_string()),
            ("schedule_id", id),
            ("key", key.clone()),
        ]);
        let mut fields = Params::default();
        fields.set_path("key", key.clone());
        fields.set_path("value", text(row, "value"));
        let kind = text(row, "variable_type");
        fields.set_path(
            "variable_type",
            if kind.is_empty() {
                "env_var".into()
            } else {
                kind
            },
        );
        let st = State(state.clone());
        let done = if !existing.contains(&key) {
            schedules_api::create_variable(st, caller.clone(), seg, fields)
                .await
                .map(|_| ())
        } else if matches!(text(row, "destroy").as_str(), "1" | "true") {
            schedules_api::delete_variable(st, caller.clone(), seg)
                .await
                .map(|_| ())
        } else {
            schedules_api::update_variable(st, caller.clone(), seg, fields)
                .await
                .map(|_| ())
        };
        done?;
    }
    Ok(())
}

/// `POST …/-/pipeline_schedules/:id/play`, `…/take_ownership` and `…/delete`.
pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id, action)): Path<(String, String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = project_form(
        &state,
        &viewer,
        &namespace,
        &path,
        &params,
        Action::ReadPipelines,
    )
    .await?;
    let seg = segments(&project, &id);
    let st = State(state.clone());
    let caller = viewer.caller();
    let (result, done) = match action.as_str() {
        "play" => (
            schedules_api::play(st, caller, seg).await.map(|_| ()),
            "Successfully scheduled a pipeline to run.",
        ),
        "take_ownership" => (
            schedules_api::take_ownership(st, caller, seg)
                .await
                .map(|_| ()),
            "You are now the owner of this pipeline schedule.",
        ),
        "delete" => (
            schedules_api::destroy(st, caller, seg, HeaderMap::new())
                .await
                .map(|_| ()),
            "Pipeline schedule was deleted.",
        ),
        _ => return Err(WebError::NotFound),
    };
    // A schedule the viewer may not act on is a 404 page, as everywhere in the UI.
    match result {
        Err(ApiError::Forbidden(_) | ApiError::NotFound(_)) => Err(WebError::NotFound),
        other => outcome(&state, &list_url(&project, ""), done, other),
    }
}
