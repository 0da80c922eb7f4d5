//! Pipewright's git layer. It owns every bare repository in the data directory: creating and
//! deleting them, reading refs, commits and files (through git2), and speaking git's smart HTTP
//! pack protocol (delegated to the real `git upload-pack` / `git receive-pack`, with framing and
//! push policy hooks of our own). It never touches the database, never decides who may do what
//! (the server checks permissions and hands this crate only allowed work), and knows nothing
//! about HTTP frameworks. Repository paths are derived from project ids only, never from
//! user-supplied names, so no request can reach outside the repositories directory.

mod body;
mod browse;
mod error;
mod hooks;
mod pktline;
mod push;
mod read;
mod refname;
mod smart;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use body::RequestBody;
pub use browse::{EntryKind, FileAt, Listing, PathHistory, TreeItem, split_ref_path};
pub use error::Error;
pub use hooks::FORCE_PUSH_MESSAGE;
pub use push::{IncomingPush, ReceiveRequest, RefUpdate, parse_receive_commands, reject_push};
pub use read::{Blob, Branch, CommitInfo, ResolvedRef, Tag};
pub use refname::{is_valid_branch_name, is_valid_ref_name};
pub use smart::{ReceiveOutcome, Service};
pub use write::Author;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The all-zero object id git uses for "no commit" (ref creation and deletion).
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The repositories directory and everything done to the repositories in it.
///
/// Methods are blocking (git2 and the filesystem); the `*_async` wrappers run them on tokio's
/// blocking pool for use from request handlers.
#[derive(Clone)]
pub struct Repositories {
    root: PathBuf,
    /// Open repository handles, reused: opening one costs dozens of filesystem calls, which
    /// dominated the trigger endpoint's profile. A handle rereads refs on every lookup, so
    /// reuse never serves stale branches.
    pool: Arc<Mutex<HashMap<i64, Vec<git2::Repository>>>>,
    /// The pre-receive hook's directory, once written and tried (`None`: it cannot run).
    hooks: Arc<tokio::sync::OnceCell<Option<PathBuf>>>,
}

impl std::fmt::Debug for Repositories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repositories")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Handles kept per repository (one per concurrent reader is plenty).
const POOLED_PER_REPOSITORY: usize = 4;
/// Repositories with kept handles, at most.
const POOLED_REPOSITORIES: usize = 256;

/// A repository handle that goes back to the pool when dropped.
pub(crate) struct Pooled {
    repo: Option<git2::Repository>,
    project_id: i64,
    pool: Arc<Mutex<HashMap<i64, Vec<git2::Repository>>>>,
}

impl std::ops::Deref for Pooled {
    type Target = git2::Repository;
    fn deref(&self) -> &git2::Repository {
        // Always Some until drop.
        self.repo
            .as_ref()
            .unwrap_or_else(|| unreachable!("pooled repository used after drop"))
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(repo) = self.repo.take() else { return };
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() >= POOLED_REPOSITORIES && !pool.contains_key(&self.project_id) {
                pool.clear();
            }
            let handles = pool.entry(self.project_id).or_default();
            if handles.len() < POOLED_PER_REPOSITORY {
                handles.push(repo);
            }
        }
    }
}

impl Repositories {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Repositories {
            root: root.into(),
            pool: Arc::default(),
            hooks: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<id>.git`.
    pub fn repo_path(&self, project_id: i64) -> PathBuf {
        self.root.join(format!("{project_id}.git"))
    }

    /// Initialises a bare repository whose HEAD points at `refs/heads/<default_branch>`.
    pub fn create(&self, project_id: i64, default_branch: &str) -> Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let path = self.repo_path(project_id);
        let mut opts = git2::RepositoryInitOptions::new();
        opts.bare(true)
            .no_reinit(true)
            .initial_head(&format!("refs/heads/{default_branch}"))
            .mkpath(true);
        let repo = git2::Repository::init_opts(&path, &opts)?;
        let mut config = repo.config()?;
        // Pushes over HTTP go through `git receive-pack`, which consults these.
        config.set_bool("http.receivepack", true)?;
        config.set_bool("receive.denyNonFastForwards", false)?;
        config.set_bool("core.logAllRefUpdates", false)?;
        Ok(())
    }

    pub fn delete(&self, project_id: i64) -> Result<()> {
        if let Ok(mut pool) = self.pool.lock() {
            pool.remove(&project_id);
        }
        let path = self.repo_path(project_id);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn open(&self, project_id: i64) -> Result<Pooled> {
        let reused = self
            .pool
            .lock()
            .ok()
            .and_then(|mut pool| pool.get_mut(&project_id).and_then(Vec::pop));
        let repo = match reused {
            Some(repo) => repo,
            None => {
                let path = self.repo_path(project_id);
                git2::Repository::open_bare(&path).map_err(|e| {
                    if e.code() == git2::ErrorCode::NotFound {
                        Error::RepositoryNotFound
                    } else {
                        Error::Git(e)
                    }
                })?
            }
        };
        Ok(Pooled {
            repo: Some(repo),
            project_id,
            pool: self.pool.clone(),
        })
    }

    /// Points HEAD at another branch (when a project's default branch changes).
    pub fn set_default_branch(&self, project_id: i64, branch: &str) -> Result<()> {
        let repo = self.open(project_id)?;
        repo.set_head(&format!("refs/heads/{branch}"))?;
        Ok(())
    }
}
