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
/// (checked by the caller); a protected one needs the push level of any one rule that matches
/// it, as GitLab: `access_levels_for_ref(ref, action:).any? { … check_access(user) }` over
/// every matching rule's levels (app/models/concerns/protected_ref.rb).
pub fn push_allowed(rules: &[ProtectedBranch], branch: &str, access: &ProjectAccess) -> bool {
    any_rule_allows(rules, branch, |r| {
        r.push_access_level.allows(access.role(), access.admin)
    })
}

/// Whether `access` may update `branch`: it is unprotected, or a rule protecting it lets the
/// caller push or merge (GitLab's `can_update_branch?`: push or merge access).
pub fn update_allowed(rules: &[ProtectedBranch], branch: &str, access: &ProjectAccess) -> bool {
    push_allowed(rules, branch, access)
        || any_rule_allows(rules, branch, |r| {
            r.merge_access_level.allows(access.role(), access.admin)
        })
}

/// True for a branch no rule protects; otherwise whether one of its rules allows.
fn any_rule_allows(
    rules: &[ProtectedBranch],
    branch: &str,
    allows: impl Fn(&ProtectedBranch) -> bool,
) -> bool {
    let matching = rules_for(rules, branch);
    matching.is_empty() || matching.into_iter().any(allows)
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

    /// GitLab grants an action when any rule matching the branch grants it: `main` for
    /// Maintainers and `*` for Developers lets a Developer push to `main`.
    #[test]
    fn any_matching_rule_grants_as_on_gitlab() {
        use AccessLevel::*;
        use ProtectionLevel::*;
        let rules = [
            rule("main", AtLeast(Maintainer), AtLeast(Maintainer)),
            rule("*", AtLeast(Developer), NoOne),
        ];
        assert!(push_allowed(&rules, "main", &member(Developer)));
        assert!(!push_allowed(&rules, "main", &member(Reporter)));
        let closed = [rule("main", NoOne, NoOne), rule("ma*", NoOne, NoOne)];
        assert!(!update_allowed(&closed, "main", &member(Owner)));
        assert!(push_allowed(&closed, "feature", &member(Developer)));
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
