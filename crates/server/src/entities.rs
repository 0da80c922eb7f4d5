//! The JSON shapes of GitLab's API entities (`API::Entities::*`), built from our models.
//! Field names and formats follow GitLab so existing clients parse them unchanged.

use pipewright_core::{ProjectCreationLevel, Timestamp};
use pipewright_store::{
    Member, Namespace, NamespaceKind, PersonalAccessToken, Project, ProtectedBranch,
    ProtectionLevel, User,
};
use serde_json::{Value, json};

use crate::permissions::ProjectAccess;
use crate::state::ServerConfig;

pub fn time(t: Timestamp) -> Value {
    Value::String(t.to_gitlab())
}

pub fn opt_time(t: Option<Timestamp>) -> Value {
    t.map(time).unwrap_or(Value::Null)
}

/// `UserBasic`: what anyone may see of a user.
pub fn user_basic(config: &ServerConfig, user: &User) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "state": user.state.as_str(),
        "locked": false,
        "avatar_url": Value::Null,
        "web_url": format!("{}/{}", config.external_url, user.username),
    })
}

/// `User`: a user as GitLab shows them beside what they did (a job's `user`, another user's
/// profile) — basic fields plus the public profile, never the account's email or admin flag.
/// GitLab: lib/api/entities/user.rb.
pub fn user(config: &ServerConfig, user: &User) -> Value {
    let mut v = user_basic(config, user);
    if let Value::Object(map) = &mut v {
        map.insert("created_at".into(), time(user.created_at));
        // Pipewright keeps no profile: GitLab's fields for an empty one.
        for key in [
            "bio",
            "location",
            "skype",
            "linkedin",
            "twitter",
            "website_url",
            "organization",
            "job_title",
        ] {
            map.insert(key.into(), json!(""));
        }
        for key in ["public_email", "pronouns", "work_information"] {
            map.insert(key.into(), Value::Null);
        }
        map.insert("bot".into(), json!(false));
        map.insert("followers".into(), json!(0));
        map.insert("following".into(), json!(0));
    }
    v
}

/// `UserPublic` / `UserWithAdmin` (the user themselves, or an admin): [`user`] plus the
/// account's details. `groups_allowed` is the instance's `can_create_group` setting (an
/// administrator may create top-level groups regardless).
pub fn user_full(config: &ServerConfig, u: &User, groups_allowed: bool) -> Value {
    let mut v = user(config, u);
    if let Value::Object(map) = &mut v {
        map.insert("email".into(), json!(u.email));
        map.insert("is_admin".into(), json!(u.is_admin));
        map.insert("can_create_project".into(), json!(u.is_active()));
        map.insert(
            "can_create_group".into(),
            json!(u.is_active() && (u.is_admin || groups_allowed)),
        );
        map.insert("two_factor_enabled".into(), json!(false));
        map.insert("external".into(), json!(false));
        map.insert("private_profile".into(), json!(false));
        map.insert("current_sign_in_at".into(), Value::Null);
        map.insert("last_activity_on".into(), Value::Null);
        map.insert("confirmed_at".into(), time(u.created_at));
        map.insert("identities".into(), json!([]));
    }
    v
}

/// `NamespaceBasic` (GitLab: lib/api/entities/namespace_basic.rb): a user's namespace links
/// to the user, a group's to its page.
pub fn namespace(config: &ServerConfig, ns: &Namespace) -> Value {
    json!({
        "id": ns.id,
        "name": ns.name,
        "path": ns.path,
        "kind": ns.kind.as_str(),
        "full_path": ns.full_path,
        "parent_id": ns.parent_id,
        "avatar_url": Value::Null,
        "web_url": namespace_web_url(config, ns),
    })
}

fn namespace_web_url(config: &ServerConfig, ns: &Namespace) -> String {
    if ns.is_group() {
        format!("{}/groups/{}", config.external_url, ns.full_path)
    } else {
        format!("{}/{}", config.external_url, ns.full_path)
    }
}

/// `Group` as GitLab's `API::Entities::Group` (lib/api/entities/group.rb); settings this
/// server does not have are shown with GitLab's defaults. A group without its own
/// `project_creation_level` shows the instance's `default_project_creation`, as GitLab's
/// `project_creation_level_str`.
pub fn group(
    config: &ServerConfig,
    g: &Namespace,
    default_creation: ProjectCreationLevel,
) -> Value {
    let project_creation = g.project_creation_level.unwrap_or(default_creation);
    json!({
        "id": g.id,
        "web_url": namespace_web_url(config, g),
        "name": g.name,
        "path": g.path,
        "description": g.description,
        "visibility": g.visibility.as_str(),
        "share_with_group_lock": false,
        "require_two_factor_authentication": false,
        "two_factor_grace_period": 48,
        "project_creation_level": project_creation.as_str(),
        "auto_devops_enabled": Value::Null,
        "subgroup_creation_level": g.subgroup_creation_level.as_str(),
        "emails_disabled": false,
        "emails_enabled": true,
        "mentions_disabled": Value::Null,
        "lfs_enabled": true,
        "default_branch": Value::Null,
        "default_branch_protection": 2,
        "avatar_url": Value::Null,
        "request_access_enabled": true,
        "full_name": g.full_name,
        "full_path": g.full_path,
        "created_at": time(g.created_at),
        "parent_id": g.parent_id,
    })
}

/// A group membership, as GitLab's `API::Entities::Member`.
pub fn group_member(config: &ServerConfig, m: &pipewright_store::GroupMember) -> Value {
    membership(config, &m.user, m.access_level, m.created_at, m.expires_at)
}

/// `Project` as GitLab's `API::Entities::Project`, with the caller's permissions.
pub fn project(
    config: &ServerConfig,
    p: &Project,
    access: Option<&ProjectAccess>,
    empty_repo: bool,
) -> Value {
    let full_path = p.full_path();
    let web_url = format!("{}/{}", config.external_url, full_path);
    let role = access.and_then(ProjectAccess::role);
    json!({
        "id": p.id,
        "description": p.description,
        "name": p.name,
        "name_with_namespace": format!("{} / {}", p.namespace.full_name, p.name),
        "path": p.path,
        "path_with_namespace": full_path,
        "created_at": time(p.created_at),
        "updated_at": time(p.updated_at),
        "default_branch": p.default_branch,
        "tag_list": [],
        "topics": [],
        "ssh_url_to_repo": Value::Null,
        "http_url_to_repo": format!("{web_url}.git"),
        "web_url": web_url,
        "readme_url": Value::Null,
        "avatar_url": Value::Null,
        "forks_count": 0,
        "star_count": 0,
        "last_activity_at": time(p.last_activity_at),
        "namespace": namespace(config, &p.namespace),
        "visibility": p.visibility.as_str(),
        "empty_repo": empty_repo,
        "archived": false,
        "creator_id": p.creator_id,
        "owner": if p.namespace.kind == NamespaceKind::User {
            json!({"id": p.namespace.owner_id, "username": p.namespace.path, "name": p.namespace.name})
        } else { Value::Null },
        "issues_enabled": false,
        "merge_requests_enabled": false,
        "jobs_enabled": true,
        "builds_access_level": "enabled",
        "repository_access_level": "enabled",
        "shared_runners_enabled": true,
        "public_jobs": true,
        "permissions": {
            "project_access": role.map(|r| json!({"access_level": r.as_i64(), "notification_level": 3})),
            "group_access": Value::Null,
        },
        "_links": {
            "self": format!("{}/projects/{}", config.api_url(), p.id),
            "members": format!("{}/projects/{}/members", config.api_url(), p.id),
        },
    })
}

pub fn member(config: &ServerConfig, m: &Member) -> Value {
    membership(config, &m.user, m.access_level, m.created_at, m.expires_at)
}

/// `API::Entities::Member`: the user, their role, since when and until when.
fn membership(
    config: &ServerConfig,
    user: &pipewright_store::User,
    level: pipewright_core::AccessLevel,
    created_at: pipewright_core::Timestamp,
    expires_at: Option<pipewright_core::Timestamp>,
) -> Value {
    let mut v = user_basic(config, user);
    if let Value::Object(map) = &mut v {
        map.insert("access_level".into(), json!(level.as_i64()));
        map.insert("created_at".into(), time(created_at));
        map.insert(
            "expires_at".into(),
            expires_at
                .map(|t| json!(t.to_date_string()))
                .unwrap_or(Value::Null),
        );
        map.insert("membership_state".into(), json!("active"));
    }
    v
}

/// `PersonalAccessToken`; `token` is only present in the response that created it.
pub fn personal_access_token(pat: &PersonalAccessToken, token: Option<&str>) -> Value {
    let active = !pat.revoked && pat.expires_at.is_none_or(|t| t > Timestamp::now());
    let mut v = json!({
        "id": pat.id,
        "name": pat.name,
        "revoked": pat.revoked,
        "created_at": time(pat.created_at),
        "description": Value::Null,
        "scopes": pat.scopes,
        "user_id": pat.user_id,
        "last_used_at": opt_time(pat.last_used_at),
        "active": active,
        "expires_at": pat.expires_at.map(|t| json!(t.to_date_string())).unwrap_or(Value::Null),
    });
    if let (Some(token), Value::Object(map)) = (token, &mut v) {
        map.insert("token".into(), json!(token));
    }
    v
}

fn access_level_entry(id: i64, level: ProtectionLevel) -> Value {
    let description = level.description();
    json!({
        "id": id,
        "access_level": level.as_i64(),
        "access_level_description": description,
        "user_id": Value::Null,
        "group_id": Value::Null,
    })
}

pub fn protected_branch(b: &ProtectedBranch) -> Value {
    json!({
        "id": b.id,
        "name": b.name,
        "push_access_levels": [access_level_entry(b.id, b.push_access_level)],
        "merge_access_levels": [access_level_entry(b.id, b.merge_access_level)],
        "allow_force_push": b.allow_force_push,
        "code_owner_approval_required": false,
    })
}
