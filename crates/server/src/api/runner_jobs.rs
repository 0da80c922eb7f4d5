//! The runner side of GitLab's runner API: `POST /jobs/request` (claim a job, long-polling),
//! `PUT /jobs/:id` (state), `PATCH /jobs/:id/trace` (append to the log), and reading a job's
//! log back (`GET /projects/:id/jobs/:job_id/trace`).
//!
//! Claiming is one short conditional update (`pending` → `running` with the runner, a fresh
//! job token and a lease), so two runners — or two servers on one PostgreSQL — never get the
//! same job: the second update finds the job no longer pending and moves on.
//!
//! What goes over the wire is `pipewright_runner_proto`'s types (the runner speaks the same
//! ones), built from the store here and read from the request's merged parameters.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pipewright_core::{Status, Timestamp};
use pipewright_runner_proto as proto;
use pipewright_store::{Job, Runner, TraceAppend};
use serde_json::{Value, json};

use super::Segments;
use super::projects::authorize_project;
use super::runners::runner_for_token;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::secrets;
use crate::state::AppState;

use crate::job_token::JOB_TOKEN_PREFIX;

/// When a job claimed or heard from now stops being leased.
fn lease_until(state: &AppState) -> Timestamp {
    Timestamp(Timestamp::now().millis() + state.config.job_lease.as_millis() as i64)
}

/// Extends a running job's lease once half of it has passed (renewing on every log chunk
/// would cost a write per chunk for nothing).
async fn renew_lease(state: &AppState, job: &Job) -> ApiResult<()> {
    let half = state.config.job_lease.as_millis() as i64 / 2;
    let remaining = job
        .lease_expires_at
        .map_or(0, |at| at.millis() - Timestamp::now().millis());
    if remaining < half {
        state
            .store
            .renew_job_lease(job.id, lease_until(state))
            .await?;
    }
    Ok(())
}

/// Appends a plain line the server writes itself (what a bridge did) to a job's log.
pub async fn append_system_note(state: &AppState, job_id: i64, line: &str) {
    append_text(state, job_id, &format!("{line}\n")).await;
}

/// Appends a line the server writes itself (a system failure) to a job's log.
pub async fn append_system_line(state: &AppState, job_id: i64, line: &str) {
    append_text(state, job_id, &format!("\n\x1b[31;1m{line}\x1b[0;m\n")).await;
}

async fn append_text(state: &AppState, job_id: i64, text: &str) {
    let Ok(Some(job)) = state.store.job_by_id(job_id).await else {
        return;
    };
    let limit = state.config.max_trace_bytes;
    if let Err(err) = state
        .store
        .append_trace(
            job.id,
            job.trace_size.max(0) as u64,
            text.as_bytes(),
            limit,
            b"",
        )
        .await
    {
        tracing::warn!(job_id, error = %err, "could not append to a job's log");
    }
}

pub fn routes() -> Vec<Route> {
    use Access::*;
    vec![
        Route::post("/api/v4/jobs/request", request_job, RunnerToken),
        Route::put("/api/v4/jobs/{id}", update_job, OwnJobToken),
        Route::patch("/api/v4/jobs/{id}/trace", append_trace, OwnJobToken),
        Route::get(
            "/api/v4/projects/{id}/jobs/{job_id}/trace",
            read_trace,
            SignedInToRead,
        ),
    ]
}

/// Removes a job's log (erase).
pub async fn erase_trace(state: &AppState, job_id: i64) -> ApiResult<()> {
    Ok(state.store.erase_trace(job_id).await?)
}

fn tags_match(runner: &Runner, job_tags: &[String]) -> bool {
    if job_tags.is_empty() {
        return runner.run_untagged;
    }
    job_tags.iter().all(|t| runner.tag_list.contains(t))
}

/// `POST /jobs/request`'s body as the protocol's type, from whichever of query, form or JSON
/// carried it. Only the token decides anything; `info` and `session` are kept when they are
/// well-formed and ignored otherwise, as runners differ in what they send.
fn job_request(params: &Params) -> ApiResult<proto::JobRequest> {
    let token = params.str("token")?;
    let token = token.ok_or_else(|| ApiError::MissingParam("token".into()))?;
    Ok(proto::JobRequest {
        token: token.into(),
        system_id: params.str("system_id").ok().flatten(),
        last_update: params.str("last_update").ok().flatten(),
        info: well_formed(params.get("info")),
        session: well_formed(params.get("session")),
    })
}

/// `value` as a protocol type, or `None` when it is absent or not that type's shape.
fn well_formed<T: serde::de::DeserializeOwned>(value: Option<&Value>) -> Option<T> {
    serde_json::from_value(value?.clone()).ok()
}

async fn request_job(State(state): State<AppState>, params: Params) -> ApiResult<Response> {
    let request = job_request(&params)?;
    let runner = runner_for_token(&state, Some(request.token.expose())).await?;
    // `contacted_at` to the minute is all anyone reads; a write per request would cost a
    // transaction per long poll.
    let now = Timestamp::now();
    if runner
        .contacted_at
        .is_none_or(|at| now.millis() - at.millis() > 60_000)
    {
        state.store.touch_runner(runner.id, now).await?;
    }
    if runner.paused {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let deadline = tokio::time::Instant::now() + state.config.job_request_long_poll;
    loop {
        // Register interest before looking, so a job that appears meanwhile wakes us.
        let notified = state.job_available.notified();
        if let Some((job, token)) = claim(&state, &runner).await? {
            let payload = payload(&state, &job, &token).await?;
            // A running job makes its pipeline `running` (a no-op once it is).
            crate::job_processing::set_pipeline_status(&state, job.pipeline_id, Status::Running)
                .await
                .map_err(ApiError::Internal)?;
            crate::webhooks::job_changed(&state, &job);
            return Ok((StatusCode::CREATED, Json(payload)).into_response());
        }
        // Wake-ups are pushed (in-process, and from other servers through the store); looking
        // again every couple of seconds covers a missed one.
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let mut res = StatusCode::NO_CONTENT.into_response();
            res.headers_mut()
                .insert(proto::LAST_UPDATE, HeaderValue::from_static("0"));
            return Ok(res);
        }
        let wake = deadline.min(now + state.config.job_request_recheck);
        let _ = tokio::time::timeout_at(wake, notified).await;
    }
}

async fn claim(state: &AppState, runner: &Runner) -> ApiResult<Option<(Job, String)>> {
    // A protected runner takes only jobs of protected refs, which may run with protected
    // variables. GitLab: app/services/ci/register_job_service.rb (`builds_for_protected_runner`).
    let pending = if runner.access_level == REF_PROTECTED {
        state.store.pending_protected_jobs(CLAIM_WINDOW).await?
    } else {
        state.store.pending_jobs(CLAIM_WINDOW).await?
    };
    let mut candidates: Vec<i64> = pending
        .into_iter()
        .filter(|job| runner.project_id.is_none_or(|p| p == job.project_id))
        .filter(|job| claimable(runner, job))
        .map(|job| job.id)
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    // Runners asking at the same moment see the same oldest jobs; starting each at a different
    // place keeps them from all racing for the first one (the order stays oldest-first after).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let start = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % candidates.len().min(8);
    candidates.rotate_left(start);
    let token = secrets::random_token(JOB_TOKEN_PREFIX, 32);
    let claimed = state
        .store
        .claim_job(
            &candidates,
            runner.id,
            &secrets::token_digest(&token),
            lease_until(state),
        )
        .await?;
    Ok(claimed.map(|job| (job, token)))
}

/// How many of the oldest pending jobs one request considers.
const CLAIM_WINDOW: i64 = 8;

/// A runner's `access_level` that limits it to jobs of protected refs.
const REF_PROTECTED: &str = "ref_protected";

/// Whether this runner may take this job: not a bridge (the server runs those), and the
/// runner's tags cover the job's.
fn claimable(runner: &Runner, job: &Job) -> bool {
    let routing = crate::bridges::Routing::of(job);
    !routing.is_bridge() && tags_match(runner, &routing.tags)
}

/// What every job of a pipeline shares in its payload: read once per pipeline and kept for a
/// moment, since a pipeline's jobs are usually claimed together (none of it changes while the
/// pipeline runs, except the project's name).
pub struct PayloadContext {
    pipeline: pipewright_store::Pipeline,
    project: pipewright_store::Project,
    ctx: pipewright_config::PipelineContext,
    pipeline_vars: Vec<pipewright_config::Variable>,
    build_timeout: Option<u64>,
}

async fn load_payload_context(state: &AppState, job: &Job) -> ApiResult<PayloadContext> {
    let pipeline = state
        .store
        .pipeline_by_id(job.pipeline_id)
        .await?
        .ok_or(ApiError::NotFound("Pipeline"))?;
    let project = state
        .store
        .project(job.project_id)
        .await?
        .ok_or(ApiError::NotFound("Project"))?;
    let user = match pipeline.user_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    };
    let commit = state
        .repos
        .commit_async(project.id, &pipeline.sha)
        .await
        .ok()
        .flatten();
    let pipeline_vars = crate::pipeline_variables::opened(state, pipeline.id)
        .await
        .map_err(ApiError::Internal)?
        .iter()
        .map(crate::pipeline_variables::PipelineVariable::to_config)
        .collect();
    let build_timeout = state
        .store
        .project_build_timeout(project.id)
        .await?
        .and_then(|t| u64::try_from(t).ok());
    let ctx = crate::pipeline_context::build(
        state,
        &pipeline,
        &project,
        user.as_ref(),
        commit.as_ref().map_or("", |c| c.message.as_str()),
    );
    Ok(PayloadContext {
        pipeline,
        project,
        ctx,
        pipeline_vars,
        build_timeout,
    })
}

/// GitLab's job payload for a runner (`API::Entities::Ci::JobRequest::Response`).
async fn payload(state: &AppState, job: &Job, token: &str) -> ApiResult<proto::JobPayload> {
    let shared = state
        .payload_cache
        .get_or_load(job.pipeline_id, load_payload_context(state, job))
        .await?;
    let PayloadContext {
        pipeline,
        project,
        ctx,
        pipeline_vars,
        build_timeout,
    } = shared.as_ref();
    let spec: pipewright_config::PlannedJob = serde_json::from_str(&job.spec)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("job spec: {e}")))?;
    let ci_vars = crate::ci_variables::for_pipeline(state, project.id, pipeline.protected_ref)
        .await
        .map_err(ApiError::Internal)?;
    let variables = pipewright_config::merge_variables(
        pipewright_config::predefined(ctx)
            .into_iter()
            .chain(pipewright_config::job_predefined(
                ctx, job.id, &job.name, &job.stage, token,
            ))
            .chain(spec.variables.iter().cloned())
            .chain(ci_vars.instance)
            .chain(ci_vars.project)
            .chain(pipeline_vars.iter().cloned()),
    );
    // The job's `timeout:`, else the project's `build_timeout`, else GitLab's hour.
    let timeout = spec.timeout.or(*build_timeout).unwrap_or(3600);
    Ok(proto::JobPayload {
        id: job.id,
        token: token.into(),
        allow_git_fetch: true,
        job_info: proto::JobInfo {
            id: job.id,
            name: job.name.clone(),
            stage: job.stage.clone(),
            project_id: project.id,
            project_name: project.name.clone(),
            time_in_queue_seconds: Some(0),
            ..proto::JobInfo::default()
        },
        git_info: git_info(state, project, pipeline, token),
        runner_info: proto::RunnerInfo {
            timeout,
            runner_session_url: None,
        },
        variables: variables.iter().map(runner_variable).collect(),
        steps: steps(&spec, timeout),
        image: spec.image.as_ref().and_then(image),
        services: spec.services.iter().filter_map(service).collect(),
        artifacts: artifacts_spec(spec.artifacts.as_ref()),
        cache: Vec::new(),
        credentials: Vec::new(),
        dependencies: dependencies(state, job, &spec, token).await?,
        features: proto::GitlabFeatures {
            trace_sections: true,
            token_mask_prefixes: None,
            failure_reasons: vec![
                proto::FailureReason::UnknownFailure,
                proto::FailureReason::ScriptFailure,
                proto::FailureReason::RunnerSystemFailure,
                proto::FailureReason::JobExecutionTimeout,
            ],
        },
    })
}

/// Where the runner fetches the pipeline's commit: the repository with the job token in its
/// URL, and refspecs for the commit and its ref. GitLab: `job_request/git_info.rb`.
fn git_info(
    state: &AppState,
    project: &pipewright_store::Project,
    pipeline: &pipewright_store::Pipeline,
    token: &str,
) -> proto::GitInfo {
    let path = project.full_path();
    let external_url = &state.config.external_url;
    let repo_url = match external_url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://gitlab-ci-token:{token}@{rest}/{path}.git"),
        None => format!("{external_url}/{path}.git"),
    };
    let (ref_type, ref_refspec) = if pipeline.tag {
        (
            proto::RefType::Tag,
            format!("+refs/tags/{0}:refs/tags/{0}", pipeline.ref_name),
        )
    } else {
        (
            proto::RefType::Branch,
            format!("+refs/heads/{0}:refs/remotes/origin/{0}", pipeline.ref_name),
        )
    };
    proto::GitInfo {
        repo_url: repo_url.into(),
        ref_name: pipeline.ref_name.clone(),
        sha: pipeline.sha.clone(),
        before_sha: pipeline.before_sha.clone(),
        ref_type,
        refspecs: vec![
            format!("+{}:refs/pipelines/{}", pipeline.sha, pipeline.id),
            ref_refspec,
        ],
        depth: Some(20),
        repo_object_format: None,
        protected: None,
    }
}

/// A variable as the runner receives it.
fn runner_variable(v: &pipewright_config::Variable) -> proto::Variable {
    proto::Variable {
        key: v.key.clone(),
        value: v.value.clone(),
        public: v.public,
        masked: v.masked,
        file: v.file,
        raw: v.raw,
    }
}

/// `before_script` + `script` as the `script` step, then `after_script` (always, failures
/// allowed), each with the job's timeout.
fn steps(spec: &pipewright_config::PlannedJob, timeout: u64) -> Vec<proto::Step> {
    let mut script = spec.before_script.clone();
    script.extend(spec.script.iter().cloned());
    vec![
        proto::Step {
            name: proto::StepName::Script,
            script,
            timeout,
            when: proto::When::OnSuccess,
            allow_failure: false,
        },
        proto::Step {
            name: proto::StepName::AfterScript,
            script: spec.after_script.clone(),
            timeout,
            when: proto::When::Always,
            allow_failure: true,
        },
    ]
}

/// The job's `image:` as GitLab hands it to runners: a name alone is `{name}`; one without a
/// name is no image. GitLab: `Gitlab::Ci::Build::Image` (`lib/gitlab/ci/build/image.rb`).
fn image(config: &Value) -> Option<proto::Image> {
    match config {
        Value::String(name) if !name.is_empty() => Some(proto::Image::named(name)),
        Value::Object(_) => {
            let mut image: proto::Image = well_formed(Some(config))?;
            image.executor_opts = image.executor_opts.or_else(|| executor_opts(config));
            (!image.name.is_empty()).then_some(image)
        }
        _ => None,
    }
}

/// One of the job's `services:`, as [`image`] reads an image; one without a name is dropped.
fn service(config: &Value) -> Option<proto::Service> {
    match config {
        Value::String(name) if !name.is_empty() => Some(proto::Service::named(name)),
        Value::Object(_) => {
            let mut service: proto::Service = well_formed(Some(config))?;
            service.executor_opts = service.executor_opts.or_else(|| executor_opts(config));
            (!service.name.is_empty()).then_some(service)
        }
        _ => None,
    }
}

/// `docker:` and `kubernetes:` of an image or service in the YAML become its
/// `executor_opts`. GitLab: `lib/gitlab/ci/config/entry/image.rb` (`#value`).
fn executor_opts(config: &Value) -> Option<proto::ExecutorOptions> {
    let opts = proto::ExecutorOptions {
        docker: well_formed(config.get("docker")),
        kubernetes: well_formed(config.get("kubernetes")),
    };
    (opts != proto::ExecutorOptions::default()).then_some(opts)
}

/// The running job a job token belongs to, checked against the URL's job id.
async fn running_job(state: &AppState, id: i64, token: Option<&str>) -> ApiResult<Job> {
    let token = token.ok_or(ApiError::forbidden())?;
    let job = state
        .store
        .job_by_token(&secrets::token_digest(token))
        .await?
        .ok_or_else(ApiError::forbidden)?;
    if job.id != id {
        return Err(ApiError::forbidden());
    }
    Ok(job)
}

fn job_status_header(response: &mut Response, status: Status) {
    if let Ok(v) = HeaderValue::from_str(status.as_str()) {
        response.headers_mut().insert(proto::JOB_STATUS, v);
    }
}

/// `PUT /jobs/:id`'s body as the protocol's type, from whichever of query, form or JSON carried
/// it (a form's `exit_code=2` is a number too). A missing token is an empty one, which no job
/// has. Parameters are checked before the job is looked at, as Grape checks them.
fn job_update(params: &Params) -> ApiResult<proto::JobUpdate> {
    Ok(proto::JobUpdate {
        token: params.str("token")?.unwrap_or_default().into(),
        state: params.str("state")?.map(|s| proto::JobState::parse(&s)),
        failure_reason: params
            .str("failure_reason")?
            .map(|s| proto::FailureReason::parse(&s)),
        exit_code: params.i64("exit_code")?,
        checksum: params.str("checksum").ok().flatten(),
        output: well_formed(params.get("output")),
        info: well_formed(params.get("info")),
    })
}

async fn update_job(
    State(state): State<AppState>,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let id = seg.id("id", "Job")?;
    let update = job_update(&params)?;
    let token = Some(update.token.expose()).filter(|t| !t.is_empty());
    let job = running_job(&state, id, token).await?;
    if job.status != Status::Running {
        let mut res = (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "403 Forbidden  - Job is not running"})),
        )
            .into_response();
        job_status_header(&mut res, job.status);
        return Ok(res);
    }
    let final_status = match &update.state {
        None | Some(proto::JobState::Running) => None,
        Some(proto::JobState::Success) => Some(Status::Success),
        Some(proto::JobState::Failed) => Some(Status::Failed),
        Some(_) => {
            return Err(ApiError::ParamError(
                "state does not have a valid value".into(),
            ));
        }
    };
    let mut status = job.status;
    match final_status {
        None => renew_lease(&state, &job).await?,
        Some(s) => {
            // A failure without a reason is the script's, as GitLab records it.
            let reason = (s == Status::Failed).then(|| {
                update
                    .failure_reason
                    .as_ref()
                    .map_or("script_failure", proto::FailureReason::as_str)
            });
            if crate::job_processing::finish_job(&state, &job, s, reason, update.exit_code)
                .await
                .map_err(ApiError::Internal)?
            {
                status = s;
            }
        }
    }
    let mut res = (StatusCode::OK, Json(json!({}))).into_response();
    job_status_header(&mut res, status);
    Ok(res)
}

/// What a log chunk's `Content-Range` says.
#[derive(Debug, PartialEq, Eq)]
enum ChunkRange {
    /// No header: GitLab's `400 Missing header Content-Range`.
    Missing,
    /// Not `start-end` in decimal digits (`bytes=abc`, `-5-10`, an offset past `u64`):
    /// nothing can be appended where it says.
    Invalid,
    /// The chunk's first byte's offset in the log.
    Start(u64),
}

/// `Content-Range: start-end` (inclusive, no `bytes ` prefix, as runners send it; a `bytes `
/// prefix and a `/total` suffix are tolerated). Only `start` is used: like GitLab, the end is
/// computed from the body (runners have sent it off by one).
// GitLab: lib/api/ci/runner.rb `patch '/:id/trace'` and
// app/services/ci/append_build_trace_service.rb. GitLab reads a garbage start as 0 (Ruby's
// `to_i`) and then refuses it with 416 unless the log is empty; Pipewright refuses it always.
fn content_range(headers: &HeaderMap) -> ChunkRange {
    let Some(value) = headers.get(proto::CONTENT_RANGE) else {
        return ChunkRange::Missing;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parsed = value.to_str().ok().and_then(|value| {
        let value = value.trim();
        let value = value.strip_prefix("bytes ").unwrap_or(value);
        let (start, end) = value.split_once('-')?;
        let end = end.split_once('/').map_or(end, |(end, _)| end);
        if !digits(start) || !digits(end) {
            return None;
        }
        start.parse::<u64>().ok()
    });
    parsed.map_or(ChunkRange::Invalid, ChunkRange::Start)
}

/// GitLab's 416 for a chunk that does not start where the log ends, with the log's range.
fn range_not_satisfiable(size: u64) -> Response {
    let mut res = (
        StatusCode::RANGE_NOT_SATISFIABLE,
        Json(json!({"message": "416 Range Not Satisfiable"})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("0-{size}")) {
        res.headers_mut().insert("range", v);
    }
    res
}

async fn append_trace(
    State(state): State<AppState>,
    seg: Segments,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let id = seg.id("id", "Job")?;
    let token = headers
        .get("job-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let job = running_job(&state, id, token.as_deref()).await?;
    if job.status != Status::Running {
        let mut res = (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "403 Forbidden  - Job is not running"})),
        )
            .into_response();
        job_status_header(&mut res, job.status);
        return Ok(res);
    }
    let start = match content_range(&headers) {
        ChunkRange::Start(start) => start,
        ChunkRange::Missing => {
            return Err(ApiError::Custom(
                StatusCode::BAD_REQUEST,
                json!({"message": "400 Missing header Content-Range"}),
            ));
        }
        ChunkRange::Invalid => return Ok(range_not_satisfiable(job.trace_size.max(0) as u64)),
    };
    // Mask again on ingest: a runner that does not mask must not leak the job token or a
    // masked variable.
    let variables = crate::ci_variables::opened(&state, job.project_id)
        .await
        .map_err(ApiError::Internal)?;
    let body = mask(
        body,
        variables
            .masked
            .iter()
            .map(String::as_str)
            .chain(token.as_deref()),
    );
    let limit = state.config.max_trace_bytes;
    let note = format!(
        "\nJob's log exceeded limit of {limit} bytes.\nJob execution will continue but no more output will be collected.\n"
    );
    let size = match state
        .store
        .append_trace(job.id, start, &body, limit, note.as_bytes())
        .await?
    {
        TraceAppend::Appended { size } => size,
        TraceAppend::Mismatch { size } => return Ok(range_not_satisfiable(size)),
    };
    renew_lease(&state, &job).await?;
    let mut res = StatusCode::ACCEPTED.into_response();
    let h = res.headers_mut();
    h.insert(
        "x-gitlab-trace-update-interval",
        HeaderValue::from_static("3"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("0-{size}")) {
        h.insert("range", v);
    }
    job_status_header(&mut res, job.status);
    Ok(res)
}

async fn read_trace(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Response> {
    // GitLab's jobs API is for signed-in callers only (lib/api/ci/jobs.rb).
    caller.required()?;
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadPipelines).await?;
    let id = seg.id("job_id", "")?;
    let job = state
        .store
        .job(project.id, id)
        .await?
        .ok_or(ApiError::NotFound(""))?;
    let text = state.store.job_trace(job.id).await?;
    let mut res = (StatusCode::OK, text).into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(res)
}

/// The jobs whose artifacts this job downloads: its `dependencies:` if listed, else the jobs
/// it `needs` (with `artifacts: true`, the default), else every job of earlier stages, as GitLab
/// decides. Only successful jobs with an archive are listed. Each carries the running job's own
/// token, which is what the runner presents to download them.
async fn dependencies(
    state: &AppState,
    job: &Job,
    spec: &pipewright_config::PlannedJob,
    token: &str,
) -> ApiResult<Vec<proto::Dependency>> {
    let first_stage = spec.needs.is_none() && job.stage_idx == 0;
    if spec.dependencies.as_ref().is_some_and(Vec::is_empty)
        || spec.needs.as_ref().is_some_and(Vec::is_empty)
        || (first_stage && spec.dependencies.is_none())
    {
        return Ok(Vec::new());
    }
    let jobs = state.store.pipeline_all_jobs(job.pipeline_id).await?;
    let wanted = |other: &Job| -> bool {
        if let Some(names) = &spec.dependencies {
            return names.contains(&other.name);
        }
        if let Some(needs) = &spec.needs {
            return needs.iter().any(|n| n.job == other.name && n.artifacts);
        }
        other.stage_idx < job.stage_idx
    };
    Ok(jobs
        .iter()
        .filter(|other| other.id != job.id && wanted(other))
        .filter(|other| super::artifacts::has_artifacts(other))
        .filter_map(|other| {
            let a = other.artifacts.as_ref()?;
            Some(proto::Dependency {
                id: other.id,
                name: other.name.clone(),
                token: token.into(),
                artifacts_file: Some(proto::ArtifactFile {
                    filename: a.filename.clone(),
                    size: u64::try_from(a.size).unwrap_or(0),
                }),
            })
        })
        .collect())
}

/// GitLab's `artifacts` list for the runner, from the job's `artifacts:` keyword; `None` (sent
/// as `null`) when it keeps nothing. GitLab: `job_request/artifacts.rb`.
fn artifacts_spec(artifacts: Option<&Value>) -> Option<Vec<proto::ArtifactSpec>> {
    let a = artifacts.and_then(Value::as_object)?;
    let strings = |key: &str| -> Vec<String> {
        a.get(key)
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let paths = strings("paths");
    let untracked = a.get("untracked").and_then(Value::as_bool).unwrap_or(false);
    if paths.is_empty() && !untracked {
        return None;
    }
    Some(vec![proto::ArtifactSpec {
        name: Some(
            a.get("name")
                .and_then(Value::as_str)
                .unwrap_or("artifacts")
                .to_string(),
        ),
        untracked: Some(untracked),
        paths,
        exclude: Some(strings("exclude")),
        when: Some(proto::When::parse(
            a.get("when")
                .and_then(Value::as_str)
                .unwrap_or("on_success"),
        )),
        expire_in: a.get("expire_in").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        artifact_type: proto::ArtifactType::Archive,
        artifact_format: Some(proto::ArtifactFormat::Zip),
    }])
}

/// `body` with every secret replaced by `[MASKED]` (left as is when none occurs).
fn mask<'a>(body: Bytes, secrets: impl Iterator<Item = &'a str>) -> Bytes {
    let present: Vec<&str> = secrets
        .filter(|s| !s.is_empty() && body.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect();
    if present.is_empty() {
        return body;
    }
    let mut text = String::from_utf8_lossy(&body).into_owned();
    for secret in present {
        text = text.replace(secret, "[MASKED]");
    }
    Bytes::from(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &[u8]) -> ChunkRange {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert("content-range", v);
        }
        content_range(&headers)
    }

    #[test]
    fn content_ranges_are_decimal_start_end() {
        assert_eq!(content_range(&HeaderMap::new()), ChunkRange::Missing);
        assert_eq!(range(b"0-9"), ChunkRange::Start(0));
        assert_eq!(range(b"10-19"), ChunkRange::Start(10));
        assert_eq!(range(b"bytes 10-19/20"), ChunkRange::Start(10));
        for garbage in [
            &b"bytes=abc"[..],
            b"-5-10",
            b"abc",
            b"5",
            b"5-",
            b"-",
            b"+5-10",
            b"12345678901234567890123-12345678901234567890124",
            "５-６".as_bytes(),
            b"\xff-\xfe",
        ] {
            assert_eq!(range(garbage), ChunkRange::Invalid, "{garbage:?}");
        }
    }
}
