//! Reading a project's repository through the API: branches, tags, raw files, commits.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pipewright_git::CommitInfo;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::projects::authorize_project;
use crate::domain::protected_refs::rules_for;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Paginated, page_from, page_of};
use crate::params::Params;
use crate::params::Segments;
use crate::permissions::Action;
use crate::routes::{Access, Route};
use crate::state::{AppState, ServerConfig};

pub fn routes() -> Vec<Route> {
    let repository = "/api/v4/projects/{id}/repository";
    vec![
        Route::get(
            format!("{repository}/branches"),
            list_branches,
            Access::Read,
        ),
        Route::get(
            format!("{repository}/branches/{{branch}}"),
            get_branch,
            Access::Read,
        ),
        Route::get(format!("{repository}/tags"), list_tags, Access::Read),
        Route::get(
            format!("{repository}/files/{{file_path}}/raw"),
            raw_file,
            Access::Read,
        ),
        Route::get(
            format!("{repository}/commits/{{sha}}"),
            get_commit,
            Access::Read,
        ),
    ]
}

fn git_error(err: pipewright_git::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::new(err))
}

pub fn commit_json(config: &ServerConfig, project_path: &str, c: &CommitInfo) -> Value {
    json!({
        "id": c.id,
        "short_id": c.short_id,
        "created_at": c.committed_date.to_gitlab(),
        "parent_ids": c.parent_ids,
        "title": c.title,
        "message": c.message,
        "author_name": c.author_name,
        "author_email": c.author_email,
        "authored_date": c.authored_date.to_gitlab(),
        "committer_name": c.committer_name,
        "committer_email": c.committer_email,
        "committed_date": c.committed_date.to_gitlab(),
        "trailers": {},
        "extended_trailers": {},
        "web_url": format!("{}/{}/-/commit/{}", config.external_url, project_path, c.id),
    })
}

async fn list_branches(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let page = page_from(&params)?;
    let search = params.str("search")?.map(|s| s.to_lowercase());
    let mut branches = state
        .repos
        .branches_async(project.id)
        .await
        .map_err(git_error)?;
    if let Some(s) = &search {
        branches.retain(|b| b.name.to_lowercase().contains(s.as_str()));
    }
    let rules = state.store.protected_branches(project.id).await?;
    let total = branches.len() as i64;
    let path = project.full_path();
    let items: Vec<Value> = page_of(&branches, page)
        .iter()
        .map(|b| {
            branch_json(
                &state.config,
                &path,
                &project.default_branch,
                &rules,
                &access,
                &b.name,
                &b.commit,
            )
        })
        .collect();
    Ok(Paginated::new(items, total, page, &state.config.external_url, &uri).into_response())
}

fn branch_json(
    config: &ServerConfig,
    project_path: &str,
    default_branch: &str,
    rules: &[pipewright_store::ProtectedBranch],
    access: &crate::permissions::ProjectAccess,
    name: &str,
    commit: &CommitInfo,
) -> Value {
    let matching = rules_for(rules, name);
    let protected = !matching.is_empty();
    let developers_can =
        |f: fn(&pipewright_store::ProtectedBranch) -> pipewright_store::ProtectionLevel| {
            // GitLab's `developers_can?`: any matching rule (protected_ref.rb).
            matching.is_empty()
                || matching
                    .iter()
                    .any(|r| f(r).allows(Some(pipewright_core::AccessLevel::Developer), false))
        };
    json!({
        "name": name,
        "commit": commit_json(config, project_path, commit),
        "merged": false,
        "protected": protected,
        "developers_can_push": developers_can(|r| r.push_access_level),
        "developers_can_merge": developers_can(|r| r.merge_access_level),
        "can_push": access.can(Action::PushCode) && crate::domain::protected_refs::push_allowed(rules, name, access),
        "default": name == default_branch,
        "web_url": format!("{}/{}/-/tree/{}", config.external_url, project_path, name),
    })
}

async fn get_branch(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let (project, access) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let name = seg.get("branch")?.to_string();
    let branch = state
        .repos
        .branches_async(project.id)
        .await
        .map_err(git_error)?
        .into_iter()
        .find(|b| b.name == name)
        .ok_or(ApiError::NotFound("Branch"))?;
    let rules = state.store.protected_branches(project.id).await?;
    Ok(Json(branch_json(
        &state.config,
        &project.full_path(),
        &project.default_branch,
        &rules,
        &access,
        &branch.name,
        &branch.commit,
    )))
}

async fn list_tags(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let page = page_from(&params)?;
    let tags = state
        .repos
        .tags_async(project.id)
        .await
        .map_err(git_error)?;
    let total = tags.len() as i64;
    let path = project.full_path();
    let items: Vec<Value> = page_of(&tags, page)
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "message": t.message,
                "target": t.target,
                "commit": commit_json(&state.config, &path, &t.commit),
                "release": null,
                "protected": false,
                "created_at": null,
            })
        })
        .collect();
    Ok(Paginated::new(items, total, page, &state.config.external_url, &uri).into_response())
}

/// Resolves `ref` (a branch, tag or commit SHA, as the files API allows) to a commit.
async fn commit_for(state: &AppState, project_id: i64, rev: &str) -> ApiResult<CommitInfo> {
    state
        .repos
        .commit_async(project_id, rev)
        .await
        .map_err(|e| match e {
            pipewright_git::Error::InvalidRef(_) => ApiError::NotFound("Commit"),
            other => git_error(other),
        })?
        .ok_or(ApiError::NotFound("Commit"))
}

async fn raw_file(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
    params: Params,
) -> ApiResult<Response> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let file_path = seg.get("file_path")?.to_string();
    let rev = params
        .str("ref")?
        .unwrap_or_else(|| project.default_branch.clone());
    let commit = commit_for(&state, project.id, &rev).await?;
    let blob = state
        .repos
        .read_file_async(
            project.id,
            &commit.id,
            &file_path,
            state.config.max_raw_file_bytes,
        )
        .await
        .map_err(|e| match e {
            pipewright_git::Error::InvalidPath(_) => {
                ApiError::ParamError("file_path should be a valid file path".into())
            }
            pipewright_git::Error::TooLarge { .. } => ApiError::PayloadTooLarge,
            other => git_error(other),
        })?
        .ok_or(ApiError::NotFound("File"))?;
    let name = file_path
        .rsplit('/')
        .next()
        .unwrap_or(&file_path)
        .to_string();
    let mut res = (StatusCode::OK, blob.content).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(headers, "x-gitlab-file-name", name);
    set(headers, "x-gitlab-file-path", file_path);
    set(headers, "x-gitlab-ref", rev);
    set(headers, "x-gitlab-blob-id", blob.oid);
    set(headers, "x-gitlab-commit-id", commit.id);
    set(headers, "x-gitlab-size", blob.size.to_string());
    Ok(res)
}

async fn get_commit(
    State(state): State<AppState>,
    caller: Caller,
    seg: Segments,
) -> ApiResult<Json<Value>> {
    let (project, _) =
        authorize_project(&state, &caller, seg.get("id")?, Action::ReadRepository).await?;
    let commit = commit_for(&state, project.id, seg.get("sha")?).await?;
    Ok(Json(commit_json(
        &state.config,
        &project.full_path(),
        &commit,
    )))
}
