//! Signing in with a password, for every path that takes one — the sign-in page and git over
//! HTTP (Basic auth with a password) — so that they share one lockout and cost the same.
//!
//! Failures count per account and per client address, in the database, so replicas share the
//! count and a locked account is locked on every path: guessing over git does not go on
//! while the sign-in page is locked, and the other way round. An unknown username is checked
//! against a dummy argon2 hash, so a wrong password takes as long for a user that does not
//! exist as for one that does (GitLab: a locked user cannot log in, whichever path —
//! `lib/gitlab/auth.rb`, `find_with_user_password`; Devise's lockable counts the failures).

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use pipewright_store::User;

use crate::secrets;
use crate::state::AppState;

/// What a password check found.
#[derive(Debug)]
pub enum PasswordCheck {
    /// The password is the active user's.
    Valid(User),
    /// Wrong password, unknown or blocked user: one answer for all three.
    Invalid,
    /// Too many failures: no password is checked until this has passed.
    Locked(Duration),
}

/// A hash with the server's argon2 parameters, of a password nobody knows: checking a
/// password against it costs what checking a real one costs.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let password = secrets::random_token("", 32);
    secrets::hash_password(&password).unwrap_or_default()
});

/// Checks `login` (a username, or an email address) and `password`, counting failures for
/// the lockout.
pub async fn check_password(
    state: &AppState,
    login: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> anyhow::Result<PasswordCheck> {
    // Usernames and addresses are at most 255 characters; a longer login is not stored whole.
    let login: String = login.chars().take(255).collect();
    let login = login.as_str();
    if let Some(wait) = throttle::locked_for(state, login, ip).await? {
        return Ok(PasswordCheck::Locked(wait));
    }
    let user = find_user(state, login).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let password = password.to_string();
    let password_ok = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => secrets::verify_password(&password, &hash),
        None => {
            // The same work as a real check, so timing does not tell who exists.
            let _ = secrets::verify_password(&password, &DUMMY_HASH);
            false
        }
    })
    .await?;
    match user {
        Some(user) if password_ok && user.is_active() => {
            throttle::record_success(state, login).await?;
            Ok(PasswordCheck::Valid(user))
        }
        _ => {
            throttle::record_failure(state, login, ip).await?;
            Ok(PasswordCheck::Invalid)
        }
    }
}

/// The user a login names: a username, or (with an `@`) an email address, as GitLab's
/// `User.by_login`.
async fn find_user(state: &AppState, login: &str) -> anyhow::Result<Option<User>> {
    if let Some(user) = state.store.user_by_username(login).await? {
        return Ok(Some(user));
    }
    if !login.contains('@') {
        return Ok(None);
    }
    let page = pipewright_store::Page {
        page: 1,
        per_page: 20,
    };
    let found = state.store.users(page, Some(login)).await?;
    Ok(found
        .items
        .into_iter()
        .find(|u| u.email.eq_ignore_ascii_case(login)))
}

/// Failed sign-ins, counted per username and per client address in the database (so every
/// replica counts the same failures). Like GitLab (Devise's lockable: 10 attempts, 10 minutes),
/// an account is locked for a while after too many wrong passwords, and one address cannot try
/// many accounts. The address is `client_address`'s: behind a reverse proxy listed in
/// `--trusted-proxies`, the forwarded client's; behind any other, the proxy's, which every
/// client then shares (as GitLab's Rack::Attack without trusted proxies).
pub mod throttle {
    use std::net::IpAddr;
    use std::time::Duration;

    use pipewright_core::Timestamp;

    use pipewright_store::StoreError;

    use crate::state::AppState;

    pub const MAX_FAILURES_PER_USER: i64 = 10;
    pub const MAX_FAILURES_PER_ADDRESS: i64 = 50;
    /// A window of counting starts at the first failure and lasts this long; a key that
    /// reached its maximum in it is locked until it ends.
    pub const LOCK: Duration = Duration::from_secs(10 * 60);

    fn keys(username: &str, ip: Option<IpAddr>) -> Vec<(String, i64)> {
        let mut keys = vec![(
            format!("user:{}", username.to_lowercase()),
            MAX_FAILURES_PER_USER,
        )];
        if let Some(ip) = ip {
            keys.push((format!("ip:{ip}"), MAX_FAILURES_PER_ADDRESS));
        }
        keys
    }

    fn lock_ms() -> i64 {
        LOCK.as_millis() as i64
    }

    /// How long `counted` (`(key, failures, window_start)`) keeps the keys locked at `now`.
    pub fn remaining(
        limits: &[(String, i64)],
        counted: &[(String, i64, Timestamp)],
        now: Timestamp,
    ) -> Option<Duration> {
        counted
            .iter()
            .filter_map(|(key, failures, start)| {
                let (_, max) = limits.iter().find(|(k, _)| k == key)?;
                let left = start.millis() + lock_ms() - now.millis();
                (*failures >= *max && left > 0).then(|| Duration::from_millis(left as u64))
            })
            .max()
    }

    /// How long until another attempt is allowed, if it is not now.
    pub async fn locked_for(
        state: &AppState,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<Option<Duration>, StoreError> {
        let limits = keys(username, ip);
        let names: Vec<String> = limits.iter().map(|(k, _)| k.clone()).collect();
        let counted = state.store.sign_in_failures(&names).await?;
        Ok(remaining(&limits, &counted, Timestamp::now()))
    }

    pub async fn record_failure(
        state: &AppState,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let window_after = Timestamp(now.millis() - lock_ms());
        for (key, _) in keys(username, ip) {
            state
                .store
                .record_sign_in_failure(&key, now, window_after)
                .await?;
        }
        Ok(())
    }

    /// A successful sign-in clears the account's count (not the address's).
    pub async fn record_success(state: &AppState, username: &str) -> Result<(), StoreError> {
        let key = format!("user:{}", username.to_lowercase());
        state.store.clear_sign_in_failures(&key).await
    }

    /// Forgets windows that ended (the maintenance loop calls this).
    pub async fn sweep(state: &AppState, now: Timestamp) -> anyhow::Result<()> {
        state
            .store
            .delete_old_sign_in_failures(Timestamp(now.millis() - lock_ms()))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_locks_when_its_window_holds_ten_failures() {
        use pipewright_core::Timestamp;
        let limits = vec![
            ("user:alice".to_string(), 10),
            ("ip:10.0.0.1".to_string(), 50),
        ];
        let now = Timestamp(10_000_000);
        let started = Timestamp(now.millis() - 60_000);
        let nine = vec![("user:alice".to_string(), 9, started)];
        assert_eq!(throttle::remaining(&limits, &nine, now), None);
        let ten = vec![("user:alice".to_string(), 10, started)];
        let left = throttle::remaining(&limits, &ten, now).expect("locked");
        assert_eq!(left, throttle::LOCK - std::time::Duration::from_secs(60));
        // Once the window is over, the lock is too.
        let old = vec![(
            "user:alice".to_string(),
            10,
            Timestamp(now.millis() - 11 * 60_000),
        )];
        assert_eq!(throttle::remaining(&limits, &old, now), None);
        // An address with 50 failures is locked whatever the username.
        let address = vec![("ip:10.0.0.1".to_string(), 50, started)];
        assert!(throttle::remaining(&limits, &address, now).is_some());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        use argon2::password_hash::PasswordHash;
        let real = secrets::hash_password("a-real-password").expect("hash");
        let real = PasswordHash::new(&real).expect("parse");
        let dummy = PasswordHash::new(&DUMMY_HASH).expect("the dummy hash parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.params, real.params);
        assert!(!secrets::verify_password("", &DUMMY_HASH));
    }
}
