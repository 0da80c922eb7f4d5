//! Creating a pipeline: the one path every source takes (trigger tokens, job tokens, the API,
//! pushes, bridges). It runs GitLab's creation chain in GitLab's order, and the first failing
//! step decides the answer; [`create_pipeline`] reads as this list:
//!
//! 1. abilities — the pipeline's user may create pipelines here (Developer+, active), and may
//!    pass pipeline variables (`ci_pipeline_variables_minimum_override_role`);
//! 2. repository — the ref is a branch or tag (`Reference not found`, `Ref is ambiguous`);
//! 3. protected refs — the user may update (push to or merge into) a protected branch it runs on;
//! 4. rate limit — `pipeline_limit_per_project_user_sha`, when configured;
//! 5. `[skip ci]` — for pushes only;
//! 6. config — `.gitlab-ci.yml` at the commit, parsed (cached by blob id) and planned;
//! 7. write — the pipeline, in one transaction.
//!
//! Steps 1–6 are [`check`]; a dry run ([`dry_run`]) is the same steps, then a report instead
//! of step 7.
//!
//! Errors before the config is read leave nothing behind (400). A config that does not parse
//! or plan is saved as a failed pipeline with `yaml_errors` (422), as current GitLab does —
//! except where the caller passes GitLab's `save_on_errors: false` (`POST /projects/:id/pipeline`
//! and schedules): then it answers 400 and saves nothing. A created pipeline — row, per-project iid, jobs, sealed variables, trigger link — is written in
//! one transaction. Its first stage's bridges are returned to start, not started here (bridges
//! create pipelines through this module): callers outside the domain go through
//! [`crate::domain::dispatch::create_pipeline`], which starts them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipewright_config::{Config, ConfigError, PlanOutcome, PlannedJob};
use pipewright_core::{PipelineSource, RefKind, Status};
use pipewright_git::ResolvedRef;
use pipewright_store::{NewJob, NewPipeline, Pipeline, Project, Trigger, Upstream, User};

use crate::domain::job_processing::ToStart;
use crate::domain::pipeline_variables::PipelineVariable;
use crate::domain::protected_refs::rules_for;
use crate::permissions::{Action, ProjectAccess};
use crate::state::AppState;

use crate::domain::config_files::{ConfigFiles, MAX_CONFIG_BYTES, MAX_LISTED_FILES};

pub const CI_CONFIG_PATH: &str = crate::domain::projects::DEFAULT_CI_CONFIG_PATH;

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
    /// CI/CD inputs for the config file's `spec:inputs` header (`inputs` of the API).
    pub inputs: pipewright_config::Inputs,
    /// Whether a config error saves a failed pipeline (422) or creates nothing (400), as
    /// GitLab's `save_on_errors`: its API's `POST /pipeline` passes `false`.
    pub save_on_errors: bool,
}

impl CreatePipeline {
    /// A pipeline a user runs by hand for a ref (the API's `POST /pipeline`, the pipelines
    /// page's form), as themselves, with the variables they gave; `[skip ci]` does not apply.
    pub fn run_by(
        project: Project,
        ref_name: String,
        source: PipelineSource,
        user: User,
        role: Option<pipewright_core::AccessLevel>,
        variables: Vec<PipelineVariable>,
    ) -> Self {
        CreatePipeline {
            project,
            ref_name,
            source,
            run_as: PipelineUser::User { user, role },
            trigger: None,
            variables,
            upstream: None,
            ignore_skip_ci: true,
            before_sha: None,
            config_path: None,
            at_sha: None,
            inputs: pipewright_config::Inputs::new(),
            save_on_errors: true,
        }
    }
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

fn rejected(message: &str) -> CreateError {
    CreateError::Rejected(message.to_string())
}

/// GitLab's messages for the rejections `/-/metrics` tells apart.
const REFERENCE_NOT_FOUND: &str = "Reference not found";
const REF_IS_AMBIGUOUS: &str = "Ref is ambiguous";
const RATE_LIMITED: &str = "Too many pipelines created in the last minute. Try again later.";

impl CreateError {
    /// How `/-/metrics` counts a trigger request that ended with this error.
    pub fn outcome(&self) -> &'static str {
        match self {
            CreateError::Rejected(m) if m == REFERENCE_NOT_FOUND || m == REF_IS_AMBIGUOUS => {
                "bad_ref"
            }
            CreateError::Rejected(m) if m == RATE_LIMITED => "rate_limited",
            CreateError::Rejected(_) => "rejected",
            CreateError::ConfigError(..) => "config_error",
            CreateError::Internal(_) => "error",
        }
    }
}

/// Runs the creation chain and writes the pipeline. Returns it with what it made startable
/// (the bridges of its first stage), which [`crate::domain::dispatch::create_pipeline`] starts.
pub(in crate::domain) async fn create_pipeline(
    state: &AppState,
    request: CreatePipeline,
) -> Result<(Pipeline, ToStart), CreateError> {
    let checked = check(state, &request, Mode::Create).await?;
    let created = match checked.plan {
        // 7. One transaction: the pipeline, its jobs, its sealed variables, its trigger link.
        Ok(plan) => write(state, checked.base, plan).await,
        Err(message) if !request.save_on_errors => Err(CreateError::Rejected(message)),
        Err(message) => Err(config_error(state, checked.base, message).await),
    };
    // A config error saves a failed pipeline: it is created too.
    if matches!(created, Ok(_) | Err(CreateError::ConfigError(..))) {
        state.metrics.pipeline_created(request.source.as_str());
    }
    created
}

/// Whether the chain goes on to write, or stops before it (a dry run: nothing counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    DryRun,
}

/// What steps 1–6 decided: the pipeline's row, and its plan or the config error it fails with.
struct Checked {
    base: NewPipeline,
    parsed: Parsed,
    plan: Result<pipewright_config::Plan, String>,
}

/// Steps 1–6 of the chain, everything before the write; the first failing step's error.
async fn check(
    state: &AppState,
    request: &CreatePipeline,
    mode: Mode,
) -> Result<Checked, CreateError> {
    let project = &request.project;
    // 1. Abilities, and who may pass pipeline variables.
    let (user, access) = abilities(request)?;
    check_variables_allowed(state, request).await?;
    // 2. Repository: the ref, its commit, and the config file's blob there (the project's
    // `ci_config_path`, unless a child pipeline names its own file).
    let project_config_path = crate::domain::projects::ci_config_path(state, project.id).await?;
    let config_path = request
        .config_path
        .clone()
        .unwrap_or_else(|| project_config_path.clone());
    let (resolved, blob) = resolve_commit(state, request, &config_path).await?;
    // 3. Protected refs.
    let protected_ref = check_protected_ref(state, project.id, &resolved, access.as_ref()).await?;
    // 4. Rate limit (a dry run is checked against it without counting).
    check_rate_limit(state, project.id, user.as_ref(), &resolved.sha, mode)?;
    // 5. [skip ci] (pushes only; triggers ignore it).
    if !request.ignore_skip_ci && skips_ci(&resolved.commit.message) {
        return Err(rejected("Pipeline creation skipped by [skip ci]"));
    }
    // 6. Config: read and parse (cached by blob id and inputs), then plan. Includes are read as
    // the pipeline's user, and their rules and the inputs' `expand_vars` see the pipeline's
    // variables, so the context comes first.
    let base = pipeline_row(state, request, &resolved, protected_ref, user.as_ref())?;
    let mut ctx = planning_context(state, request, &base, user.as_ref(), &resolved).await?;
    ctx.ci_config_path = project_config_path;
    let source = ConfigSource {
        project_id: project.id,
        sha: resolved.sha.clone(),
        blob,
        path: config_path,
    };
    // What a parse needs beyond the file, built only when the cache cannot answer.
    let for_parse = || {
        let interpolation = interpolation(request, &ctx);
        let files = ConfigFiles::new(
            state,
            project.id,
            Some(resolved.sha.clone()),
            user.clone(),
            interpolation.variables.clone(),
        );
        (files, interpolation)
    };
    let (parsed, listing) = read_config(state, source, &request.inputs, for_parse).await?;
    if let Err(e) = parsed.as_ref() {
        let message = e.message.clone();
        return Ok(Checked {
            base,
            parsed,
            plan: Err(message),
        });
    }
    ctx.files = listing;
    let plan = match plan_within(state, &parsed, ctx).await? {
        Ok(PlanOutcome::Created(plan)) => Ok(plan),
        Ok(PlanOutcome::NoJobs) => return Err(rejected("No stages / jobs for this pipeline.")),
        Ok(PlanOutcome::FilteredOutByWorkflow) => {
            return Err(rejected("Pipeline filtered out by workflow rules."));
        }
        Err(e) => Err(e.message),
    };
    Ok(Checked { base, parsed, plan })
}

/// A dry run's answer: the pipeline a request would create, and why each job is in or out.
#[derive(Debug, Clone)]
pub struct DryRun {
    pub ref_name: String,
    pub sha: String,
    pub source: PipelineSource,
    pub jobs: Vec<DryRunJob>,
    /// Jobs left out: (name, reason).
    pub excluded: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct DryRunJob {
    pub name: String,
    pub stage: String,
    pub when: &'static str,
    pub allow_failure: bool,
    pub needs: Vec<String>,
    pub reason: String,
}

/// What a dry run found: the plan, or the config error the real request fails with (422).
#[derive(Debug)]
pub enum DryRunOutcome {
    Planned(DryRun),
    ConfigError(String),
}

/// Runs the creation chain up to the write and reports what it would create. Nothing is
/// stored and nothing counted: no pipeline, no iid, no trigger `last_used`, no rate limit.
/// Errors are the real request's (steps 1–6 are the same code).
pub async fn dry_run(
    state: &AppState,
    request: CreatePipeline,
) -> Result<DryRunOutcome, CreateError> {
    let checked = check(state, &request, Mode::DryRun).await?;
    let (plan, config) = match (checked.plan, checked.parsed.as_ref()) {
        (Ok(plan), Ok(config)) => (plan, config),
        (Err(message), _) if !request.save_on_errors => return Err(CreateError::Rejected(message)),
        (Err(message), _) => return Ok(DryRunOutcome::ConfigError(message)),
        (Ok(_), Err(e)) => return Ok(DryRunOutcome::ConfigError(e.message.clone())),
    };
    let jobs = plan
        .jobs
        .iter()
        .map(|job| DryRunJob {
            name: job.name.clone(),
            stage: job.stage.clone(),
            when: job.when.as_str(),
            allow_failure: job.allow_failure,
            needs: job.needs.iter().flatten().map(|n| n.job.clone()).collect(),
            reason: config.explain(&job.name, job.decided_by),
        })
        .collect();
    let excluded = plan
        .excluded
        .iter()
        .map(|(name, by)| (name.clone(), config.explain(name, *by)))
        .collect();
    Ok(DryRunOutcome::Planned(DryRun {
        ref_name: checked.base.ref_name,
        sha: checked.base.sha,
        source: request.source,
        jobs,
        excluded,
    }))
}

/// Step 1: the pipeline's user must be active and allowed to create pipelines here. Returns
/// the user and their access (none for an owner-less legacy trigger).
fn abilities(
    request: &CreatePipeline,
) -> Result<(Option<User>, Option<ProjectAccess>), CreateError> {
    match &request.run_as {
        PipelineUser::User { user, role } => {
            let access = ProjectAccess {
                visibility: request.project.visibility,
                role: *role,
                authenticated: true,
                admin: user.is_admin,
            };
            if !user.is_active() || !access.can(Action::CreatePipeline) {
                return Err(rejected(
                    "Insufficient permissions to create a new pipeline",
                ));
            }
            Ok((Some(user.clone()), Some(access)))
        }
        PipelineUser::Nobody => Ok((None, None)),
    }
}

/// Step 1b: who may pass pipeline variables (`ci_pipeline_variables_minimum_override_role`);
/// a trigger's own `TRIGGER_PAYLOAD` does not count.
async fn check_variables_allowed(
    state: &AppState,
    request: &CreatePipeline,
) -> Result<(), CreateError> {
    if !request
        .variables
        .iter()
        .any(|v| v.key != crate::domain::pipeline_variables::TRIGGER_PAYLOAD)
    {
        return Ok(());
    }
    let minimum = state
        .store
        .pipeline_variables_minimum_role(request.project.id)
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
        (PipelineUser::User { role, .. }, Some(required)) => role.is_some_and(|r| r >= required),
        // An owner-less legacy trigger passes variables only under the default.
        (PipelineUser::Nobody, Some(required)) => {
            required == pipewright_core::AccessLevel::Developer
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(rejected(
            "Insufficient permissions to set pipeline variables",
        ))
    }
}

/// Step 2: the ref as a branch or tag, its commit, and the id of the config file's blob there
/// (one git call). A child pipeline runs at its parent's commit even if the branch has moved
/// since.
async fn resolve_commit(
    state: &AppState,
    request: &CreatePipeline,
    config_path: &str,
) -> Result<(ResolvedRef, Option<String>), CreateError> {
    let project_id = request.project.id;
    let (mut resolved, mut blob) = state
        .repos
        .resolve_ref_with_blob_async(project_id, &request.ref_name, config_path)
        .await
        .map_err(|e| match e {
            pipewright_git::Error::Ambiguous(_) => rejected(REF_IS_AMBIGUOUS),
            pipewright_git::Error::InvalidRef(_) | pipewright_git::Error::RepositoryNotFound => {
                rejected(REFERENCE_NOT_FOUND)
            }
            other => CreateError::Internal(other.into()),
        })?;
    if let Some(sha) = &request.at_sha
        && *sha != resolved.sha
    {
        resolved.commit = state
            .repos
            .commit_async(project_id, sha)
            .await
            .map_err(|e| CreateError::Internal(e.into()))?
            .ok_or_else(|| rejected(REFERENCE_NOT_FOUND))?;
        resolved.sha = sha.clone();
        blob = state
            .repos
            .blob_id_async(project_id, sha, config_path)
            .await
            .map_err(|e| CreateError::Internal(e.into()))?;
    }
    Ok((resolved, blob))
}

/// Step 3: on a protected branch, the user must be allowed to push to or merge into it.
/// Returns whether the ref is protected.
async fn check_protected_ref(
    state: &AppState,
    project_id: i64,
    resolved: &ResolvedRef,
    access: Option<&ProjectAccess>,
) -> Result<bool, CreateError> {
    let rules = state.store.protected_branches(project_id).await?;
    let protected_ref =
        resolved.kind == RefKind::Branch && !rules_for(&rules, &resolved.name).is_empty();
    if !protected_ref {
        return Ok(false);
    }
    match access {
        None => Err(rejected(
            "Insufficient permissions to create a new pipeline",
        )),
        Some(access)
            if !crate::domain::protected_refs::update_allowed(&rules, &resolved.name, access) =>
        {
            Err(CreateError::Rejected(format!(
                "You do not have sufficient permission to run a pipeline on '{}'. Please select a different branch or contact your administrator for assistance.",
                resolved.name
            )))
        }
        Some(_) => Ok(true),
    }
}

/// Step 4: `pipeline_limit_per_project_user_sha`, when configured.
fn check_rate_limit(
    state: &AppState,
    project_id: i64,
    user: Option<&User>,
    sha: &str,
    mode: Mode,
) -> Result<(), CreateError> {
    let user = user.map(|u| u.id);
    let allowed = match mode {
        Mode::Create => state.rate_limiter.allow(project_id, user, sha),
        Mode::DryRun => state.rate_limiter.would_allow(project_id, user, sha),
    };
    if allowed {
        return Ok(());
    }
    tracing::info!(project_id, "Activated pipeline creation rate limit");
    Err(rejected(RATE_LIMITED))
}

/// Step 5: whether a commit message asks for no pipeline.
fn skips_ci(message: &str) -> bool {
    let message = message.to_lowercase();
    message.contains("[skip ci]") || message.contains("[ci skip]")
}

/// A config as parsed (or why it could not be), shared through the cache.
type Parsed = Arc<Result<Config, ConfigError>>;

/// What interpolating the config's inputs may use: the request's inputs, and for
/// `expand_vars` the variables GitLab's include context holds (predefined, instance, project
/// and pipeline variables).
fn interpolation(
    request: &CreatePipeline,
    ctx: &pipewright_config::PipelineContext,
) -> pipewright_config::Interpolation {
    pipewright_config::Interpolation {
        variables: pipewright_config::include_variables(ctx),
        ..pipewright_config::Interpolation::with_inputs(request.inputs.clone())
    }
}

/// Where the config file is: the project, the commit, and the file's blob id and path there.
struct ConfigSource {
    project_id: i64,
    sha: String,
    blob: Option<String>,
    path: String,
}

/// Step 6a: the config file at the commit, parsed with the request's inputs (cached by blob id
/// and inputs), and — only when a `rules:exists` asks — the commit's file list. The common
/// case, a config already parsed for this blob with no `exists:` rules, needs no blocking work
/// at all.
async fn read_config(
    state: &AppState,
    source: ConfigSource,
    inputs: &pipewright_config::Inputs,
    for_parse: impl FnOnce() -> (ConfigFiles, pipewright_config::Interpolation),
) -> Result<(Parsed, Option<Vec<String>>), CreateError> {
    let ConfigSource {
        project_id,
        sha,
        blob,
        path: config_path,
    } = source;
    let cached = blob
        .as_deref()
        .and_then(|b| state.config_cache.get(b, &sha, inputs));
    if let Some(parsed) = cached
        && parsed.as_ref().as_ref().is_ok_and(|c| !c.uses_exists())
    {
        return Ok((parsed, None));
    }
    let Some(blob) = blob else {
        return Err(rejected("Missing CI config file"));
    };
    let (files, interpolation) = for_parse();
    let repos = state.repos.clone();
    let cache = state.config_cache.clone();
    tokio::task::spawn_blocking(move || {
        let read_main = || read_main_config(&repos, project_id, &sha, &config_path);
        let parsed = cache.get_or_parse(&blob, &sha, read_main, &files, &interpolation);
        // `rules:exists` needs the commit's file list; only pay for it when a rule asks.
        let listing = match parsed.as_ref() {
            Ok(config) if config.uses_exists() => {
                Some(repos.list_paths(project_id, &sha, MAX_LISTED_FILES)?)
            }
            _ => None,
        };
        Ok::<_, pipewright_git::Error>((parsed, listing))
    })
    .await
    .map_err(|e| CreateError::Internal(e.into()))?
    .map_err(|e| CreateError::Internal(e.into()))
}

/// The config file's text, or the config error a pipeline fails with.
fn read_main_config(
    repos: &pipewright_git::Repositories,
    project_id: i64,
    sha: &str,
    config_path: &str,
) -> Result<String, ConfigError> {
    match repos.read_file(project_id, sha, config_path, MAX_CONFIG_BYTES) {
        Ok(Some(b)) => String::from_utf8(b.content)
            .map_err(|_| ConfigError::new("The CI config is not valid UTF-8")),
        Ok(None) => Err(ConfigError::new("Missing CI config file")),
        Err(pipewright_git::Error::TooLarge { .. }) => Err(ConfigError::new(format!(
            "{CI_CONFIG_PATH}: the CI config is larger than {MAX_CONFIG_BYTES} bytes"
        ))),
        Err(e) => Err(ConfigError::new(format!(
            "The CI config could not be read: {e}"
        ))),
    }
}

/// The pipeline's row before planning: its commit and ref, who runs it, how it was started,
/// and its variables sealed.
fn pipeline_row(
    state: &AppState,
    request: &CreatePipeline,
    resolved: &ResolvedRef,
    protected_ref: bool,
    user: Option<&User>,
) -> Result<NewPipeline, CreateError> {
    let variables = request
        .variables
        .iter()
        .map(|v| v.seal(&state.sealer))
        .collect::<anyhow::Result<_>>()?;
    Ok(NewPipeline {
        project_id: request.project.id,
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
        user_id: user.map(|u| u.id),
        trigger_id: request.trigger.as_ref().map(|t| t.id),
        trigger_short_token: request.trigger.as_ref().map(|t| t.short_token.clone()),
        upstream: request.upstream,
        name: None,
        yaml_errors: None,
        failure_reason: None,
        committed_at: Some(resolved.commit.committed_date),
        variables,
        jobs: Vec::new(),
    })
}

/// Step 6's input: the pipeline's context for the config engine, with the pipeline's own,
/// the project's and the instance's variables (protected ones only on a protected ref); the
/// commit's file list is added once the config says it needs it.
async fn planning_context(
    state: &AppState,
    request: &CreatePipeline,
    base: &NewPipeline,
    user: Option<&User>,
    resolved: &ResolvedRef,
) -> Result<pipewright_config::PipelineContext, CreateError> {
    let project = &request.project;
    let ci_vars =
        crate::domain::ci_variables::for_pipeline(state, project.id, base.protected_ref).await?;
    Ok(pipewright_config::PipelineContext {
        pipeline_variables: request
            .variables
            .iter()
            .map(PipelineVariable::to_config)
            .collect(),
        project_variables: ci_vars.project,
        instance_variables: ci_vars.instance,
        ..crate::domain::pipeline_context::build(
            state,
            base,
            project,
            user,
            &resolved.commit.message,
        )
    })
}

/// Step 7: writes the planned pipeline in one transaction, tells webhooks and waiting runners,
/// and returns it with its first stage's bridges to start.
async fn write(
    state: &AppState,
    mut new: NewPipeline,
    plan: pipewright_config::Plan,
) -> Result<(Pipeline, ToStart), CreateError> {
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
    crate::domain::webhooks::pipeline_changed(state, pipeline.id);
    // Delayed jobs that start out scheduled count their `start_in` from now.
    if plan
        .jobs
        .iter()
        .any(|j| j.initial_status == pipewright_config::InitialStatus::Scheduled)
    {
        for job in state.store.pipeline_all_jobs(pipeline.id).await? {
            if job.status == Status::Scheduled {
                crate::domain::job_processing::schedule(state, &job).await?;
            }
        }
    }
    // Bridges (`trigger:` jobs) that start at once are the server's to start.
    let to_start = if plan.jobs.iter().any(|j| {
        j.trigger.is_some() && j.initial_status == pipewright_config::InitialStatus::Pending
    }) {
        ToStart::bridges_among(&state.store.pipeline_all_jobs(pipeline.id).await?)
    } else {
        ToStart::default()
    };
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
    Ok((pipeline, to_start))
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
async fn config_error(state: &AppState, mut base: NewPipeline, message: String) -> CreateError {
    base.status = Status::Failed;
    base.yaml_errors = Some(message.clone());
    base.failure_reason = Some("config_error".into());
    match state.store.create_pipeline(&base).await {
        Ok(pipeline) => CreateError::ConfigError(Box::new(pipeline), message),
        Err(e) => e.into(),
    }
}
