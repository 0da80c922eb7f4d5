//! `/<ns>/<project>/-/settings/ci_cd`: pipeline trigger tokens (add, copy, edit your own,
//! revoke), ready-to-copy trigger examples, CI/CD variables, job token permissions (the
//! allowlist) and the project's runners. Maintainers and Owners only; anyone else gets 404.
//!
//! Every change goes through the same API operation a `curl` would reach, so the web and the
//! API cannot disagree about validation or permissions; an API error becomes the flash
//! message.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use pipewright_core::Timestamp;
use pipewright_store::{Page, Project, RunnerScope, RunnerType};
use serde_json::Value;

use super::access::project_for;
use super::error::{WebError, WebResult};
use super::session::Viewer;
use super::view::{self, Flash, Layout, ProjectNav};
use crate::api;
use crate::error::ApiError;
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::{Action, ProjectAccess};
use crate::sealing::Purpose;
use crate::state::AppState;

/// The text of an API error, for a flash message.
pub fn api_message(err: &ApiError) -> String {
    fn flatten(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::Array(items) => format!(
                        "{k} {}",
                        items.iter().map(flatten).collect::<Vec<_>>().join(", ")
                    ),
                    other => format!("{k} {}", flatten(other)),
                })
                .collect::<Vec<_>>()
                .join("; "),
            Value::Array(items) => items.iter().map(flatten).collect::<Vec<_>>().join(", "),
            other => other.to_string(),
        }
    }
    let body = err.body();
    body.get("message")
        .or_else(|| body.get("error"))
        .map(flatten)
        .unwrap_or_else(|| err.status().to_string())
}

/// Runs an API operation for a form and redirects back with its outcome.
pub fn outcome<T>(
    state: &AppState,
    back: &str,
    success: &str,
    result: Result<T, ApiError>,
) -> WebResult<Response> {
    match result {
        Ok(_) => Ok(view::redirect_with(state, back, Flash::notice(success))),
        Err(ApiError::Internal(e)) => Err(WebError::Internal(e)),
        Err(e) => Ok(view::redirect_with(
            state,
            back,
            Flash::alert(api_message(&e)),
        )),
    }
}

pub struct TriggerRow {
    pub id: i64,
    pub token: String,
    pub full: bool,
    pub description: String,
    pub owner: String,
    pub last_used: String,
    pub last_used_at: String,
    pub expires: String,
    pub can_edit: bool,
    /// The token's restrictions, comma-separated ("" = any).
    pub ref_patterns: String,
    pub allowed_variables: String,
}

pub struct VariableRow {
    pub key: String,
    pub value: String,
    pub variable_type: &'static str,
    pub protected: bool,
    pub masked: bool,
}

pub struct AllowedProject {
    pub id: i64,
    /// `None` when the viewer may not see the project (another Maintainer let it in, or it
    /// became private since): its path is not shown, as GitLab's UI leaves it out.
    pub full_path: Option<String>,
}

pub struct RunnerRow {
    pub id: i64,
    pub description: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub tags: String,
    pub paused: bool,
    pub can_remove: bool,
}

#[derive(Template)]
#[template(path = "settings_ci_cd.html")]
struct SettingsPage {
    layout: Layout,
    full_path: String,
    /// Where the variables' forms post (`ci_variables.html`).
    variables_url: String,
    project_id: i64,
    api_url: String,
    triggers: Vec<TriggerRow>,
    variables: Vec<VariableRow>,
    scope_enabled: bool,
    allowlist: Vec<AllowedProject>,
    runners: Vec<RunnerRow>,
    max_expiry: String,
}

async fn settings_project(
    state: &AppState,
    viewer: &Viewer,
    namespace: &str,
    path: &str,
) -> WebResult<(Project, ProjectAccess)> {
    viewer.required()?;
    project_for(state, viewer, namespace, path, Action::ManageTriggers).await
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
) -> WebResult<Response> {
    let (project, access) = settings_project(&state, &viewer, &namespace, &path).await?;
    let max_expiry = Timestamp(Timestamp::now().millis() + 364 * 24 * 3600 * 1000).to_date_string();
    let page = SettingsPage {
        layout: Layout::new(
            &viewer,
            &headers,
            format!("CI/CD Settings · {}", project.name),
        )
        .with_project(ProjectNav::new(&project, &access, "ci_cd")),
        full_path: project.full_path(),
        variables_url: format!("/{}/-/settings/ci_cd/variables", project.full_path()),
        project_id: project.id,
        api_url: state.config.api_url(),
        triggers: trigger_rows(&state, &viewer, &access, &project).await?,
        variables: variable_rows(&state, &project).await?,
        scope_enabled: state.store.job_token_scope_enabled(project.id).await?,
        allowlist: allowlist(&state, &viewer, &project).await?,
        runners: runner_rows(&state, &project).await?,
        max_expiry,
    };
    view::render(&state, &page.layout, &page)
}

/// The first 100 trigger tokens: whole for those who may administer them, else shortened.
async fn trigger_rows(
    state: &AppState,
    viewer: &Viewer,
    access: &ProjectAccess,
    project: &Project,
) -> WebResult<Vec<TriggerRow>> {
    let caller = viewer.caller();
    let triggers = state.store.triggers(project.id, FIRST_100).await?;
    let owner_ids = triggers.items.iter().filter_map(|t| t.owner_id).collect();
    let owners = super::pipelines::users_by_id(state, owner_ids).await?;
    let mut rows = Vec::new();
    for t in &triggers.items {
        let full = api::trigger_tokens::may_administer(&caller, access, t);
        let token = if full {
            state.sealer.open(Purpose::TriggerToken, &t.token_sealed)?
        } else {
            t.short_token.clone()
        };
        rows.push(TriggerRow {
            id: t.id,
            token,
            full,
            description: t.description.clone(),
            owner: t
                .owner_id
                .and_then(|id| owners.get(&id))
                .map(|u| u.username.clone())
                .unwrap_or_else(|| "(none)".into()),
            last_used: t
                .last_used_at
                .map(view::time_ago)
                .unwrap_or_else(|| "Never".into()),
            last_used_at: t.last_used_at.map(view::iso).unwrap_or_default(),
            expires: t
                .expires_at
                .map(|e| e.to_date_string())
                .unwrap_or_else(|| "Never".into()),
            can_edit: full,
            ref_patterns: t.restrictions.ref_patterns.join(", "),
            allowed_variables: t.restrictions.allowed_variables.join(", "),
        });
    }
    Ok(rows)
}

/// The project's CI/CD variables, opened (only Maintainers see this page).
async fn variable_rows(state: &AppState, project: &Project) -> WebResult<Vec<VariableRow>> {
    let mut variables = Vec::new();
    for v in state.store.ci_variables(Some(project.id)).await? {
        variables.push(VariableRow {
            value: state.sealer.open(Purpose::CiVariable, &v.value_sealed)?,
            key: v.key,
            variable_type: v.variable_type.as_str(),
            protected: v.protected,
            masked: v.masked,
        });
    }
    Ok(variables)
}

/// The first 100 projects of the job token allowlist, paths shown only where the viewer may see.
async fn allowlist(
    state: &AppState,
    viewer: &Viewer,
    project: &Project,
) -> WebResult<Vec<AllowedProject>> {
    let mut allowlist = Vec::new();
    for p in state
        .store
        .job_token_allowlist(project.id, FIRST_100)
        .await?
        .items
    {
        let visible = crate::domain::projects::project_access(state, &viewer.caller(), &p)
            .await?
            .can_see();
        allowlist.push(AllowedProject {
            id: p.id,
            full_path: visible.then(|| p.full_path()),
        });
    }
    Ok(allowlist)
}

/// The instance runners and this project's own (of the first 100 runners).
async fn runner_rows(state: &AppState, project: &Project) -> WebResult<Vec<RunnerRow>> {
    Ok(state
        .store
        .runners(RunnerScope::All, FIRST_100)
        .await?
        .items
        .into_iter()
        .filter(|r| r.runner_type == RunnerType::Instance || r.project_id == Some(project.id))
        .map(|r| RunnerRow {
            id: r.id,
            kind: if r.runner_type == RunnerType::Instance {
                "instance"
            } else {
                "project"
            },
            status: api::runners::status(&r).0,
            tags: r.tag_list.join(", "),
            paused: r.paused,
            can_remove: r.runner_type != RunnerType::Instance,
            description: r.description,
        })
        .collect())
}

/// What the settings page lists of each kind.
const FIRST_100: Page = Page {
    page: 1,
    per_page: 100,
};

async fn settings_form(
    state: &AppState,
    viewer: &Viewer,
    namespace: &str,
    path: &str,
    params: &Params,
) -> WebResult<(Project, ProjectAccess)> {
    super::access::project_form(
        state,
        viewer,
        namespace,
        path,
        params,
        Action::ManageTriggers,
    )
    .await
}

fn back(project: &Project, anchor: &str) -> String {
    format!("/{}/-/settings/ci_cd#{anchor}", project.full_path())
}

fn project_segments(project: &Project, extra: &[(&str, String)]) -> Segments {
    let mut pairs = vec![("id", project.id.to_string())];
    pairs.extend(extra.iter().cloned());
    Segments::from_pairs(&pairs)
}

/// `POST …/-/settings/ci_cd/triggers`: a new token.
pub async fn create_trigger(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = settings_form(&state, &viewer, &namespace, &path, &params).await?;
    let result = api::trigger_tokens::create(
        State(state.clone()),
        viewer.caller(),
        project_segments(&project, &[]),
        params,
    )
    .await;
    outcome(
        &state,
        &back(&project, "js-pipeline-triggers"),
        "Trigger token was created.",
        result,
    )
}

/// `POST …/-/settings/ci_cd/triggers/:id/update` (a new description and restrictions; the
/// owner's own token only), `…/rotate` (a new token, the old one working for
/// `grace_period_seconds`) and `…/revoke`.
pub async fn trigger(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id, action)): Path<(String, String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = settings_form(&state, &viewer, &namespace, &path, &params).await?;
    let seg = project_segments(&project, &[("trigger_id", id)]);
    let st = State(state.clone());
    let (result, done) = match action.as_str() {
        "update" => (
            api::trigger_tokens::update(st, viewer.caller(), seg, params)
                .await
                .map(|_| ()),
            "Trigger token was updated.",
        ),
        "rotate" => (
            api::trigger_tokens::rotate(st, viewer.caller(), seg, params)
                .await
                .map(|_| ()),
            "Trigger token was rotated. Update the places that use it.",
        ),
        "revoke" => (
            api::trigger_tokens::revoke(st, viewer.caller(), seg, HeaderMap::new())
                .await
                .map(|_| ()),
            "Trigger token was revoked.",
        ),
        _ => return Err(WebError::NotFound),
    };
    outcome(
        &state,
        &back(&project, "js-pipeline-triggers"),
        done,
        result,
    )
}

/// `POST …/-/settings/ci_cd/variables`: add, or with `_method=put` change, or with
/// `_method=delete` remove a variable.
pub async fn variable(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = settings_form(&state, &viewer, &namespace, &path, &params).await?;
    let to = back(&project, "js-cicd-variables-settings");
    let method = params.str("_method").ok().flatten().unwrap_or_default();
    let key = params.str("key").ok().flatten().unwrap_or_default();
    let st = State(state.clone());
    match method.as_str() {
        "delete" => {
            let seg = project_segments(&project, &[("key", key)]);
            let result =
                api::variables::delete_project(st, viewer.caller(), seg, Params::default()).await;
            outcome(&state, &to, "Variable was removed.", result)
        }
        "put" => {
            let seg = project_segments(&project, &[("key", key)]);
            let result = api::variables::update_project(st, viewer.caller(), seg, params).await;
            outcome(&state, &to, "Variable was updated.", result)
        }
        _ => {
            let result = api::variables::create_project(
                st,
                viewer.caller(),
                project_segments(&project, &[]),
                params,
            )
            .await;
            outcome(&state, &to, "Variable was added.", result)
        }
    }
}

/// GitLab's one answer for a project to let in that is missing or not the viewer's to see
/// (`Ci::JobTokenScope::EditScopeValidations::TARGET_PROJECT_UNAUTHORIZED_OR_UNFOUND`), so
/// the form does not tell a private project from a missing one.
const TARGET_UNAUTHORIZED_OR_UNFOUND: &str = "The target_project that you are attempting to access does not exist or you don't have permission to perform this action";

/// The project named in the allowlist form, if the viewer may see it (as the API's `add`
/// requires); a missing project and an invisible one are both `None`.
async fn allowlist_target(
    state: &AppState,
    viewer: &Viewer,
    target: &str,
) -> WebResult<Option<Project>> {
    match crate::domain::projects::find_project(state, &viewer.caller(), target).await {
        Ok((project, _)) => Ok(Some(project)),
        Err(ApiError::Internal(e)) => Err(WebError::Internal(e)),
        Err(_) => Ok(None),
    }
}

/// `POST …/-/settings/ci_cd/job_token_scope`: the switch, an allowlist addition (by path) or
/// removal.
pub async fn job_token_scope(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = settings_form(&state, &viewer, &namespace, &path, &params).await?;
    let to = back(&project, "js-token-access");
    let st = State(state.clone());
    let op = params.str("op").ok().flatten().unwrap_or_default();
    match op.as_str() {
        "enabled" => {
            let enabled = params.str("enabled").ok().flatten().unwrap_or_default();
            let mut p = Params::default();
            p.set_path("enabled", enabled);
            let result = api::job_token_scope::update(
                st,
                viewer.caller(),
                project_segments(&project, &[]),
                p,
            )
            .await;
            outcome(&state, &to, "Job token permissions were saved.", result)
        }
        "add" => {
            let target = params
                .str("target_project_path")
                .ok()
                .flatten()
                .unwrap_or_default();
            let target = target.trim().trim_matches('/');
            let Some(found) = allowlist_target(&state, &viewer, target).await? else {
                return Ok(view::redirect_with(
                    &state,
                    &to,
                    Flash::alert(TARGET_UNAUTHORIZED_OR_UNFOUND),
                ));
            };
            let mut p = Params::default();
            p.set_path("target_project_id", found.id.to_string());
            let result =
                api::job_token_scope::add(st, viewer.caller(), project_segments(&project, &[]), p)
                    .await;
            outcome(
                &state,
                &to,
                &format!(
                    "{} can now use this project's resources with a job token.",
                    found.full_path()
                ),
                result,
            )
        }
        "remove" => {
            let target = params
                .str("target_project_id")
                .ok()
                .flatten()
                .unwrap_or_default();
            let seg = project_segments(&project, &[("target_project_id", target)]);
            let result = api::job_token_scope::remove(st, viewer.caller(), seg).await;
            outcome(
                &state,
                &to,
                "The project was removed from the allowlist.",
                result,
            )
        }
        _ => Err(WebError::NotFound),
    }
}

#[derive(Template)]
#[template(path = "runner_created.html")]
struct RunnerCreated {
    layout: Layout,
    full_path: String,
    external_url: String,
    token: String,
    id: i64,
}

/// `POST …/-/settings/ci_cd/runners`: a new project runner; its token is shown once.
pub async fn create_runner(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, access) = settings_form(&state, &viewer, &namespace, &path, &params).await?;
    let mut p = Params::default();
    p.set_path("runner_type", "project_type");
    p.set_path("project_id", project.id.to_string());
    for key in ["description", "tag_list"] {
        if let Some(value) = params.str(key).ok().flatten() {
            p.set_path(key, value);
        }
    }
    p.set_path(
        "run_untagged",
        if params.bool("run_untagged").ok().flatten().unwrap_or(false) {
            "true"
        } else {
            "false"
        },
    );
    let created = match api::runners::create(State(state.clone()), viewer.caller(), p).await {
        Ok(response) => response,
        Err(ApiError::Internal(e)) => return Err(WebError::Internal(e)),
        Err(e) => {
            return Ok(view::redirect_with(
                &state,
                &back(&project, "js-runners-settings"),
                Flash::alert(api_message(&e)),
            ));
        }
    };
    let body = axum::body::to_bytes(created.into_response().into_body(), 64 * 1024)
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("runner response: {e}")))?;
    let json: Value = serde_json::from_slice(&body).map_err(|e| WebError::Internal(e.into()))?;
    let page = RunnerCreated {
        layout: Layout::new(&viewer, &headers, "New project runner")
            .with_project(ProjectNav::new(&project, &access, "ci_cd")),
        full_path: project.full_path(),
        external_url: state.config.external_url.clone(),
        token: json
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        id: json.get("id").and_then(Value::as_i64).unwrap_or_default(),
    };
    view::render(&state, &page.layout, &page)
}

/// `POST …/-/settings/ci_cd/runners/:id/remove`.
pub async fn remove_runner(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, path, id)): Path<(String, String, String)>,
    params: Params,
) -> WebResult<Response> {
    let (project, _) = settings_form(&state, &viewer, &namespace, &path, &params).await?;
    let runner_id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    // Only this project's own runners are removed from here.
    match state.store.runner(runner_id).await? {
        Some(r) if r.project_id == Some(project.id) => {}
        _ => return Err(WebError::NotFound),
    }
    let seg = Segments::from_pairs(&[("id", id)]);
    let result = api::runners::destroy(State(state.clone()), viewer.caller(), seg).await;
    outcome(
        &state,
        &back(&project, "js-runners-settings"),
        "The runner was removed.",
        result,
    )
}
