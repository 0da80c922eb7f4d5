//! The CI Lint API (GitLab: lib/api/lint.rb): `POST /projects/:id/ci/lint` checks given
//! `content` (for who may create pipelines), `GET /projects/:id/ci/lint` the project's
//! `.gitlab-ci.yml` at `content_ref` or `sha` (the default branch by default), planned for
//! `dry_run_ref` or `ref`. `dry_run` is accepted; the lint stays a static plan (no pipeline
//! creation is simulated). Both answer GitLab's shape: `valid`, `errors`, `warnings`,
//! `merged_yaml`, `includes` (every file the config included, with links to it), and `jobs`
//! when `include_jobs=true`. Included files are read as pipeline creation reads them
//! (`domain/config_files.rs`), as the caller.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use pipewright_config::{IncludedFile, IncludedKind, LintOptions, ProjectRef};
use pipewright_core::{PipelineSource, RefKind};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::config_files::ConfigFiles;
use crate::domain::projects::authorize_project;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v4/projects/{id}/ci/lint", lint_ref, Access::Read),
        // GitLab: lib/api/lint.rb, `authorize! :create_pipeline` for given content.
        Route::post(
            "/api/v4/projects/{id}/ci/lint",
            lint_content,
            Access::Developer,
        ),
    ]
}

const MAX_BYTES: u64 = crate::domain::config_files::MAX_CONFIG_BYTES;

async fn run(
    state: &AppState,
    caller: &Caller,
    project_id: i64,
    content: String,
    rev: Option<(String, RefKind, String)>,
    include_jobs: bool,
) -> ApiResult<Json<Value>> {
    let (ref_name, kind, sha) = match rev {
        Some((name, kind, sha)) => (name, kind, Some(sha)),
        None => ("main".to_string(), RefKind::Branch, None),
    };
    // Other projects' files are read as the caller may read them; include rules see the
    // variables `ci lint` plans with (none given here).
    let user = caller.0.as_ref().map(|a| a.user.clone());
    let files = ConfigFiles::new(state, project_id, sha, user, Vec::new());
    let options = LintOptions {
        source: PipelineSource::Push,
        ref_name,
        ref_kind: kind,
        // GitLab's CI Lint API takes no inputs (lib/api/lint.rb): a header's defaults apply.
        ..LintOptions::default()
    };
    let (report, content, files) = tokio::task::spawn_blocking(move || {
        let report = pipewright_config::lint(&content, &files, &options);
        (report, content, files)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    // GitLab: `config_metadata[:includes]`, nil when the config could not be read.
    let includes = match &report.includes {
        Some(included) => Value::Array(includes(state, project_id, &files, included).await?),
        None => Value::Null,
    };
    let mut body = json!({
        "valid": report.valid,
        "errors": report.errors,
        "warnings": report.warnings,
        "merged_yaml": if report.valid { Value::String(content) } else { Value::Null },
        "includes": includes,
    });
    if include_jobs && let Value::Object(map) = &mut body {
        map.insert(
            "jobs".into(),
            serde_json::to_value(&report.jobs).map_err(|e| ApiError::Internal(e.into()))?,
        );
    }
    Ok(Json(body))
}

/// A project's full path and the URL its files' pages start with, by id.
type ProjectUrls = HashMap<i64, Option<(String, String)>>;

/// The config's included files as GitLab lists them (GitLab: lib/gitlab/ci/config/external/
/// file/{local,project,remote}.rb `metadata`: `context_project`, `context_sha`, `type`,
/// `location`, `blob`, `raw`, `extra`). A file read in another project points into that
/// project at the commit its ref resolved to, which `files` remembers.
async fn includes(
    state: &AppState,
    project_id: i64,
    files: &ConfigFiles,
    included: &[IncludedFile],
) -> ApiResult<Vec<Value>> {
    let mut urls = ProjectUrls::new();
    let mut out = Vec::with_capacity(included.len());
    for file in included {
        // Whose commit the including file was read from (GitLab's `context`).
        let context = match &file.context {
            None => files.sha().map(|sha| (project_id, sha.to_string())),
            Some(ProjectRef { project, git_ref }) => {
                files.resolved_commit(project, git_ref.as_deref())
            }
        };
        // Whose commit the file itself is in: its own project's for `project:`.
        let home = match &file.kind {
            IncludedKind::File { project, git_ref } => files
                .resolved_commit(project, Some(git_ref))
                .or_else(|| (git_ref == "HEAD").then(|| files.resolved_commit(project, None))?),
            IncludedKind::Local {} => context.clone(),
            IncludedKind::Remote {} => None,
        };
        let context_project = match &context {
            Some((id, _)) => project_urls(state, &mut urls, *id).await?.map(|(p, _)| p),
            None => None,
        };
        let page = |kind: &str, base: &str, sha: &str| {
            Value::String(format!("{base}/-/{kind}/{sha}/{}", file.location))
        };
        let (blob, raw) = match (&file.kind, &home) {
            (IncludedKind::Remote {}, _) => (Value::Null, Value::String(file.location.clone())),
            (_, Some((id, sha))) => match project_urls(state, &mut urls, *id).await? {
                Some((_, base)) => (page("blob", &base, sha), page("raw", &base, sha)),
                None => (Value::Null, Value::Null),
            },
            (_, None) => (Value::Null, Value::Null),
        };
        let described = serde_json::to_value(file).map_err(|e| ApiError::Internal(e.into()))?;
        out.push(json!({
            "context_project": context_project,
            "context_sha": context.map(|(_, sha)| sha),
            "type": described["type"],
            "location": file.location,
            "blob": blob,
            "raw": raw,
            "extra": described["extra"],
        }));
    }
    Ok(out)
}

/// A project's full path and web URL, looked up once per lint.
async fn project_urls(
    state: &AppState,
    urls: &mut ProjectUrls,
    id: i64,
) -> ApiResult<Option<(String, String)>> {
    if let Some(known) = urls.get(&id) {
        return Ok(known.clone());
    }
    let found = state.store.project(id).await?.map(|p| {
        let full_path = p.full_path();
        let web_url = format!("{}/{full_path}", state.config.external_url);
        (full_path, web_url)
    });
    urls.insert(id, found.clone());
    Ok(found)
}

async fn resolve(
    state: &AppState,
    project: &pipewright_store::Project,
    rev: &str,
) -> ApiResult<(String, RefKind, String)> {
    match state.repos.resolve_ref_async(project.id, rev).await {
        Ok(r) => Ok((r.name, r.kind, r.sha)),
        Err(_) => {
            let commit = state
                .repos
                .commit_async(project.id, rev)
                .await
                .ok()
                .flatten()
                .ok_or(ApiError::NotFound("Commit"))?;
            Ok((rev.to_string(), RefKind::Branch, commit.id))
        }
    }
}

async fn lint_content(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::CreatePipeline).await?;
    let content = params.required_str("content")?;
    // `dry_run` is taken (and type-checked) but the lint is the same static plan at `ref`.
    params.bool("dry_run")?;
    let rev = match params.str("ref")? {
        Some(r) => Some(resolve(&state, &project, &r).await?),
        None if !state.repos.is_empty_async(project.id).await.unwrap_or(true) => {
            resolve(&state, &project, &project.default_branch)
                .await
                .ok()
        }
        None => None,
    };
    run(
        &state,
        &caller,
        project.id,
        content,
        rev,
        params.bool("include_jobs")?.unwrap_or(false),
    )
    .await
}

/// Grape's `mutually_exclusive`: `{"error": "a, b are mutually exclusive"}`.
fn exclusive(params: &Params, a: &str, b: &str) -> ApiResult<()> {
    if params.contains(a) && params.contains(b) {
        return Err(ApiError::ParamError(format!(
            "{a}, {b} are mutually exclusive"
        )));
    }
    Ok(())
}

/// `GET …/ci/lint` (GitLab: lib/api/lint.rb): the config at `content_ref` (or the deprecated
/// `sha`; the default branch's head by default), planned for `dry_run_ref` (or the deprecated
/// `ref`) when one is given, else for the ref it was read from; an empty repository is
/// `404 Repository Not Found`.
async fn lint_ref(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    exclusive(&params, "sha", "content_ref")?;
    exclusive(&params, "ref", "dry_run_ref")?;
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    params.bool("dry_run")?;
    let include_jobs = params.bool("include_jobs")?.unwrap_or(false);
    if state.repos.is_empty_async(project.id).await.unwrap_or(true) {
        return Err(ApiError::NotFound("Repository"));
    }
    let rev = match params.str("content_ref")? {
        Some(rev) => rev,
        None => params
            .str("sha")?
            .unwrap_or_else(|| project.default_branch.clone()),
    };
    let resolved = resolve(&state, &project, &rev).await?;
    let planned_for = match params.str("dry_run_ref")? {
        Some(r) => Some(r),
        None => params.str("ref")?,
    };
    let resolved = match planned_for {
        Some(name) => match state.repos.resolve_ref_async(project.id, &name).await {
            Ok(r) => (r.name, r.kind, resolved.2),
            Err(_) => (name, RefKind::Branch, resolved.2),
        },
        None => resolved,
    };
    // The project's `ci_config_path`, as pipeline creation reads it.
    let config_path = crate::domain::projects::ci_config_path(&state, project.id).await?;
    let blob = state
        .repos
        .read_file_async(project.id, &resolved.2, &config_path, MAX_BYTES)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let Some(blob) = blob else {
        return Ok(Json(json!({
            "valid": false,
            "errors": ["Please provide content of .gitlab-ci.yml"],
            "warnings": [],
            "merged_yaml": null,
            "includes": null,
        })));
    };
    let content = String::from_utf8(blob.content)
        .map_err(|_| ApiError::BadRequest("the CI config is not UTF-8".into()))?;
    run(
        &state,
        &caller,
        project.id,
        content,
        Some(resolved),
        include_jobs,
    )
    .await
}
