//! Firing a pipeline with a token (`POST /projects/:id/trigger/pipeline`): which project and
//! user a trigger token or a running job's `CI_JOB_TOKEN` stands for, the trigger's variables
//! and its `TRIGGER_PAYLOAD`, then the creation chain. The answers keep GitLab's order of
//! checks after the parameters: project and token (404 for anything that is not this project's
//! live trigger token), variable values, then the chain (400/422).
//! GitLab: lib/api/ci/triggers.rb, app/services/ci/pipeline_trigger_service.rb.

use pipewright_core::{PipelineSource, Timestamp};
use pipewright_store::{Pipeline, Project, User, VariableType};

use crate::domain::pipeline_creation::{CreateError, CreatePipeline, DryRunOutcome, PipelineUser};
use crate::domain::pipeline_variables::{
    MAX_TRIGGER_PAYLOAD_BYTES, PipelineVariable, TRIGGER_PAYLOAD,
};
use crate::domain::trigger_tokens;
use crate::error::{ApiError, ApiResult};
use crate::secrets;
use crate::state::AppState;

/// A triggered pipeline (or why there is none), with the project and the user it ran as.
pub struct Triggered {
    pub project: Project,
    pub user: Option<User>,
    pub result: Result<Pipeline, CreateError>,
}

/// A token that may trigger pipelines in a project: the project, who the pipeline runs as,
/// where it comes from, and the credential's identity (`token:<digest>`, never the token).
pub struct Authorized {
    pub project: Project,
    pub credential: String,
    run_as: PipelineUser,
    origin: Origin,
}

/// Runs a pipeline for `ref_name` of the project `id` names (a number or `namespace/path`),
/// as the owner of trigger token `token` or as the user of the running job whose
/// `CI_JOB_TOKEN` it is, with `variables` and `payload` (the request, as JSON) as
/// `TRIGGER_PAYLOAD`.
pub async fn run(
    state: &AppState,
    id: &str,
    token: &str,
    ref_name: String,
    variables: Vec<(String, String)>,
    payload: String,
) -> ApiResult<Triggered> {
    let authorized = authorize(state, id, token).await?;
    let inputs = pipewright_config::Inputs::new();
    create(state, authorized, ref_name, variables, inputs, payload).await
}

/// The project `id` names and who its pipeline runs as, for trigger token or `CI_JOB_TOKEN`
/// `token` (404 for anything that is not this project's live trigger token).
pub async fn authorize(state: &AppState, id: &str, token: &str) -> ApiResult<Authorized> {
    let (project, run_as, origin) = if token.starts_with(crate::auth::JOB_TOKEN_PREFIX) {
        by_job_token(state, id, token).await?
    } else {
        by_trigger_token(state, id, token).await?
    };
    Ok(Authorized {
        project,
        credential: format!("token:{}", secrets::token_digest(token)),
        run_as,
        origin,
    })
}

/// The rest of [`run`] once the token is [`authorize`]d: the variables, then the creation chain
/// (with the CI/CD `inputs` for the config's `spec:inputs`).
pub async fn create(
    state: &AppState,
    authorized: Authorized,
    ref_name: String,
    variables: Vec<(String, String)>,
    inputs: pipewright_config::Inputs,
    payload: String,
) -> ApiResult<Triggered> {
    let (request, user) = creation_request(authorized, ref_name, variables, inputs, payload)?;
    let project = request.project.clone();
    let result = crate::domain::dispatch::create_pipeline(state, request).await;
    Ok(Triggered {
        project,
        user,
        result,
    })
}

/// As [`create`], up to the write: what the pipeline would be (`dry_run=true`).
pub async fn dry_run(
    state: &AppState,
    authorized: Authorized,
    ref_name: String,
    variables: Vec<(String, String)>,
    inputs: pipewright_config::Inputs,
    payload: String,
) -> ApiResult<Result<DryRunOutcome, CreateError>> {
    let (request, _) = creation_request(authorized, ref_name, variables, inputs, payload)?;
    Ok(crate::domain::pipeline_creation::dry_run(state, request).await)
}

/// The creation chain's request for a triggered pipeline, and the user it runs as.
fn creation_request(
    authorized: Authorized,
    ref_name: String,
    variables: Vec<(String, String)>,
    inputs: pipewright_config::Inputs,
    payload: String,
) -> ApiResult<(CreatePipeline, Option<User>)> {
    let Authorized {
        project,
        run_as,
        origin,
        ..
    } = authorized;
    let variables = trigger_variables(variables, payload)?;
    if let Origin::Trigger(trigger) = &origin {
        // Issue 14 §3: the token's own restrictions, once it is known to be this project's.
        trigger_tokens::check(
            &trigger.restrictions,
            &ref_name,
            variables.iter().map(|v| v.key.as_str()),
        )?;
    }
    let user = match &run_as {
        PipelineUser::User { user, .. } => Some(user.clone()),
        PipelineUser::Nobody => None,
    };
    let (source, trigger, upstream) = match origin {
        Origin::Trigger(trigger) => (PipelineSource::Trigger, Some(trigger), None),
        Origin::Job(upstream) => (PipelineSource::Pipeline, None, Some(upstream)),
    };
    let request = CreatePipeline {
        project,
        ref_name,
        source,
        run_as,
        trigger,
        variables,
        upstream,
        before_sha: None,
        config_path: None,
        at_sha: None,
        ignore_skip_ci: true,
        inputs,
        save_on_errors: true,
    };
    Ok((request, user))
}

/// The trigger's variables (keys checked) and `TRIGGER_PAYLOAD`, a file variable.
fn trigger_variables(
    variables: Vec<(String, String)>,
    payload: String,
) -> ApiResult<Vec<PipelineVariable>> {
    if payload.len() > MAX_TRIGGER_PAYLOAD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "{TRIGGER_PAYLOAD} is larger than {} bytes",
            MAX_TRIGGER_PAYLOAD_BYTES
        )));
    }
    let mut inputs: Vec<PipelineVariable> = Vec::with_capacity(variables.len() + 1);
    for (key, value) in variables {
        if key == TRIGGER_PAYLOAD {
            return Err(ApiError::base(&format!(
                "Duplicate variable name: {TRIGGER_PAYLOAD}"
            )));
        }
        if key.is_empty() || key.len() > 255 || !crate::validate::variable_key_chars(&key) {
            return Err(ApiError::base(
                "Failed to build pipeline variables: variable keys can contain only letters, digits and '_' (at most 255)",
            ));
        }
        inputs.push(PipelineVariable {
            key,
            value,
            variable_type: VariableType::EnvVar,
        });
    }
    inputs.push(PipelineVariable {
        key: TRIGGER_PAYLOAD.into(),
        value: payload,
        variable_type: VariableType::File,
    });
    Ok(inputs)
}

/// Where a triggered pipeline comes from: a trigger token, or a running job's `CI_JOB_TOKEN`
/// (a multi-project pipeline, linked to the job that started it).
enum Origin {
    Trigger(pipewright_store::Trigger),
    Job(pipewright_store::Upstream),
}

async fn by_trigger_token(
    state: &AppState,
    id: &str,
    token: &str,
) -> ApiResult<(Project, PipelineUser, Origin)> {
    // One statement finds the token with its project, owner and the owner's role. Only this
    // project's live trigger token is accepted; an unknown project, an unknown, revoked or
    // expired token and another project's token are the same 404, so the answer reveals
    // neither the project nor the token.
    let context = state
        .store
        .trigger_run_context(&secrets::token_digest(token))
        .await?
        .ok_or_else(not_found)?;
    if !names_project(&context.project, id)
        || context
            .trigger
            .expires_at
            .is_some_and(|t| t <= Timestamp::now())
    {
        return Err(not_found());
    }
    let pipewright_store::TriggerContext {
        trigger,
        project,
        owner,
        owner_role,
    } = context;
    let run_as = match (owner, trigger.legacy) {
        (Some(user), _) => PipelineUser::User {
            user,
            role: owner_role,
        },
        (None, true) => PipelineUser::Nobody,
        // An owner that was deleted leaves a trigger that may no longer run.
        (None, false) => {
            return Err(ApiError::base(
                "Insufficient permissions to create a new pipeline",
            ));
        }
    };
    Ok((project, run_as, Origin::Trigger(trigger)))
}

/// `token=$CI_JOB_TOKEN`: the job must be running (401 `Job is not running`), and the target
/// project must let the job's project in and be visible to the job's user (404 otherwise).
/// The pipeline runs as the job's user.
async fn by_job_token(
    state: &AppState,
    id: &str,
    token: &str,
) -> ApiResult<(Project, PipelineUser, Origin)> {
    let job = crate::auth::running_job(state, token).await?;
    let project = crate::domain::projects::lookup(state, id)
        .await?
        .ok_or(ApiError::NotFound("Project"))?;
    let (user, access) = crate::domain::job_token::job_access(state, &job, &project).await?;
    let Some(user) = user else {
        return Err(ApiError::NotFound("Project"));
    };
    let upstream = pipewright_store::Upstream {
        job_id: job.id,
        pipeline_id: job.pipeline_id,
        project_id: job.project_id,
    };
    Ok((
        project,
        PipelineUser::User {
            user,
            role: access.role(),
        },
        Origin::Job(upstream),
    ))
}

/// Whether the URL's `:id` (a number or `namespace/path`) names this project.
fn names_project(project: &Project, id: &str) -> bool {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        return id.parse::<i64>().is_ok_and(|n| n == project.id);
    }
    id.eq_ignore_ascii_case(&project.full_path())
}

fn not_found() -> ApiError {
    ApiError::NotFound("")
}
