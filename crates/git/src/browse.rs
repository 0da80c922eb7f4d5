//! Browsing a repository as the web UI's repository pages do: a `ref/path` string split into
//! its ref and path (GitLab's longest-matching-ref rule), a folder's entries at a commit, a
//! file with what a page needs to decide how to show it (binary? too large?), and a bounded
//! history. Every walk has a limit given by the caller, and paths go through
//! [`normalise_path`], so nothing reads outside the commit's tree.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use git2::{ObjectType, Oid, Repository};

use crate::read::{CommitInfo, commit_info, normalise_path};
use crate::{Error, Repositories, Result};

/// What a folder entry is. Submodules are commits of another repository: listed, never opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Folder,
    File,
    Symlink,
    Submodule,
}

/// One entry of a folder at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeItem {
    pub name: String,
    /// The path from the repository's root.
    pub path: String,
    pub kind: EntryKind,
}

/// A folder's entries (folders first, then by name), and whether there were more than asked.
#[derive(Debug, Clone)]
pub struct Listing {
    pub items: Vec<TreeItem>,
    pub truncated: bool,
}

/// A file at a commit, read only when it is small enough to show.
#[derive(Debug, Clone)]
pub struct FileAt {
    pub oid: String,
    pub size: u64,
    /// git's own test: a NUL byte in the first 8000 bytes.
    pub binary: bool,
    /// `None` when the file is larger than the caller's limit (its bytes were never read).
    pub content: Option<Vec<u8>>,
}

/// A path's history: the commits that changed it, and whether the walk stopped at its
/// budget before it found as many as were asked for (older history was not searched).
#[derive(Debug, Clone)]
pub struct PathHistory {
    pub commits: Vec<CommitInfo>,
    pub exhausted: bool,
}

/// The first 40 (or 64) hex digits of a `ref/path` string: a commit SHA, not a ref name.
fn leading_sha(id: &str) -> Option<usize> {
    let hex = id.bytes().take_while(u8::is_ascii_hexdigit).count();
    [64, 40].into_iter().find(|n| hex >= *n)
}

/// Splits `ref/path` into the ref and the path, as GitLab's `ExtractsRef::RefExtractor#
/// extract_raw_ref` (lib/extracts_ref/ref_extractor.rb): a leading SHA is the ref; a string
/// without a slash is a ref alone; otherwise the longest branch or tag name `r` such that the
/// string starts with `r/`, and when none does, the first segment. The path loses surrounding
/// slashes and the ref surrounding spaces, as GitLab's `extract_ref`.
pub fn split_ref_path<'a>(
    id: &str,
    ref_names: impl IntoIterator<Item = &'a str>,
) -> (String, String) {
    let (raw_ref, raw_path) = if let Some(n) = leading_sha(id) {
        id.split_at(n)
    } else if !id.contains('/') {
        (id, "")
    } else {
        let with_slash = if id.ends_with('/') {
            id.to_string()
        } else {
            format!("{id}/")
        };
        let best = ref_names
            .into_iter()
            .filter(|name| {
                with_slash.len() > name.len()
                    && with_slash.starts_with(name)
                    && with_slash.as_bytes()[name.len()] == b'/'
            })
            .max_by_key(|name| name.len());
        match best {
            Some(name) => id.split_at(name.len()),
            None => id.split_once('/').unwrap_or((id, "")),
        }
    };
    (
        raw_ref.trim().to_string(),
        raw_path.trim_matches('/').to_string(),
    )
}

fn find_commit<'r>(repo: &'r Repository, commit_sha: &str) -> Result<git2::Commit<'r>> {
    let oid = Oid::from_str(commit_sha).map_err(|_| Error::InvalidRef(commit_sha.to_string()))?;
    repo.find_commit(oid)
        .map_err(|_| Error::InvalidRef(commit_sha.to_string()))
}

fn commit_tree<'r>(repo: &'r Repository, commit_sha: &str) -> Result<git2::Tree<'r>> {
    Ok(find_commit(repo, commit_sha)?.tree()?)
}

fn kind_of(entry: &git2::TreeEntry<'_>) -> EntryKind {
    match (entry.kind(), entry.filemode()) {
        (Some(ObjectType::Tree), _) => EntryKind::Folder,
        (Some(ObjectType::Commit), _) => EntryKind::Submodule,
        (_, 0o120000) => EntryKind::Symlink,
        _ => EntryKind::File,
    }
}

impl Repositories {
    /// Every branch and tag name (short), for splitting `ref/path` strings.
    pub fn ref_names(&self, project_id: i64) -> Result<Vec<String>> {
        let repo = self.open(project_id)?;
        let mut names = Vec::new();
        for reference in repo.references()? {
            let reference = reference?;
            let Ok(full) = reference.name() else { continue };
            if let Some(short) = full
                .strip_prefix("refs/heads/")
                .or_else(|| full.strip_prefix("refs/tags/"))
            {
                names.push(short.to_string());
            }
        }
        Ok(names)
    }

    /// The entries of folder `dir` (`""`: the root) at a commit, at most `limit`; `Ok(None)`
    /// when there is no such folder.
    pub fn list_folder(
        &self,
        project_id: i64,
        commit_sha: &str,
        dir: &str,
        limit: usize,
    ) -> Result<Option<Listing>> {
        let repo = self.open(project_id)?;
        let root = commit_tree(&repo, commit_sha)?;
        let (tree, prefix) = if dir.is_empty() {
            (root, String::new())
        } else {
            let dir = normalise_path(dir)?;
            let entry = match root.get_path(std::path::Path::new(&dir)) {
                Ok(entry) => entry,
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            match entry.to_object(&repo)?.into_tree() {
                Ok(tree) => (tree, format!("{dir}/")),
                Err(_) => return Ok(None),
            }
        };
        let mut items: Vec<TreeItem> = tree
            .iter()
            .take(limit)
            .map(|entry| {
                let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
                TreeItem {
                    path: format!("{prefix}{name}"),
                    kind: kind_of(&entry),
                    name,
                }
            })
            .collect();
        items.sort_by(|a, b| {
            (a.kind != EntryKind::Folder, &a.name).cmp(&(b.kind != EntryKind::Folder, &b.name))
        });
        Ok(Some(Listing {
            items,
            truncated: tree.len() > limit,
        }))
    }

    /// The file at `path` of a commit, its content read only if it is at most `max_bytes`;
    /// `Ok(None)` when there is no such file (a folder is not a file).
    pub fn file_at(
        &self,
        project_id: i64,
        commit_sha: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<FileAt>> {
        let repo = self.open(project_id)?;
        let tree = commit_tree(&repo, commit_sha)?;
        let path = normalise_path(path)?;
        let entry = match tree.get_path(std::path::Path::new(&path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        let (size, _) = repo.odb()?.read_header(entry.id())?;
        let size = size as u64;
        if size > max_bytes {
            // Large files are not read; a page shows a notice instead.
            return Ok(Some(FileAt {
                oid: entry.id().to_string(),
                size,
                binary: false,
                content: None,
            }));
        }
        let blob = repo.find_blob(entry.id())?;
        Ok(Some(FileAt {
            oid: entry.id().to_string(),
            size,
            binary: blob.is_binary(),
            content: Some(blob.content().to_vec()),
        }))
    }

    /// The history from a commit, newest first (`git log`'s order, [`DateOrder`]): `limit`
    /// commits after skipping `skip`.
    pub fn log(
        &self,
        project_id: i64,
        commit_sha: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<CommitInfo>> {
        let repo = self.open(project_id)?;
        let start = find_commit(&repo, commit_sha)?;
        let mut out = Vec::with_capacity(limit);
        for commit in DateOrder::from(&repo, &start).skip(skip).take(limit) {
            out.push(commit_info(&commit?));
        }
        Ok(out)
    }
}

/// The commits reachable from one, newest first as `git log` walks them: by committer date,
/// ties in the order they were reached (git's `commit_list_insert_by_date`). libgit2's own
/// time sort breaks ties arbitrarily, which shuffles commits made within one second.
struct DateOrder<'r> {
    repo: &'r Repository,
    queue: BinaryHeap<(i64, Reverse<u64>, Oid)>,
    seen: HashSet<Oid>,
    reached: u64,
}

impl<'r> DateOrder<'r> {
    fn from(repo: &'r Repository, start: &git2::Commit<'r>) -> Self {
        let mut walk = DateOrder {
            repo,
            queue: BinaryHeap::new(),
            seen: HashSet::new(),
            reached: 0,
        };
        walk.enqueue(start);
        walk
    }

    fn enqueue(&mut self, commit: &git2::Commit<'_>) {
        if self.seen.insert(commit.id()) {
            self.reached += 1;
            let key = (commit.time().seconds(), Reverse(self.reached), commit.id());
            self.queue.push(key);
        }
    }
}

impl<'r> Iterator for DateOrder<'r> {
    type Item = Result<git2::Commit<'r>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (_, _, oid) = self.queue.pop()?;
        let commit = match self.repo.find_commit(oid) {
            Ok(commit) => commit,
            Err(e) => return Some(Err(e.into())),
        };
        for parent in commit.parents() {
            self.enqueue(&parent);
        }
        Some(Ok(commit))
    }
}

/// The object at `path` in a commit's tree, if there is one.
fn entry_id(commit: &git2::Commit<'_>, path: &std::path::Path) -> Result<Option<Oid>> {
    match commit.tree()?.get_path(path) {
        Ok(entry) => Ok(Some(entry.id())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `git log -- path` shows the commit: its `path` differs from every parent's (it is
/// "TREESAME" to none); a root commit when it has the path at all.
fn changes_path(commit: &git2::Commit<'_>, path: &std::path::Path) -> Result<bool> {
    let here = entry_id(commit, path)?;
    if commit.parent_count() == 0 {
        return Ok(here.is_some());
    }
    for parent in commit.parents() {
        if entry_id(&parent, path)? == here {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Repositories {
    /// The history of `path` (a file or a folder) from a commit, newest first, as `git log
    /// <commit> -- <path>` lists it (GitLab's commits page filtered to a path; Gitaly runs
    /// `git log`): `limit` commits after skipping `skip`. At most `max_walked` commits are
    /// looked at, so a path changed once in a long history costs a bounded walk. Unlike git,
    /// the walk does not prune the side of a merge that kept the path as it was, so a change
    /// a merge discarded is listed too. `Ok(None)` when the commit has no such path (GitLab's
    /// page is a 404 then).
    pub fn log_path(
        &self,
        project_id: i64,
        commit_sha: &str,
        path: &str,
        range: (usize, usize),
        max_walked: usize,
    ) -> Result<Option<PathHistory>> {
        let (skip, limit) = range;
        let repo = self.open(project_id)?;
        let path = normalise_path(path)?;
        let path = std::path::Path::new(&path);
        let head = find_commit(&repo, commit_sha)?;
        if entry_id(&head, path)?.is_none() {
            return Ok(None);
        }
        let (mut commits, mut skipped, mut walked) = (Vec::with_capacity(limit), 0, 0);
        for commit in DateOrder::from(&repo, &head) {
            if commits.len() >= limit {
                break;
            }
            if walked >= max_walked {
                return Ok(Some(PathHistory {
                    commits,
                    exhausted: true,
                }));
            }
            walked += 1;
            let commit = commit?;
            if !changes_path(&commit, path)? {
                continue;
            }
            if skipped < skip {
                skipped += 1;
            } else {
                commits.push(commit_info(&commit));
            }
        }
        Ok(Some(PathHistory {
            commits,
            exhausted: false,
        }))
    }
}

/// Async wrappers for request handlers.
impl Repositories {
    pub async fn ref_names_async(&self, project_id: i64) -> Result<Vec<String>> {
        self.blocking(move |r| r.ref_names(project_id)).await
    }

    pub async fn list_folder_async(
        &self,
        project_id: i64,
        commit_sha: &str,
        dir: &str,
        limit: usize,
    ) -> Result<Option<Listing>> {
        let (sha, dir) = (commit_sha.to_string(), dir.to_string());
        self.blocking(move |r| r.list_folder(project_id, &sha, &dir, limit))
            .await
    }

    pub async fn file_at_async(
        &self,
        project_id: i64,
        commit_sha: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<FileAt>> {
        let (sha, path) = (commit_sha.to_string(), path.to_string());
        self.blocking(move |r| r.file_at(project_id, &sha, &path, max_bytes))
            .await
    }

    pub async fn log_async(
        &self,
        project_id: i64,
        commit_sha: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<CommitInfo>> {
        let sha = commit_sha.to_string();
        self.blocking(move |r| r.log(project_id, &sha, skip, limit))
            .await
    }

    pub async fn log_path_async(
        &self,
        project_id: i64,
        commit_sha: &str,
        path: &str,
        range: (usize, usize),
        max_walked: usize,
    ) -> Result<Option<PathHistory>> {
        let (sha, path) = (commit_sha.to_string(), path.to_string());
        self.blocking(move |r| r.log_path(project_id, &sha, &path, range, max_walked))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::split_ref_path;

    fn split(id: &str) -> (String, String) {
        split_ref_path(
            id,
            ["main", "feature", "feature/x", "v1.0", "release/2024/q1"],
        )
    }

    fn pair(r: &str, p: &str) -> (String, String) {
        (r.to_string(), p.to_string())
    }

    #[test]
    fn ref_and_path_split_by_the_longest_matching_ref() {
        assert_eq!(split("main"), pair("main", ""));
        assert_eq!(split("main/src/lib.rs"), pair("main", "src/lib.rs"));
        assert_eq!(split("feature/x/README.md"), pair("feature/x", "README.md"));
        assert_eq!(split("feature/y/README.md"), pair("feature", "y/README.md"));
        assert_eq!(split("feature/x"), pair("feature/x", ""));
        assert_eq!(split("release/2024/q1/a/"), pair("release/2024/q1", "a"));
        assert_eq!(split("v1.0/docs"), pair("v1.0", "docs"));
        // No ref matches: the first segment, as GitLab's fallback.
        assert_eq!(split("nope/a/b"), pair("nope", "a/b"));
        // `mainx` is not `main`.
        assert_eq!(split("mainx/a"), pair("mainx", "a"));
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(split(&format!("{sha}/a/b")), pair(sha, "a/b"));
        assert_eq!(split(sha), pair(sha, ""));
    }
}

#[cfg(test)]
mod history_tests {
    use crate::Repositories;

    /// Twelve commits made in the same second on `main`: commit `n` writes `a.txt` when `n`
    /// is even and `b.txt` when it is odd. Returns the repositories and the head's id.
    fn same_second_history() -> (tempfile::TempDir, Repositories, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let repos = Repositories::new(dir.path());
        repos.create(1, "main").expect("create");
        let repo = repos.open(1).expect("open");
        let sig = git2::Signature::new("T", "t@example.com", &git2::Time::new(1_700_000_000, 0))
            .expect("sig");
        let (mut files, mut parent) = (std::collections::BTreeMap::new(), None);
        for n in 0..12 {
            let name = if n % 2 == 0 { "a.txt" } else { "b.txt" };
            files.insert(name, repo.blob(format!("{n}").as_bytes()).expect("blob"));
            let mut tree = repo.treebuilder(None).expect("treebuilder");
            for (name, blob) in &files {
                tree.insert(name, *blob, 0o100644).expect("insert");
            }
            let tree = repo.find_tree(tree.write().expect("tree")).expect("find");
            let parents: Vec<git2::Commit<'_>> = parent.iter().cloned().collect();
            let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
            let id = repo
                .commit(
                    Some("refs/heads/main"),
                    &sig,
                    &sig,
                    &format!("c{n}"),
                    &tree,
                    &parents,
                )
                .expect("commit");
            parent = Some(repo.find_commit(id).expect("find commit"));
        }
        let head = parent.expect("head").id().to_string();
        (dir, repos, head)
    }

    fn titles(commits: &[crate::CommitInfo]) -> Vec<&str> {
        commits.iter().map(|c| c.title.as_str()).collect()
    }

    #[test]
    fn history_in_one_second_keeps_git_logs_order() {
        let (_dir, repos, head) = same_second_history();
        let log = repos.log(1, &head, 2, 3).expect("log");
        assert_eq!(titles(&log), ["c9", "c8", "c7"]);
    }

    #[test]
    fn a_paths_history_lists_the_commits_that_changed_it_within_a_budget() {
        let (_dir, repos, head) = same_second_history();
        let history = repos
            .log_path(1, &head, "a.txt", (1, 3), 100)
            .expect("log")
            .expect("a.txt exists");
        assert_eq!(titles(&history.commits), ["c8", "c6", "c4"]);
        assert!(!history.exhausted);
        // b.txt's first commit is the second one: the root commit did not have it.
        let all = repos
            .log_path(1, &head, "b.txt", (0, 100), 100)
            .expect("log");
        assert_eq!(all.expect("b.txt").commits.len(), 6);
        // Five commits looked at find only the newest changes, and say so.
        let cut = repos.log_path(1, &head, "a.txt", (0, 10), 5).expect("log");
        let cut = cut.expect("a.txt");
        assert_eq!(titles(&cut.commits), ["c10", "c8"]);
        assert!(cut.exhausted);
        assert!(
            repos
                .log_path(1, &head, "c.txt", (0, 10), 100)
                .expect("log")
                .is_none()
        );
        assert!(repos.log_path(1, &head, "../a.txt", (0, 10), 100).is_err());
    }
}
