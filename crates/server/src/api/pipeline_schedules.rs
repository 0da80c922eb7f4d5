//! Pipeline schedules (`/projects/:id/pipeline_schedules`), as GitLab's API answers them
//! (GitLab: lib/api/ci/pipeline_schedules.rb; entities lib/api/entities/ci/pipeline_schedule.rb,
//! pipeline_schedule_details.rb, variable.rb): list (`scope=active|inactive`), create, show,
//! edit, delete, the pipelines a schedule started, play, take ownership, the schedule's
//! variables, and its CI/CD `inputs` (GitLab 17.11). Signed-in callers only
//! (`before { authenticate! }`).
//!
//! Who may do what is `schedules::abilities` (GitLab's `PipelineSchedulePolicy`): Reporters read
//! (anyone on a public project), Developers create and play, only a schedule's owner edits it
//! and its variables, Maintainers (and the owner) delete and take over. A schedule the caller
//! may not read is `404 Pipeline Schedule Not Found`, like one that does not exist. Invalid
//! fields answer GitLab's validation body, `{"message":{"cron":["syntax is invalid"]}}`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pipewright_core::{Status, Timestamp};
use pipewright_store::{
    PipelineSchedule, PipelineScheduleFields, Project, ScheduleVariable, User, VariableType,
};
use serde_json::{Value, json};

use crate::auth::{Actor, Caller};
use crate::domain::cron::CronSchedule;
use crate::domain::pipeline_creation::PipelineUser;
use crate::domain::projects::{authorize_project, find_project};
use crate::domain::schedules::{self, Abilities};
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::{Params, Segments};
use crate::permissions::{Action, ProjectAccess};
use crate::routes::{Access, Route};
use crate::sealing::Purpose;
use crate::state::AppState;
use crate::validate::Errors;

/// GitLab's string columns (`varchar(255)`).
const MAX_TEXT: usize = 255;
/// A variable's longest value, as for CI/CD variables.
const MAX_VALUE_BYTES: usize = 10_000;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let list = "/api/v4/projects/{id}/pipeline_schedules";
    let one = "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}";
    let variable = format!("{one}/variables/{{key}}");
    vec![
        Route::get(list, list_schedules, SignedInToRead),
        Route::post(list, create, Developer),
        Route::get(one, show, SignedInToRead),
        Route::put(one, update, Developer),
        Route::delete(one, destroy, Developer),
        Route::get(format!("{one}/pipelines"), pipelines, SignedInToRead),
        Route::post(format!("{one}/play"), play, Developer),
        Route::post(format!("{one}/take_ownership"), take_ownership, Developer),
        Route::post(format!("{one}/variables"), create_variable, Developer),
        Route::get(&variable, show_variable, Developer),
        Route::put(&variable, update_variable, Developer),
        Route::delete(&variable, delete_variable, Developer),
    ]
}

/// A schedule the caller may read, with its project and the caller.
pub struct Found {
    pub project: Project,
    pub access: ProjectAccess,
    pub actor: Actor,
    pub schedule: PipelineSchedule,
}

impl Found {
    pub fn abilities(&self) -> Abilities {
        schedules::abilities(&self.actor.user, &self.access, &self.schedule)
    }
}

/// The `{schedule_id}` of `{id}`; a schedule the caller may not read is not found (GitLab's
/// `pipeline_schedule` helper: `not_found!('Pipeline Schedule')` unless
/// `read_pipeline_schedule`).
pub async fn find_schedule(state: &AppState, caller: &Caller, seg: &Segments) -> ApiResult<Found> {
    let actor = caller.required()?.clone();
    let (project, access) = find_project(state, caller, seg.get("id")?).await?;
    let id = seg
        .get("schedule_id")?
        .parse::<i64>()
        .map_err(|_| ApiError::InvalidParam("pipeline_schedule_id".into()))?;
    let schedule = state
        .store
        .pipeline_schedule(project.id, id)
        .await?
        .filter(|_| access.can(Action::ReadPipelines))
        .ok_or(ApiError::NotFound("Pipeline Schedule"))?;
    Ok(Found {
        project,
        access,
        actor,
        schedule,
    })
}

/// `Entities::Ci::PipelineSchedule`; `inputs` only for callers who may read the schedule's
/// variables (GitLab's docs: "only included … for users with the Maintainer or Owner roles,
/// or for the schedule owner").
fn schedule_json(
    state: &AppState,
    s: &PipelineSchedule,
    owner: Option<&User>,
    inputs: Option<Value>,
) -> Value {
    let mut out = json!({
        "id": s.id,
        "description": s.description,
        "ref": s.ref_name,
        "cron": s.cron,
        "cron_timezone": s.cron_timezone,
        "next_run_at": entities::opt_time(s.next_run_at),
        "active": s.active,
        "created_at": entities::time(s.created_at),
        "updated_at": entities::time(s.updated_at),
        "owner": owner.map(|u| entities::user_basic(&state.config, u)),
    });
    if let Some(inputs) = inputs {
        out["inputs"] = inputs;
    }
    out
}

/// `Entities::Ci::Input` of each of a schedule's inputs: `[{"name", "value"}]`.
async fn inputs_json(state: &AppState, schedule_id: i64) -> ApiResult<Value> {
    let inputs = schedules::inputs(state, schedule_id)
        .await
        .map_err(ApiError::Internal)?;
    Ok(Value::Array(
        inputs
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    ))
}

/// `inputs` of a create or edit request (GitLab 17.11: `inputs[][name]`, `inputs[][value]`,
/// `inputs[][destroy]`; a JSON array of such objects), checked as GitLab's
/// `Ci::PipelineScheduleInput` validates them (app/models/ci/pipeline_schedule_input.rb: a
/// name of at most 255 characters, unique; a value of at most 1024 characters as JSON). The
/// messages' field names (`inputs.name`, `inputs.value`) are Rails' for nested attributes,
/// not verified against GitLab's answer. `None` when the request has no `inputs`.
fn input_changes(params: &Params) -> ApiResult<Option<Vec<schedules::InputChange>>> {
    let items = match params.get("inputs") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.len() <= schedules::MAX_INPUTS_PER_SCHEDULE => items,
        Some(_) => return Err(ApiError::InvalidParam("inputs".into())),
    };
    let mut errors = Errors::default();
    let mut seen = std::collections::HashSet::new();
    let mut changes = Vec::with_capacity(items.len());
    for item in items {
        let Some(item) = item.as_object() else {
            return Err(ApiError::InvalidParam("inputs".into()));
        };
        let name = match item.get("name") {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            _ => {
                errors.add("inputs.name", "can't be blank");
                continue;
            }
        };
        if name.chars().count() > MAX_TEXT {
            errors.add("inputs.name", "is too long (maximum is 255 characters)");
        }
        if !seen.insert(name.clone()) {
            errors.add("inputs.name", "has already been taken");
        }
        let destroy = matches!(item.get("destroy"), Some(Value::Bool(true)))
            || matches!(item.get("destroy"), Some(Value::String(s)) if s == "true" || s == "1");
        if destroy {
            changes.push(schedules::InputChange::Remove { name });
            continue;
        }
        match item.get("value") {
            Some(
                value @ (Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Array(_)),
            ) => {
                if value.to_string().chars().count() > schedules::MAX_INPUT_VALUE_CHARS {
                    errors.add(
                        "inputs.value",
                        format!(
                            "exceeds max serialized size: {} characters",
                            schedules::MAX_INPUT_VALUE_CHARS
                        ),
                    );
                }
                changes.push(schedules::InputChange::Set {
                    name,
                    value: value.clone(),
                });
            }
            Some(Value::Object(_)) => errors.add("inputs.value", "is invalid"),
            None | Some(Value::Null) => errors.add("inputs.value", "can't be blank"),
        }
    }
    errors.into_result()?;
    Ok(Some(changes))
}

/// `Entities::Ci::PipelineScheduleDetails`: plus the last pipeline and, for those who may
/// read them, the variables. GitLab presents created, edited and taken-over schedules
/// without the caller, so those answers carry no `variables` (`with_variables: false`); their
/// callers may read the inputs (they own or administer the schedule), so those carry `inputs`.
async fn details(
    state: &AppState,
    project: &Project,
    s: &PipelineSchedule,
    with_variables: bool,
) -> ApiResult<Value> {
    details_with(state, project, s, with_variables, true).await
}

async fn details_with(
    state: &AppState,
    project: &Project,
    s: &PipelineSchedule,
    with_variables: bool,
    with_inputs: bool,
) -> ApiResult<Value> {
    let owner = match s.owner_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    };
    let inputs = match with_inputs {
        true => Some(inputs_json(state, s.id).await?),
        false => None,
    };
    let mut out = schedule_json(state, s, owner.as_ref(), inputs);
    let last = state.store.last_pipeline_schedule_pipeline(s.id).await?;
    out["last_pipeline"] = last
        .map(|p| super::pipelines::pipeline_basic(&state.config, project, &p))
        .unwrap_or(Value::Null);
    if with_variables {
        let mut variables = Vec::new();
        for v in state.store.pipeline_schedule_variables(s.id).await? {
            variables.push(variable_json(state, &v)?);
        }
        out["variables"] = Value::Array(variables);
    }
    Ok(out)
}

/// `Entities::Ci::Variable` of a schedule variable: no `protected`, `masked` or `hidden`
/// (a schedule variable has none), `raw` always false.
fn variable_json(state: &AppState, v: &ScheduleVariable) -> ApiResult<Value> {
    let value = state
        .sealer
        .open(Purpose::ScheduleVariable, &v.value_sealed)
        .map_err(ApiError::Internal)?;
    Ok(json!({
        "variable_type": v.variable_type.as_str(),
        "key": v.key,
        "value": value,
        "raw": false,
    }))
}

async fn list_schedules(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?.clone();
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let active = match params.str("scope")?.as_deref() {
        None => None,
        Some("active") => Some(true),
        Some("inactive") => Some(false),
        Some(_) => {
            return Err(ApiError::ParamError(
                "scope does not have a valid value".into(),
            ));
        }
    };
    let page = page_from(&params)?;
    let result = state
        .store
        .pipeline_schedules(project.id, active, page)
        .await?;
    let mut owners: HashMap<i64, Option<User>> = HashMap::new();
    let mut items = Vec::with_capacity(result.items.len());
    for s in &result.items {
        let owner = match s.owner_id {
            Some(id) if !owners.contains_key(&id) => {
                let user = state.store.user(id).await?;
                owners.entry(id).or_insert(user).as_ref()
            }
            Some(id) => owners.get(&id).and_then(Option::as_ref),
            None => None,
        };
        let inputs = match schedules::abilities(&actor.user, &access, s).read_variables {
            true => Some(inputs_json(&state, s.id).await?),
            false => None,
        };
        items.push(schedule_json(&state, s, owner, inputs));
    }
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let found = find_schedule(&state, &caller, &seg).await?;
    let reader = found.abilities().read_variables;
    Ok(Json(
        details_with(&state, &found.project, &found.schedule, reader, reader).await?,
    ))
}

/// The fields a request sets, validated as GitLab's model validates them, the ref expanded
/// (GitLab: app/services/ci/pipeline_schedules/base_save_service.rb, where an ambiguous ref
/// is refused before the model's other validations run).
async fn validated(
    state: &AppState,
    project: &Project,
    mut fields: PipelineScheduleFields,
    new_ref: Option<String>,
) -> ApiResult<PipelineScheduleFields> {
    if let Some(name) = new_ref {
        let expanded = if name.len() > MAX_TEXT {
            None
        } else {
            schedules::expand_ref(state, project.id, &name)
                .await
                .map_err(ApiError::Internal)?
        };
        fields.ref_name = expanded.ok_or_else(|| ApiError::validation("ref", "is ambiguous"))?;
    }
    let mut errors = Errors::default();
    if let Err(invalid) = CronSchedule::parse(&fields.cron, &fields.cron_timezone) {
        if invalid.cron {
            errors.add("cron", "syntax is invalid");
        }
        if invalid.cron_timezone {
            errors.add("cron_timezone", "syntax is invalid");
        }
    }
    if fields.description.trim().is_empty() {
        errors.add("description", "can't be blank");
    } else if fields.description.chars().count() > MAX_TEXT {
        errors.add("description", "is too long (maximum is 255 characters)");
    }
    errors.into_result()?;
    Ok(fields)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let (project, created) = create_schedule(&state, &caller, &seg, &params).await?;
    Ok((
        StatusCode::CREATED,
        Json(details(&state, &project, &created, false).await?),
    )
        .into_response())
}

/// `POST /projects/:id/pipeline_schedules` without its answer: the schedule it created
/// (the web form's way in).
pub async fn create_schedule(
    state: &AppState,
    caller: &Caller,
    seg: &Segments,
    params: &Params,
) -> ApiResult<(Project, PipelineSchedule)> {
    let actor = caller.required()?.clone();
    let (project, _) =
        authorize_project(state, caller, seg.get("id")?, Action::CreatePipeline).await?;
    let description = params.required_str("description")?;
    let ref_name = params.non_blank("ref")?;
    let cron = params.required_str("cron")?;
    let cron_timezone = params.str("cron_timezone")?.unwrap_or_else(|| "UTC".into());
    let active = params.bool("active")?.unwrap_or(true);
    let inputs = input_changes(params)?;
    let fields = PipelineScheduleFields {
        description,
        ref_name: String::new(),
        // GitLab strips the pattern (`strip_attributes! :cron`).
        cron: cron.trim().to_string(),
        cron_timezone,
        next_run_at: None,
        active,
    };
    let mut fields = validated(state, &project, fields, Some(ref_name)).await?;
    fields.next_run_at = schedules::next_run(&fields.cron, &fields.cron_timezone, Timestamp::now());
    let created = state
        .store
        .create_pipeline_schedule(
            project.id,
            actor.user.id,
            &fields,
            schedules::MAX_SCHEDULES_PER_PROJECT,
        )
        .await?
        .ok_or_else(|| {
            ApiError::validation(
                "base",
                format!(
                    "Maximum number of ci pipeline schedules ({}) exceeded",
                    schedules::MAX_SCHEDULES_PER_PROJECT
                ),
            )
        })?;
    if let Some(changes) = inputs {
        schedules::change_inputs(state, created.id, &changes).await?;
    }
    Ok((project, created))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (project, updated) = update_schedule(&state, &caller, &seg, &params).await?;
    Ok(Json(details(&state, &project, &updated, false).await?))
}

/// `PUT …/:schedule_id` without its answer: the schedule as edited.
pub async fn update_schedule(
    state: &AppState,
    caller: &Caller,
    seg: &Segments,
    params: &Params,
) -> ApiResult<(Project, PipelineSchedule)> {
    let found = find_schedule(state, caller, seg).await?;
    if !found.abilities().update {
        return Err(ApiError::forbidden());
    }
    let old = &found.schedule;
    let new_ref = params.str("ref")?.filter(|r| *r != old.ref_name);
    let inputs = input_changes(params)?;
    let fields = PipelineScheduleFields {
        description: params
            .str("description")?
            .unwrap_or_else(|| old.description.clone()),
        ref_name: old.ref_name.clone(),
        cron: params
            .str("cron")?
            .map_or_else(|| old.cron.clone(), |c| c.trim().to_string()),
        cron_timezone: params
            .str("cron_timezone")?
            .unwrap_or_else(|| old.cron_timezone.clone()),
        next_run_at: old.next_run_at,
        active: params.bool("active")?.unwrap_or(old.active),
    };
    let mut fields = validated(state, &found.project, fields, new_ref).await?;
    // GitLab reschedules on every save. Here a schedule is rescheduled when its pattern,
    // zone or activity changes; otherwise a tick that is due but not yet run stays due (an
    // edit must not swallow it), and a future one is what rescheduling would compute anyway.
    let reschedule = fields.cron != old.cron
        || fields.cron_timezone != old.cron_timezone
        || fields.active != old.active
        || old.next_run_at.is_none();
    if reschedule {
        fields.next_run_at =
            schedules::next_run(&fields.cron, &fields.cron_timezone, Timestamp::now());
    }
    if let Some(changes) = inputs {
        schedules::change_inputs(state, old.id, &changes).await?;
    }
    let updated = state
        .store
        .update_pipeline_schedule(old.id, &fields)
        .await?;
    Ok((found.project, updated))
}

pub async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let found = find_schedule(&state, &caller, &seg).await?;
    if !found.abilities().admin {
        return Err(ApiError::forbidden());
    }
    // GitLab's `destroy_conditionally!`: refuse if the client's copy is older than ours.
    if let Some(since) = headers
        .get(axum::http::header::IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        && since.timestamp() < found.schedule.updated_at.millis() / 1000
    {
        return Err(ApiError::Custom(
            StatusCode::PRECONDITION_FAILED,
            json!({"message": "412 Precondition Failed"}),
        ));
    }
    state
        .store
        .delete_pipeline_schedule(found.schedule.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/pipelines`: the pipelines the schedule started, oldest first unless `sort=desc`,
/// filtered by `scope` or `status` as the pipelines list is.
async fn pipelines(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let found = find_schedule(&state, &caller, &seg).await?;
    let mut statuses = super::pipelines::parse_statuses(&params, "status")?;
    match params.str("scope")?.as_deref() {
        None | Some("branches") | Some("tags") => {}
        Some("running") => statuses = vec![Status::Running],
        Some("pending") => statuses = vec![Status::Pending],
        Some("finished") => {
            statuses = vec![
                Status::Success,
                Status::Failed,
                Status::Canceled,
                Status::Skipped,
            ]
        }
        Some(_) => {
            return Err(ApiError::ParamError(
                "scope does not have a valid value".into(),
            ));
        }
    }
    let ascending = match params.str("sort")?.as_deref() {
        None | Some("asc") => true,
        Some("desc") => false,
        Some(_) => {
            return Err(ApiError::ParamError(
                "sort does not have a valid value".into(),
            ));
        }
    };
    let page = page_from(&params)?;
    let result = state
        .store
        .pipeline_schedule_pipelines(found.schedule.id, &statuses, ascending, page)
        .await?;
    let items: Vec<Value> = result
        .items
        .iter()
        .map(|p| super::pipelines::pipeline_basic(&state.config, &found.project, p))
        .collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

/// `POST …/play`: runs the schedule's pipeline now, as the caller (GitLab:
/// app/services/ci/pipeline_schedules/play_service.rb hands the caller to
/// `RunPipelineScheduleWorker`), leaving its next scheduled run as it was. GitLab answers
/// 201 once the run is queued, whatever becomes of the pipeline; here the pipeline is created
/// before the answer, and a creation the chain refuses is logged as GitLab's worker logs it.
pub async fn play(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    let found = find_schedule(&state, &caller, &seg).await?;
    if !schedules::may_play(&state, &found.access, &found.schedule).await? {
        return Err(ApiError::forbidden());
    }
    let run_as = PipelineUser::User {
        user: found.actor.user.clone(),
        role: found.access.role(),
    };
    schedules::run(&state, &found.project, &found.schedule, run_as)
        .await
        .map_err(ApiError::Internal)?;
    Ok((StatusCode::CREATED, Json(json!({"message": "201 Created"}))).into_response())
}

/// `POST …/take_ownership`: 201 with the schedule now owned by the caller, or 200 when it
/// already was.
pub async fn take_ownership(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    let found = find_schedule(&state, &caller, &seg).await?;
    if !found.abilities().admin {
        return Err(ApiError::forbidden());
    }
    if found.schedule.owner_id == Some(found.actor.user.id) {
        let body = details(&state, &found.project, &found.schedule, false).await?;
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let owned = state
        .store
        .set_pipeline_schedule_owner(found.schedule.id, found.actor.user.id)
        .await?;
    let body = details(&state, &found.project, &owned, false).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The variable routes first ask `set_pipeline_variables` of the project, then find the
/// schedule (GitLab's order: a Guest is refused before the schedule is looked up).
async fn variable_target(state: &AppState, caller: &Caller, seg: &Segments) -> ApiResult<Found> {
    let actor = caller.required()?;
    let (project, access) = find_project(state, caller, seg.get("id")?).await?;
    if !schedules::may_set_variables(state, project.id, &actor.user, &access).await? {
        return Err(ApiError::forbidden());
    }
    find_schedule(state, caller, seg).await
}

fn variable_type(params: &Params) -> ApiResult<Option<VariableType>> {
    match params.str("variable_type")? {
        None => Ok(None),
        Some(kind) => VariableType::parse(&kind).map(Some).ok_or_else(|| {
            ApiError::ParamError("variable_type does not have a valid value".into())
        }),
    }
}

fn check_value(value: &str) -> ApiResult<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::validation(
            "value",
            "is too long (maximum is 10000 characters)",
        ));
    }
    Ok(())
}

pub async fn create_variable(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let found = variable_target(&state, &caller, &seg).await?;
    if !found.abilities().update {
        return Err(ApiError::forbidden());
    }
    let key = params.required_str("key")?;
    let value = params.required_str("value")?;
    let kind = variable_type(&params)?.unwrap_or(VariableType::EnvVar);
    // GitLab: app/models/concerns/ci/has_variable.rb.
    let mut errors = Errors::default();
    if key.is_empty() {
        errors.add("key", "can't be blank");
    } else if key.len() > MAX_TEXT {
        errors.add("key", "is too long (maximum is 255 characters)");
    } else if !crate::validate::variable_key_chars(&key) {
        errors.add("key", "can contain only letters, digits and '_'.");
    }
    errors.into_result()?;
    check_value(&value)?;
    let existing = state
        .store
        .pipeline_schedule_variables(found.schedule.id)
        .await?;
    if existing.len() >= schedules::MAX_VARIABLES_PER_SCHEDULE {
        return Err(ApiError::validation(
            "base",
            format!(
                "Maximum number of pipeline schedule variables ({}) exceeded",
                schedules::MAX_VARIABLES_PER_SCHEDULE
            ),
        ));
    }
    let sealed = state
        .sealer
        .seal(Purpose::ScheduleVariable, &value)
        .map_err(ApiError::Internal)?;
    let created = state
        .store
        .create_pipeline_schedule_variable(found.schedule.id, &key, &sealed, kind)
        .await?
        .ok_or_else(|| ApiError::validation("key", "has already been taken"))?;
    Ok((StatusCode::CREATED, Json(variable_json(&state, &created)?)).into_response())
}

async fn find_variable(
    state: &AppState,
    found: &Found,
    seg: &Segments,
) -> ApiResult<ScheduleVariable> {
    let key = seg.get("key")?;
    state
        .store
        .pipeline_schedule_variables(found.schedule.id)
        .await?
        .into_iter()
        .find(|v| v.key == key)
        .ok_or(ApiError::NotFound("Pipeline Schedule Variable"))
}

async fn show_variable(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let found = find_schedule(&state, &caller, &seg).await?;
    if !found.abilities().read_variables {
        return Err(ApiError::forbidden());
    }
    let variable = find_variable(&state, &found, &seg).await?;
    Ok(Json(variable_json(&state, &variable)?))
}

pub async fn update_variable(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let found = variable_target(&state, &caller, &seg).await?;
    if !found.abilities().update {
        return Err(ApiError::forbidden());
    }
    let variable = find_variable(&state, &found, &seg).await?;
    let kind = variable_type(&params)?.unwrap_or(variable.variable_type);
    let sealed = match params.str("value")? {
        Some(value) => {
            check_value(&value)?;
            state
                .sealer
                .seal(Purpose::ScheduleVariable, &value)
                .map_err(ApiError::Internal)?
        }
        None => variable.value_sealed.clone(),
    };
    let updated = state
        .store
        .update_pipeline_schedule_variable(found.schedule.id, &variable.key, &sealed, kind)
        .await?;
    Ok(Json(variable_json(&state, &updated)?))
}

/// `DELETE …/variables/:key`: 202 with the variable as it was.
pub async fn delete_variable(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    let found = variable_target(&state, &caller, &seg).await?;
    if !found.abilities().admin {
        return Err(ApiError::forbidden());
    }
    let variable = find_variable(&state, &found, &seg).await?;
    state
        .store
        .delete_pipeline_schedule_variable(found.schedule.id, &variable.key)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(variable_json(&state, &variable)?),
    )
        .into_response())
}
