//! Personal access tokens: issued here — by the API and for the bootstrap root token — and
//! handed out once; only their digests are stored.

use pipewright_core::Timestamp;
use pipewright_store::{NewPersonalAccessToken, PersonalAccessToken};

use crate::error::ApiResult;
use crate::secrets;
use crate::state::AppState;

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
