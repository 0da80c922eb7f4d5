//! `/-/user_settings/…`: what a signed-in user does for themselves, at GitLab's URLs —
//! personal access tokens (create, shown once; revoke; rotate), password and profile.
//! GitLab: app/controllers/user_settings/personal_access_tokens_controller.rb,
//! passwords_controller.rb, profiles_controller.rb.
//!
//! Every page is about the viewer alone: a token of anyone else is a 404, administrators
//! included (they manage others' tokens through the API). Changes go through the domain
//! (`domain::tokens`, `domain::accounts`), as the API's do.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_core::Timestamp;
use pipewright_store::{Page, PersonalAccessToken, User};

use super::error::{WebError, WebResult};
use super::forms::{field, finish, full_message, nested};
use super::session::Viewer;
use super::view::{self, Flash, Layout};
use crate::auth::KNOWN_SCOPES;
use crate::domain::accounts;
use crate::domain::tokens::{self, RotatedExpiry};
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

const PROFILE_PATH: &str = "/-/user_settings/profile";
const PASSWORD_PATH: &str = "/-/user_settings/password/edit";
const TOKENS_PATH: &str = "/-/user_settings/personal_access_tokens";
/// Tokens listed on one page.
const PER_PAGE: u32 = view::Window::PER_PAGE as u32;

/// The signed-in viewer, with a form's CSRF token checked when one is posted.
fn signed_in<'a>(viewer: &'a Viewer, form: Option<&Params>) -> WebResult<&'a User> {
    let user = viewer.required()?;
    if let Some(params) = form {
        viewer.verify_form(params)?;
    }
    Ok(user)
}

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scopes: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub state: &'static str,
}

pub struct ScopeOption {
    pub name: &'static str,
    pub description: &'static str,
}

/// A token shown once, just after it was made.
pub struct NewToken {
    pub name: String,
    pub token: String,
}

#[derive(Template)]
#[template(path = "user_settings_tokens.html")]
struct TokensPage {
    layout: Layout,
    created: Option<NewToken>,
    active: Vec<TokenRow>,
    inactive: Vec<TokenRow>,
    scopes: Vec<ScopeOption>,
    min_expiry: String,
    default_expiry: String,
    page: u32,
    prev_url: Option<String>,
    next_url: Option<String>,
}

/// What each scope allows, as GitLab's token form explains it.
fn scope_options(user: &User) -> Vec<ScopeOption> {
    let describe = |name: &str| match name {
        "api" => "Full read and write access to the API, including all projects and the registry.",
        "read_api" => "Read access to the API, including all projects.",
        "read_user" => "Read the authenticated user's personal information.",
        "read_repository" => "Read access (pull) to the repositories.",
        "write_repository" => "Read and write access (pull, push) to the repositories.",
        "sudo" => "Perform API actions as any user in the system.",
        "admin_mode" => "Perform API actions as an administrator.",
        "create_runner" => "Create runners.",
        "manage_runner" => "Manage runners.",
        "self_rotate" => "Rotate this token (only).",
        _ => "",
    };
    KNOWN_SCOPES
        .iter()
        .filter(|s| user.is_admin || !matches!(**s, "sudo" | "admin_mode"))
        .map(|s| ScopeOption {
            name: s,
            description: describe(s),
        })
        .collect()
}

fn token_row(t: &PersonalAccessToken) -> TokenRow {
    let now = Timestamp::now();
    TokenRow {
        id: t.id,
        name: t.name.clone(),
        scopes: t.scopes.join(", "),
        created: t.created_at.to_date_string(),
        last_used: t
            .last_used_at
            .map(view::time_ago)
            .unwrap_or_else(|| "Never".into()),
        expires: t
            .expires_at
            .map(|e| e.to_date_string())
            .unwrap_or_else(|| "Never".into()),
        state: if t.revoked {
            "Revoked"
        } else if t.expires_at.is_some_and(|e| e <= now) {
            "Expired"
        } else {
            "Active"
        },
    }
}

/// One page of the user's tokens, newest first, and whether an older page exists. The store
/// lists them oldest first, so newest-first page `n` is a slice of at most two of its pages.
async fn newest_tokens(
    state: &AppState,
    user: &User,
    number: u32,
) -> WebResult<(Vec<PersonalAccessToken>, bool)> {
    let per_page = i64::from(PER_PAGE);
    let read = |page: i64| async move {
        let page = Page {
            page: u32::try_from(page + 1).unwrap_or(u32::MAX),
            per_page: PER_PAGE,
        };
        state
            .store
            .personal_access_tokens(Some(user.id), page)
            .await
    };
    let first = read(0).await?;
    let total = first.total;
    // The oldest-first positions `start..end` this page shows.
    let end = total - i64::from(number - 1) * per_page;
    if end <= 0 {
        return Ok((Vec::new(), false));
    }
    let start = (end - per_page).max(0);
    let (low, high) = (start / per_page, (end - 1) / per_page);
    let mut rows = if low == 0 {
        first.items
    } else {
        read(low).await?.items
    };
    if high != low {
        rows.extend(read(high).await?.items);
    }
    let skip = usize::try_from(start - low * per_page).unwrap_or(0);
    let take = usize::try_from(end - start).unwrap_or(0);
    let mut list: Vec<_> = rows.into_iter().skip(skip).take(take).collect();
    list.reverse();
    Ok((list, start > 0))
}

async fn tokens_page(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    created: Option<NewToken>,
    number: u32,
) -> WebResult<Response> {
    let user = signed_in(viewer, None)?;
    let (list, more) = newest_tokens(state, user, number).await?;
    let (prev_url, next_url) = view::page_links(TOKENS_PATH, number, more);
    let (active, inactive): (Vec<_>, Vec<_>) = list
        .iter()
        .map(token_row)
        .partition(|r| r.state == "Active");
    let day = 24 * 3600 * 1000;
    let now = Timestamp::now().millis();
    let page = TokensPage {
        layout: Layout::new(viewer, headers, "Personal access tokens").in_section("user_settings"),
        created,
        active,
        inactive,
        scopes: scope_options(user),
        min_expiry: Timestamp(now + day).to_date_string(),
        // GitLab's form suggests a month.
        default_expiry: Timestamp(now + 30 * day).to_date_string(),
        page: number,
        prev_url,
        next_url,
    };
    view::render(state, &page.layout, &page)
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
}

/// `GET /-/user_settings/personal_access_tokens` (`?page=`, newest first).
pub async fn tokens(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> WebResult<Response> {
    let number = view::page_number(query.page.as_deref());
    tokens_page(&state, &viewer, &headers, None, number).await
}

/// `POST /-/user_settings/personal_access_tokens`: a new token for the viewer, shown once on
/// the page this answers with (never put in a redirect or a cookie).
pub async fn create_token(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    params: Params,
) -> WebResult<Response> {
    let user = signed_in(&viewer, Some(&params))?;
    let name = field(&params, "name").trim().to_string();
    let scopes = params
        .string_list("scopes")
        .ok()
        .flatten()
        .unwrap_or_default();
    let expires_at = match field(&params, "expires_at").trim() {
        "" => None,
        text => match Timestamp::parse(text) {
            Some(at) => Some(at),
            None => {
                let alert = Flash::alert("Expires at is not a valid date.");
                return Ok(view::redirect_with(&state, TOKENS_PATH, alert));
            }
        },
    };
    if let Err(err) = tokens::validate_new(user, &name, &scopes, expires_at) {
        let alert = Flash::alert(full_message(&err));
        return Ok(view::redirect_with(&state, TOKENS_PATH, alert));
    }
    let (pat, token) =
        tokens::issue_token(&state, user.id, &name, scopes, expires_at, None).await?;
    let created = NewToken {
        name: pat.name,
        token,
    };
    tokens_page(&state, &viewer, &headers, Some(created), 1).await
}

/// `POST /-/user_settings/personal_access_tokens/:id/revoke` and `…/rotate` (GitLab's
/// `PUT …/:id/revoke|rotate`): the viewer's own tokens only. Rotating keeps the token's
/// lifetime, as GitLab's page does, and shows the new token once.
pub async fn token_action(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    params: Params,
) -> WebResult<Response> {
    let user = signed_in(&viewer, Some(&params))?;
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    let pat = match state.store.personal_access_token(id).await? {
        Some(pat) if pat.user_id == user.id => pat,
        _ => return Err(WebError::NotFound),
    };
    match action.as_str() {
        "revoke" => {
            let result = if pat.revoked {
                Err(ApiError::BadRequest(
                    "Token has already been revoked".into(),
                ))
            } else {
                state
                    .store
                    .revoke_personal_access_token(pat.id)
                    .await
                    .map_err(ApiError::from)
            };
            // GitLab: PersonalAccessTokens::RevokeService's message.
            let done = |_| format!("Revoked personal access token {}!", pat.name);
            finish(&state, TOKENS_PATH, done, result)
        }
        "rotate" => match tokens::rotate_token(&state, &pat, RotatedExpiry::KeepLifetime).await {
            Ok((new, token)) => {
                let created = NewToken {
                    name: new.name,
                    token,
                };
                tokens_page(&state, &viewer, &headers, Some(created), 1).await
            }
            Err(err) => finish(&state, TOKENS_PATH, |()| String::new(), Err(err)),
        },
        _ => Err(WebError::NotFound),
    }
}

#[derive(Template)]
#[template(path = "user_settings_profile.html")]
struct ProfilePage {
    layout: Layout,
    name: String,
    email: String,
    username: String,
}

/// `GET /-/user_settings/profile`.
pub async fn profile(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> WebResult<Response> {
    let user = signed_in(&viewer, None)?;
    let page = ProfilePage {
        layout: Layout::new(&viewer, &headers, "Edit profile").in_section("user_settings"),
        name: user.name.clone(),
        email: user.email.clone(),
        username: user.username.clone(),
    };
    view::render(&state, &page.layout, &page)
}

/// `POST /-/user_settings/profile` (GitLab's `PUT`): name and email; a new email needs the
/// current password.
pub async fn update_profile(
    State(state): State<AppState>,
    viewer: Viewer,
    request: axum::http::Extensions,
    params: Params,
) -> WebResult<Response> {
    let user = signed_in(&viewer, Some(&params))?;
    let ip = crate::client_address::client_ip(&request);
    let name = nested(&params, "user", "name");
    let email = nested(&params, "user", "email");
    let password = nested(&params, "user", "validation_password");
    let result = accounts::update_profile(&state, user, name.trim(), email.trim(), &password, ip);
    let done = |_| "Profile was successfully updated".to_string();
    finish(&state, PROFILE_PATH, done, result.await)
}

#[derive(Template)]
#[template(path = "user_settings_password.html")]
struct PasswordPage {
    layout: Layout,
}

/// `GET /-/user_settings/password/edit`.
pub async fn edit_password(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> WebResult<Response> {
    signed_in(&viewer, None)?;
    let page = PasswordPage {
        layout: Layout::new(&viewer, &headers, "Password").in_section("user_settings"),
    };
    view::render(&state, &page.layout, &page)
}

/// `POST /-/user_settings/password` (GitLab's `PUT`): the current password, the new one twice.
/// Every session ends, this one too: sign in again with the new password, as GitLab asks.
pub async fn update_password(
    State(state): State<AppState>,
    viewer: Viewer,
    request: axum::http::Extensions,
    params: Params,
) -> WebResult<Response> {
    let user = signed_in(&viewer, Some(&params))?;
    let ip = crate::client_address::client_ip(&request);
    let result = accounts::change_password(
        &state,
        user,
        &nested(&params, "user", "password"),
        &nested(&params, "user", "new_password"),
        &nested(&params, "user", "password_confirmation"),
        ip,
    )
    .await;
    match result {
        Ok(()) => {
            let notice = Flash::notice("Password was successfully updated. Please sign in again.");
            let mut response = view::redirect_with(&state, "/users/sign_in", notice);
            let ended = super::session::end(&state, &viewer).await?;
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, ended);
            Ok(response)
        }
        Err(err) => finish(&state, PASSWORD_PATH, |()| String::new(), Err(err)),
    }
}
