//! Reading repositories: branches, tags, ref resolution with GitLab's rules, commits, files.

use git2::{ObjectType, Oid, Repository};
use pipewright_core::{RefKind, Timestamp};

use crate::refname::{is_valid_branch_name, is_valid_ref_name};
use crate::{Error, Repositories, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: String,
    pub short_id: String,
    pub title: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub authored_date: Timestamp,
    pub committer_name: String,
    pub committer_email: String,
    pub committed_date: Timestamp,
    pub parent_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub name: String,
    pub commit: CommitInfo,
}

#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    /// The tag object id for annotated tags, the commit id for lightweight ones.
    pub target: String,
    pub message: Option<String>,
    pub annotated: bool,
    pub commit: CommitInfo,
}

/// A branch or tag name resolved to its commit.
#[derive(Debug, Clone)]
pub struct ResolvedRef {
    /// The short name (`main`, `v1.0`), as pipelines record it.
    pub name: String,
    pub full_ref: String,
    pub kind: RefKind,
    pub sha: String,
    pub commit: CommitInfo,
}

#[derive(Debug, Clone)]
pub struct Blob {
    pub oid: String,
    pub size: u64,
    pub content: Vec<u8>,
}

fn timestamp(t: git2::Time) -> Timestamp {
    Timestamp(t.seconds().saturating_mul(1000))
}

fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let id = commit.id().to_string();
    let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    let title = message.lines().next().unwrap_or("").to_string();
    let author = commit.author();
    let committer = commit.committer();
    CommitInfo {
        short_id: id.chars().take(8).collect(),
        id,
        title,
        message,
        author_name: String::from_utf8_lossy(author.name_bytes()).into_owned(),
        author_email: String::from_utf8_lossy(author.email_bytes()).into_owned(),
        authored_date: timestamp(author.when()),
        committer_name: String::from_utf8_lossy(committer.name_bytes()).into_owned(),
        committer_email: String::from_utf8_lossy(committer.email_bytes()).into_owned(),
        committed_date: timestamp(committer.when()),
        parent_ids: commit.parent_ids().map(|p| p.to_string()).collect(),
    }
}

/// The commit a reference finally points at (peeling annotated tags), if any.
fn peel_commit<'r>(
    repo: &'r Repository,
    reference: &git2::Reference<'r>,
) -> Option<git2::Commit<'r>> {
    let _ = repo;
    reference.peel_to_commit().ok()
}

/// Validates a repository-relative file path: no `..`, no absolute paths, no empty or `.`
/// segments, no NUL. Returns the normalised path.
pub fn normalise_path(path: &str) -> Result<String> {
    let trimmed = path.trim_start_matches("./");
    if trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed.contains('\0')
        || trimmed.contains('\\')
    {
        return Err(Error::InvalidPath(path.to_string()));
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(Error::InvalidPath(path.to_string()));
        }
    }
    Ok(trimmed.to_string())
}

impl Repositories {
    /// True when the repository has no refs at all. (libgit2's own `is_empty` also requires
    /// HEAD to name its default branch, `master`, which ours usually does not.)
    pub fn is_empty(&self, project_id: i64) -> Result<bool> {
        let repo = self.open(project_id)?;
        let mut refs = repo.references()?;
        Ok(refs.next().is_none())
    }

    pub fn branches(&self, project_id: i64) -> Result<Vec<Branch>> {
        let repo = self.open(project_id)?;
        let mut out = Vec::new();
        for item in repo.branches(Some(git2::BranchType::Local))? {
            let (branch, _) = item?;
            let Some(name) = branch.name()?.map(str::to_string) else {
                continue;
            };
            if let Some(commit) = peel_commit(&repo, branch.get()) {
                out.push(Branch {
                    name,
                    commit: commit_info(&commit),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn tags(&self, project_id: i64) -> Result<Vec<Tag>> {
        let repo = self.open(project_id)?;
        let mut out = Vec::new();
        for reference in repo.references_glob("refs/tags/*")? {
            let reference = reference?;
            let Ok(full) = reference.name() else { continue };
            let name = full.trim_start_matches("refs/tags/").to_string();
            let Some(target) = reference.target() else {
                continue;
            };
            let Some(commit) = peel_commit(&repo, &reference) else {
                continue;
            };
            let (annotated, message) = match repo.find_tag(target) {
                Ok(tag) => (
                    true,
                    tag.message_bytes()
                        .map(|m| String::from_utf8_lossy(m).into_owned()),
                ),
                Err(_) => (false, None),
            };
            out.push(Tag {
                name,
                target: target.to_string(),
                message,
                annotated,
                commit: commit_info(&commit),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// GitLab's ref resolution: `refs/heads/x` and `refs/tags/x` are used as-is; a short name
    /// is tried as a branch and as a tag, and both existing is ambiguous. A commit SHA is not
    /// a ref. A name `git check-ref-format` refuses is not found, before any lookup: libgit2
    /// would find `refs/heads//main` as `main`, and the caller would check the wrong name.
    pub fn resolve_ref(&self, project_id: i64, name: &str) -> Result<ResolvedRef> {
        let full_name_valid = if name.starts_with("refs/") {
            is_valid_ref_name(name)
        } else {
            is_valid_branch_name(name)
        };
        if !full_name_valid {
            return Err(Error::InvalidRef(name.to_string()));
        }
        let repo = self.open(project_id)?;
        let lookup = |full: &str, kind: RefKind, short: &str| -> Option<ResolvedRef> {
            let reference = repo.find_reference(full).ok()?;
            let commit = peel_commit(&repo, &reference)?;
            let info = commit_info(&commit);
            Some(ResolvedRef {
                name: short.to_string(),
                full_ref: full.to_string(),
                kind,
                sha: info.id.clone(),
                commit: info,
            })
        };
        if let Some(short) = name.strip_prefix("refs/heads/") {
            return lookup(name, RefKind::Branch, short)
                .ok_or_else(|| Error::InvalidRef(name.to_string()));
        }
        if let Some(short) = name.strip_prefix("refs/tags/") {
            return lookup(name, RefKind::Tag, short)
                .ok_or_else(|| Error::InvalidRef(name.to_string()));
        }
        let branch = lookup(&format!("refs/heads/{name}"), RefKind::Branch, name);
        let tag = lookup(&format!("refs/tags/{name}"), RefKind::Tag, name);
        match (branch, tag) {
            (Some(_), Some(_)) => Err(Error::Ambiguous(name.to_string())),
            (Some(b), None) => Ok(b),
            (None, Some(t)) => Ok(t),
            (None, None) => Err(Error::InvalidRef(name.to_string())),
        }
    }

    /// A commit by full or abbreviated SHA, or by branch or tag name (the files and commits
    /// APIs accept all three). `Ok(None)` when nothing matches.
    pub fn commit(&self, project_id: i64, rev: &str) -> Result<Option<CommitInfo>> {
        let repo = self.open(project_id)?;
        if rev.is_empty()
            || rev.starts_with('-')
            || rev.contains("..")
            || rev.contains(['^', '~', ':', '@', ' ', '\0'])
        {
            return Ok(None);
        }
        for candidate in [
            format!("refs/heads/{rev}"),
            format!("refs/tags/{rev}"),
            rev.to_string(),
        ] {
            if let Ok(reference) = repo.find_reference(&candidate)
                && let Some(commit) = peel_commit(&repo, &reference)
            {
                return Ok(Some(commit_info(&commit)));
            }
        }
        if rev.len() >= 4
            && rev.len() <= 40
            && rev.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(object) = repo.revparse_single(rev)
            && let Ok(commit) = object.peel_to_commit()
        {
            return Ok(Some(commit_info(&commit)));
        }
        Ok(None)
    }

    fn tree_entry<'r>(
        repo: &'r Repository,
        commit_sha: &str,
        path: &str,
    ) -> Result<Option<git2::TreeEntry<'r>>> {
        let path = normalise_path(path)?;
        let oid =
            Oid::from_str(commit_sha).map_err(|_| Error::InvalidRef(commit_sha.to_string()))?;
        let commit = repo
            .find_commit(oid)
            .map_err(|_| Error::InvalidRef(commit_sha.to_string()))?;
        let tree = commit.tree()?;
        match tree.get_path(std::path::Path::new(&path)) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The blob id of a file at a commit (cheap: for caching parsed files by content).
    pub fn blob_id(&self, project_id: i64, commit_sha: &str, path: &str) -> Result<Option<String>> {
        let repo = self.open(project_id)?;
        Ok(Self::tree_entry(&repo, commit_sha, path)?
            .filter(|e| e.kind() == Some(ObjectType::Blob))
            .map(|e| e.id().to_string()))
    }

    /// A file's content at a commit; `Ok(None)` if there is no such file.
    pub fn read_file(
        &self,
        project_id: i64,
        commit_sha: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Blob>> {
        let repo = self.open(project_id)?;
        let Some(entry) = Self::tree_entry(&repo, commit_sha, path)? else {
            return Ok(None);
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        let odb = repo.odb()?;
        let (size, _) = odb.read_header(entry.id())?;
        let size = size as u64;
        if size > max_bytes {
            return Err(Error::TooLarge { limit: max_bytes });
        }
        let blob = repo.find_blob(entry.id())?;
        Ok(Some(Blob {
            oid: entry.id().to_string(),
            size,
            content: blob.content().to_vec(),
        }))
    }

    /// Every file path at a commit, up to `limit` (for `rules:exists`).
    pub fn list_paths(
        &self,
        project_id: i64,
        commit_sha: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let repo = self.open(project_id)?;
        let oid =
            Oid::from_str(commit_sha).map_err(|_| Error::InvalidRef(commit_sha.to_string()))?;
        let tree = repo
            .find_commit(oid)
            .map_err(|_| Error::InvalidRef(commit_sha.to_string()))?
            .tree()?;
        let mut out = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if out.len() >= limit {
                return git2::TreeWalkResult::Abort;
            }
            if entry.kind() == Some(ObjectType::Blob)
                && let Ok(name) = entry.name()
            {
                out.push(format!("{dir}{name}"));
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok(out)
    }

    /// Paths that differ between two commits, up to `limit` (for `rules:changes` on pushes).
    /// A zero or unknown `from` compares against the empty tree.
    pub fn changed_paths(
        &self,
        project_id: i64,
        from_sha: &str,
        to_sha: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let repo = self.open(project_id)?;
        let to = Oid::from_str(to_sha).map_err(|_| Error::InvalidRef(to_sha.to_string()))?;
        let to_tree = repo
            .find_commit(to)
            .map_err(|_| Error::InvalidRef(to_sha.to_string()))?
            .tree()?;
        let from_tree = Oid::from_str(from_sha)
            .ok()
            .filter(|o| !o.is_zero())
            .and_then(|o| repo.find_commit(o).ok())
            .and_then(|c| c.tree().ok());
        let diff = repo.diff_tree_to_tree(from_tree.as_ref(), Some(&to_tree), None)?;
        let mut out = Vec::new();
        for delta in diff.deltas() {
            if out.len() >= limit {
                break;
            }
            for file in [delta.new_file(), delta.old_file()] {
                if let Some(p) = file.path().and_then(|p| p.to_str())
                    && !out.iter().any(|x: &String| x == p)
                {
                    out.push(p.to_string());
                }
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

/// Async wrappers for request handlers: the same calls on tokio's blocking pool.
impl Repositories {
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Repositories) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|e| Error::Process(format!("blocking task failed: {e}")))?
    }

    pub async fn create_async(&self, project_id: i64, default_branch: &str) -> Result<()> {
        let branch = default_branch.to_string();
        self.blocking(move |r| r.create(project_id, &branch)).await
    }

    pub async fn delete_async(&self, project_id: i64) -> Result<()> {
        self.blocking(move |r| r.delete(project_id)).await
    }

    pub async fn set_default_branch_async(&self, project_id: i64, branch: &str) -> Result<()> {
        let branch = branch.to_string();
        self.blocking(move |r| r.set_default_branch(project_id, &branch))
            .await
    }

    pub async fn is_empty_async(&self, project_id: i64) -> Result<bool> {
        self.blocking(move |r| r.is_empty(project_id)).await
    }

    pub async fn branches_async(&self, project_id: i64) -> Result<Vec<Branch>> {
        self.blocking(move |r| r.branches(project_id)).await
    }

    pub async fn tags_async(&self, project_id: i64) -> Result<Vec<Tag>> {
        self.blocking(move |r| r.tags(project_id)).await
    }

    /// Resolves `name` and finds the blob id of `path` at it, opening the repository once (the
    /// trigger endpoint's hot path).
    pub async fn resolve_ref_with_blob_async(
        &self,
        project_id: i64,
        name: &str,
        path: &str,
    ) -> Result<(ResolvedRef, Option<String>)> {
        let (name, path) = (name.to_string(), path.to_string());
        self.blocking(move |r| {
            let resolved = r.resolve_ref(project_id, &name)?;
            let blob = r.blob_id(project_id, &resolved.sha, &path)?;
            Ok((resolved, blob))
        })
        .await
    }

    pub async fn resolve_ref_async(&self, project_id: i64, name: &str) -> Result<ResolvedRef> {
        let name = name.to_string();
        self.blocking(move |r| r.resolve_ref(project_id, &name))
            .await
    }

    pub async fn commit_async(&self, project_id: i64, rev: &str) -> Result<Option<CommitInfo>> {
        let rev = rev.to_string();
        self.blocking(move |r| r.commit(project_id, &rev)).await
    }

    pub async fn read_file_async(
        &self,
        project_id: i64,
        commit_sha: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Blob>> {
        let (sha, path) = (commit_sha.to_string(), path.to_string());
        self.blocking(move |r| r.read_file(project_id, &sha, &path, max_bytes))
            .await
    }

    pub async fn blob_id_async(
        &self,
        project_id: i64,
        commit_sha: &str,
        path: &str,
    ) -> Result<Option<String>> {
        let (sha, path) = (commit_sha.to_string(), path.to_string());
        self.blocking(move |r| r.blob_id(project_id, &sha, &path))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::normalise_path;

    #[test]
    fn paths_are_validated() {
        assert_eq!(normalise_path("a/b.txt").ok().as_deref(), Some("a/b.txt"));
        assert_eq!(
            normalise_path("./.gitlab-ci.yml").ok().as_deref(),
            Some(".gitlab-ci.yml")
        );
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\0b",
            "a\\b",
        ] {
            assert!(normalise_path(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod repository_tests {
    use super::*;

    /// A repository with one commit on `main`, a tag `v1`, and a branch and tag both named `twin`.
    fn fixture() -> (tempfile::TempDir, Repositories, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let repos = Repositories::new(dir.path());
        repos.create(1, "main").expect("create");
        assert!(repos.is_empty(1).expect("empty"));
        let repo = repos.open(1).expect("open");
        let sig = git2::Signature::now("T", "t@example.com").expect("sig");
        let mut index = repo.index().expect("index");
        let oid = repo.blob(b"job:\n  script: true\n").expect("blob");
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: 20,
            id: oid,
            flags: 0,
            flags_extended: 0,
            path: b"dir/.gitlab-ci.yml".to_vec(),
        };
        index.add(&entry).expect("add");
        let tree = repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("find tree");
        let commit = repo
            .commit(
                Some("refs/heads/main"),
                &sig,
                &sig,
                "First\n\nbody",
                &tree,
                &[],
            )
            .expect("commit");
        let object = repo.find_object(commit, None).expect("object");
        repo.tag_lightweight("v1", &object, false).expect("tag");
        repo.tag_lightweight("twin", &object, false).expect("tag");
        repo.branch("twin", &repo.find_commit(commit).expect("c"), false)
            .expect("branch");
        (dir, repos, commit.to_string())
    }

    #[test]
    fn refs_resolve_as_gitlab_resolves_them() {
        let (_dir, repos, sha) = fixture();
        assert!(!repos.is_empty(1).expect("not empty"));
        let main = repos.resolve_ref(1, "main").expect("main");
        assert_eq!(
            (main.kind, main.sha.as_str(), main.name.as_str()),
            (RefKind::Branch, sha.as_str(), "main")
        );
        assert_eq!(main.commit.title, "First");
        let tag = repos.resolve_ref(1, "v1").expect("v1");
        assert_eq!(tag.kind, RefKind::Tag);
        assert!(matches!(
            repos.resolve_ref(1, "twin"),
            Err(Error::Ambiguous(_))
        ));
        assert_eq!(
            repos.resolve_ref(1, "refs/heads/twin").expect("full").kind,
            RefKind::Branch
        );
        assert_eq!(
            repos.resolve_ref(1, "refs/tags/twin").expect("full").name,
            "twin"
        );
        assert!(
            matches!(repos.resolve_ref(1, &sha), Err(Error::InvalidRef(_))),
            "a SHA is not a ref"
        );
        assert!(matches!(
            repos.resolve_ref(1, "nope"),
            Err(Error::InvalidRef(_))
        ));
        // Names git would normalise are refused, not resolved to the branch they normalise to.
        for bad in [
            "a..b",
            "refs/heads//main",
            "/main",
            "main/",
            "refs/heads/main/",
            "main\r\n",
        ] {
            assert!(
                matches!(repos.resolve_ref(1, bad), Err(Error::InvalidRef(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn files_commits_and_paths() {
        let (_dir, repos, sha) = fixture();
        let blob = repos
            .read_file(1, &sha, "dir/.gitlab-ci.yml", 1024)
            .expect("read")
            .expect("exists");
        assert_eq!(blob.content, b"job:\n  script: true\n");
        assert_eq!(
            repos.blob_id(1, &sha, "dir/.gitlab-ci.yml").expect("id"),
            Some(blob.oid.clone())
        );
        assert!(
            repos
                .read_file(1, &sha, "missing", 1024)
                .expect("read")
                .is_none()
        );
        assert!(
            repos
                .read_file(1, &sha, "dir", 1024)
                .expect("read")
                .is_none(),
            "a tree is not a file"
        );
        assert!(matches!(
            repos.read_file(1, &sha, "dir/.gitlab-ci.yml", 4),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            repos.read_file(1, &sha, "../x", 4),
            Err(Error::InvalidPath(_))
        ));
        assert_eq!(
            repos.commit(1, "v1").expect("c").map(|c| c.id),
            Some(sha.clone())
        );
        assert_eq!(
            repos.commit(1, &sha[..8]).expect("c").map(|c| c.id),
            Some(sha.clone())
        );
        assert_eq!(repos.commit(1, "HEAD~1").expect("c"), None);
        assert_eq!(
            repos.list_paths(1, &sha, 10).expect("paths"),
            vec!["dir/.gitlab-ci.yml".to_string()]
        );
        assert_eq!(
            repos
                .changed_paths(1, crate::ZERO_SHA, &sha, 10)
                .expect("changed"),
            vec!["dir/.gitlab-ci.yml".to_string()]
        );
        assert_eq!(repos.branches(1).expect("branches").len(), 2);
        assert_eq!(repos.tags(1).expect("tags").len(), 2);
        assert!(matches!(
            repos.resolve_ref(2, "main"),
            Err(Error::RepositoryNotFound)
        ));
    }
}
