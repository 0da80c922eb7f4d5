//! Browsing a repository as the web UI's repository pages do: a `ref/path` string split into
//! its ref and path (GitLab's longest-matching-ref rule), a folder's entries at a commit, a
//! file with what a page needs to decide how to show it (binary? too large?), and a bounded
//! history. Every walk has a limit given by the caller, and paths go through
//! [`normalise_path`], so nothing reads outside the commit's tree.

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

fn commit_tree<'r>(repo: &'r Repository, commit_sha: &str) -> Result<git2::Tree<'r>> {
    let oid = Oid::from_str(commit_sha).map_err(|_| Error::InvalidRef(commit_sha.to_string()))?;
    let commit = repo
        .find_commit(oid)
        .map_err(|_| Error::InvalidRef(commit_sha.to_string()))?;
    Ok(commit.tree()?)
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

    /// The history from a commit, newest first (`git log`'s order): `limit` commits after
    /// skipping `skip`.
    pub fn log(
        &self,
        project_id: i64,
        commit_sha: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<CommitInfo>> {
        let repo = self.open(project_id)?;
        let oid =
            Oid::from_str(commit_sha).map_err(|_| Error::InvalidRef(commit_sha.to_string()))?;
        let mut walk = repo.revwalk()?;
        walk.set_sorting(git2::Sort::TIME)?;
        walk.push(oid)
            .map_err(|_| Error::InvalidRef(commit_sha.to_string()))?;
        let mut out = Vec::with_capacity(limit);
        for oid in walk.skip(skip).take(limit) {
            out.push(commit_info(&repo.find_commit(oid?)?));
        }
        Ok(out)
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
