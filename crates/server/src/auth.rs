//! Who is calling: turning credentials into an [`Actor`].
//!
//! The API accepts a personal access token as the `PRIVATE-TOKEN` header, as
//! `Authorization: Bearer`, or as the `private_token` / `access_token` query parameter, like
//! GitLab. Git over HTTP uses Basic auth with a token or the user's password (see
//! [`authenticate_basic`]). Every failure is a plain 401 that does not say whether the token
//! exists; revoked and expired tokens get GitLab's OAuth-style 401 bodies, which name the reason
//! but never the token. A `CI_JOB_TOKEN` resolves to its running job ([`JobTokenCaller`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use pipewright_core::{Status, Timestamp};
use pipewright_store::{Job, PersonalAccessToken, User};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::secrets;
use crate::state::AppState;

/// How often `last_used_at` is written for a token in constant use.
const LAST_USED_RESOLUTION_MS: i64 = 10 * 60 * 1000;

/// Scopes a personal access token may carry (GitLab's names).
pub const KNOWN_SCOPES: &[&str] = &[
    "api",
    "read_api",
    "read_user",
    "read_repository",
    "write_repository",
    "sudo",
    "admin_mode",
    "create_runner",
    "manage_runner",
    "self_rotate",
];

/// The one request a `self_rotate` token may make (GitLab:
/// lib/api/personal_access_tokens/self_rotation.rb, `allow_access_with_scope :self_rotate`).
const SELF_ROTATE_PATH: &str = "/api/v4/personal_access_tokens/self/rotate";

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A personal access token, with its scopes.
    Token { id: i64, scopes: Vec<String> },
    /// The account password (git over HTTP only); it carries every scope.
    Password,
    /// A signed-in web UI session; it carries every scope.
    Session,
}

/// An authenticated, active user and the credential they used.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub credential: Credential,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.user.is_admin
    }

    fn has_scope(&self, wanted: &[&str]) -> bool {
        match &self.credential {
            Credential::Password | Credential::Session => true,
            Credential::Token { scopes, .. } => scopes.iter().any(|s| wanted.contains(&s.as_str())),
        }
    }

    /// Reading the API: `api` or `read_api` (and `read_user` for `GET /user`).
    pub fn can_read_api(&self) -> bool {
        self.has_scope(&["api", "read_api"])
    }

    pub fn can_write_api(&self) -> bool {
        self.has_scope(&["api"])
    }

    pub fn can_read_repository(&self) -> bool {
        self.has_scope(&["api", "read_repository", "write_repository"])
    }

    pub fn can_write_repository(&self) -> bool {
        self.has_scope(&["api", "write_repository"])
    }
}

/// The API caller, if any. Extracting it checks the token and the scope the HTTP method needs.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Actor>);

impl Caller {
    /// The actor, or 401.
    pub fn required(&self) -> ApiResult<&Actor> {
        self.0.as_ref().ok_or(ApiError::Unauthorized)
    }

    /// The actor if they are an admin; 401 when anonymous, 403 otherwise.
    pub fn admin(&self) -> ApiResult<&Actor> {
        let actor = self.required()?;
        if actor.is_admin() {
            Ok(actor)
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn user_id(&self) -> Option<i64> {
        self.0.as_ref().map(|a| a.user.id)
    }

    pub fn is_admin(&self) -> bool {
        self.0.as_ref().is_some_and(Actor::is_admin)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = api_token(&parts.headers, parts.uri.query())? else {
            return Ok(Caller(None));
        };
        let actor = authenticate_token(state, &token).await?;
        let read_only = matches!(parts.method, Method::GET | Method::HEAD);
        let allowed = if read_only {
            actor.can_read_api()
                || (parts.uri.path() == "/api/v4/user" && actor.has_scope(&["read_user"]))
        } else {
            actor.can_write_api()
                || (parts.uri.path() == SELF_ROTATE_PATH && actor.has_scope(&["self_rotate"]))
        };
        if !allowed {
            return Err(ApiError::InsufficientScope(if read_only {
                "api read_api"
            } else {
                "api"
            }));
        }
        Ok(Caller(Some(actor)))
    }
}

/// The token from the headers or query string, if one was sent.
fn api_token(headers: &HeaderMap, query: Option<&str>) -> ApiResult<Option<String>> {
    if let Some(value) = headers.get("private-token") {
        let token = value.to_str().map_err(|_| ApiError::Unauthorized)?;
        return Ok(Some(token.trim().to_string()));
    }
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
        if let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Ok(Some(token.trim().to_string()));
        }
    }
    if query.is_some() {
        let params = Params::from_query(query)?;
        for key in ["private_token", "access_token"] {
            if let Some(token) = params.str(key)? {
                return Ok(Some(token));
            }
        }
    }
    Ok(None)
}

/// Resolves a personal access token to an active user.
pub async fn authenticate_token(state: &AppState, token: &str) -> ApiResult<Actor> {
    let digest = secrets::token_digest(token);
    let Some(pat) = state.store.personal_access_token_by_digest(&digest).await? else {
        return Err(ApiError::Unauthorized);
    };
    if pat.revoked {
        revoke_family(state, &pat).await;
    }
    check_token_usable(&pat)?;
    let user = state
        .store
        .user(pat.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if !user.is_active() {
        // GitLab: lib/api/api_guard.rb `find_current_user!` → `forbidden!` with
        // lib/gitlab/auth/user_access_denied_reason.rb's message.
        return Err(ApiError::Forbidden(Some(
            "Your account has been blocked.".into(),
        )));
    }
    touch_last_used(state, &pat);
    Ok(Actor {
        user,
        credential: Credential::Token {
            id: pat.id,
            scopes: pat.scopes,
        },
    })
}

/// A revoked token in use may have leaked: every token rotation made from it is revoked too
/// (GitLab's reuse detection: lib/gitlab/auth/auth_finders.rb `revoke_token_family`,
/// PersonalAccessTokens::RevokeTokenFamilyService). A failure is logged; the answer stays 401.
async fn revoke_family(state: &AppState, pat: &PersonalAccessToken) {
    match state
        .store
        .revoke_personal_access_token_family(pat.id)
        .await
    {
        Ok(0) => {}
        Ok(revoked) => tracing::warn!(
            token_id = pat.id,
            revoked,
            "a rotated personal access token was used: its family is revoked"
        ),
        Err(err) => tracing::error!(token_id = pat.id, error = %err, "revoking a token family"),
    }
}

fn check_token_usable(pat: &PersonalAccessToken) -> ApiResult<()> {
    if pat.revoked {
        return Err(ApiError::InvalidToken("Token has been revoked."));
    }
    if pat.expires_at.is_some_and(|at| at <= Timestamp::now()) {
        return Err(ApiError::InvalidToken("Token has expired."));
    }
    Ok(())
}

fn touch_last_used(state: &AppState, pat: &PersonalAccessToken) {
    let now = Timestamp::now();
    let stale = pat
        .last_used_at
        .is_none_or(|at| now.millis() - at.millis() > LAST_USED_RESOLUTION_MS);
    if stale {
        let store = state.store.clone();
        let id = pat.id;
        tokio::spawn(async move {
            if let Err(err) = store.touch_personal_access_token(id, now).await {
                tracing::warn!(error = %err, "could not record token use");
            }
        });
    }
}

/// Authenticates git's HTTP Basic credentials: any username with a personal access token, or
/// the username (or email) with its password — the password through [`crate::sign_in`], so it
/// counts towards the same lockout as the sign-in page. Returns `Ok(None)` when no
/// credentials were sent; 401 for wrong ones and while the account is locked.
pub async fn authenticate_basic(
    state: &AppState,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
) -> ApiResult<Option<Actor>> {
    let Some((username, secret)) = crate::basic_auth::credentials(headers)? else {
        return Ok(None);
    };
    if username == "gitlab-ci-token" {
        // Job tokens are checked by the git endpoint itself (they are not a user's credential).
        return Err(ApiError::Unauthorized);
    }
    if let Ok(actor) = authenticate_token(state, &secret).await {
        return Ok(Some(actor));
    }
    match crate::sign_in::check_password(state, &username, &secret, ip)
        .await
        .map_err(ApiError::Internal)?
    {
        crate::sign_in::PasswordCheck::Valid(user) => Ok(Some(Actor {
            user,
            credential: Credential::Password,
        })),
        crate::sign_in::PasswordCheck::Invalid | crate::sign_in::PasswordCheck::Locked(_) => {
            Err(ApiError::Unauthorized)
        }
    }
}

// Job tokens.
//
// `CI_JOB_TOKEN` as a credential: the `JOB-TOKEN` header or the `job_token` parameter resolves
// to the running job it was issued to. A token stays attached to its job after the job
// finishes (the digest is kept), so a late use gets GitLab's 401 `Job is not running` rather
// than a generic 401. Tokens are looked up by digest only. What the job may do with it is
// `domain::job_token`'s to say.

pub const JOB_TOKEN_PREFIX: &str = "glcbt-";

/// The job a request's job token belongs to, when one was sent.
#[derive(Debug, Clone)]
pub struct JobTokenCaller(pub Option<Job>);

impl FromRequestParts<AppState> for JobTokenCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = match parts.headers.get("job-token") {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| ApiError::Unauthorized)?
                    .trim()
                    .to_string(),
            ),
            None => Params::from_query(parts.uri.query())?.str("job_token")?,
        };
        match token {
            None => Ok(JobTokenCaller(None)),
            Some(token) => Ok(JobTokenCaller(Some(running_job(state, &token).await?))),
        }
    }
}

/// The running job `token` was issued to: 401 for an unknown token, 401 `Job is not running`
/// once its job has finished.
pub async fn running_job(state: &AppState, token: &str) -> ApiResult<Job> {
    let job = state
        .store
        .job_by_token(&secrets::token_digest(token))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if job.status != Status::Running {
        return Err(not_running());
    }
    Ok(job)
}

pub fn not_running() -> ApiError {
    ApiError::Custom(
        StatusCode::UNAUTHORIZED,
        json!({"message": "Job is not running"}),
    )
}
