//! Pipeline schedules' decisions: who may do what to a schedule (GitLab's
//! `Ci::PipelineSchedulePolicy`), a schedule's ref and next run, running its pipeline, and the
//! scheduler — the maintenance loop's step that runs every due schedule.
//!
//! **Every due tick runs once.** The scheduler reads the active schedules whose `next_run_at`
//! has come, and for each claims the tick with one conditional update (`next_run_at` from the
//! value it read to the pattern's next time after now, see the store's `schedules.rs`); only
//! the server whose update changed the row creates the pipeline. Several replicas on one
//! PostgreSQL therefore create one pipeline per tick, and a server that was down for hours
//! finds each schedule due once and moves it to its next future time: one pipeline for all the
//! ticks it missed, as GitLab's worker does (GitLab: app/workers/pipeline_schedule_worker.rb,
//! app/services/ci/pipeline_schedule_service.rb: `schedule_next_run!` before the run). The
//! tick is claimed before the pipeline is created, as there: a server that dies between the
//! two loses that one run rather than running it twice.
//!
//! **Owners.** A scheduled pipeline runs as the schedule's owner; a schedule whose owner may no
//! longer run pipelines in the project (removed, below Developer, deleted) is deactivated, as
//! GitLab deactivates it when the membership changes
//! (app/models/concerns/ci/pipeline_schedule_ownership_validator.rb): here when it comes due,
//! and by a sweep once a minute so the list shows it soon after.

use std::sync::atomic::{AtomicI64, Ordering};

use pipewright_core::{PipelineSource, Timestamp};
use pipewright_store::{
    Pipeline, PipelineSchedule, Project, ScheduleInputChange, StoreError, User,
};

use crate::domain::cron::CronSchedule;
use crate::domain::pipeline_creation::{CreateError, CreatePipeline, PipelineUser};
use crate::domain::pipeline_variables::PipelineVariable;
use crate::error::{ApiError, ApiResult};
use crate::permissions::{Action, ProjectAccess};
use crate::sealing::Purpose;
use crate::state::AppState;

/// Schedules a project may have (GitLab's `ci_pipeline_schedules` plan limit).
pub const MAX_SCHEDULES_PER_PROJECT: i64 = 1_000;
/// Variables a schedule may have.
pub const MAX_VARIABLES_PER_SCHEDULE: usize = 200;
/// CI/CD inputs a schedule may have.
pub const MAX_INPUTS_PER_SCHEDULE: usize = 200;
/// The longest input value, serialized as JSON (GitLab: app/models/ci/pipeline_schedule_input.rb
/// `MAX_VALUE_SIZE`: the longest interpolated value, `Interpolation::Access::MAX_ACCESS_BYTESIZE`).
pub const MAX_INPUT_VALUE_CHARS: usize = 1024;
/// Due schedules one scheduler pass takes on; the rest wait for the next pass (a second).
const DUE_PER_PASS: i64 = 20;
/// How often the owner sweep runs (per process; the sweep is idempotent).
const SWEEP_EVERY_MS: i64 = 60_000;
static LAST_SWEEP: AtomicI64 = AtomicI64::new(0);

/// What a caller may do to one schedule, beyond reading it (GitLab:
/// app/policies/ci/pipeline_schedule_policy.rb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abilities {
    /// Edit it and its variables: its owner (a Developer or higher), or an administrator.
    pub update: bool,
    /// Delete it, take it over, delete its variables: Maintainers and up, or its owner.
    pub admin: bool,
    /// See its variables' values: as `admin`.
    pub read_variables: bool,
}

pub fn abilities(user: &User, access: &ProjectAccess, schedule: &PipelineSchedule) -> Abilities {
    let owner = schedule.owner_id == Some(user.id);
    let owner_may_build = owner && access.can(Action::UpdatePipelines);
    let admin = access.can(Action::AdministerPipelineSchedules) || owner_may_build;
    Abilities {
        update: user.is_admin || owner_may_build,
        admin,
        read_variables: admin,
    }
}

/// Whether the caller may play the schedule now: they may create pipelines, and update its
/// ref if that is a protected branch (GitLab: `play_pipeline_schedule`, prevented by
/// `protected_ref`). Pipewright has no protected tags.
pub async fn may_play(
    state: &AppState,
    access: &ProjectAccess,
    schedule: &PipelineSchedule,
) -> Result<bool, StoreError> {
    if !access.can(Action::CreatePipeline) {
        return Ok(false);
    }
    if schedule.ref_name.starts_with("refs/tags/") {
        return Ok(true);
    }
    let branch = schedule
        .ref_name
        .strip_prefix("refs/heads/")
        .unwrap_or(&schedule.ref_name);
    let rules = state.store.protected_branches(schedule.project_id).await?;
    Ok(crate::domain::protected_refs::update_allowed(
        &rules, branch, access,
    ))
}

/// Whether the caller may set pipeline variables in the project (GitLab's
/// `set_pipeline_variables`: `ci_pipeline_variables_minimum_override_role`, Developer by
/// default; the same rule `pipeline_creation` applies to a pipeline's own variables).
pub async fn may_set_variables(
    state: &AppState,
    project_id: i64,
    user: &User,
    access: &ProjectAccess,
) -> Result<bool, StoreError> {
    use pipewright_core::AccessLevel::*;
    let minimum = state
        .store
        .pipeline_variables_minimum_role(project_id)
        .await?;
    let required = match minimum.as_deref() {
        None | Some("developer") => Developer,
        Some("maintainer") => Maintainer,
        Some("owner") => Owner,
        _ => return Ok(false),
    };
    Ok(user.is_admin || access.role().is_some_and(|r| r >= required))
}

/// GitLab's short-ref expansion (app/services/ci/pipeline_schedules/base_save_service.rb,
/// `Ci::PipelineSchedule#expand_short_ref`): `refs/heads/x` and `refs/tags/x` are kept as
/// given; a short name becomes the full ref of the branch or tag it names. `None` when it
/// names both, or neither: GitLab's `ref is ambiguous`.
pub async fn expand_ref(
    state: &AppState,
    project_id: i64,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let full = ["refs/heads/", "refs/tags/"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.chars().next().is_some_and(|c| !c.is_whitespace()))
    });
    if full {
        return Ok(Some(name.to_string()));
    }
    match state.repos.resolve_ref_async(project_id, name).await {
        Ok(resolved) => Ok(Some(resolved.full_ref)),
        Err(
            pipewright_git::Error::Ambiguous(_)
            | pipewright_git::Error::InvalidRef(_)
            | pipewright_git::Error::RepositoryNotFound,
        ) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// When a schedule with this pattern runs next after `now`; `None` for a pattern that is
/// invalid (validated before it is stored) or never matches again.
pub fn next_run(cron: &str, timezone: &str, now: Timestamp) -> Option<Timestamp> {
    CronSchedule::parse(cron, timezone).ok()?.next_after(now)
}

/// Runs the schedule's pipeline now, as `run_as`, with source `schedule` and the schedule's
/// variables, and records that the schedule started it. A pipeline the creation chain refuses
/// (no permission, no such ref, no jobs) is logged and is `None`; one saved as failed (a
/// config error) is linked like any other, so the schedule's list shows why it failed.
pub async fn run(
    state: &AppState,
    project: &Project,
    schedule: &PipelineSchedule,
    run_as: PipelineUser,
) -> anyhow::Result<Option<Pipeline>> {
    let variables = state
        .store
        .pipeline_schedule_variables(schedule.id)
        .await?
        .into_iter()
        .map(|v| {
            Ok(PipelineVariable {
                value: state
                    .sealer
                    .open(Purpose::ScheduleVariable, &v.value_sealed)?,
                key: v.key,
                variable_type: v.variable_type,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = CreatePipeline {
        project: project.clone(),
        ref_name: schedule.ref_name.clone(),
        source: PipelineSource::Schedule,
        run_as,
        trigger: None,
        variables,
        upstream: None,
        // GitLab: app/workers/run_pipeline_schedule_worker.rb, `ignore_skip_ci: true`.
        ignore_skip_ci: true,
        before_sha: None,
        config_path: None,
        at_sha: None,
        // The schedule's inputs are the pipeline's, checked against the config's
        // `spec:inputs` as the API's are (GitLab 17.11: run_pipeline_schedule_worker.rb hands
        // the schedule's inputs to `CreatePipelineService`; not verified word for word).
        inputs: inputs(state, schedule.id).await?,
        // GitLab: app/workers/run_pipeline_schedule_worker.rb, `save_on_errors: false` — a
        // schedule whose config is broken creates nothing; the worker logs why.
        save_on_errors: false,
    };
    let pipeline = match crate::domain::dispatch::create_pipeline(state, request).await {
        Ok(pipeline) => pipeline,
        Err(CreateError::ConfigError(pipeline, message)) => {
            tracing::info!(schedule_id = schedule.id, %message, "scheduled pipeline failed");
            *pipeline
        }
        Err(CreateError::Rejected(message)) => {
            tracing::info!(schedule_id = schedule.id, %message, "scheduled pipeline not created");
            return Ok(None);
        }
        Err(CreateError::Internal(err)) => return Err(err),
    };
    state
        .store
        .link_pipeline_to_schedule(schedule.id, pipeline.id)
        .await?;
    tracing::info!(
        schedule_id = schedule.id,
        pipeline_id = pipeline.id,
        "scheduled pipeline created"
    );
    Ok(Some(pipeline))
}

/// A change to a schedule's CI/CD inputs: set one to a value (a string, number, boolean or
/// array), or remove one (GitLab's `inputs[][destroy]=true`).
#[derive(Debug, Clone, PartialEq)]
pub enum InputChange {
    Set {
        name: String,
        value: serde_json::Value,
    },
    Remove {
        name: String,
    },
}

/// A schedule's inputs, opened, in the order they were first set (GitLab 17.11:
/// `Ci::PipelineScheduleInput`, passed as the pipeline's `inputs`).
pub async fn inputs(
    state: &AppState,
    schedule_id: i64,
) -> anyhow::Result<pipewright_config::Inputs> {
    let mut inputs = pipewright_config::Inputs::new();
    for input in state.store.pipeline_schedule_inputs(schedule_id).await? {
        let text = state
            .sealer
            .open(Purpose::ScheduleInput, &input.value_sealed)?;
        inputs.insert(input.name, serde_json::from_str(&text)?);
    }
    Ok(inputs)
}

/// Applies `changes` to a schedule's inputs, sealed as GitLab encrypts them, unless the
/// schedule would then have more than [`MAX_INPUTS_PER_SCHEDULE`].
pub async fn change_inputs(
    state: &AppState,
    schedule_id: i64,
    changes: &[InputChange],
) -> ApiResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut names: std::collections::HashSet<String> = state
        .store
        .pipeline_schedule_inputs(schedule_id)
        .await?
        .into_iter()
        .map(|i| i.name)
        .collect();
    let mut stored = Vec::with_capacity(changes.len());
    for change in changes {
        stored.push(match change {
            InputChange::Set { name, value } => {
                names.insert(name.clone());
                ScheduleInputChange::Set {
                    name: name.clone(),
                    value_sealed: state
                        .sealer
                        .seal(Purpose::ScheduleInput, &value.to_string())
                        .map_err(ApiError::Internal)?,
                }
            }
            InputChange::Remove { name } => {
                names.remove(name);
                ScheduleInputChange::Remove { name: name.clone() }
            }
        });
    }
    if names.len() > MAX_INPUTS_PER_SCHEDULE {
        return Err(ApiError::validation(
            "inputs",
            format!("is too long (maximum is {MAX_INPUTS_PER_SCHEDULE})"),
        ));
    }
    state
        .store
        .change_pipeline_schedule_inputs(schedule_id, &stored)
        .await?;
    Ok(())
}

/// The scheduler's pass, from the maintenance loop: every due schedule's tick, once.
pub async fn run_due(state: &AppState) -> anyhow::Result<()> {
    let now = Timestamp::now();
    sweep_orphans(state, now).await?;
    for schedule in state
        .store
        .due_pipeline_schedules(now, DUE_PER_PASS)
        .await?
    {
        let Some(due) = schedule.next_run_at else {
            continue;
        };
        let next = next_run(&schedule.cron, &schedule.cron_timezone, now);
        if !state
            .store
            .claim_pipeline_schedule_run(schedule.id, due, next)
            .await?
        {
            // Another server took this tick (or the schedule changed meanwhile).
            continue;
        }
        if let Err(err) = run_claimed(state, &schedule).await {
            tracing::warn!(schedule_id = schedule.id, error = %format!("{err:#}"),
                "scheduled pipeline failed to start");
        }
    }
    Ok(())
}

/// Runs a claimed tick as the owner, or deactivates the schedule if the owner may no longer
/// run pipelines in the project.
async fn run_claimed(state: &AppState, schedule: &PipelineSchedule) -> anyhow::Result<()> {
    let Some(project) = state.store.project(schedule.project_id).await? else {
        return Ok(());
    };
    let owner = match schedule.owner_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    };
    let Some(owner) = owner else {
        deactivate(state, schedule, "its owner was deleted").await?;
        return Ok(());
    };
    let access = crate::domain::projects::user_access(state, Some(&owner), &project).await?;
    if !access.can(Action::CreatePipeline) {
        deactivate(state, schedule, "its owner may no longer run pipelines").await?;
        return Ok(());
    }
    let run_as = PipelineUser::User {
        user: owner,
        role: access.role(),
    };
    run(state, &project, schedule, run_as).await?;
    Ok(())
}

async fn deactivate(
    state: &AppState,
    schedule: &PipelineSchedule,
    why: &str,
) -> anyhow::Result<()> {
    if state
        .store
        .deactivate_pipeline_schedule(schedule.id)
        .await?
    {
        tracing::info!(
            schedule_id = schedule.id,
            "pipeline schedule deactivated: {why}"
        );
    }
    Ok(())
}

/// Deactivates, once a minute, the schedules whose owners lost access since.
async fn sweep_orphans(state: &AppState, now: Timestamp) -> anyhow::Result<()> {
    let last = LAST_SWEEP.load(Ordering::Relaxed);
    if now.millis() - last < SWEEP_EVERY_MS {
        return Ok(());
    }
    LAST_SWEEP.store(now.millis(), Ordering::Relaxed);
    let deactivated = state
        .store
        .deactivate_orphaned_pipeline_schedules(now)
        .await?;
    if deactivated > 0 {
        tracing::info!(
            count = deactivated,
            "pipeline schedules deactivated: their owners lost access"
        );
    }
    Ok(())
}
