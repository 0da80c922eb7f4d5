//! Who is looking at a page: the signed-in browser session and its CSRF token. (Sign-in
//! throttling is `crate::sign_in`, shared with git over HTTP.)
//!
//! A session is a random id in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` when the external
//! URL is HTTPS); the database keeps only its SHA-256 digest, so a database leak does not sign
//! anyone in. The CSRF token every form carries is derived from the session id, so it needs no
//! storage and dies with the session. The sign-in form, which has no session yet, uses a
//! double-submit cookie instead. Blocked users are signed out on their next request, because the
//! user is re-read with every request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use pipewright_core::Timestamp;
use pipewright_store::{User, WebSession};
use sha2::{Digest, Sha256};

use super::error::WebError;
use crate::auth::{Actor, Caller, Credential};
use crate::secrets;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "_pipewright_session";
/// The double-submit cookie that protects the sign-in form.
pub const SIGN_IN_CSRF_COOKIE: &str = "_pipewright_csrf";
/// The form field every POST carries (Rails' name, so GitLab habits carry over).
pub const CSRF_FIELD: &str = "authenticity_token";

/// GitLab's default `session_expire_delay`: a week of inactivity.
const SESSION_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;
/// How stale `last_seen_at` may get before a request slides the expiry (one write per
/// ten minutes of browsing, not one per request).
const TOUCH_RESOLUTION_MS: i64 = 10 * 60 * 1000;

/// The signed-in user of a page request, if any.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: Option<User>,
    /// The raw session id (only in memory, never logged or stored).
    session_id: Option<String>,
    /// The page asked for (path and query), to come back to after signing in.
    pub path: String,
}

impl Viewer {
    /// The user, or a redirect to the sign-in page.
    pub fn required(&self) -> Result<&User, WebError> {
        self.user
            .as_ref()
            .ok_or_else(|| WebError::SignInRequired(self.path.clone()))
    }

    /// The same identity as an API caller, so pages ask the very permission checks the API
    /// asks.
    pub fn caller(&self) -> Caller {
        Caller(self.user.clone().map(|user| Actor {
            user,
            credential: Credential::Session,
        }))
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_admin)
    }

    /// The token this session's forms carry.
    pub fn csrf_token(&self) -> String {
        self.session_id.as_deref().map(csrf_for).unwrap_or_default()
    }

    /// Checks a submitted form's token against this session's (constant time).
    pub fn verify_csrf(&self, submitted: Option<&str>) -> Result<(), WebError> {
        let (Some(session), Some(submitted)) = (self.session_id.as_deref(), submitted) else {
            return Err(WebError::InvalidCsrf);
        };
        if secrets::digests_equal(&csrf_for(session), submitted) {
            Ok(())
        } else {
            Err(WebError::InvalidCsrf)
        }
    }

    /// Checks a posted form's `authenticity_token`.
    pub fn verify_form(&self, params: &crate::params::Params) -> Result<(), WebError> {
        self.verify_csrf(params.str(CSRF_FIELD).ok().flatten().as_deref())
    }

    pub fn session_digest(&self) -> Option<String> {
        self.session_id.as_deref().map(secrets::token_digest)
    }
}

fn csrf_for(session_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"pipewright-csrf\0");
    hasher.update(session_id.as_bytes());
    hex::encode(hasher.finalize())
}

/// A cookie's value from the request headers.
/// Checks a form posted before there is a session (signing in, signing up): its token must
/// equal the double-submit cookie the form's page set.
pub fn verify_pre_session_form(
    headers: &HeaderMap,
    params: &crate::params::Params,
) -> Result<(), WebError> {
    let submitted = params.str(CSRF_FIELD).ok().flatten();
    match (submitted.as_deref(), cookie(headers, SIGN_IN_CSRF_COOKIE)) {
        (Some(a), Some(b)) if !a.is_empty() && secrets::digests_equal(a, b) => Ok(()),
        _ => Err(WebError::InvalidCsrf),
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value with the attributes every cookie of ours has.
pub fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age_secs: Option<i64>,
) -> HeaderValue {
    let secure = state.config.external_url.starts_with("https://");
    // Our values are hex or percent-encoded and our names constants, so this never fails;
    // fall back to an expired cookie rather than panic.
    HeaderValue::from_str(&cookie_text(name, value, max_age_secs, secure))
        .unwrap_or(HeaderValue::from_static("_pipewright_invalid=; Max-Age=0"))
}

/// `HttpOnly` (no script reads it), `SameSite=Lax` (no cross-site POST carries it), `Secure`
/// when the server is reached over HTTPS.
fn cookie_text(name: &str, value: &str, max_age_secs: Option<i64>, secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age_secs {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    cookie
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let anonymous = Viewer {
            user: None,
            session_id: None,
            path: path.clone(),
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(anonymous);
        };
        // Ids are 64 hex characters; anything else cannot be ours.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(anonymous);
        }
        let digest = secrets::token_digest(id);
        let Some(session) = state.store.web_session(&digest).await? else {
            return Ok(anonymous);
        };
        let now = Timestamp::now();
        if session.expires_at <= now {
            return Ok(anonymous);
        }
        let Some(user) = state.store.user(session.user_id).await? else {
            return Ok(anonymous);
        };
        if !user.is_active() {
            state.store.delete_web_session(&digest).await?;
            return Ok(anonymous);
        }
        if now.millis() - session.last_seen_at.millis() > TOUCH_RESOLUTION_MS {
            let expires = Timestamp(now.millis() + SESSION_LIFETIME_MS);
            state.store.touch_web_session(&digest, now, expires).await?;
        }
        Ok(Viewer {
            user: Some(user),
            session_id: Some(id.to_string()),
            path,
        })
    }
}

/// Starts a session for `user`; returns the `Set-Cookie` header value.
pub async fn start(state: &AppState, user: &User) -> Result<HeaderValue, WebError> {
    let id = secrets::random_hex_token("", 32);
    let now = Timestamp::now();
    state
        .store
        .create_web_session(&WebSession {
            id_digest: secrets::token_digest(&id),
            user_id: user.id,
            created_at: now,
            last_seen_at: now,
            expires_at: Timestamp(now.millis() + SESSION_LIFETIME_MS),
        })
        .await?;
    Ok(set_cookie(state, SESSION_COOKIE, &id, None))
}

/// Ends the viewer's session; returns the `Set-Cookie` header that clears the cookie.
pub async fn end(state: &AppState, viewer: &Viewer) -> Result<HeaderValue, WebError> {
    if let Some(digest) = viewer.session_digest() {
        state.store.delete_web_session(&digest).await?;
    }
    Ok(set_cookie(state, SESSION_COOKIE, "", Some(0)))
}

/// Sign-in throttling lives with every other password check, in `crate::sign_in`.
pub use crate::sign_in::throttle;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; _pipewright_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn cookies_are_secure_behind_https() {
        assert_eq!(
            cookie_text(SESSION_COOKIE, "ab", None, true),
            "_pipewright_session=ab; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            cookie_text(SESSION_COOKIE, "", Some(0), false),
            "_pipewright_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        let viewer = Viewer {
            user: None,
            session_id: Some("s".repeat(64)),
            path: "/".into(),
        };
        assert!(viewer.verify_csrf(Some(&viewer.csrf_token())).is_ok());
        assert!(viewer.verify_csrf(Some("nope")).is_err());
        assert!(viewer.verify_csrf(None).is_err());
    }
}
