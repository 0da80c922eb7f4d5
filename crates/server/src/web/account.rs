//! Signing in and out (`/users/sign_in`, `/users/sign_out`), as GitLab's Devise routes.
//!
//! Wrong credentials, unknown users and blocked users all get the same message, and take the
//! same password-hashing time, so the form does not tell which usernames exist; failures
//! count towards the lockout every password path shares (`crate::sign_in`).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::{WebError, WebResult};
use super::session::{self, SIGN_IN_CSRF_COOKIE, Viewer};
use super::view::{self, Layout};
use crate::params::Params;
use crate::secrets;
use crate::sign_in::{self, PasswordCheck};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    layout: Layout,
    csrf: String,
    login: String,
    redirect_to: String,
    error: Option<String>,
    /// Whether the instance takes sign-ups (a "Register now" link).
    signup: bool,
}

/// The longest `redirect_to` kept; a longer one is nobody's page of ours.
const MAX_REDIRECT_LEN: usize = 2048;

/// Where to go after signing in: a path on this server, or the dashboard.
///
/// GitLab keeps this target in the session (Devise's `store_location_for` keeps only the path
/// of a URL); Pipewright carries it through the form, so it is checked here. Browsers drop tabs
/// and newlines anywhere in a URL and read `\` as `/` (WHATWG URL parsing), so `/\t/evil.example`
/// would leave as `//evil.example`, another site: only visible ASCII without `\` is accepted,
/// and `//` may not begin it. A CR or LF could not even become a `Location` header (that was a
/// 500 that lost the new session). Our own sign-in links carry the request's path and query,
/// which are always visible ASCII.
fn safe_redirect(target: Option<&str>) -> String {
    match target {
        Some(t)
            if t.len() <= MAX_REDIRECT_LEN
                && t.starts_with('/')
                && !t.starts_with("//")
                && t.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            t.to_string()
        }
        _ => "/".to_string(),
    }
}

async fn sign_in_page(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    login: String,
    redirect_to: String,
    error: Option<String>,
    status: axum::http::StatusCode,
) -> WebResult<Response> {
    // A fresh double-submit token each time the form is shown.
    let csrf = secrets::random_hex_token("", 32);
    let layout = Layout::new(viewer, headers, "Sign in");
    let page = SignInPage {
        layout,
        csrf: csrf.clone(),
        login,
        redirect_to,
        error,
        signup: crate::domain::accounts::signup_enabled(state).await?,
    };
    let mut response = view::render(state, &page.layout, &page)?;
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(state, SIGN_IN_CSRF_COOKIE, &csrf, None),
    );
    Ok(response)
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> WebResult<Response> {
    let redirect_to = safe_redirect(params.str("redirect_to").ok().flatten().as_deref());
    if viewer.user.is_some() {
        return Ok(Redirect::to(&redirect_to).into_response());
    }
    sign_in_page(
        &state,
        &viewer,
        &headers,
        String::new(),
        redirect_to,
        None,
        axum::http::StatusCode::OK,
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    request_parts: axum::http::Extensions,
    params: Params,
) -> WebResult<Response> {
    session::verify_pre_session_form(&headers, &params)?;
    // Rack nesting: `user[login]` arrives as {"user": {"login": …}}.
    let field = |name: &str| {
        params
            .get("user")
            .and_then(|u| u.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_default()
    };
    let login = field("login");
    let login = login.trim().chars().take(255).collect::<String>();
    let password = field("password");
    let redirect_to = safe_redirect(params.str("redirect_to").ok().flatten().as_deref());
    let ip = crate::client_address::client_ip(&request_parts);

    let user = match sign_in::check_password(&state, &login, &password, ip).await? {
        PasswordCheck::Valid(user) => user,
        PasswordCheck::Locked(wait) => {
            let minutes = wait.as_secs().div_ceil(60);
            return Err(WebError::TooManyRequests(format!(
                "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )));
        }
        PasswordCheck::Invalid => {
            return sign_in_page(
                &state,
                &viewer,
                &headers,
                login,
                redirect_to,
                Some("Invalid login or password.".into()),
                axum::http::StatusCode::UNAUTHORIZED,
            )
            .await;
        }
    };
    // A new session id on every sign-in (no session fixation); the old one ends.
    if viewer.user.is_some() {
        session::end(&state, &viewer).await?;
    }
    let cookie = session::start(&state, &user).await?;
    let mut response = Redirect::to(&redirect_to).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(&state, SIGN_IN_CSRF_COOKIE, "", Some(0)),
    );
    Ok(response)
}

pub async fn destroy(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Params,
) -> WebResult<Response> {
    if viewer.user.is_some() {
        viewer.verify_form(&params)?;
    }
    let cookie = session::end(&state, &viewer).await?;
    let mut response = Redirect::to("/users/sign_in").into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_redirect;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(
            safe_redirect(Some("/root/demo/-/pipelines")),
            "/root/demo/-/pipelines"
        );
        assert_eq!(safe_redirect(Some("//evil.example")), "/");
        assert_eq!(safe_redirect(Some("https://evil.example")), "/");
        assert_eq!(safe_redirect(Some("/\\evil.example")), "/");
        assert_eq!(safe_redirect(None), "/");
        // What a browser would turn into `//evil.example`, or cannot be a header at all.
        for target in [
            "/\t/evil.example/",
            "/\n/evil.example",
            "/x\r\nSet-Cookie: a=b",
            "/ /evil.example",
            "/\u{7f}",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_redirect(Some(target)), "/", "{target:?}");
        }
        assert_eq!(
            safe_redirect(Some("/root/demo/-/pipelines?status=failed&page=2")),
            "/root/demo/-/pipelines?status=failed&page=2"
        );
        assert_eq!(safe_redirect(Some(&format!("/{}", "a".repeat(3000)))), "/");
    }
}
