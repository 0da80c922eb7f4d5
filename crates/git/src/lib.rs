//! Pipewright's git layer. It owns every bare repository in the data directory: creating and
//! deleting them, reading refs, commits and files (through git2), and speaking git's smart HTTP
//! pack protocol (delegated to the real `git upload-pack` / `git receive-pack`, with framing and
//! push policy hooks of our own). It never touches the database, never decides who may do what
//! (the server checks permissions and hands this crate only allowed work), and knows nothing
//! about HTTP frameworks. Repository paths are derived from project ids only, never from
//! user-supplied names, so no request can reach outside the repositories directory.

mod error;
mod pktline;
mod read;
mod smart;

use std::path::{Path, PathBuf};

pub use error::Error;
pub use read::{Blob, Branch, CommitInfo, RefKind, ResolvedRef, Tag};
pub use smart::{
    ReceiveOutcome, ReceiveRequest, RefUpdate, Service, gunzip, parse_receive_commands, reject_push,
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The all-zero object id git uses for "no commit" (ref creation and deletion).
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The repositories directory and everything done to the repositories in it.
///
/// Methods are blocking (git2 and the filesystem); the `*_async` wrappers run them on tokio's
/// blocking pool for use from request handlers.
#[derive(Debug, Clone)]
pub struct Repositories {
    root: PathBuf,
}

impl Repositories {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Repositories { root: root.into() }
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
        let path = self.repo_path(project_id);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn open(&self, project_id: i64) -> Result<git2::Repository> {
        let path = self.repo_path(project_id);
        git2::Repository::open_bare(&path).map_err(|e| {
            if e.code() == git2::ErrorCode::NotFound {
                Error::RepositoryNotFound
            } else {
                Error::Git(e)
            }
        })
    }

    /// Points HEAD at another branch (when a project's default branch changes).
    pub fn set_default_branch(&self, project_id: i64, branch: &str) -> Result<()> {
        let repo = self.open(project_id)?;
        repo.set_head(&format!("refs/heads/{branch}"))?;
        Ok(())
    }
}
