//! Project members and their roles (GitLab's access levels 10–50).

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::{AccessLevel, Timestamp};
use pipewright_store::{Member, Page};
use serde_json::Value;

use crate::auth::Caller;
use crate::domain::projects::{authorize_project, find_project};
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::{Action, ProjectAccess};
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let members = "/api/v4/projects/{id}/members";
    vec![
        Route::get(members, list_members, SignedInToSee),
        Route::post(members, add_member, Maintainer),
        Route::get(format!("{members}/all"), list_members, SignedInToSee),
        Route::get(format!("{members}/{{user_id}}"), get_member, SignedInToSee),
        Route::put(format!("{members}/{{user_id}}"), update_member, Maintainer),
        Route::delete(format!("{members}/{{user_id}}"), remove_member, Maintainer),
        Route::get(
            format!("{members}/all/{{user_id}}"),
            get_member,
            SignedInToSee,
        ),
    ]
}

pub(crate) fn access_level(params: &Params) -> ApiResult<AccessLevel> {
    let raw = params
        .i64("access_level")?
        .ok_or_else(|| ApiError::MissingParam("access_level".into()))?;
    AccessLevel::from_i64(raw)
        .ok_or_else(|| ApiError::ParamError("access_level does not have a valid value".into()))
}

pub(crate) fn expires_at(params: &Params) -> ApiResult<Option<Timestamp>> {
    match params.str("expires_at")? {
        Some(s) if !s.is_empty() => Timestamp::parse(&s)
            .map(Some)
            .ok_or_else(|| ApiError::InvalidParam("expires_at".into())),
        _ => Ok(None),
    }
}

/// The user a new membership is for: `user_id` or `username`.
pub(crate) async fn member_user(
    state: &AppState,
    params: &Params,
) -> ApiResult<pipewright_store::User> {
    match (params.i64("user_id")?, params.str("username")?) {
        (Some(id), _) => state.store.user(id).await?,
        (None, Some(username)) => state.store.user_by_username(&username).await?,
        (None, None) => {
            return Err(ApiError::ParamError(
                "user_id, username are missing, exactly one parameter must be provided".into(),
            ));
        }
    }
    .ok_or(ApiError::NotFound("User"))
}

/// Only Owners (and admins) may grant, change or remove the Owner role.
fn check_owner_rule(access: &ProjectAccess, levels: &[AccessLevel]) -> ApiResult<()> {
    if levels.contains(&AccessLevel::Owner) && !access.can(Action::ManageOwners) {
        return Err(ApiError::forbidden());
    }
    Ok(())
}

/// The last Owner of a project cannot be removed or given a lower role, so the project always
/// keeps someone who may administer it (GitLab refuses to remove or demote the last owner of
/// a namespace; this message is ours, not verified in GitLab's source).
async fn keeps_an_owner(state: &AppState, member: &Member) -> ApiResult<()> {
    if member.access_level != AccessLevel::Owner {
        return Ok(());
    }
    let now = Timestamp::now();
    let mut owners = 0;
    let mut page = Page {
        page: 1,
        per_page: 100,
    };
    loop {
        let found = state.store.members(member.project_id, page).await?;
        owners += found
            .items
            .iter()
            .filter(|m| m.access_level == AccessLevel::Owner)
            .filter(|m| m.expires_at.is_none_or(|t| t > now))
            .count();
        if owners > 1 || i64::from(page.page) * i64::from(page.per_page) >= found.total {
            break;
        }
        page.page += 1;
    }
    if owners > 1 {
        Ok(())
    } else {
        Err(ApiError::Forbidden(Some(
            "A project must keep at least one Owner".into(),
        )))
    }
}

async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    // GitLab's members API is for signed-in callers only (lib/api/members.rb,
    // `before { authenticate! }`), even on public projects.
    caller.required()?;
    let (project, _) = find_project(&state, &caller, seg.get("id")?).await?;
    let page = page_from(&params)?;
    let result = state.store.members(project.id, page).await?;
    let items: Vec<Value> = result
        .items
        .iter()
        .map(|m| entities::member(&state.config, m))
        .collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, &uri).into_response())
}

async fn get_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    caller.required()?;
    let (project, _) = find_project(&state, &caller, seg.get("id")?).await?;
    let user_id = seg.id("user_id", "Member")?;
    let member = state
        .store
        .member(project.id, user_id)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    Ok(Json(entities::member(&state.config, &member)))
}

pub(crate) async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageMembers).await?;
    let user = member_user(&state, &params).await?;
    let level = access_level(&params)?;
    check_owner_rule(&access, &[level])?;
    if state.store.member(project.id, user.id).await?.is_some() {
        return Err(ApiError::Conflict("Member already exists".into()));
    }
    let member = state
        .store
        .add_member(project.id, user.id, level, expires_at(&params)?)
        .await
        .map_err(|e| match e {
            pipewright_store::StoreError::Conflict(_) => {
                ApiError::Conflict("Member already exists".into())
            }
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(entities::member(&state.config, &member)),
    )
        .into_response())
}

pub(crate) async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageMembers).await?;
    let user_id = seg.id("user_id", "Member")?;
    let existing = state
        .store
        .member(project.id, user_id)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    let level = access_level(&params)?;
    check_owner_rule(&access, &[level, existing.access_level])?;
    if level != AccessLevel::Owner {
        keeps_an_owner(&state, &existing).await?;
    }
    let member = state
        .store
        .update_member(project.id, user_id, level, expires_at(&params)?)
        .await?;
    Ok(Json(entities::member(&state.config, &member)))
}

pub(crate) async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ManageMembers).await?;
    let user_id = seg.id("user_id", "Member")?;
    let existing = state
        .store
        .member(project.id, user_id)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    check_owner_rule(&access, &[existing.access_level])?;
    keeps_an_owner(&state, &existing).await?;
    state.store.remove_member(project.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
