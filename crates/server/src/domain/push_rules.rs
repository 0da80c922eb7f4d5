//! What a push may do to each ref, decided from its command list before `git receive-pack`
//! runs: GitLab's branch checks (`lib/gitlab/checks/branch_check.rb`), in GitLab's order and
//! with its messages. A refused push is refused whole, as GitLab's pre-receive hook refuses it.
//!
//! Every ref name is checked first, as `git check-ref-format` would: a name git would
//! normalise (`refs/heads//main`) must not be checked as one branch and written as another.
//! Whether an update is a force push needs the pushed commits, which git has only after
//! receiving the pack; those checks are handed to git as the refs it must only fast-forward
//! (`pipewright_git::FORCE_PUSH_MESSAGE`). GitLab checks force pushes before the other
//! protected-branch checks, so a push that breaks both is refused here with the other
//! message rather than the force-push one.

use pipewright_git::{RefUpdate, is_valid_ref_name};
use pipewright_store::ProtectedBranch;

use crate::domain::protected_refs::{push_allowed, rules_for};
use crate::permissions::{Action, ProjectAccess};

/// The messages GitLab's branch checks raise, with the `GitLab: ` prefix its hook prints
/// (`lib/gitlab/checks/branch_check.rb`, `ERROR_MESSAGES`).
pub mod messages {
    pub const DELETE_DEFAULT_BRANCH: &str =
        "GitLab: The default branch of a project cannot be deleted.";
    pub const PUSH_PROTECTED_BRANCH: &str =
        "GitLab: You are not allowed to push code to protected branches on this project.";
    pub const CREATE_PROTECTED_BRANCH: &str =
        "GitLab: You are not allowed to create protected branches on this project.";
    pub const NON_WEB_CREATE_PROTECTED_BRANCH: &str =
        "GitLab: You can only create protected branches using the web interface and API.";
    pub const NON_MASTER_DELETE_PROTECTED_BRANCH: &str = "GitLab: You are not allowed to delete protected branches from this project. Only a project maintainer or owner can delete a protected branch.";
    pub const NON_WEB_DELETE_PROTECTED_BRANCH: &str =
        "GitLab: You can only delete protected branches using the web interface.";
    pub const PROHIBITED_HEX_BRANCH_NAME: &str =
        "GitLab: You cannot create a branch with a 40-character hexadecimal branch name.";
    /// Not one of GitLab's: git itself refuses such a name ("funny refname"), and GitLab never
    /// sees it; we refuse it before looking at it at all.
    pub const INVALID_REF_NAME: &str = "GitLab: The push names a ref git does not accept (see git check-ref-format); nothing was changed.";
}

/// What the checks allow: the push may go to git, which must only fast-forward these refs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    pub fast_forward_only: Vec<String>,
}

/// Checks every command of a push; the first refusal's message wins.
pub fn check(
    default_branch: &str,
    rules: &[ProtectedBranch],
    access: &ProjectAccess,
    repository_empty: bool,
    commands: &[RefUpdate],
) -> Result<Allowed, &'static str> {
    if commands.iter().any(|c| !is_valid_ref_name(&c.ref_name)) {
        return Err(messages::INVALID_REF_NAME);
    }
    let mut allowed = Allowed::default();
    for command in commands {
        let Some(branch) = command.ref_name.strip_prefix("refs/heads/") else {
            continue;
        };
        if check_branch(
            default_branch,
            rules,
            access,
            repository_empty,
            command,
            branch,
        )? {
            allowed.fast_forward_only.push(command.ref_name.clone());
        }
    }
    Ok(allowed)
}

/// GitLab's `BranchCheck#validate!` for one branch; `Ok(true)` when git must refuse a force
/// push to it.
fn check_branch(
    default_branch: &str,
    rules: &[ProtectedBranch],
    access: &ProjectAccess,
    repository_empty: bool,
    command: &RefUpdate,
    branch: &str,
) -> Result<bool, &'static str> {
    if command.is_delete() && branch == default_branch {
        return Err(messages::DELETE_DEFAULT_BRANCH);
    }
    if !command.is_delete() && is_hex_branch_name(branch) {
        return Err(messages::PROHIBITED_HEX_BRANCH_NAME);
    }
    let matching = rules_for(rules, branch);
    if matching.is_empty() {
        return Ok(false);
    }
    // `ProtectedBranch.allow_force_push?`: any matching rule that allows it.
    let guard_force_push = !command.is_create()
        && !command.is_delete()
        && !matching.iter().any(|r| r.allow_force_push);
    let can_push = push_allowed(rules, branch, access);
    if repository_empty || (!command.is_create() && !command.is_delete()) {
        if !can_push {
            return Err(messages::PUSH_PROTECTED_BRANCH);
        }
    } else if command.is_create() {
        if !can_push {
            // Any matching rule's merge level (GitLab: protected_ref.rb, `any?`).
            let can_merge = matching
                .iter()
                .any(|r| r.merge_access_level.allows(access.role(), access.admin));
            return Err(if can_merge {
                // GitLab also checks that the new branch starts from a protected branch's
                // commit before this; either way a push is refused.
                messages::NON_WEB_CREATE_PROTECTED_BRANCH
            } else {
                messages::CREATE_PROTECTED_BRANCH
            });
        }
    } else {
        // Deleting: GitLab's `push_to_delete_protected_branch` is a Maintainer's ability, and
        // even they delete protected branches only through the web interface.
        return Err(if access.can(Action::ManageProtectedBranches) {
            messages::NON_WEB_DELETE_PROTECTED_BRANCH
        } else {
            messages::NON_MASTER_DELETE_PROTECTED_BRANCH
        });
    }
    Ok(guard_force_push)
}

/// GitLab refuses branch names that look like commit ids: 40 hex digits, alone or followed by
/// `/` or `-/` (`prohibited_branch_checks`).
fn is_hex_branch_name(branch: &str) -> bool {
    let bytes = branch.as_bytes();
    if bytes.len() < 40 || !bytes[..40].iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let rest = &branch[40..];
    rest.is_empty() || rest.starts_with('/') || rest.starts_with("-/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipewright_core::{AccessLevel, Timestamp, Visibility};
    use pipewright_git::ZERO_SHA;
    use pipewright_store::ProtectionLevel;

    fn rule(name: &str, push: AccessLevel, force: bool) -> ProtectedBranch {
        ProtectedBranch {
            id: 1,
            project_id: 1,
            name: name.into(),
            push_access_level: ProtectionLevel::AtLeast(push),
            merge_access_level: ProtectionLevel::AtLeast(AccessLevel::Maintainer),
            allow_force_push: force,
            created_at: Timestamp(0),
        }
    }

    fn access(role: AccessLevel) -> ProjectAccess {
        ProjectAccess {
            visibility: Visibility::Private,
            role: Some(role),
            authenticated: true,
            admin: false,
        }
    }

    fn update(old: &str, new: &str, name: &str) -> RefUpdate {
        RefUpdate {
            old_sha: old.into(),
            new_sha: new.into(),
            ref_name: name.into(),
        }
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn updates_of_protected_branches_must_fast_forward_unless_a_rule_allows_force() {
        let maintainer = access(AccessLevel::Maintainer);
        let rules = vec![rule("main", AccessLevel::Maintainer, false)];
        let push = [
            update(A, B, "refs/heads/main"),
            update(A, B, "refs/heads/x"),
        ];
        let allowed = check("main", &rules, &maintainer, false, &push).expect("allowed");
        assert_eq!(
            allowed.fast_forward_only,
            vec!["refs/heads/main".to_string()]
        );
        let forcing = vec![
            rule("main", AccessLevel::Maintainer, false),
            rule("ma*", AccessLevel::Maintainer, true),
        ];
        let allowed = check("main", &forcing, &maintainer, false, &push).expect("allowed");
        assert!(allowed.fast_forward_only.is_empty());
    }

    #[test]
    fn protected_branches_are_deleted_only_through_the_web() {
        let rules = vec![rule("release", AccessLevel::Developer, false)];
        let delete = [update(A, ZERO_SHA, "refs/heads/release")];
        assert_eq!(
            check(
                "main",
                &rules,
                &access(AccessLevel::Maintainer),
                false,
                &delete
            ),
            Err(messages::NON_WEB_DELETE_PROTECTED_BRANCH)
        );
        assert_eq!(
            check(
                "main",
                &rules,
                &access(AccessLevel::Developer),
                false,
                &delete
            ),
            Err(messages::NON_MASTER_DELETE_PROTECTED_BRANCH)
        );
        let default = [update(A, ZERO_SHA, "refs/heads/main")];
        assert_eq!(
            check("main", &[], &access(AccessLevel::Owner), false, &default),
            Err(messages::DELETE_DEFAULT_BRANCH)
        );
    }

    #[test]
    fn names_are_checked_before_anything_else() {
        let rules = vec![rule("main", AccessLevel::Maintainer, false)];
        let sneaky = [update(A, B, "refs/heads//main")];
        assert_eq!(
            check(
                "main",
                &rules,
                &access(AccessLevel::Developer),
                false,
                &sneaky
            ),
            Err(messages::INVALID_REF_NAME)
        );
        let hex = [update(ZERO_SHA, B, &format!("refs/heads/{A}"))];
        assert_eq!(
            check("main", &[], &access(AccessLevel::Owner), false, &hex),
            Err(messages::PROHIBITED_HEX_BRANCH_NAME)
        );
        assert!(is_hex_branch_name(&format!("{A}/x")));
        assert!(is_hex_branch_name(&format!("{A}-/x")));
        assert!(!is_hex_branch_name(&format!("{A}x")));
    }

    #[test]
    fn creating_a_protected_branch_needs_push_access() {
        let rules = vec![rule("release/*", AccessLevel::Maintainer, false)];
        let create = [update(ZERO_SHA, B, "refs/heads/release/1")];
        assert_eq!(
            check(
                "main",
                &rules,
                &access(AccessLevel::Developer),
                false,
                &create
            ),
            Err(messages::CREATE_PROTECTED_BRANCH)
        );
        assert!(
            check(
                "main",
                &rules,
                &access(AccessLevel::Maintainer),
                false,
                &create
            )
            .is_ok()
        );
    }
}
