//! The files a CI config reads, answered for the config engine ([`FileSource`]): the
//! pipeline's commit (`include: local:`, wildcards, `exists:`), other projects' files
//! (`include: project:`) read on behalf of the pipeline's user, remote files (`include:
//! remote:`) fetched through the webhooks' outbound guard, and the pipeline's variables (include
//! `rules:if`).
//!
//! The engine is synchronous and runs on the blocking pool (pipeline creation and the CI Lint
//! API parse in `spawn_blocking`); the questions that need the database or the network are
//! answered there with [`Handle::block_on`], which parks only that blocking thread, never a
//! runtime worker. Methods must not be called from async code.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pipewright_config::{FileSource, Variable, project_not_found};
use pipewright_store::User;
use tokio::runtime::Handle;

use crate::permissions::Action;
use crate::state::AppState;
use crate::webhook_delivery::{self, FetchError};

/// The largest file a config reads (its own file, an included one, a remote one).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// How many paths wildcards and `rules:exists` look at (GitLab caps its search similarly).
pub const MAX_LISTED_FILES: usize = 50_000;
/// How long a remote include may take. GitLab fetches it with `Gitlab::HTTP.get`, whose
/// default timeouts are 10 s to connect and 20 s to read (gitlab-http: lib/gitlab/http_v2/
/// client.rb `DEFAULT_TIMEOUT_OPTIONS`; not verified against the current source); Pipewright
/// gives the whole request 10 s, as it does a webhook.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one config may spend fetching files, remote ones included. GitLab:
/// lib/gitlab/ci/config.rb, `TIMEOUT_SECONDS` (30 by default) and `TIMEOUT_MESSAGE`.
const FETCH_BUDGET: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT_MESSAGE: &str = "Request timed out when fetching configuration files.";

/// A project's commit, as an `include: project:` entry resolved it, or the error it gave.
type ResolvedProject = Result<(i64, String), String>;

/// Answers one config's questions (see the module comment).
pub struct ConfigFiles {
    state: AppState,
    handle: Handle,
    project_id: i64,
    /// The pipeline's commit; `None` for an empty repository (the CI Lint API on content).
    sha: Option<String>,
    /// Whose access decides which other projects may be read; `None` reads public ones only.
    user: Option<User>,
    variables: Vec<Variable>,
    /// Each (project, ref) resolved once per config, so all its files come from one commit.
    resolved: Mutex<HashMap<(String, Option<String>), ResolvedProject>>,
    /// When fetching has taken [`FETCH_BUDGET`].
    deadline: Instant,
}

impl ConfigFiles {
    /// Must be created in async code (it remembers the runtime) and used on the blocking pool.
    pub fn new(
        state: &AppState,
        project_id: i64,
        sha: Option<String>,
        user: Option<User>,
        variables: Vec<Variable>,
    ) -> Self {
        ConfigFiles {
            state: state.clone(),
            handle: Handle::current(),
            project_id,
            sha,
            user,
            variables,
            resolved: Mutex::new(HashMap::new()),
            deadline: Instant::now() + FETCH_BUDGET,
        }
    }

    pub fn project_id(&self) -> i64 {
        self.project_id
    }

    pub fn sha(&self) -> Option<&str> {
        self.sha.as_deref()
    }

    /// The project and commit an `include: project:` entry (or a file read in that project)
    /// resolved to while the config was read, if the user could read it: where the CI Lint
    /// API's `includes` point.
    pub fn resolved_commit(&self, name: &str, git_ref: Option<&str>) -> Option<(i64, String)> {
        let key = (name.to_lowercase(), git_ref.map(str::to_string));
        let resolved = self.resolved.lock().ok()?;
        resolved.get(&key)?.clone().ok()
    }

    /// The project `name` and the commit of `git_ref` (its default branch when `None`), when
    /// the user may read its code.
    fn project_commit(&self, name: &str, git_ref: Option<&str>) -> ResolvedProject {
        let key = (name.to_lowercase(), git_ref.map(str::to_string));
        if let Ok(resolved) = self.resolved.lock()
            && let Some(hit) = resolved.get(&key)
        {
            return hit.clone();
        }
        let result = self.handle.block_on(self.resolve_project(name, git_ref));
        if let Ok(mut resolved) = self.resolved.lock() {
            resolved.insert(key, result.clone());
        }
        result
    }

    /// GitLab: lib/gitlab/ci/config/external/file/project.rb — the project by full path, the
    /// user's `download_code` ability (ours: [`Action::ReadRepository`]), then the ref's
    /// commit; an unknown project and one the user may not read give the same error.
    async fn resolve_project(&self, name: &str, git_ref: Option<&str>) -> ResolvedProject {
        let denied = || project_not_found(name);
        // A full path only (GitLab looks projects up by `where_full_path_in`), not an id.
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return Err(denied());
        }
        let project = crate::domain::projects::lookup(&self.state, name.trim_matches('/'))
            .await
            .map_err(|_| format!("Project `{name}` could not be read"))?
            .ok_or_else(denied)?;
        let access =
            crate::domain::projects::user_access(&self.state, self.user.as_ref(), &project)
                .await
                .map_err(|_| format!("Project `{name}` could not be read"))?;
        if !access.can(Action::ReadRepository) {
            return Err(denied());
        }
        let rev = git_ref.unwrap_or(&project.default_branch);
        match self.state.repos.commit_async(project.id, rev).await {
            Ok(Some(commit)) => Ok((project.id, commit.id)),
            _ => Err(format!(
                "Project `{name}` reference `{rev}` does not exist!"
            )),
        }
    }
}

/// A file of a commit as text, with the engine's messages for what goes wrong.
fn read_text(
    repos: &pipewright_git::Repositories,
    project_id: i64,
    sha: &str,
    path: &str,
) -> Result<Option<String>, String> {
    match repos.read_file(project_id, sha, path, MAX_CONFIG_BYTES) {
        Ok(Some(blob)) => String::from_utf8(blob.content)
            .map(Some)
            .map_err(|_| format!("Local file `{path}` is not UTF-8")),
        Ok(None) => Ok(None),
        Err(pipewright_git::Error::TooLarge { .. }) => {
            Err(format!("Local file `{path}` is too large"))
        }
        Err(pipewright_git::Error::InvalidPath(_)) => {
            Err(format!("Local file `{path}` is not a valid path"))
        }
        Err(e) => Err(format!("Local file `{path}` could not be read: {e}")),
    }
}

/// `url` as error messages show it: without a password (GitLab masks secrets in locations).
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("*****"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// GitLab's messages for a remote file that could not be fetched
/// (lib/gitlab/ci/config/external/file/remote.rb, `fetch_remote_content`), and Pipewright's
/// own for its limits.
fn remote_error(url: &str, error: FetchError) -> String {
    let url = shown(url);
    match error {
        FetchError::Blocked(blocked) => {
            format!(
                "Remote file could not be fetched because URL {}!",
                blocked.message()
            )
        }
        FetchError::Timeout => {
            format!("Remote file `{url}` could not be fetched because of a timeout error!")
        }
        FetchError::Socket => {
            format!("Remote file `{url}` could not be fetched because of a socket error!")
        }
        FetchError::Status(code) => {
            format!("Remote file `{url}` could not be fetched because of HTTP code `{code}` error!")
        }
        FetchError::Redirect => format!(
            "Remote file `{url}` could not be fetched because of a redirect to another host!"
        ),
        FetchError::TooLarge(limit) => format!(
            "Remote file `{url}` could not be fetched because it is larger than {limit} bytes!"
        ),
        FetchError::NotText => {
            format!("Remote file `{url}` could not be fetched because it is not UTF-8 text!")
        }
    }
}

impl FileSource for ConfigFiles {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        match &self.sha {
            Some(sha) => read_text(&self.state.repos, self.project_id, sha, path),
            None => Ok(None),
        }
    }

    fn list(&self) -> Result<Vec<String>, String> {
        let Some(sha) = &self.sha else {
            return Ok(Vec::new());
        };
        self.state
            .repos
            .list_paths(self.project_id, sha, MAX_LISTED_FILES)
            .map_err(|e| format!("The files of the commit could not be listed: {e}"))
    }

    fn read_project(
        &self,
        project: &str,
        git_ref: Option<&str>,
        path: &str,
    ) -> Result<Option<String>, String> {
        let (project_id, sha) = self.project_commit(project, git_ref)?;
        let key = (project_id, sha.clone(), path.to_string());
        let text = self
            .state
            .config_cache
            .project_files
            .get_or_read(key, || read_text(&self.state.repos, project_id, &sha, path))?;
        Ok(text.map(|t| t.to_string()))
    }

    fn list_project(&self, project: &str, git_ref: Option<&str>) -> Result<Vec<String>, String> {
        let (project_id, sha) = self.project_commit(project, git_ref)?;
        self.state
            .repos
            .list_paths(project_id, &sha, MAX_LISTED_FILES)
            .map_err(|e| format!("The files of `{project}` could not be listed: {e}"))
    }

    fn read_remote(&self, url: &str) -> Result<String, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FETCH_TIMEOUT_MESSAGE.to_string());
        }
        let allow_local = self
            .handle
            .block_on(webhook_delivery::allow_local(&self.state))
            .map_err(|_| format!("Remote file `{}` could not be fetched", shown(url)))?;
        self.handle
            .block_on(webhook_delivery::fetch(
                url,
                allow_local,
                REMOTE_TIMEOUT.min(left),
                MAX_CONFIG_BYTES as usize,
            ))
            .map_err(|e| remote_error(url, e))
    }

    fn variables(&self) -> Vec<Variable> {
        self.variables.clone()
    }
}
