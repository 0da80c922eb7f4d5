//! The CI Lint API: `POST /projects/:id/ci/lint` checks given `content`, `GET
//! /projects/:id/ci/lint` checks the project's `.gitlab-ci.yml` at `sha` or `ref` (default
//! branch by default). Both answer GitLab's shape: `valid`, `errors`, `warnings`,
//! `merged_yaml`, `includes` (every file the config included, with links to it), and `jobs`
//! when `include_jobs=true`. Included files are read as pipeline creation reads them
//! (`domain/config_files.rs`), as the caller.

use axum::Json;
use axum::extract::State;
use std::collections::HashMap;

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
        Route::post("/api/v4/projects/{id}/ci/lint", lint_content, Access::Read),
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
    let includes = includes(state, project_id, &files, &report.includes).await?;
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
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let content = params.required_str("content")?;
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

async fn lint_ref(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let rev = params
        .str("sha")?
        .or(params.str("ref")?)
        .unwrap_or_else(|| project.default_branch.clone());
    let resolved = resolve(&state, &project, &rev).await?;
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
            "includes": [],
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
        params.bool("include_jobs")?.unwrap_or(false),
    )
    .await
}
