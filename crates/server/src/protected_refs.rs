//! Protected branches beyond `git push`: who may change what runs on them. A pipeline of a
//! protected branch runs with the protected CI/CD variables and on protected runners, so GitLab
//! lets only those who may update the branch — push to it or merge into it — run pipelines
//! there, and play, retry, cancel or erase their jobs (or keep their artifacts). The API and
//! the pages ask [`may_update`] before any of those.
//!
//! GitLab: `Gitlab::UserAccess#can_update_branch?` (lib/gitlab/user_access.rb), used by the
//! `protected_ref` conditions of app/policies/ci/build_policy.rb (which prevents every
//! `all_job_write_abilities`: update/play/retry/unschedule/keep, cancel/erase) and
//! app/policies/ci/pipeline_policy.rb (`update_pipeline`, `cancel_pipeline`), and by the
//! pipeline creation chain (`Chain::Validate::Abilities`).

use pipewright_store::{Pipeline, ProtectedBranch, StoreError};

use crate::api::protected_branches::{push_allowed, rules_for};
use crate::permissions::ProjectAccess;
use crate::state::AppState;

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
