//! The kinds of git ref a pipeline runs on.

/// A branch (`refs/heads/…`) or a tag (`refs/tags/…`). Git resolves a name to one; pipelines
/// record it; the config engine sets `CI_COMMIT_BRANCH` or `CI_COMMIT_TAG` and matches
/// `only: [branches]` / `only: [tags]` by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    Branch,
    Tag,
}
