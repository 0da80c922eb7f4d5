//! Groups: the one place that turns a group's `:id` (a number or a URL-encoded full path) into
//! a group the caller may see, a user's role in a group (the highest of its and its ancestors'
//! memberships) into a [`GroupAccess`], and GitLab's rules for creating, changing and deleting
//! groups (paths, nesting, visibility against the parent, who may create a top-level group).
//! A private group the caller may not see is `404 Group Not Found`, like one that does not
//! exist.

use pipewright_core::{AccessLevel, ProjectCreationLevel, Visibility};
use pipewright_store::{GroupUpdate, Namespace, NewGroup, StoreError, User};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::permissions::{GroupAccess, GroupAction, ProjectAccess};
use crate::state::AppState;
use crate::validate::{self, Errors};

/// The instance setting that lets non-admins create top-level groups (GitLab's application
/// setting `can_create_group`, on by default).
pub const CAN_CREATE_GROUP_SETTING: &str = "can_create_group";

/// The instance's default `project_creation_level` for groups without their own (GitLab's
/// application setting `default_project_creation`, an integer: lib/gitlab/access.rb).
pub const DEFAULT_PROJECT_CREATION_SETTING: &str = "default_project_creation";

/// GitLab's `Namespace::NUMBER_OF_ANCESTORS_ALLOWED` (app/models/namespace.rb): how deep
/// subgroups may nest.
const MAX_ANCESTORS: usize = 20;

/// What `user` (or an anonymous caller) may do in `group`.
pub async fn group_access(
    state: &AppState,
    user: Option<&User>,
    group: &Namespace,
) -> ApiResult<GroupAccess> {
    let role = match user {
        Some(u) => state.store.group_role(group.id, u.id).await?,
        None => None,
    };
    let access = ProjectAccess {
        visibility: group.visibility,
        role,
        authenticated: user.is_some(),
        admin: user.is_some_and(|u| u.is_admin),
    };
    // Only a private group needs GitLab's `has_projects`: a project is never more visible
    // than its group, so an internal or public group is seen anyway by whoever sees its
    // projects.
    let sees_projects_below = match user {
        Some(u) if !access.can_see() => state.store.has_projects_below(group.id, u.id).await?,
        _ => false,
    };
    Ok(GroupAccess {
        access,
        sees_projects_below,
        project_creation: project_creation_level(state, group, &access).await?,
        subgroup_creation: group.subgroup_creation_level,
    })
}

/// The group's effective `project_creation_level`: its own, else the instance's
/// `default_project_creation` (GitLab's `Group#project_creation_level`: `super ||
/// Gitlab::CurrentSettings.default_project_creation`). The instance setting is read only when
/// it could decide something: for an administrator or a Developer and up; for anyone else no
/// level lets them create a project, and GitLab's default stands in.
async fn project_creation_level(
    state: &AppState,
    group: &Namespace,
    access: &ProjectAccess,
) -> ApiResult<ProjectCreationLevel> {
    match group.project_creation_level {
        Some(level) => Ok(level),
        None if access.admin || access.role >= Some(AccessLevel::Developer) => {
            default_project_creation(state).await
        }
        None => Ok(ProjectCreationLevel::Developer),
    }
}

/// The instance's `default_project_creation` (GitLab's application setting, stored as its
/// number; `developer` unless an admin changed it).
pub async fn default_project_creation(state: &AppState) -> ApiResult<ProjectCreationLevel> {
    let setting = state
        .store
        .setting(DEFAULT_PROJECT_CREATION_SETTING)
        .await?;
    Ok(setting
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(ProjectCreationLevel::from_i64)
        .unwrap_or(ProjectCreationLevel::Developer))
}

/// A group by numeric id or full path; `None` for anything else (a user's namespace too).
pub async fn lookup_group(state: &AppState, id: &str) -> ApiResult<Option<Namespace>> {
    let namespace = if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        match id.parse::<i64>() {
            Ok(n) => state.store.namespace(n).await?,
            Err(_) => None,
        }
    } else {
        state.store.namespace_by_full_path(id).await?
    };
    Ok(namespace.filter(Namespace::is_group))
}

/// Finds a group the caller may see; an unknown one and a hidden one are the same 404.
pub async fn find_group(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(Namespace, GroupAccess)> {
    let group = lookup_group(state, id)
        .await?
        .ok_or(ApiError::NotFound("Group"))?;
    let access = group_access(state, caller.0.as_ref().map(|a| &a.user), &group).await?;
    if !access.can_see() {
        return Err(ApiError::NotFound("Group"));
    }
    Ok((group, access))
}

/// As [`find_group`], then requires `action` (403 when visible but not allowed; 401 first for
/// an anonymous caller, as GitLab's `authenticate!`).
pub async fn authorize_group(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: GroupAction,
) -> ApiResult<(Namespace, GroupAccess)> {
    if caller.0.is_none() && action != GroupAction::ReadGroup {
        return Err(ApiError::Unauthorized);
    }
    let (group, access) = find_group(state, caller, id).await?;
    if !access.can(action) {
        return Err(ApiError::forbidden());
    }
    Ok((group, access))
}

/// Whether `user` may create a top-level group: admins always, others unless an admin turned
/// `can_create_group` off.
pub async fn may_create_top_level(state: &AppState, user: &User) -> ApiResult<bool> {
    Ok(user.is_admin || creation_allowed(state).await?)
}

/// The instance setting `can_create_group` (on unless an admin turned it off).
pub async fn creation_allowed(state: &AppState) -> ApiResult<bool> {
    let setting = state.store.setting(CAN_CREATE_GROUP_SETTING).await?;
    Ok(setting.as_deref() != Some("false"))
}

/// GitLab's message for a visibility its parent does not allow (app/models/group.rb,
/// `visibility_level_allowed_by_parent`).
fn check_visibility_under_parent(
    errors: &mut Errors,
    visibility: Visibility,
    parent: Option<&Namespace>,
) {
    if let Some(parent) = parent
        && rank(visibility) > rank(parent.visibility)
    {
        errors.add(
            "visibility_level",
            format!(
                "{} is not allowed since the parent group has a {} visibility.",
                visibility.as_str(),
                parent.visibility.as_str()
            ),
        );
    }
}

/// A project's visibility in a group (app/models/project.rb,
/// `visibility_level_allowed_by_group`).
pub fn check_project_visibility(
    errors: &mut Errors,
    visibility: Visibility,
    namespace: &Namespace,
) {
    if namespace.is_group() && rank(visibility) > rank(namespace.visibility) {
        errors.add(
            "visibility_level",
            format!(
                "{} is not allowed in a {} group.",
                visibility.as_str(),
                namespace.visibility.as_str()
            ),
        );
    }
}

/// A group may not become less visible than what it holds (app/models/group.rb,
/// `visibility_level_allowed_by_projects` and `…_by_sub_groups`).
async fn check_visibility_over_children(
    state: &AppState,
    errors: &mut Errors,
    visibility: Visibility,
    group: &Namespace,
) -> ApiResult<()> {
    let children = state.store.child_visibilities(group.id).await?;
    let above = |groups: bool| {
        children
            .iter()
            .any(|(g, v)| *g == groups && rank(*v) > rank(visibility))
    };
    let level = visibility.as_str();
    if above(false) {
        errors.add(
            "visibility_level",
            format!(
                "{level} is not allowed since this group contains projects with higher visibility."
            ),
        );
    }
    if above(true) {
        errors.add(
            "visibility_level",
            format!("{level} is not allowed since there are sub-groups with higher visibility."),
        );
    }
    Ok(())
}

fn rank(v: Visibility) -> u8 {
    match v {
        Visibility::Private => 0,
        Visibility::Internal => 1,
        Visibility::Public => 2,
    }
}

/// A taken full path: `{"message": {"path": ["has already been taken"]}}`.
fn path_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::Validation(std::collections::BTreeMap::from([(
            "path".to_string(),
            vec!["has already been taken".to_string()],
        )])),
        other => other.into(),
    }
}

/// Creates a group (GitLab: `app/services/groups/create_service.rb`): a top-level group when
/// the instance allows the user to, a subgroup for whoever the parent's
/// `subgroup_creation_level` lets in; the creator becomes its Owner.
pub async fn create_group(
    state: &AppState,
    caller: &Caller,
    new: NewGroup,
) -> ApiResult<Namespace> {
    let actor = caller.required()?;
    let parent = match new.parent_id {
        Some(id) => {
            let (parent, _) =
                authorize_group(state, caller, &id.to_string(), GroupAction::CreateSubgroup)
                    .await?;
            Some(parent)
        }
        None => {
            if !may_create_top_level(state, &actor.user).await? {
                return Err(ApiError::forbidden());
            }
            None
        }
    };
    let mut errors = Errors::default();
    validate::name(&mut errors, "name", &new.name);
    validate::group_path(&mut errors, &new.path, parent.is_none());
    check_visibility_under_parent(&mut errors, new.visibility, parent.as_ref());
    if parent
        .as_ref()
        .is_some_and(|p| p.full_path.split('/').count() >= MAX_ANCESTORS)
    {
        errors.add("parent_id", "has too deep level of nesting");
    }
    if new.description.chars().count() > 500 {
        errors.add("description", "is too long (maximum is 500 characters)");
    }
    errors.into_result()?;
    state.store.create_group(&new).await.map_err(path_taken)
}

/// Changes a group's attributes; a new path moves every subgroup and project below it.
pub async fn update_group(
    state: &AppState,
    group: &Namespace,
    update: GroupUpdate,
) -> ApiResult<Namespace> {
    let parent = match group.parent_id {
        Some(id) => state.store.namespace(id).await?,
        None => None,
    };
    let mut errors = Errors::default();
    if let Some(name) = &update.name {
        validate::name(&mut errors, "name", name);
    }
    // Only a changed path is checked (app/models/namespace.rb `if: :path_changed?`).
    if let Some(path) = update.path.as_ref().filter(|p| **p != group.path) {
        validate::group_path(&mut errors, path, parent.is_none());
    }
    if let Some(visibility) = update.visibility {
        check_visibility_under_parent(&mut errors, visibility, parent.as_ref());
        check_visibility_over_children(state, &mut errors, visibility, group).await?;
    }
    if update
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        errors.add("description", "is too long (maximum is 500 characters)");
    }
    errors.into_result()?;
    state
        .store
        .update_group(group.id, &update)
        .await
        .map_err(path_taken)
}

/// Deletes a group with its subgroups and projects, repositories included. GitLab deletes
/// in the background (`Groups::DestroyService`, 202 Accepted); here it is done before the
/// answer.
pub async fn delete_group(state: &AppState, group: &Namespace) -> ApiResult<()> {
    let projects = state.store.projects_below(group.id).await?;
    state.store.delete_group(group.id).await?;
    for id in projects {
        crate::domain::projects::remove_repository(state, id).await;
    }
    Ok(())
}
