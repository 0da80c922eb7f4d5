//! GitLab's job token scope API ("Limit access to this project"):
//! `GET/PATCH /projects/:id/job_token_scope` and
//! `GET/POST /projects/:id/job_token_scope/allowlist`,
//! `DELETE …/allowlist/:target_project_id`, and the allowlist's groups,
//! `GET/POST …/groups_allowlist`, `DELETE …/groups_allowlist/:target_group_id` (Maintainer+;
//! GitLab: lib/api/ci/job_token_scope.rb). The scope is enabled by default and
//! lets in only the project itself; each allowlist entry lets one more project's job tokens
//! in. [`crate::domain::job_token::job_access`] enforces it everywhere a job token reaches another
//! project: the trigger API, artifact downloads, git.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::projects::{authorize_project, find_project, project_access};
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let scope = "/api/v4/projects/{id}/job_token_scope";
    vec![
        Route::get(scope, show, Maintainer),
        Route::patch(scope, update, Maintainer),
        Route::get(format!("{scope}/allowlist"), allowlist, Maintainer),
        Route::post(format!("{scope}/allowlist"), add, Maintainer),
        Route::delete(
            format!("{scope}/allowlist/{{target_project_id}}"),
            remove,
            Maintainer,
        ),
        Route::get(
            format!("{scope}/groups_allowlist"),
            groups_allowlist,
            Maintainer,
        ),
        Route::post(format!("{scope}/groups_allowlist"), add_group, Maintainer),
        Route::delete(
            format!("{scope}/groups_allowlist/{{target_group_id}}"),
            remove_group,
            Maintainer,
        ),
    ]
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageJobTokenScope).await?;
    let enabled = state.store.job_token_scope_enabled(project.id).await?;
    Ok(Json(
        json!({"inbound_enabled": enabled, "outbound_enabled": false}),
    ))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<StatusCode> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageJobTokenScope).await?;
    let enabled = params
        .bool("enabled")?
        .ok_or_else(|| ApiError::MissingParam("enabled".into()))?;
    state
        .store
        .set_job_token_scope_enabled(project.id, enabled)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn allowlist(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageJobTokenScope).await?;
    let page = page_from(&params)?;
    let result = state.store.job_token_allowlist(project.id, page).await?;
    let mut items: Vec<Value> = Vec::with_capacity(result.items.len());
    for p in &result.items {
        // An entry the caller may not see (another Maintainer let it in, or it became private
        // since) is only its id: the entry is this project's, the project's name is not.
        // GitLab's REST answer shows the whole project; its UI (GraphQL, `read_project`)
        // leaves such a project out.
        items.push(if project_access(&state, &caller, p).await?.can_see() {
            entities::project(&state.config, p, None, false)
        } else {
            json!({ "id": p.id })
        });
    }
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

pub(crate) async fn add(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageJobTokenScope).await?;
    let target_id = params
        .i64("target_project_id")?
        .ok_or_else(|| ApiError::MissingParam("target_project_id".into()))?;
    // The caller must be able to see the project they let in.
    let (target, _) = find_project(&state, &caller, &target_id.to_string()).await?;
    if target.id == project.id
        || !state
            .store
            .add_to_job_token_allowlist(project.id, target.id)
            .await?
    {
        return Err(ApiError::Custom(
            StatusCode::BAD_REQUEST,
            json!({"message": "Target project is already in the job token scope"}),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"source_project_id": project.id, "target_project_id": target.id})),
    ))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageJobTokenScope).await?;
    let target_id = seg.id("target_project_id", "")?;
    if !state
        .store
        .remove_from_job_token_allowlist(project.id, target_id)
        .await?
    {
        return Err(ApiError::NotFound(""));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The allowlist's groups, as GitLab's `BasicGroupDetails` (id, name, web_url).
async fn groups_allowlist(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageJobTokenScope).await?;
    let page = page_from(&params)?;
    let result = state
        .store
        .job_token_group_allowlist(project.id, page)
        .await?;
    let mut items: Vec<Value> = Vec::with_capacity(result.items.len());
    for g in &result.items {
        let user = caller.0.as_ref().map(|a| &a.user);
        // As for projects: a group the caller may not see is only its id.
        let access = crate::domain::groups::group_access(&state, user, g).await?;
        items.push(if access.can_see() {
            let basic = entities::namespace(&state.config, g);
            json!({"id": g.id, "name": g.name, "web_url": basic["web_url"]})
        } else {
            json!({ "id": g.id })
        });
    }
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

pub(crate) async fn add_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageJobTokenScope).await?;
    let target_id = params
        .i64("target_group_id")?
        .ok_or_else(|| ApiError::MissingParam("target_group_id".into()))?;
    // The caller must be able to see the group they let in.
    let (target, _) =
        crate::domain::groups::find_group(&state, &caller, &target_id.to_string()).await?;
    if !state
        .store
        .add_to_job_token_group_allowlist(project.id, target.id)
        .await?
    {
        return Err(ApiError::Custom(
            StatusCode::BAD_REQUEST,
            json!({"message": "Target group is already in the job token scope"}),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"source_project_id": project.id, "target_group_id": target.id})),
    ))
}

pub(crate) async fn remove_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageJobTokenScope).await?;
    let target_id = seg.id("target_group_id", "")?;
    if !state
        .store
        .remove_from_job_token_group_allowlist(project.id, target_id)
        .await?
    {
        return Err(ApiError::NotFound(""));
    }
    Ok(StatusCode::NO_CONTENT)
}
