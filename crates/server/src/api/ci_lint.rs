//! The CI Lint API: `POST /projects/:id/ci/lint` checks given `content`, `GET
//! /projects/:id/ci/lint` checks the project's `.gitlab-ci.yml` at `sha` or `ref` (default
//! branch by default). Both answer GitLab's shape: `valid`, `errors`, `warnings`,
//! `merged_yaml`, `includes`, and `jobs` when `include_jobs=true`. Included files are read as
//! pipeline creation reads them (`domain/config_files.rs`), as the caller.

use axum::Json;
use axum::extract::State;
use pipewright_config::LintOptions;
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
    let (report, content) = tokio::task::spawn_blocking(move || {
        let report = pipewright_config::lint(&content, &files, &options);
        (report, content)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    let mut body = json!({
        "valid": report.valid,
        "errors": report.errors,
        "warnings": report.warnings,
        "merged_yaml": if report.valid { Value::String(content) } else { Value::Null },
        "includes": [],
    });
    if include_jobs && let Value::Object(map) = &mut body {
        map.insert(
            "jobs".into(),
            serde_json::to_value(&report.jobs).map_err(|e| ApiError::Internal(e.into()))?,
        );
    }
    Ok(Json(body))
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
