//! CI/CD variables: `GET/POST /projects/:id/variables`, `GET/PUT/DELETE
//! /projects/:id/variables/:key` (Maintainer+), the same under `/groups/:id/variables` (group
//! Owners: GitLab requires the Owner role for group variables, gitlab-org/gitlab#437947), and
//! the instance's `/admin/ci/variables` (administrators). Values are sealed at rest under the server key; masked values are
//! validated as GitLab does (one line, at least 8 characters of a restricted alphabet) so a
//! runner can recognise them in logs. [`crate::domain::ci_variables`] puts them into pipelines.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pipewright_store::{CiVariable, VariableType};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::projects::authorize_project;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::sealing::Purpose;
use crate::state::AppState;

const MAX_VALUE_BYTES: usize = 10_000;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let project = "/api/v4/projects/{id}/variables";
    let instance = "/api/v4/admin/ci/variables";
    let group = "/api/v4/groups/{id}/variables";
    vec![
        Route::get(group, list_group, GroupOwner),
        Route::post(group, create_group, GroupOwner),
        Route::get(format!("{group}/{{key}}"), show_group, GroupOwner),
        Route::put(format!("{group}/{{key}}"), update_group, GroupOwner),
        Route::delete(format!("{group}/{{key}}"), delete_group, GroupOwner),
        Route::get(project, list_project, Maintainer),
        Route::post(project, create_project, Maintainer),
        Route::get(format!("{project}/{{key}}"), show_project, Maintainer),
        Route::put(format!("{project}/{{key}}"), update_project, Maintainer),
        Route::delete(format!("{project}/{{key}}"), delete_project, Maintainer),
        Route::get(instance, list_instance, Admin),
        Route::post(instance, create_instance, Admin),
        Route::get(format!("{instance}/{{key}}"), show_instance, Admin),
        Route::put(format!("{instance}/{{key}}"), update_instance, Admin),
        Route::delete(format!("{instance}/{{key}}"), delete_instance, Admin),
    ]
}

/// Whose variables a request is about.
#[derive(Clone, Copy)]
enum Owner {
    Project(i64),
    Group(i64),
    Instance,
}

impl Owner {
    fn project_id(self) -> Option<i64> {
        match self {
            Owner::Project(id) => Some(id),
            Owner::Group(_) | Owner::Instance => None,
        }
    }

    fn group_id(self) -> Option<i64> {
        match self {
            Owner::Group(id) => Some(id),
            Owner::Project(_) | Owner::Instance => None,
        }
    }

    async fn variables(self, state: &AppState) -> ApiResult<Vec<CiVariable>> {
        Ok(match self {
            Owner::Group(id) => state.store.group_ci_variables(id).await?,
            other => state.store.ci_variables(other.project_id()).await?,
        })
    }
}

async fn group_owner(state: &AppState, caller: &Caller, seg: &Segments) -> ApiResult<Owner> {
    let (group, _) = crate::domain::groups::authorize_group(
        state,
        caller,
        seg.get("id")?,
        crate::permissions::GroupAction::AdminGroup,
    )
    .await?;
    Ok(Owner::Group(group.id))
}

async fn project_owner(state: &AppState, caller: &Caller, seg: &Segments) -> ApiResult<Owner> {
    let (project, _) =
        authorize_project(state, caller, seg.get("id")?, Action::ManageVariables).await?;
    Ok(Owner::Project(project.id))
}

fn instance_owner(caller: &Caller) -> ApiResult<Owner> {
    caller.admin()?;
    Ok(Owner::Instance)
}

fn render(state: &AppState, owner: Owner, v: &CiVariable) -> ApiResult<Value> {
    let value = state
        .sealer
        .open(Purpose::CiVariable, &v.value_sealed)
        .map_err(ApiError::Internal)?;
    let mut out = json!({
        "variable_type": v.variable_type.as_str(),
        "key": v.key,
        "value": value,
        "hidden": false,
        "protected": v.protected,
        "masked": v.masked,
        "raw": v.raw,
        "description": v.description,
    });
    if let Owner::Project(_) | Owner::Group(_) = owner {
        out["environment_scope"] = json!(v.environment_scope);
    }
    Ok(out)
}

/// Drops cached variables a change affects (an instance or a group variable may affect
/// every project).
fn forget(state: &AppState, owner: Owner) {
    match owner {
        Owner::Project(id) => state.variables_cache.invalidate(id),
        Owner::Group(_) | Owner::Instance => state.variables_cache.clear(),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("Variable")
}

/// The variable `key` (in `filter[environment_scope]`, default any scope's first).
async fn find(state: &AppState, owner: Owner, key: &str, params: &Params) -> ApiResult<CiVariable> {
    let scope = params
        .get("filter")
        .and_then(|f| f.get("environment_scope"))
        .and_then(Value::as_str)
        .map(str::to_string);
    owner
        .variables(state)
        .await?
        .into_iter()
        .find(|v| v.key == key && scope.as_ref().is_none_or(|s| *s == v.environment_scope))
        .ok_or_else(not_found)
}

/// GitLab's rule for values that can be masked.
pub fn maskable(value: &str) -> bool {
    value.len() >= 8
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=@:.~_-".contains(&b))
}

fn validation(field: &str, message: &str) -> ApiError {
    ApiError::validation(field, message)
}

/// Applies parameters to a variable (all of them on create; the given ones on update).
fn apply(state: &AppState, params: &Params, v: &mut CiVariable, creating: bool) -> ApiResult<()> {
    if creating {
        let key = params.required_str("key")?;
        if key.is_empty() || key.len() > 255 {
            return Err(validation("key", "is too long (maximum is 255 characters)"));
        }
        if !crate::validate::variable_key_chars(&key) {
            return Err(validation(
                "key",
                "can contain only letters, digits and '_'.",
            ));
        }
        v.key = key;
    }
    let value = match params.str("value")? {
        Some(value) => Some(value),
        None if creating => return Err(ApiError::MissingParam("value".into())),
        None => None,
    };
    if let Some(kind) = params.str("variable_type")? {
        v.variable_type = VariableType::parse(&kind).ok_or_else(|| {
            ApiError::ParamError("variable_type does not have a valid value".into())
        })?;
    }
    if let Some(b) = params.bool("protected")? {
        v.protected = b;
    }
    if let Some(b) = params.bool("masked")? {
        v.masked = b;
    }
    if let Some(b) = params.bool("masked_and_hidden")?
        && b
    {
        v.masked = true;
    }
    if let Some(b) = params.bool("raw")? {
        v.raw = b;
    }
    if let Some(d) = params.str("description")? {
        v.description = Some(d);
    }
    if let Some(scope) = params.str("environment_scope")? {
        v.environment_scope = if scope.is_empty() { "*".into() } else { scope };
    }
    let plain = match value {
        Some(value) => value,
        None => state
            .sealer
            .open(Purpose::CiVariable, &v.value_sealed)
            .map_err(ApiError::Internal)?,
    };
    if plain.len() > MAX_VALUE_BYTES {
        return Err(validation(
            "value",
            "is too long (maximum is 10000 characters)",
        ));
    }
    if v.masked && !maskable(&plain) {
        return Err(validation("value", "is invalid"));
    }
    v.value_sealed = state
        .sealer
        .seal(Purpose::CiVariable, &plain)
        .map_err(ApiError::Internal)?;
    Ok(())
}

async fn list(state: &AppState, owner: Owner) -> ApiResult<Json<Value>> {
    let vars = owner.variables(state).await?;
    let items = vars
        .iter()
        .map(|v| render(state, owner, v))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Value::Array(items)))
}

async fn create(
    state: &AppState,
    owner: Owner,
    params: &Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut v = CiVariable {
        id: 0,
        project_id: owner.project_id(),
        group_id: owner.group_id(),
        key: String::new(),
        value_sealed: String::new(),
        variable_type: VariableType::EnvVar,
        protected: false,
        masked: false,
        raw: false,
        description: None,
        environment_scope: "*".into(),
    };
    apply(state, params, &mut v, true)?;
    forget(state, owner);
    let Some(created) = state.store.create_ci_variable(&v).await? else {
        return Err(validation(
            "key",
            &format!("({}) has already been taken", v.key),
        ));
    };
    Ok((StatusCode::CREATED, Json(render(state, owner, &created)?)))
}

async fn update(
    state: &AppState,
    owner: Owner,
    key: &str,
    params: &Params,
) -> ApiResult<Json<Value>> {
    let mut v = find(state, owner, key, params).await?;
    apply(state, params, &mut v, false)?;
    let updated = state.store.update_ci_variable(&v).await?;
    forget(state, owner);
    Ok(Json(render(state, owner, &updated)?))
}

async fn destroy(
    state: &AppState,
    owner: Owner,
    key: &str,
    params: &Params,
) -> ApiResult<StatusCode> {
    let v = find(state, owner, key, params).await?;
    state.store.delete_ci_variable(v.id).await?;
    forget(state, owner);
    Ok(StatusCode::NO_CONTENT)
}

async fn list_project(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let owner = project_owner(&state, &caller, &seg).await?;
    list(&state, owner).await
}

pub(crate) async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let owner = project_owner(&state, &caller, &seg).await?;
    create(&state, owner, &params).await
}

async fn show_project(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let owner = project_owner(&state, &caller, &seg).await?;
    let v = find(&state, owner, seg.get("key")?, &params).await?;
    Ok(Json(render(&state, owner, &v)?))
}

pub(crate) async fn update_project(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let owner = project_owner(&state, &caller, &seg).await?;
    update(&state, owner, seg.get("key")?, &params).await
}

pub(crate) async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<StatusCode> {
    let owner = project_owner(&state, &caller, &seg).await?;
    destroy(&state, owner, seg.get("key")?, &params).await
}

async fn list_instance(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    list(&state, instance_owner(&caller)?).await
}

pub(crate) async fn create_instance(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    create(&state, instance_owner(&caller)?, &params).await
}

async fn show_instance(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let owner = instance_owner(&caller)?;
    let v = find(&state, owner, seg.get("key")?, &params).await?;
    Ok(Json(render(&state, owner, &v)?))
}

async fn update_instance(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    update(&state, instance_owner(&caller)?, seg.get("key")?, &params).await
}

pub(crate) async fn delete_instance(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<StatusCode> {
    destroy(&state, instance_owner(&caller)?, seg.get("key")?, &params).await
}

async fn list_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    list(&state, group_owner(&state, &caller, &seg).await?).await
}

pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    create(&state, group_owner(&state, &caller, &seg).await?, &params).await
}

async fn show_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let owner = group_owner(&state, &caller, &seg).await?;
    let v = find(&state, owner, seg.get("key")?, &params).await?;
    Ok(Json(render(&state, owner, &v)?))
}

pub async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let owner = group_owner(&state, &caller, &seg).await?;
    update(&state, owner, seg.get("key")?, &params).await
}

pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<StatusCode> {
    let owner = group_owner(&state, &caller, &seg).await?;
    destroy(&state, owner, seg.get("key")?, &params).await
}
