//! Protected branches: which rules protect a branch ([`rules_for`], GitLab's wildcards), who
//! may push to it ([`push_allowed`], asked for every ref a push updates) and, beyond
//! `git push`, who may change what runs on it. A pipeline of a protected branch runs with the
//! protected CI/CD variables and on protected runners, so GitLab lets only those who may update
//! the branch — push to it or merge into it — run pipelines there, and play, retry, cancel or
//! erase their jobs (or keep their artifacts). The API and the pages ask [`may_update`] before
//! any of those.
//!
//! GitLab: `Gitlab::UserAccess#can_update_branch?` (lib/gitlab/user_access.rb), used by the
//! `protected_ref` conditions of app/policies/ci/build_policy.rb (which prevents every
//! `all_job_write_abilities`: update/play/retry/unschedule/keep, cancel/erase) and
//! app/policies/ci/pipeline_policy.rb (`update_pipeline`, `cancel_pipeline`), and by the
//! pipeline creation chain (`Chain::Validate::Abilities`).

use pipewright_store::{Pipeline, ProtectedBranch, StoreError};

use crate::permissions::ProjectAccess;
use crate::state::AppState;

/// GitLab's wildcard rule: `*` matches any run of characters, including `/`.
pub fn matches(pattern: &str, branch: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == branch;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = branch;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The rules that apply to a branch (exact and wildcard).
pub fn rules_for<'a>(rules: &'a [ProtectedBranch], branch: &str) -> Vec<&'a ProtectedBranch> {
    rules.iter().filter(|r| matches(&r.name, branch)).collect()
}

/// Whether a push to `branch` is allowed: unprotected branches need only push access
/// (checked by the caller); protected ones need every matching rule's push level.
pub fn push_allowed(rules: &[ProtectedBranch], branch: &str, access: &ProjectAccess) -> bool {
    rules_for(rules, branch)
        .iter()
        .all(|r| r.push_access_level.allows(access.role(), access.admin))
}

/// Whether `access` may update `branch`: it is unprotected, or every rule protecting it lets
/// the caller push, or every one lets the caller merge. (GitLab accepts any one matching
/// rule's level; Pipewright's push check asks all of them, and this follows it, so it is never
/// more permissive than a push.)
pub fn update_allowed(rules: &[ProtectedBranch], branch: &str, access: &ProjectAccess) -> bool {
    push_allowed(rules, branch, access)
        || rules_for(rules, branch)
            .iter()
            .all(|r| r.merge_access_level.allows(access.role(), access.admin))
}

/// Whether `access` may change `pipeline` and its jobs as far as its ref is concerned (the
/// role the action needs is checked by the caller, with `permissions.rs`). The branch's rules
/// are read now: unprotecting a branch frees its old pipelines too, as on GitLab.
pub async fn may_update(
    state: &AppState,
    access: &ProjectAccess,
    pipeline: &Pipeline,
) -> Result<bool, StoreError> {
    // Pipewright has no protected tags: a tag's pipelines need only the action's role.
    if pipeline.tag {
        return Ok(true);
    }
    let rules = state.store.protected_branches(pipeline.project_id).await?;
    Ok(update_allowed(&rules, &pipeline.ref_name, access))
}

#[cfg(test)]
mod tests {
    use pipewright_core::{AccessLevel, Timestamp, Visibility};
    use pipewright_store::ProtectionLevel;

    use super::*;

    fn rule(name: &str, push: ProtectionLevel, merge: ProtectionLevel) -> ProtectedBranch {
        ProtectedBranch {
            id: 1,
            project_id: 1,
            name: name.into(),
            push_access_level: push,
            merge_access_level: merge,
            allow_force_push: false,
            created_at: Timestamp(0),
        }
    }

    fn member(role: AccessLevel) -> ProjectAccess {
        ProjectAccess {
            visibility: Visibility::Private,
            role: Some(role),
            authenticated: true,
            admin: false,
        }
    }

    #[test]
    fn pushing_or_merging_is_updating() {
        use AccessLevel::*;
        use ProtectionLevel::*;
        let maintainers = [rule("main", AtLeast(Maintainer), AtLeast(Maintainer))];
        assert!(!update_allowed(&maintainers, "main", &member(Developer)));
        assert!(update_allowed(&maintainers, "main", &member(Maintainer)));
        assert!(update_allowed(&maintainers, "feature", &member(Developer)));
        let merge_only = [rule("main", NoOne, AtLeast(Developer))];
        assert!(update_allowed(&merge_only, "main", &member(Developer)));
        let nobody = [rule("release/*", NoOne, NoOne)];
        assert!(!update_allowed(&nobody, "release/1", &member(Owner)));
    }

    #[test]
    fn wildcards() {
        assert!(matches("main", "main"));
        assert!(!matches("main", "main2"));
        assert!(matches("release/*", "release/1.0"));
        assert!(matches("*-stable", "6-0-stable"));
        assert!(matches("*", "anything/at/all"));
        assert!(!matches("release/*", "feature/x"));
    }
}
