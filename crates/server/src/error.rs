//! The API's one error type and the one place it becomes an HTTP response.
//!
//! Policy: handlers return `Result<_, ApiError>` and never build error responses by hand.
//! Each variant maps to exactly one status and GitLab's body shape for it:
//! - `{"message":"404 Project Not Found"}` for missing or invisible resources (never a 403 that
//!   would leak a private project's existence),
//! - `{"error":"name is missing"}` for parameter problems, as GitLab's Grape validation says it,
//! - `{"message":{"field":["…"]}}` for model validation errors,
//! - `{"message":"500 Internal Server Error"}` for everything unexpected; the cause is logged
//!   here, once, and never sent to the client,
//! - `503` with `Retry-After` when the cause is the store's `Unavailable` (the database is
//!   down or out of connections), however deep it was wrapped: clients and load balancers
//!   can tell an outage from a bug and retry,
//! - a plain-text `Bad Request` for malformed strings (NUL bytes, invalid UTF-8), as GitLab's
//!   middleware answers them on every route (see `malformed.rs`).
//!
//! Secrets never appear in messages: errors carry parameter names, not values.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 with `"404 {what} Not Found"`; `what` is e.g. "Project", "User", or "" for a bare
    /// `"404 Not Found"`.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// GitLab's RecordNotFound rescue: `"404 Not found"` (lower-case f).
    #[error("record not found")]
    RecordNotFound,
    #[error("unauthorized")]
    Unauthorized,
    /// 401 with an OAuth-style body, as GitLab answers for revoked or expired tokens.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// 403; with a reason the body is `"403 Forbidden - {reason}"`.
    #[error("forbidden")]
    Forbidden(Option<String>),
    /// 403 for a token whose scopes do not cover the request.
    #[error("insufficient scope")]
    InsufficientScope(&'static str),
    /// 410 `"410 Gone - {reason}"` (GitLab's `render_api_error_with_reason!(410, …)`).
    #[error("gone: {0}")]
    Gone(&'static str),
    #[error("{0} is missing")]
    MissingParam(String),
    #[error("{0} is invalid")]
    InvalidParam(String),
    #[error("{0} is empty")]
    EmptyParam(String),
    /// 400 `{"error": text}` for Grape's other parameter messages.
    #[error("{0}")]
    ParamError(String),
    /// 400 `"400 Bad request - {reason}"`.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 400 plain-text `Bad Request`: a NUL byte or invalid UTF-8 in the request.
    #[error("malformed string in the request")]
    MalformedRequest,
    /// 400 `{"message": {field: [messages]}}`.
    #[error("validation failed")]
    Validation(BTreeMap<String, Vec<String>>),
    /// 409 `{"message": text}`.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 422 `{"message": text}`.
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Any other status with a prepared body (rare; for endpoint-specific shapes).
    #[error("status {0}")]
    Custom(StatusCode, Value),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let mut map = BTreeMap::new();
        map.insert(field.to_string(), vec![message.into()]);
        ApiError::Validation(map)
    }

    pub fn forbidden() -> Self {
        ApiError::Forbidden(None)
    }

    /// GitLab's 400 for a model's base error: `{"message":{"base":[message]}}`.
    pub fn base(message: &str) -> Self {
        ApiError::Custom(
            StatusCode::BAD_REQUEST,
            json!({"message": {"base": [message]}}),
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Internal(err) if database_unavailable(err) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) | ApiError::RecordNotFound => StatusCode::NOT_FOUND,
            ApiError::Unauthorized | ApiError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            ApiError::MissingParam(_)
            | ApiError::InvalidParam(_)
            | ApiError::EmptyParam(_)
            | ApiError::ParamError(_)
            | ApiError::BadRequest(_)
            | ApiError::MalformedRequest
            | ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Custom(status, _) => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            ApiError::NotFound("") => json!({"message": "404 Not Found"}),
            ApiError::NotFound(what) => json!({"message": format!("404 {what} Not Found")}),
            ApiError::RecordNotFound => json!({"message": "404 Not found"}),
            ApiError::Unauthorized => json!({"message": "401 Unauthorized"}),
            ApiError::InvalidToken(description) => {
                json!({"error": "invalid_token", "error_description": description})
            }
            ApiError::Forbidden(None) => json!({"message": "403 Forbidden"}),
            ApiError::Forbidden(Some(reason)) => {
                json!({"message": format!("403 Forbidden - {reason}")})
            }
            ApiError::InsufficientScope(scope) => json!({
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": scope,
            }),
            ApiError::Gone(reason) => json!({"message": format!("410 Gone - {reason}")}),
            ApiError::MissingParam(name) => json!({"error": format!("{name} is missing")}),
            ApiError::InvalidParam(name) => json!({"error": format!("{name} is invalid")}),
            ApiError::EmptyParam(name) => json!({"error": format!("{name} is empty")}),
            ApiError::ParamError(text) => json!({"error": text}),
            ApiError::BadRequest(reason) => {
                json!({"message": format!("400 Bad request - {reason}")})
            }
            ApiError::MalformedRequest => json!({"message": "Bad Request"}),
            ApiError::Validation(fields) => json!({"message": fields}),
            ApiError::Conflict(message) | ApiError::Unprocessable(message) => {
                json!({"message": message})
            }
            ApiError::PayloadTooLarge => json!({"message": "413 Request Entity Too Large"}),
            ApiError::UnsupportedMediaType => json!({"message": "415 Unsupported Media Type"}),
            ApiError::Custom(_, body) => body.clone(),
            ApiError::Internal(err) if database_unavailable(err) => {
                json!({"message": UNAVAILABLE_MESSAGE})
            }
            ApiError::Internal(_) => json!({"message": "500 Internal Server Error"}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            if database_unavailable(err) {
                tracing::warn!(error = %format!("{err:#}"), "database unavailable");
            } else {
                tracing::error!(error = %format!("{err:#}"), "internal error");
            }
        }
        if let ApiError::MalformedRequest = self {
            return malformed_response();
        }
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was not read: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"Pipewright\""),
            );
        }
        response
    }
}

impl From<pipewright_store::StoreError> for ApiError {
    fn from(err: pipewright_store::StoreError) -> Self {
        match err {
            pipewright_store::StoreError::NotFound => ApiError::RecordNotFound,
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// What a client is told while the database is unavailable.
pub const UNAVAILABLE_MESSAGE: &str =
    "503 Service Unavailable - the database is not answering, try again later";

/// When to try again after a 503 (the store's acquire timeout is 5 s).
pub const RETRY_AFTER_SECONDS: &str = "5";

/// Whether `err` is, or was caused by, the store's "database unavailable" — however it was
/// wrapped on the way (`anyhow` contexts, pipeline creation's own error).
pub fn database_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<pipewright_store::StoreError>()
            .is_some_and(pipewright_store::StoreError::is_unavailable)
    })
}

/// GitLab's answer to a malformed string, whatever the route.
pub fn malformed_response() -> Response {
    let mut response = (StatusCode::BAD_REQUEST, "Bad Request").into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
