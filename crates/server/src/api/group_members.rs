//! Group members (GitLab: lib/api/members.rb, `source_type = group`): direct members, and
//! `…/members/all` with the members inherited from ancestor groups (each user once, with their
//! highest role). Owners manage members; the last Owner cannot leave or be demoted.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::AccessLevel;
use pipewright_store::{GroupMember, Namespace};
use serde_json::Value;

use crate::api::members::{access_level, expires_at, member_user};
use crate::auth::Caller;
use crate::domain::groups::{authorize_group, find_group};
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::{Params, Segments};
use crate::permissions::GroupAction;
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let members = "/api/v4/groups/{id}/members";
    vec![
        Route::get(members, list_members, GroupSignedInToSee),
        Route::post(members, add_member, GroupOwner),
        Route::get(
            format!("{members}/all"),
            list_all_members,
            GroupSignedInToSee,
        ),
        Route::get(
            format!("{members}/{{user_id}}"),
            get_member,
            GroupSignedInToSee,
        ),
        Route::put(format!("{members}/{{user_id}}"), update_member, GroupOwner),
        Route::delete(format!("{members}/{{user_id}}"), remove_member, GroupOwner),
        Route::get(
            format!("{members}/all/{{user_id}}"),
            get_any_member,
            GroupSignedInToSee,
        ),
    ]
}

/// The group, for a signed-in caller who may see it (GitLab's members API authenticates
/// first, even on public groups) and its members: 403 to one who sees a private group only
/// for a project below it (lib/api/helpers/members_helpers.rb,
/// `authorize_read_source_member!`; app/policies/group_policy.rb, `can_read_group_member?`).
async fn visible_group(state: &AppState, caller: &Caller, seg: &Segments) -> ApiResult<Namespace> {
    caller.required()?;
    let (group, access) = find_group(state, caller, seg.get("id")?).await?;
    if !access.can(GroupAction::ReadMembers) {
        return Err(ApiError::forbidden());
    }
    Ok(group)
}

fn render(state: &AppState, members: &[GroupMember]) -> Vec<Value> {
    members
        .iter()
        .map(|m| entities::group_member(&state.config, m))
        .collect()
}

async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    list(&state, &caller, &seg, &uri, &params, false).await
}

async fn list_all_members(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    list(&state, &caller, &seg, &uri, &params, true).await
}

/// Direct members, or (`all`) direct and inherited ones.
async fn list(
    state: &AppState,
    caller: &Caller,
    seg: &Segments,
    uri: &axum::http::Uri,
    params: &Params,
    all: bool,
) -> ApiResult<Response> {
    let group = visible_group(state, caller, seg).await?;
    let page = page_from(params)?;
    let result = if all {
        state.store.group_members_all(group.id, page).await?
    } else {
        state.store.group_members(group.id, page).await?
    };
    let items = render(state, &result.items);
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, uri).into_response())
}

async fn get_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let group = visible_group(&state, &caller, &seg).await?;
    let user_id = seg.id("user_id", "Member")?;
    let member = state
        .store
        .group_member(group.id, user_id)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    Ok(Json(entities::group_member(&state.config, &member)))
}

/// `…/members/all/:user_id`: the member with their highest role, direct or inherited.
async fn get_any_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let group = visible_group(&state, &caller, &seg).await?;
    let user_id = seg.id("user_id", "Member")?;
    let Some(level) = state.store.group_role(group.id, user_id).await? else {
        return Err(ApiError::NotFound("Member"));
    };
    let user = state
        .store
        .user(user_id)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    let direct = state.store.group_member(group.id, user_id).await?;
    let member = GroupMember {
        group_id: group.id,
        access_level: level,
        expires_at: direct.as_ref().and_then(|m| m.expires_at),
        created_at: direct.map_or(user.created_at, |m| m.created_at),
        user,
    };
    Ok(Json(entities::group_member(&state.config, &member)))
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let (group, _) =
        authorize_group(&state, &caller, seg.get("id")?, GroupAction::ManageMembers).await?;
    let user = member_user(&state, &params).await?;
    let level = access_level(&params)?;
    let member = state
        .store
        .add_group_member(group.id, user.id, level, expires_at(&params)?)
        .await
        .map_err(|e| match e {
            pipewright_store::StoreError::Conflict(_) => {
                ApiError::Conflict("Member already exists".into())
            }
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(entities::group_member(&state.config, &member)),
    )
        .into_response())
}

/// GitLab keeps a group's last Owner (app/policies/group_member_policy.rb: `last_owner`
/// prevents updating and destroying that membership).
async fn check_not_last_owner(state: &AppState, existing: &GroupMember) -> ApiResult<()> {
    if existing.access_level == AccessLevel::Owner
        && state.store.group_owner_count(existing.group_id).await? <= 1
    {
        return Err(ApiError::forbidden());
    }
    Ok(())
}

async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (group, _) =
        authorize_group(&state, &caller, seg.get("id")?, GroupAction::ManageMembers).await?;
    let user_id = seg.id("user_id", "Member")?;
    let existing = state
        .store
        .group_member(group.id, user_id)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    let level = access_level(&params)?;
    if level != AccessLevel::Owner {
        check_not_last_owner(&state, &existing).await?;
    }
    let member = state
        .store
        .update_group_member(group.id, user_id, level, expires_at(&params)?)
        .await?;
    Ok(Json(entities::group_member(&state.config, &member)))
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (group, _) =
        authorize_group(&state, &caller, seg.get("id")?, GroupAction::ManageMembers).await?;
    let user_id = seg.id("user_id", "Member")?;
    let existing = state
        .store
        .group_member(group.id, user_id)
        .await?
        .ok_or(ApiError::NotFound("Member"))?;
    check_not_last_owner(&state, &existing).await?;
    state.store.remove_group_member(group.id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
