//! GitLab's legacy runner registration (`POST /api/v4/runners` with a registration token), as
//! GitLab 17 has it: off unless an administrator allows it (`allow_runner_registration_token`,
//! an application setting); one registration token for the instance (an instance runner) and
//! one per project (a project runner). Tokens are random, found by digest, and kept sealed
//! so administrators and Maintainers can be shown them again. Runners created by
//! `POST /user/runners` (the `glrt-` flow) need none of this.
//!
//! GitLab: `app/services/ci/runners/register_runner_service.rb`, `lib/api/ci/runner.rb`.

use pipewright_store::RunnerType;

use crate::error::{ApiError, ApiResult};
use crate::sealing::Purpose;
use crate::secrets;
use crate::state::AppState;

/// The application setting that allows registration tokens (GitLab's name; default off).
pub const ALLOW_SETTING: &str = "allow_runner_registration_token";

/// GitLab's registration-token prefix (`RunnersTokenPrefixable::RUNNERS_TOKEN_PREFIX`).
const TOKEN_PREFIX: &str = "GR1348941";

/// Whether registration tokens are allowed on this instance.
pub async fn allowed(state: &AppState) -> ApiResult<bool> {
    Ok(state.store.setting(ALLOW_SETTING).await?.as_deref() == Some("true"))
}

/// The registration token of a project (`Some`) or of the instance (`None`), made on first
/// use; `reset` replaces it (the old one stops working at once).
pub async fn token(state: &AppState, project_id: Option<i64>, reset: bool) -> ApiResult<String> {
    if !reset && let Some(sealed) = state.store.registration_token(project_id).await? {
        return open(state, &sealed);
    }
    let token = secrets::random_token(TOKEN_PREFIX, 20);
    let sealed = state
        .sealer
        .seal(Purpose::RegistrationToken, &token)
        .map_err(ApiError::Internal)?;
    state
        .store
        .set_registration_token(project_id, &secrets::token_digest(&token), &sealed, reset)
        .await?;
    // Another request may have written one first: the stored token is the one.
    let stored = state
        .store
        .registration_token(project_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("registration token not stored")))?;
    open(state, &stored)
}

fn open(state: &AppState, sealed: &str) -> ApiResult<String> {
    state
        .sealer
        .open(Purpose::RegistrationToken, sealed)
        .map_err(ApiError::Internal)
}

/// What a registration token registers: an instance runner, or a project's.
pub async fn runner_scope(state: &AppState, token: &str) -> ApiResult<(RunnerType, Option<i64>)> {
    // GitLab's order (`attrs_from_token`, `registration_token_allowed?`): a token that is
    // nobody's is `403 Forbidden - invalid token supplied` while registration is allowed;
    // while it is not, any token is `410 Gone - runner registration disallowed` (so a
    // runner learns why, and nobody learns which tokens exist); an empty token is 403.
    if token.is_empty() {
        return Err(invalid_token());
    }
    if !allowed(state).await? {
        return Err(disallowed());
    }
    match state
        .store
        .registration_token_owner(&secrets::token_digest(token))
        .await?
    {
        Some(None) => Ok((RunnerType::Instance, None)),
        Some(Some(project_id)) => Ok((RunnerType::Project, Some(project_id))),
        None => Err(invalid_token()),
    }
}

fn invalid_token() -> ApiError {
    ApiError::Forbidden(Some("invalid token supplied".into()))
}

/// GitLab: `render_api_error_with_reason!(410, '410 Gone', 'runner registration disallowed')`.
fn disallowed() -> ApiError {
    ApiError::Gone("runner registration disallowed")
}
