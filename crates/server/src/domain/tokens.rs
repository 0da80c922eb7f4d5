//! Personal access tokens: issued here — by the API and for the bootstrap root token — and
//! handed out once; only their digests are stored.

use pipewright_core::Timestamp;
use pipewright_store::{NewPersonalAccessToken, PersonalAccessToken, User};

use crate::auth::KNOWN_SCOPES;
use crate::error::{ApiError, ApiResult};
use crate::secrets;
use crate::state::AppState;
use crate::validate;

/// The scopes only administrators may hold (GitLab: app/models/personal_access_token.rb,
/// `sudo_only_for_admins`; `admin_mode` is an administrator's scope too).
const ADMIN_SCOPES: &[&str] = &["sudo", "admin_mode"];

/// GitLab's model validations for a token a user makes for themselves (GitLab:
/// app/models/personal_access_token.rb — `validates :name, :scopes, presence: true`,
/// `validate_scopes`: "can only contain available scopes"). An expiry in the past is refused
/// (message not verified in GitLab's source).
pub fn validate_new(
    user: &User,
    name: &str,
    scopes: &[String],
    expires_at: Option<Timestamp>,
) -> ApiResult<()> {
    let mut errors = validate::Errors::default();
    validate::name(&mut errors, "name", name);
    if scopes.is_empty() {
        errors.add("scopes", "can't be blank");
    } else if scopes.iter().any(|s| {
        !KNOWN_SCOPES.contains(&s.as_str())
            || (ADMIN_SCOPES.contains(&s.as_str()) && !user.is_admin)
    }) {
        errors.add("scopes", "can only contain available scopes");
    }
    if expires_at.is_some_and(|at| at <= Timestamp::now()) {
        errors.add("expires_at", "must be in the future");
    }
    errors.into_result()
}

/// Creates a token for a user and returns it once; only its digest is stored.
pub async fn issue_token(
    state: &AppState,
    user_id: i64,
    name: &str,
    scopes: Vec<String>,
    expires_at: Option<Timestamp>,
    token: Option<String>,
) -> ApiResult<(PersonalAccessToken, String)> {
    let token = token.unwrap_or_else(|| secrets::random_token(secrets::PAT_PREFIX, 32));
    let new = NewPersonalAccessToken {
        user_id,
        name: name.to_string(),
        token_digest: secrets::token_digest(&token),
        scopes,
        expires_at,
    };
    let pat = state.store.create_personal_access_token(&new).await?;
    Ok((pat, token))
}

/// How long a rotated token lives when no expiry is given: GitLab's
/// `PersonalAccessTokens::RotateService::EXPIRATION_PERIOD` (one week).
const ROTATION_PERIOD_MS: i64 = 7 * 24 * 3600 * 1000;

/// The expiry a rotated token gets.
#[derive(Debug, Clone, Copy)]
pub enum RotatedExpiry {
    /// The date asked for (the API's `expires_at`).
    At(Timestamp),
    /// One week from now (the API without `expires_at`).
    DefaultPeriod,
    /// As long as the old token was given (the web page's rotate, GitLab's
    /// `keep_token_lifetime: true` in `UserSettings::PersonalAccessTokensController#rotate`);
    /// a token that never expired gets a week, the API's default.
    KeepLifetime,
}

/// Revokes `old` and issues a token like it (name, scopes) with a new secret, in one
/// transaction. GitLab: app/services/personal_access_tokens/rotate_service.rb — a revoked
/// token is `token already revoked`, answered by the API as `400 Bad request - …`.
pub async fn rotate_token(
    state: &AppState,
    old: &PersonalAccessToken,
    expiry: RotatedExpiry,
) -> ApiResult<(PersonalAccessToken, String)> {
    if old.revoked {
        return Err(ApiError::BadRequest("token already revoked".into()));
    }
    let now = Timestamp::now().millis();
    let expires_at = match expiry {
        RotatedExpiry::At(at) => at,
        RotatedExpiry::KeepLifetime => match old.expires_at {
            Some(at) => Timestamp(now + (at.millis() - old.created_at.millis()).max(0)),
            None => Timestamp(now + ROTATION_PERIOD_MS),
        },
        RotatedExpiry::DefaultPeriod => Timestamp(now + ROTATION_PERIOD_MS),
    };
    let token = secrets::random_token(secrets::PAT_PREFIX, 32);
    let new = NewPersonalAccessToken {
        user_id: old.user_id,
        name: old.name.clone(),
        token_digest: secrets::token_digest(&token),
        scopes: old.scopes.clone(),
        expires_at: Some(expires_at),
    };
    match state
        .store
        .rotate_personal_access_token(old.id, &new)
        .await?
    {
        Some(pat) => Ok((pat, token)),
        // Rotated (or revoked) by a concurrent request since it was read.
        None => Err(ApiError::BadRequest("token already revoked".into())),
    }
}
