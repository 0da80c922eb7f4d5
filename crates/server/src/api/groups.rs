//! Groups (GitLab: lib/api/groups.rb): list, create (top-level or subgroup), read, update,
//! delete, a group's subgroups and its projects. `:id` is a number or a URL-encoded full path
//! (`acme%2Fbackend`); a private group is `404 Group Not Found` to whoever may not see it.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pipewright_core::{ProjectCreationLevel, SubgroupCreationLevel, Visibility};
use pipewright_store::{
    GroupFilter, GroupUpdate, Namespace, NewGroup, Page, ProjectFilter, ProjectOrder, Viewer,
};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::groups::{self, authorize_group, find_group};
use crate::domain::projects::project_access;
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from};
use crate::params::{Params, Segments};
use crate::permissions::GroupAction;
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::*;
    let group = "/api/v4/groups/{id}";
    vec![
        Route::get("/api/v4/groups", list_groups, Public),
        Route::post("/api/v4/groups", create_group, SignedIn),
        Route::get(group, get_group, GroupSee),
        Route::put(group, update_group, GroupOwner),
        Route::delete(group, delete_group, GroupOwner),
        Route::get(format!("{group}/subgroups"), list_subgroups, GroupSee),
        Route::get(format!("{group}/projects"), list_projects, GroupSee),
    ]
}

fn viewer(caller: &Caller) -> Viewer {
    match &caller.0 {
        Some(a) if a.is_admin() => Viewer::Admin,
        Some(a) => Viewer::User(a.user.id),
        None => Viewer::Anonymous,
    }
}

/// A parameter with a fixed set of words: GitLab's `values:` validation (Grape), whose
/// refusal is 400 `{"error": "<name> does not have a valid value"}`.
fn word_param<T>(
    params: &Params,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> ApiResult<Option<T>> {
    match params.str(name)? {
        None => Ok(None),
        Some(v) => parse(&v)
            .map(Some)
            .ok_or_else(|| ApiError::ParamError(format!("{name} does not have a valid value"))),
    }
}

fn visibility_param(params: &Params) -> ApiResult<Option<Visibility>> {
    word_param(params, "visibility", Visibility::parse)
}

/// `project_creation_level` and `subgroup_creation_level`, with GitLab's words
/// (lib/api/helpers/groups_helpers.rb: `values: ::Gitlab::Access.project_creation_string_values`,
/// `subgroup_creation_string_values`).
fn creation_level_params(
    params: &Params,
) -> ApiResult<(Option<ProjectCreationLevel>, Option<SubgroupCreationLevel>)> {
    Ok((
        word_param(
            params,
            "project_creation_level",
            ProjectCreationLevel::parse,
        )?,
        word_param(
            params,
            "subgroup_creation_level",
            SubgroupCreationLevel::parse,
        )?,
    ))
}

async fn render_list(
    state: &AppState,
    uri: &axum::http::Uri,
    page: Page,
    filter: &GroupFilter,
) -> ApiResult<Response> {
    let result = state.store.groups(filter, page).await?;
    let default_creation = groups::default_project_creation(state).await?;
    let items: Vec<Value> = result
        .items
        .iter()
        .map(|g| entities::group(&state.config, g, default_creation))
        .collect();
    Ok(Paginated::new(items, result.total, page, &state.config.external_url, uri).into_response())
}

/// `GET /groups`: anonymous callers see public groups; signed-in users the groups they are
/// members of, or every group they may see with `all_available=true`; admins every group
/// (GitLab: doc/api/groups.md, `all_available` "defaults to false for authenticated users,
/// true for administrators").
async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let page = page_from(&params)?;
    let viewer = viewer(&caller);
    let all_available = params.bool("all_available")?.unwrap_or(false);
    let member_only = matches!(viewer, Viewer::User(_)) && !all_available;
    let filter = GroupFilter {
        viewer,
        parent: params
            .bool("top_level_only")?
            .unwrap_or(false)
            .then_some(None),
        membership_of: if member_only { caller.user_id() } else { None },
        search: params.str("search")?,
    };
    render_list(&state, &uri, page, &filter).await
}

async fn list_subgroups(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (group, _) = find_group(&state, &caller, seg.get("id")?).await?;
    let page = page_from(&params)?;
    let filter = GroupFilter {
        viewer: viewer(&caller),
        parent: Some(Some(group.id)),
        membership_of: None,
        search: params.str("search")?,
    };
    render_list(&state, &uri, page, &filter).await
}

async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let actor = caller.required()?;
    let name = params
        .str("name")?
        .ok_or_else(|| ApiError::MissingParam("name".into()))?;
    let path = params
        .str("path")?
        .ok_or_else(|| ApiError::MissingParam("path".into()))?;
    let (project_creation_level, subgroup_creation_level) = creation_level_params(&params)?;
    let new = NewGroup {
        name,
        path,
        parent_id: params.i64("parent_id")?,
        visibility: visibility_param(&params)?.unwrap_or(Visibility::Private),
        description: params.str("description")?.unwrap_or_default(),
        project_creation_level,
        subgroup_creation_level: subgroup_creation_level
            .unwrap_or(SubgroupCreationLevel::Maintainer),
        creator_id: actor.user.id,
    };
    let group = groups::create_group(&state, &caller, new).await?;
    Ok((StatusCode::CREATED, Json(render(&state, &group).await?)).into_response())
}

/// One group's JSON (its effective `project_creation_level` may be the instance's).
async fn render(state: &AppState, group: &Namespace) -> ApiResult<Value> {
    let default_creation = groups::default_project_creation(state).await?;
    Ok(entities::group(&state.config, group, default_creation))
}

/// `GET /groups/:id`: the group with its projects (GitLab's `GroupDetail`; `with_projects`
/// defaults to true), the first 100 the caller may see.
async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (group, _) = find_group(&state, &caller, seg.get("id")?).await?;
    let mut out = render(&state, &group).await?;
    if params.bool("with_projects")?.unwrap_or(true) {
        let page = Page {
            page: 1,
            per_page: 100,
        };
        let projects = group_projects(&state, &caller, &group, false, page).await?;
        out["projects"] = json!(projects.0);
    }
    out["shared_projects"] = json!([]);
    Ok(Json(out))
}

async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (group, _) =
        authorize_group(&state, &caller, seg.get("id")?, GroupAction::AdminGroup).await?;
    let (project_creation_level, subgroup_creation_level) = creation_level_params(&params)?;
    let update = GroupUpdate {
        name: params.str("name")?,
        path: params.str("path")?,
        visibility: visibility_param(&params)?,
        description: params.str("description")?,
        project_creation_level,
        subgroup_creation_level,
    };
    let group = groups::update_group(&state, &group, update).await?;
    Ok(Json(render(&state, &group).await?))
}

/// `DELETE /groups/:id`: GitLab answers 202 Accepted (its deletion runs in the background).
async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    let (group, _) =
        authorize_group(&state, &caller, seg.get("id")?, GroupAction::RemoveGroup).await?;
    groups::delete_group(&state, &group).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "202 Accepted"})),
    )
        .into_response())
}

/// The projects of a group (and its subgroups, with `include_subgroups`) the caller may see.
async fn group_projects(
    state: &AppState,
    caller: &Caller,
    group: &Namespace,
    include_subgroups: bool,
    page: Page,
) -> ApiResult<(Vec<Value>, i64)> {
    let filter = ProjectFilter {
        viewer: viewer(caller),
        membership_of: None,
        owned_by: None,
        search: None,
        namespace: Some((group.id, include_subgroups)),
        order_by: ProjectOrder::CreatedAt,
        ascending: false,
    };
    let result = state.store.projects(&filter, page).await?;
    let mut items = Vec::with_capacity(result.items.len());
    for project in &result.items {
        let access = project_access(state, caller, project).await?;
        items.push(crate::api::projects::render(state, project, &access).await?);
    }
    Ok((items, result.total))
}

async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (group, _) = find_group(&state, &caller, seg.get("id")?).await?;
    let page = page_from(&params)?;
    let include_subgroups = params.bool("include_subgroups")?.unwrap_or(false);
    let (items, total) = group_projects(&state, &caller, &group, include_subgroups, page).await?;
    Ok(Paginated::new(items, total, page, &state.config.external_url, &uri).into_response())
}
