//! Creating a pipeline: the one path every source takes (trigger tokens, job tokens, the API,
//! pushes). It runs GitLab's creation chain in GitLab's order, and the first failing step
//! decides the answer:
//!
//! 1. abilities — the pipeline's user may create pipelines here (Developer+, active);
//! 2. repository — the ref is a branch or tag (`Reference not found`, `Ref is ambiguous`);
//! 3. protected refs — the user may update (push to or merge into) a protected branch it runs on;
//! 4. rate limit — `pipeline_limit_per_project_user_sha`, when configured;
//! 5. `[skip ci]` — for pushes only;
//! 6. config — `.gitlab-ci.yml` at the commit, parsed (cached by blob id) and planned.
//!
//! Errors before the config is read leave nothing behind (400). A config that does not parse
//! or plan is saved as a failed pipeline with `yaml_errors` (422), as current GitLab does. A
//! created pipeline — row, per-project iid, jobs, sealed variables, trigger link — is written in
//! one transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipewright_config::{Config, ConfigError, PlanOutcome, PlannedJob};
use pipewright_core::{PipelineSource, RefKind, Status};
use pipewright_store::{NewJob, NewPipeline, Pipeline, Project, Trigger, Upstream, User};

use crate::api::protected_branches::rules_for;
use crate::permissions::{Action, ProjectAccess};
use crate::pipeline_variables::PipelineVariable;
use crate::state::AppState;

pub const CI_CONFIG_PATH: &str = ".gitlab-ci.yml";
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// How many paths `rules:exists` looks at (GitLab caps its search similarly).
const MAX_LISTED_FILES: usize = 50_000;

/// Who a pipeline runs as: the user its abilities are checked for and its jobs act as
/// (`GITLAB_USER_*`, `CI_JOB_TOKEN`). Not a CI runner: those only execute the jobs.
#[derive(Debug, Clone)]
pub enum PipelineUser {
    /// A user, with their role in the project.
    User {
        user: User,
        role: Option<pipewright_core::AccessLevel>,
    },
    /// An owner-less legacy trigger: no user, unprotected refs only.
    Nobody,
}

#[derive(Debug, Clone)]
pub struct CreatePipeline {
    pub project: Project,
    pub ref_name: String,
    pub source: PipelineSource,
    pub run_as: PipelineUser,
    pub trigger: Option<Trigger>,
    pub variables: Vec<PipelineVariable>,
    pub upstream: Option<Upstream>,
    /// Triggers run even when the commit says `[skip ci]`.
    pub ignore_skip_ci: bool,
    /// The ref's previous commit, for push pipelines (`CI_COMMIT_BEFORE_SHA`).
    pub before_sha: Option<String>,
    /// The config file, when not `.gitlab-ci.yml` (a child pipeline's `trigger: include:`).
    pub config_path: Option<String>,
    /// Run at this commit of the ref rather than its head (child pipelines).
    pub at_sha: Option<String>,
}

/// Why no pipeline (or a failed one) was created.
#[derive(Debug)]
pub enum CreateError {
    /// Nothing was saved: 400 `{"message":{"base":[message]}}`.
    Rejected(String),
    /// A failed pipeline was saved: 422 with the error.
    ConfigError(Box<Pipeline>, String),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for CreateError {
    fn from(e: anyhow::Error) -> Self {
        CreateError::Internal(e)
    }
}

impl From<pipewright_store::StoreError> for CreateError {
    fn from(e: pipewright_store::StoreError) -> Self {
        CreateError::Internal(e.into())
    }
}

/// (project, user, commit sha).
type WindowKey = (i64, Option<i64>, String);

/// GitLab's per-project-user-commit pipeline creation limit (per minute; 0 = off).
#[derive(Default)]
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<WindowKey, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit_per_minute: u32) -> Self {
        RateLimiter {
            limit: limit_per_minute,
            windows: Mutex::default(),
        }
    }

    /// Counts one creation; false when over the limit.
    fn allow(&self, project: i64, user: Option<i64>, sha: &str) -> bool {
        if self.limit == 0 {
            return true;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        let now = Instant::now();
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = windows
            .entry((project, user, sha.to_string()))
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.limit
    }
}

/// Reads included files from the commit being planned.
struct CommitFiles<'a> {
    repos: &'a pipewright_git::Repositories,
    project_id: i64,
    sha: &'a str,
}

impl pipewright_config::FileSource for CommitFiles<'_> {
    fn read(&self, path: &str) -> Result<Option<String>, String> {
        match self
            .repos
            .read_file(self.project_id, self.sha, path, MAX_CONFIG_BYTES)
        {
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
}

fn rejected(message: &str) -> CreateError {
    CreateError::Rejected(message.to_string())
}

/// Runs the creation chain and writes the pipeline.
pub async fn create_pipeline(
    state: &AppState,
    request: CreatePipeline,
) -> Result<Pipeline, CreateError> {
    let project = &request.project;
    // 1. Abilities.
    let (user, access) = match &request.run_as {
        PipelineUser::User { user, role } => {
            let access = ProjectAccess {
                visibility: project.visibility,
                role: *role,
                authenticated: true,
                admin: user.is_admin,
            };
            if !user.is_active() || !access.can(Action::CreatePipeline) {
                return Err(rejected(
                    "Insufficient permissions to create a new pipeline",
                ));
            }
            (Some(user.clone()), Some(access))
        }
        PipelineUser::Nobody => (None, None),
    };
    // 1b. Who may pass pipeline variables (`ci_pipeline_variables_minimum_override_role`);
    // a trigger's own TRIGGER_PAYLOAD does not count.
    if request
        .variables
        .iter()
        .any(|v| v.key != crate::api::trigger_pipeline::TRIGGER_PAYLOAD)
    {
        let minimum = state
            .store
            .pipeline_variables_minimum_role(project.id)
            .await?;
        let required = match minimum.as_deref() {
            None | Some("developer") => Some(pipewright_core::AccessLevel::Developer),
            Some("maintainer") => Some(pipewright_core::AccessLevel::Maintainer),
            Some("owner") => Some(pipewright_core::AccessLevel::Owner),
            _ => None,
        };
        let allowed = match (&request.run_as, required) {
            (_, None) => false,
            (PipelineUser::User { user, .. }, Some(_)) if user.is_admin => true,
            (PipelineUser::User { role, .. }, Some(required)) => {
                role.is_some_and(|r| r >= required)
            }
            // An owner-less legacy trigger passes variables only under the default.
            (PipelineUser::Nobody, Some(required)) => {
                required == pipewright_core::AccessLevel::Developer
            }
        };
        if !allowed {
            return Err(rejected(
                "Insufficient permissions to set pipeline variables",
            ));
        }
    }
    // 2. Repository.
    let config_path = request
        .config_path
        .clone()
        .unwrap_or_else(|| CI_CONFIG_PATH.to_string());
    let (mut resolved, mut blob) = state
        .repos
        .resolve_ref_with_blob_async(project.id, &request.ref_name, &config_path)
        .await
        .map_err(|e| match e {
            pipewright_git::Error::Ambiguous(_) => rejected("Ref is ambiguous"),
            pipewright_git::Error::InvalidRef(_) | pipewright_git::Error::RepositoryNotFound => {
                rejected("Reference not found")
            }
            other => CreateError::Internal(other.into()),
        })?;
    // A child pipeline runs at its parent's commit even if the branch has moved since.
    if let Some(sha) = &request.at_sha
        && *sha != resolved.sha
    {
        resolved.commit = state
            .repos
            .commit_async(project.id, sha)
            .await
            .map_err(|e| CreateError::Internal(e.into()))?
            .ok_or_else(|| rejected("Reference not found"))?;
        resolved.sha = sha.clone();
        blob = state
            .repos
            .blob_id_async(project.id, sha, &config_path)
            .await
            .map_err(|e| CreateError::Internal(e.into()))?;
    }
    // 3. Protected refs: the user must be allowed to push to or merge into a protected branch.
    let rules = state.store.protected_branches(project.id).await?;
    let protected_ref =
        resolved.kind == RefKind::Branch && !rules_for(&rules, &resolved.name).is_empty();
    if protected_ref {
        match &access {
            None => {
                return Err(rejected(
                    "Insufficient permissions to create a new pipeline",
                ));
            }
            Some(access)
                if !crate::protected_refs::update_allowed(&rules, &resolved.name, access) =>
            {
                return Err(CreateError::Rejected(format!(
                    "You do not have sufficient permission to run a pipeline on '{}'. Please select a different branch or contact your administrator for assistance.",
                    resolved.name
                )));
            }
            Some(_) => {}
        }
    }
    // 4. Rate limit.
    if !state
        .rate_limiter
        .allow(project.id, user.as_ref().map(|u| u.id), &resolved.sha)
    {
        tracing::info!(
            project_id = project.id,
            "Activated pipeline creation rate limit"
        );
        return Err(rejected(
            "Too many pipelines created in the last minute. Try again later.",
        ));
    }
    // 5. [skip ci] (pushes only; triggers ignore it).
    if !request.ignore_skip_ci {
        let message = resolved.commit.message.to_lowercase();
        if message.contains("[skip ci]") || message.contains("[ci skip]") {
            return Err(rejected("Pipeline creation skipped by [skip ci]"));
        }
    }
    // 6. Config: read, parse (cached by blob id), plan.
    let repos = state.repos.clone();
    let cache = state.config_cache.clone();
    let (project_id, sha) = (project.id, resolved.sha.clone());
    // The common case — a config already parsed for this blob, with no `exists:` rules —
    // needs no blocking work at all.
    let cached = blob
        .as_deref()
        .and_then(|b| state.config_cache.get(b, &sha));
    let parsed = match cached {
        Some(parsed) if parsed.as_ref().as_ref().is_ok_and(|c| !c.uses_exists()) => {
            Some((parsed, None))
        }
        _ => tokio::task::spawn_blocking(move || {
            let Some(blob) = blob else {
                return Ok::<_, pipewright_git::Error>(None);
            };
            let files = CommitFiles {
                repos: &repos,
                project_id,
                sha: &sha,
            };
            let read_main = || match repos.read_file(
                project_id,
                &sha,
                &config_path,
                MAX_CONFIG_BYTES,
            ) {
                Ok(Some(b)) => String::from_utf8(b.content).map_err(|_| {
                    pipewright_config::ConfigError::new("The CI config is not valid UTF-8")
                }),
                Ok(None) => Err(pipewright_config::ConfigError::new(
                    "Missing CI config file",
                )),
                Err(pipewright_git::Error::TooLarge { .. }) => {
                    Err(pipewright_config::ConfigError::new(format!(
                        "{CI_CONFIG_PATH}: the CI config is larger than {MAX_CONFIG_BYTES} bytes"
                    )))
                }
                Err(e) => Err(pipewright_config::ConfigError::new(format!(
                    "The CI config could not be read: {e}"
                ))),
            };
            let parsed = cache.get_or_parse(&blob, &sha, read_main, &files);
            // `rules:exists` needs the commit's file list; only pay for it when a rule asks.
            let listing = match parsed.as_ref() {
                Ok(config) if config.uses_exists() => {
                    Some(repos.list_paths(project_id, &sha, MAX_LISTED_FILES)?)
                }
                _ => None,
            };
            Ok(Some((parsed, listing)))
        })
        .await
        .map_err(|e| CreateError::Internal(e.into()))?
        .map_err(|e| CreateError::Internal(e.into()))?,
    };
    let Some((parsed, listing)) = parsed else {
        return Err(rejected("Missing CI config file"));
    };

    let sealed_vars = request
        .variables
        .iter()
        .map(|v| v.seal(&state.sealer))
        .collect::<anyhow::Result<_>>()?;
    let base = NewPipeline {
        project_id: project.id,
        sha: resolved.sha.clone(),
        before_sha: request
            .before_sha
            .clone()
            .unwrap_or_else(|| pipewright_git::ZERO_SHA.to_string()),
        ref_name: resolved.name.clone(),
        tag: resolved.kind == RefKind::Tag,
        protected_ref,
        source: request.source,
        status: Status::Created,
        user_id: user.as_ref().map(|u| u.id),
        trigger_id: request.trigger.as_ref().map(|t| t.id),
        trigger_short_token: request.trigger.as_ref().map(|t| t.short_token.clone()),
        upstream: request.upstream,
        name: None,
        yaml_errors: None,
        failure_reason: None,
        committed_at: Some(resolved.commit.committed_date),
        variables: sealed_vars,
        jobs: Vec::new(),
    };
    if let Err(e) = parsed.as_ref() {
        return persist_failed(state, base, e.message.clone()).await;
    }
    let ci_vars = crate::ci_variables::for_pipeline(state, project.id, protected_ref).await?;
    let ctx = pipewright_config::PipelineContext {
        pipeline_variables: request
            .variables
            .iter()
            .map(PipelineVariable::to_config)
            .collect(),
        project_variables: ci_vars.project,
        instance_variables: ci_vars.instance,
        files: listing,
        ..crate::pipeline_context::build(
            state,
            &base,
            project,
            user.as_ref(),
            &resolved.commit.message,
        )
    };
    let plan = match plan_within(state, &parsed, ctx).await? {
        Ok(PlanOutcome::Created(plan)) => plan,
        Ok(PlanOutcome::NoJobs) => return Err(rejected("No stages / jobs for this pipeline.")),
        Ok(PlanOutcome::FilteredOutByWorkflow) => {
            return Err(rejected("Pipeline filtered out by workflow rules."));
        }
        Err(e) => return persist_failed(state, base, e.message).await,
    };
    let mut new = base;
    new.name = plan.name.clone();
    new.jobs = plan.jobs.iter().map(new_job).collect::<Result<_, _>>()?;
    // Stored already processed (a first stage waiting for runners makes it `pending`, as
    // GitLab shows it once its pipeline processing has run)...
    new.status = pipewright_core::status::composite(
        new.jobs.iter().map(|j| (j.status, j.allow_failure)),
        false,
    )
    .map_or(Status::Created, |c| c.status);
    let mut pipeline = state.store.create_pipeline(&new).await?;
    // ...while the creating request answers as GitLab's does, before that processing:
    // `"status": "created"`.
    pipeline.status = Status::Created;
    crate::webhooks::pipeline_changed(state, pipeline.id);
    // Delayed jobs that start out scheduled count their `start_in` from now.
    if plan
        .jobs
        .iter()
        .any(|j| j.initial_status == pipewright_config::InitialStatus::Scheduled)
    {
        for job in state.store.pipeline_all_jobs(pipeline.id).await? {
            if job.status == Status::Scheduled {
                crate::job_processing::schedule(state, &job).await?;
            }
        }
    }
    // Bridges (`trigger:` jobs) that start at once are the server's to start.
    if plan.jobs.iter().any(|j| {
        j.trigger.is_some() && j.initial_status == pipewright_config::InitialStatus::Pending
    }) {
        let jobs = state.store.pipeline_all_jobs(pipeline.id).await?;
        crate::job_processing::start_bridges(state, &jobs);
    }
    // Runners waiting in a long poll take the first stage's jobs at once.
    if new.jobs.iter().any(|j| j.status == Status::Pending) {
        state.job_available.notify_waiters();
        // Other servers on the same database too, off the trigger's response path.
        let store = state.store.clone();
        tokio::spawn(async move {
            if let Err(err) = store.announce_jobs().await {
                tracing::warn!(error = %err, "announcing pending jobs failed");
            }
        });
    }
    Ok(pipeline)
}

/// Plans the pipeline within the server's time budget (`plan_timeout`): past it, planning
/// stops and the pipeline fails with a config error, as GitLab's config processing does past
/// its own timeout (lib/gitlab/ci/config.rb, `TIMEOUT_SECONDS`). A plan with a commit's file
/// list to scan (`rules:exists`) runs on the blocking pool, so a config built to stall the
/// server cannot hold a request worker; any other plan costs at most linear time in the size of
/// the config (≈0.25 ms for 50 jobs) and runs inline, as the config-cache hit before it does.
async fn plan_within(
    state: &AppState,
    parsed: &Arc<Result<Config, ConfigError>>,
    ctx: pipewright_config::PipelineContext,
) -> Result<Result<PlanOutcome, ConfigError>, CreateError> {
    let budget = state.config.plan_timeout;
    let deadline = Instant::now() + budget;
    let plan = move |parsed: &Result<Config, ConfigError>| {
        let config = parsed.as_ref().map_err(Clone::clone)?;
        config.plan_until(&ctx, &|| Instant::now() >= deadline)
    };
    let scans_files = parsed.as_ref().as_ref().is_ok_and(Config::uses_exists);
    if !scans_files {
        return Ok(plan(parsed));
    }
    let parsed = parsed.clone();
    let planning = tokio::task::spawn_blocking(move || plan(&parsed));
    // The engine stops itself at the deadline; this only guards against a step that does not
    // ask in time.
    match tokio::time::timeout(budget + Duration::from_secs(1), planning).await {
        Ok(outcome) => outcome.map_err(|e| CreateError::Internal(e.into())),
        Err(_) => Ok(Err(ConfigError::new(pipewright_config::PLAN_INTERRUPTED))),
    }
}

fn new_job(job: &PlannedJob) -> Result<NewJob, CreateError> {
    let status = match job.initial_status {
        pipewright_config::InitialStatus::Pending => Status::Pending,
        pipewright_config::InitialStatus::Created => Status::Created,
        pipewright_config::InitialStatus::Manual => Status::Manual,
        pipewright_config::InitialStatus::Scheduled => Status::Scheduled,
        pipewright_config::InitialStatus::Skipped => Status::Skipped,
    };
    Ok(NewJob {
        name: job.name.clone(),
        stage: job.stage.clone(),
        stage_idx: job.stage_idx as i64,
        status,
        when: job.when.as_str().to_string(),
        allow_failure: job.allow_failure,
        spec: serde_json::to_string(job).map_err(|e| CreateError::Internal(e.into()))?,
    })
}

/// Saves a config-error pipeline: status failed, `yaml_errors` set, no jobs (GitLab's
/// `config_error` failure reason), and answers 422.
async fn persist_failed(
    state: &AppState,
    mut base: NewPipeline,
    message: String,
) -> Result<Pipeline, CreateError> {
    base.status = Status::Failed;
    base.yaml_errors = Some(message.clone());
    base.failure_reason = Some("config_error".into());
    let pipeline = state.store.create_pipeline(&base).await?;
    Err(CreateError::ConfigError(Box::new(pipeline), message))
}

/// `TRIGGER_PAYLOAD`'s default size limit (GitLab proposes 1–3 MiB for file variables).
pub const MAX_TRIGGER_PAYLOAD_BYTES: usize = 1024 * 1024;
