//! The web UI's one error type and the one place it becomes a page.
//!
//! Pages never show JSON: a missing or invisible resource is GitLab's 404 page (never a 403
//! that would reveal a private project), a signed-out visitor is sent to the sign-in page and
//! back, and anything unexpected is logged once, here, and shown as a plain 500 page without
//! details (a 503 page when the database is unavailable). API errors that reach a page (a page reusing an API operation) are mapped here too.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("not found")]
    NotFound,
    /// A page that needs a signed-in user, seen by a visitor.
    #[error("sign-in required")]
    SignInRequired(String),
    /// A form whose CSRF token is missing or wrong (an old tab, or a forged request).
    #[error("invalid authenticity token")]
    InvalidCsrf,
    /// 429: too many failed sign-ins.
    #[error("too many requests")]
    TooManyRequests(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type WebResult<T> = Result<T, WebError>;

impl From<pipewright_store::StoreError> for WebError {
    fn from(err: pipewright_store::StoreError) -> Self {
        match err {
            pipewright_store::StoreError::NotFound => WebError::NotFound,
            other => WebError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<ApiError> for WebError {
    fn from(err: ApiError) -> Self {
        match err {
            ApiError::Unauthorized | ApiError::InvalidToken(_) => {
                WebError::SignInRequired("/".into())
            }
            ApiError::Internal(e) => WebError::Internal(e),
            // Not found, forbidden, and anything else a page did not expect: the page does not
            // exist for this viewer.
            _ => WebError::NotFound,
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(err: askama::Error) -> Self {
        WebError::Internal(anyhow::Error::new(err))
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    // A self-contained page: an error must render even when nothing else can.
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Pipewright</title><link rel=\"stylesheet\" href=\"/-/assets/app.css\"></head>\
         <body><main class=\"error-page\"><h1>{title}</h1><p>{text}</p>\
         <p><a href=\"/\">Go to the dashboard</a></p></main></body></html>"
    );
    (status, Html(body)).into_response()
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::NotFound => page(
                StatusCode::NOT_FOUND,
                "404: Page not found",
                "Make sure the address is correct and the page has not moved, or sign in with an account that can see it.",
            ),
            WebError::SignInRequired(back_to) => {
                let target = format!(
                    "/users/sign_in?redirect_to={}",
                    percent_encoding::utf8_percent_encode(
                        &back_to,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                );
                let mut response = Redirect::to(&target).into_response();
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("no-store"),
                );
                response
            }
            WebError::InvalidCsrf => page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "422: The change you requested was rejected",
                "The form was out of date or not sent from this site. Reload the page and try again.",
            ),
            WebError::TooManyRequests(text) => page(
                StatusCode::TOO_MANY_REQUESTS,
                "429: Too many requests",
                &html_escape(&text),
            ),
            WebError::Internal(err) if crate::error::database_unavailable(&err) => {
                tracing::warn!(error = %format!("{err:#}"), "database unavailable on a page");
                let mut response = page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503: Service unavailable",
                    "The database is not answering. Try again in a moment.",
                );
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from_static(crate::error::RETRY_AFTER_SECONDS),
                );
                response
            }
            WebError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error on a page");
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500: Something went wrong",
                    "The error was logged. Try again in a moment.",
                )
            }
        }
    }
}

pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
