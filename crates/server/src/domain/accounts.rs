//! A user's own account: signing up (when the instance allows it), changing one's profile and
//! password — the rules the pages follow, with GitLab's validations (`validate.rs`, as the
//! users API) and the one password check every path shares (`sign_in.rs`).
//! GitLab: app/controllers/registrations_controller.rb,
//! app/controllers/user_settings/passwords_controller.rb, profiles_controller.rb,
//! app/models/user.rb.

use std::net::IpAddr;
use std::time::Duration;

use pipewright_core::Timestamp;
use pipewright_store::{NewUser, StoreError, User, UserUpdate};

use crate::error::{ApiError, ApiResult};
use crate::secrets;
use crate::sign_in::{self, PasswordCheck};
use crate::state::AppState;
use crate::validate;

/// GitLab's application setting `signup_enabled`; off unless an administrator turns it on
/// (GitLab's default is on; a self-hosted CI server starts closed).
pub const SIGNUP_SETTING: &str = "signup_enabled";

/// Sign-ups one address may make per window (GitLab throttles `user_sign_up` per IP with
/// `Gitlab::ApplicationRateLimiter`; the exact limit here is ours, not verified).
const SIGN_UPS_PER_WINDOW: i64 = 20;
/// The sign-in lockout's window: the counts live beside sign-in failures, and the maintenance
/// loop forgets windows older than that.
const SIGN_UP_WINDOW_MS: i64 = sign_in::throttle::LOCK.as_millis() as i64;

pub async fn signup_enabled(state: &AppState) -> ApiResult<bool> {
    Ok(state.store.setting(SIGNUP_SETTING).await?.as_deref() == Some("true"))
}

/// GitLab answers a taken username or email with its model's sentence.
pub fn user_conflict(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(what) if what.contains("email") => {
            ApiError::Conflict("Email has already been taken".into())
        }
        StoreError::Conflict(_) => ApiError::Conflict("Username has already been taken".into()),
        other => other.into(),
    }
}

/// What a sign-up form carries.
pub struct SignUp {
    pub name: String,
    pub username: String,
    pub email: String,
    pub password: String,
}

/// Creates an account from the sign-up form: only while `signup_enabled`, counted per client
/// address (each attempt, so a script cannot make accounts or probe usernames without
/// bound), with the users API's validations. Never an administrator.
pub async fn sign_up(state: &AppState, form: SignUp, ip: Option<IpAddr>) -> ApiResult<User> {
    if !signup_enabled(state).await? {
        return Err(ApiError::NotFound(""));
    }
    if let Some(wait) = sign_up_throttled(state, ip).await? {
        let minutes = wait.as_secs().div_ceil(60);
        return Err(ApiError::Custom(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            serde_json::json!({"message": format!(
                "Too many sign-ups from this address. Try again in {minutes} minutes."
            )}),
        ));
    }
    let mut errors = validate::Errors::default();
    validate::name(&mut errors, "name", &form.name);
    validate::username(&mut errors, &form.username);
    validate::email(&mut errors, &form.email);
    validate::password(&mut errors, &form.password);
    errors.into_result()?;
    let hash = secrets::hash_password_async(form.password)
        .await
        .map_err(ApiError::Internal)?;
    let new = NewUser {
        username: form.username,
        name: form.name,
        email: form.email,
        password_hash: Some(hash),
        is_admin: false,
    };
    state.store.create_user(&new).await.map_err(user_conflict)
}

/// Counts a sign-up attempt from `ip`; how long to wait when there were too many.
async fn sign_up_throttled(state: &AppState, ip: Option<IpAddr>) -> ApiResult<Option<Duration>> {
    let Some(ip) = ip else { return Ok(None) };
    let key = format!("sign_up:{ip}");
    let now = Timestamp::now();
    let window_after = Timestamp(now.millis() - SIGN_UP_WINDOW_MS);
    let counted = state
        .store
        .record_sign_in_failure(&key, now, window_after)
        .await?;
    if counted <= SIGN_UPS_PER_WINDOW {
        return Ok(None);
    }
    let started = state
        .store
        .sign_in_failures(std::slice::from_ref(&key))
        .await?
        .first()
        .map_or(now, |(_, _, start)| *start);
    let left = (started.millis() + SIGN_UP_WINDOW_MS - now.millis()).max(1000);
    Ok(Some(Duration::from_millis(left as u64)))
}

/// The current password, checked the way signing in checks it: failures count towards the
/// same lockout, so a stolen session cannot be used to guess the password.
async fn current_password(
    state: &AppState,
    user: &User,
    password: &str,
    ip: Option<IpAddr>,
) -> ApiResult<()> {
    match sign_in::check_password(state, &user.username, password, ip)
        .await
        .map_err(ApiError::Internal)?
    {
        PasswordCheck::Valid(found) if found.id == user.id => Ok(()),
        PasswordCheck::Locked(_) => Err(ApiError::Custom(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            serde_json::json!({"message": "Too many failed sign-in attempts. Try again later."}),
        )),
        // GitLab: UserSettings::PasswordsController#update.
        _ => Err(ApiError::Unprocessable(
            "You must provide a valid current password".into(),
        )),
    }
}

/// A password change: the current password, then GitLab's rules for the new one
/// (`Password is too short…`, `Password confirmation doesn't match Password`). Every web
/// session of the user ends (GitLab signs the user out: "Please sign in again.").
pub async fn change_password(
    state: &AppState,
    user: &User,
    current: &str,
    new: &str,
    confirmation: &str,
    ip: Option<IpAddr>,
) -> ApiResult<()> {
    current_password(state, user, current, ip).await?;
    let mut errors = validate::Errors::default();
    validate::password(&mut errors, new);
    if new != confirmation {
        errors.add("password_confirmation", "doesn't match Password");
    }
    errors.into_result()?;
    let hash = secrets::hash_password_async(new.to_string())
        .await
        .map_err(ApiError::Internal)?;
    let update = UserUpdate {
        password_hash: Some(hash),
        ..UserUpdate::default()
    };
    state.store.update_user(user.id, &update).await?;
    state.store.delete_user_web_sessions(user.id, None).await?;
    Ok(())
}

/// A profile change (name, email). A new email needs the current password, so a session
/// left open cannot take the account over (GitLab asks for it too when the email changes;
/// not verified in its source).
pub async fn update_profile(
    state: &AppState,
    user: &User,
    name: &str,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> ApiResult<User> {
    let mut errors = validate::Errors::default();
    validate::name(&mut errors, "name", name);
    validate::email(&mut errors, email);
    errors.into_result()?;
    let email_changed = !email.eq_ignore_ascii_case(&user.email);
    if email_changed {
        current_password(state, user, password, ip).await?;
    }
    let update = UserUpdate {
        name: Some(name.to_string()),
        email: email_changed.then(|| email.to_string()),
        ..UserUpdate::default()
    };
    state
        .store
        .update_user(user.id, &update)
        .await
        .map_err(user_conflict)
}
