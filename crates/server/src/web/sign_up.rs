//! `/users/sign_up`: a new account made by its owner, when an administrator turned the
//! instance setting `signup_enabled` on (off by default; otherwise the page does not exist).
//! GitLab: app/controllers/registrations_controller.rb — the same validations as the users
//! API, then signed in at once (no email confirmation here). The form is protected like the
//! sign-in form (a double-submit token, as there is no session yet).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::{WebError, WebResult};
use super::forms::{full_message, nested};
use super::session::{self, SIGN_IN_CSRF_COOKIE, Viewer};
use super::view::{self, Flash, Layout};
use crate::domain::accounts::{self, SignUp};
use crate::error::ApiError;
use crate::params::Params;
use crate::secrets;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "sign_up.html")]
struct SignUpPage {
    layout: Layout,
    csrf: String,
    name: String,
    username: String,
    email: String,
    error: Option<String>,
}

async fn form_page(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    filled: (String, String, String),
    error: Option<String>,
    status: StatusCode,
) -> WebResult<Response> {
    let csrf = secrets::random_hex_token("", 32);
    let (name, username, email) = filled;
    let page = SignUpPage {
        layout: Layout::new(viewer, headers, "Register"),
        csrf: csrf.clone(),
        name,
        username,
        email,
        error,
    };
    let mut response = view::render(state, &page.layout, &page)?;
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(state, SIGN_IN_CSRF_COOKIE, &csrf, None),
    );
    Ok(response)
}

/// The page exists only while sign-ups are on; a signed-in user goes to the dashboard.
async fn open_for(state: &AppState, viewer: &Viewer) -> WebResult<Option<Response>> {
    if !accounts::signup_enabled(state).await? {
        return Err(WebError::NotFound);
    }
    Ok(viewer
        .user
        .is_some()
        .then(|| Redirect::to("/").into_response()))
}

/// `GET /users/sign_up`.
pub async fn new(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> WebResult<Response> {
    if let Some(away) = open_for(&state, &viewer).await? {
        return Ok(away);
    }
    let empty = (String::new(), String::new(), String::new());
    form_page(&state, &viewer, &headers, empty, None, StatusCode::OK).await
}

/// `POST /users`: the account, then a session for it.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    request: axum::http::Extensions,
    params: Params,
) -> WebResult<Response> {
    if let Some(away) = open_for(&state, &viewer).await? {
        return Ok(away);
    }
    session::verify_pre_session_form(&headers, &params)?;
    let field = |name: &str| nested(&params, "new_user", name).trim().to_string();
    let form = SignUp {
        name: field("name"),
        username: field("username"),
        email: field("email"),
        password: nested(&params, "new_user", "password"),
    };
    let filled = (form.name.clone(), form.username.clone(), form.email.clone());
    let ip = crate::client_address::client_ip(&request);
    let user = match accounts::sign_up(&state, form, ip).await {
        Ok(user) => user,
        Err(ApiError::Internal(e)) => return Err(WebError::Internal(e)),
        Err(err) => {
            let status = match err.status() {
                StatusCode::TOO_MANY_REQUESTS => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let text = Some(full_message(&err));
            return form_page(&state, &viewer, &headers, filled, text, status).await;
        }
    };
    let cookie = session::start(&state, &user).await?;
    let welcome = Flash::notice("Welcome! You have signed up successfully.");
    let mut response = view::redirect_with(&state, "/", welcome);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(&state, SIGN_IN_CSRF_COOKIE, "", Some(0)),
    );
    Ok(response)
}
