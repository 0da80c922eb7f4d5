//! Git smart HTTP at `{external_url}/{namespace}/{project}.git`: clone, fetch and push, with
//! Pipewright's authentication and permissions in front and the real `git` doing the pack
//! protocol behind (through the git crate).
//!
//! Answers follow what git clients and GitLab users expect: an anonymous request for anything
//! that is not public gets 401 with a Basic challenge (so git asks for credentials); a signed-in
//! user who may not see the project gets 404; one who may read but not push gets 403 with a
//! sentence git prints as `remote: …`. Pushes to protected branches are refused before
//! `git receive-pack` runs, with GitLab's messages (`push_rules.rs`); force pushes to them are
//! refused by git's pre-receive hook. Every accepted ref update is recorded as a push event for
//! pipelines and webhooks to consume. Request bodies are streamed into git, inflated and
//! counted as they arrive, never held whole: a fetch request may inflate to
//! `max_git_fetch_body_bytes`, a push to `max_git_body_bytes`; beyond, the answer is 413.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use pipewright_git::{IncomingPush, RefUpdate, RequestBody, Service};
use pipewright_store::{NewProtectedBranch, NewPushEvent, Project, ProtectionLevel};
use serde::Deserialize;

use crate::auth::{Actor, Caller, authenticate_basic};
use crate::domain::projects::{lookup, project_access};
use crate::params::Segments;
use crate::permissions::{Action, ProjectAccess};
use crate::routes::{Access, Route};
use crate::state::AppState;

/// Git's three requests. Fetching is [`Access::ReadOrJobToken`]; pushing needs a Developer
/// (`info/refs?service=git-receive-pack` is a fetch of the ref list, checked for push by its
/// handler).
pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/{namespace}/{repo}/info/refs",
            info_refs,
            Access::ReadOrJobToken,
        ),
        Route::post(
            "/{namespace}/{repo}/git-upload-pack",
            upload_pack,
            Access::ReadOrJobToken,
        ),
        Route::post(
            "/{namespace}/{repo}/git-receive-pack",
            receive_pack,
            Access::Developer,
        ),
    ]
}

/// GitLab's answer to missing or wrong credentials, a locked account included
/// (`app/controllers/repositories/git_http_client_controller.rb`, `render_access_denied`).
/// GitLab ends it with a link to its own help page, which Pipewright does not serve.
const ACCESS_DENIED_TEXT: &str = "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped.";
const NOT_FOUND_TEXT: &str =
    "The project you were looking for could not be found or you don't have permission to view it.";
const PUSH_DENIED_TEXT: &str = "You are not allowed to push code to this project.";

/// A plain-text error git shows its user.
fn text(status: StatusCode, message: &str) -> Response {
    let mut res = (status, format!("{message}\n")).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Pipewright\""),
        );
    }
    res
}

fn internal(err: impl std::fmt::Display) -> Response {
    tracing::error!(error = %err, "git http failure");
    text(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

/// The project, the caller and their access, or the response that refuses them.
struct Authorized {
    project: Project,
    actor: Option<Actor>,
    access: ProjectAccess,
}

async fn authorize(
    state: &AppState,
    seg: &Segments,
    headers: &HeaderMap,
    extensions: &Extensions,
    write: bool,
) -> Result<Authorized, Response> {
    let namespace = seg
        .get("namespace")
        .map_err(|_| text(StatusCode::NOT_FOUND, NOT_FOUND_TEXT))?;
    let repo = seg
        .get("repo")
        .map_err(|_| text(StatusCode::NOT_FOUND, NOT_FOUND_TEXT))?;
    let path = repo.strip_suffix(".git").unwrap_or(repo);
    // `gitlab-ci-token` + a running job's token: read access to that job's project.
    if let Ok(Some((user, secret))) = crate::basic_auth::credentials(headers)
        && user == "gitlab-ci-token"
    {
        return authorize_job_token(state, &format!("{namespace}/{path}"), &secret, write).await;
    }
    let ip = crate::client_address::client_ip(extensions);
    let actor = match authenticate_basic(state, headers, ip).await {
        Ok(actor) => actor,
        Err(crate::error::ApiError::Internal(err)) => return Err(internal(err)),
        Err(_) => return Err(text(StatusCode::UNAUTHORIZED, ACCESS_DENIED_TEXT)),
    };
    let caller = Caller(actor.clone());
    let project = match lookup(state, &format!("{namespace}/{path}")).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(if actor.is_none() {
                text(StatusCode::UNAUTHORIZED, ACCESS_DENIED_TEXT)
            } else {
                text(StatusCode::NOT_FOUND, NOT_FOUND_TEXT)
            });
        }
        Err(e) => return Err(internal(e)),
    };
    let access = project_access(state, &caller, &project)
        .await
        .map_err(internal)?;
    let (action, scope_ok) = if write {
        (
            Action::PushCode,
            actor.as_ref().is_none_or(Actor::can_write_repository),
        )
    } else {
        (
            Action::ReadRepository,
            actor.as_ref().is_none_or(Actor::can_read_repository),
        )
    };
    if !access.can(action) || !scope_ok {
        return Err(match &actor {
            None => text(StatusCode::UNAUTHORIZED, ACCESS_DENIED_TEXT),
            // GitLab: git_http_controller.rb `render_denied`: 404 unless the user can see
            // the project, 403 otherwise (a Guest who may not read the code).
            Some(_) if !access.can_see() => text(StatusCode::NOT_FOUND, NOT_FOUND_TEXT),
            Some(_) if write => text(StatusCode::FORBIDDEN, PUSH_DENIED_TEXT),
            Some(_) => text(
                StatusCode::FORBIDDEN,
                "You are not allowed to download code from this project.",
            ),
        });
    }
    Ok(Authorized {
        project,
        actor,
        access,
    })
}

/// A CI job clones its own project with its job token (`CI_JOB_TOKEN`), while the job runs.
/// Other projects' repositories come with the job token allowlist.
async fn authorize_job_token(
    state: &AppState,
    full_path: &str,
    token: &str,
    write: bool,
) -> Result<Authorized, Response> {
    let denied = || text(StatusCode::UNAUTHORIZED, ACCESS_DENIED_TEXT);
    let job = match state
        .store
        .job_by_token(&crate::secrets::token_digest(token))
        .await
    {
        Ok(Some(job)) => job,
        Ok(None) => return Err(denied()),
        Err(e) => return Err(internal(e)),
    };
    if job.status != pipewright_core::Status::Running {
        return Err(denied());
    }
    let project = match lookup(state, full_path).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(text(StatusCode::NOT_FOUND, NOT_FOUND_TEXT)),
        Err(e) => return Err(internal(e)),
    };
    // Its own project, or another one whose job token scope lets it in, as the job's user.
    let access = match crate::domain::job_token::job_access(state, &job, &project).await {
        Ok((_, access)) if access.can(Action::ReadRepository) => access,
        Ok(_) | Err(crate::error::ApiError::NotFound(_)) => {
            return Err(text(StatusCode::NOT_FOUND, NOT_FOUND_TEXT));
        }
        Err(e) => return Err(internal(e)),
    };
    if write {
        return Err(text(StatusCode::FORBIDDEN, PUSH_DENIED_TEXT));
    }
    Ok(Authorized {
        project,
        actor: None,
        access,
    })
}

#[derive(Deserialize)]
struct InfoRefsQuery {
    service: Option<String>,
}

fn git_protocol(headers: &HeaderMap) -> Option<String> {
    headers
        .get("git-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn no_cache(headers: &mut HeaderMap) {
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=0, must-revalidate"),
    );
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_static("Fri, 01 Jan 1980 00:00:00 GMT"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

async fn info_refs(
    State(state): State<AppState>,
    seg: Segments,
    Query(query): Query<InfoRefsQuery>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let service = match query.service.as_deref() {
        Some("git-upload-pack") => Service::UploadPack,
        Some("git-receive-pack") => Service::ReceivePack,
        // Dumb HTTP is not served.
        _ => {
            return text(
                StatusCode::FORBIDDEN,
                "Only the smart HTTP protocol is supported.",
            );
        }
    };
    let write = service == Service::ReceivePack;
    let auth = match authorize(&state, &seg, &headers, &extensions, write).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let body = match state
        .repos
        .info_refs(auth.project.id, service, git_protocol(&headers).as_deref())
        .await
    {
        Ok(b) => b,
        Err(e) => return internal(e),
    };
    let mut res = (StatusCode::OK, body).into_response();
    let content_type = match service {
        Service::UploadPack => "application/x-git-upload-pack-advertisement",
        Service::ReceivePack => "application/x-git-receive-pack-advertisement",
    };
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    no_cache(res.headers_mut());
    res
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip"))
}

/// The request body as it arrives, inflated if gzip, bounded by `limit` bytes (after
/// inflating): it is streamed into git, never held whole.
fn request_body(headers: &HeaderMap, body: Body, limit: usize) -> RequestBody {
    let chunks = body
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    RequestBody::new(chunks, is_gzip(headers), limit as u64)
}

/// The answer for a request git could not be given: over the limit (413), not the gzip it
/// said it was or not git's protocol (400), or the server's failure (500).
fn body_error(err: pipewright_git::Error, service: Service) -> Response {
    match err {
        pipewright_git::Error::TooLarge { limit } => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "The {} request is larger than this server accepts ({limit} bytes, after decompression).",
                service.name()
            ),
        ),
        pipewright_git::Error::InvalidGzip => text(
            StatusCode::BAD_REQUEST,
            "The request body is not valid gzip.",
        ),
        pipewright_git::Error::Protocol(_) => text(
            StatusCode::BAD_REQUEST,
            &format!("Malformed {} request.", service.name()),
        ),
        // The client's connection failed mid-request; nobody is left to read an answer.
        pipewright_git::Error::Io(err) if err.kind() == std::io::ErrorKind::Other => text(
            StatusCode::BAD_REQUEST,
            "The request body could not be read.",
        ),
        other => internal(other),
    }
}

async fn upload_pack(
    State(state): State<AppState>,
    seg: Segments,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    let auth = match authorize(&state, &seg, &headers, &extensions, false).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let request = request_body(&headers, body, state.config.max_git_fetch_body_bytes);
    let stream = match state
        .repos
        .upload_pack(auth.project.id, request, git_protocol(&headers).as_deref())
        .await
    {
        Ok(s) => s,
        Err(e) => return body_error(e, Service::UploadPack),
    };
    let mut res = Response::new(Body::from_stream(stream));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-git-upload-pack-result"),
    );
    no_cache(res.headers_mut());
    res
}

async fn receive_pack(
    State(state): State<AppState>,
    seg: Segments,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Response {
    let auth = match authorize(&state, &seg, &headers, &extensions, true).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let request = request_body(&headers, body, state.config.max_git_body_bytes);
    let push = match IncomingPush::read(request).await {
        Ok(p) => p,
        Err(e) => return body_error(e, Service::ReceivePack),
    };
    let project = &auth.project;
    let rules = match state.store.protected_branches(project.id).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let was_empty = state
        .repos
        .is_empty_async(project.id)
        .await
        .unwrap_or(false);
    let decision = crate::domain::push_rules::check(
        &project.default_branch,
        &rules,
        &auth.access,
        was_empty,
        &push.request.commands,
    );
    let mut res = match decision {
        Err(message) => Response::new(Body::from(pipewright_git::reject_push(
            &push.request,
            message,
        ))),
        Ok(allowed) => {
            let push_options = push.request.push_options.clone();
            let outcome = match state
                .repos
                .receive_pack(project.id, push, &allowed.fast_forward_only)
                .await
            {
                Ok(o) => o,
                Err(e) => return body_error(e, Service::ReceivePack),
            };
            if let Err(err) = after_push(
                &state,
                project,
                auth.actor.as_ref(),
                was_empty,
                &outcome.applied,
                &push_options,
            )
            .await
            {
                // The refs moved already; failing the response would only confuse the client.
                tracing::error!(project_id = project.id, error = %err, "recording push failed");
            }
            Response::new(Body::from(outcome.response))
        }
    };
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-git-receive-pack-result"),
    );
    no_cache(res.headers_mut());
    res
}

/// Records push events and protects the default branch when a push creates it.
async fn after_push(
    state: &AppState,
    project: &Project,
    actor: Option<&Actor>,
    was_empty: bool,
    applied: &[RefUpdate],
    push_options: &[String],
) -> anyhow::Result<()> {
    if applied.is_empty() {
        return Ok(());
    }
    let default_ref = format!("refs/heads/{}", project.default_branch);
    if was_empty
        && applied
            .iter()
            .any(|u| u.ref_name == default_ref && !u.is_delete())
    {
        let rules = state.store.protected_branches(project.id).await?;
        if !rules.iter().any(|r| r.name == project.default_branch) {
            let rule = NewProtectedBranch {
                project_id: project.id,
                name: project.default_branch.clone(),
                push_access_level: ProtectionLevel::AtLeast(
                    pipewright_core::AccessLevel::Maintainer,
                ),
                merge_access_level: ProtectionLevel::AtLeast(
                    pipewright_core::AccessLevel::Maintainer,
                ),
                allow_force_push: false,
            };
            if let Err(err) = state.store.create_protected_branch(&rule).await {
                // Someone protected it meanwhile; that is fine.
                tracing::debug!(error = %err, "default branch already protected");
            }
        }
    }
    let events: Vec<NewPushEvent> = applied
        .iter()
        .map(|u| NewPushEvent {
            project_id: project.id,
            user_id: actor.map(|a| a.user.id),
            ref_name: u.ref_name.clone(),
            before_sha: u.old_sha.clone(),
            after_sha: u.new_sha.clone(),
            push_options: push_options.to_vec(),
        })
        .collect();
    state.store.record_push_events(&events).await?;
    // Create their pipelines now rather than on the maintenance loop's next tick.
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(err) = crate::domain::push_pipelines::process(&state).await {
            tracing::warn!(error = %format!("{err:#}"), "push pipelines failed");
        }
    });
    Ok(())
}
