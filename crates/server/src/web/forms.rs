//! What the self-service forms share: a refusal as GitLab's pages word it (a model's
//! `errors.full_messages`: "Name can't be blank"), and the redirect that carries it.

use axum::response::Response;
use serde_json::Value;

use super::error::{WebError, WebResult};
use super::settings::api_message;
use super::view::{self, Flash};
use crate::error::ApiError;
use crate::state::AppState;

/// `expires_at` → `Expires at`, as Rails' `human_attribute_name`.
fn humanize(field: &str) -> String {
    let text = field.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// An API refusal as a page shows it: validation errors as full sentences
/// ("Name can't be blank. Scopes can't be blank."), anything else as the API's message.
pub fn full_message(err: &ApiError) -> String {
    let ApiError::Validation(fields) = err else {
        return api_message(err);
    };
    fields
        .iter()
        .flat_map(|(field, messages)| {
            messages
                .iter()
                .map(move |m| format!("{} {m}", humanize(field)))
        })
        .collect::<Vec<_>>()
        .join(". ")
        + "."
}

/// Redirects to `back` with `success`, or with the refusal; a server error stays one.
pub fn finish<T>(
    state: &AppState,
    back: &str,
    success: impl FnOnce(T) -> String,
    result: Result<T, ApiError>,
) -> WebResult<Response> {
    match result {
        Ok(value) => Ok(view::redirect_with(
            state,
            back,
            Flash::notice(success(value)),
        )),
        Err(ApiError::Internal(e)) => Err(WebError::Internal(e)),
        Err(e) => Ok(view::redirect_with(
            state,
            back,
            Flash::alert(full_message(&e)),
        )),
    }
}

/// A text field of a form, trimmed of nothing, or "".
pub fn field(params: &crate::params::Params, name: &str) -> String {
    params.str(name).ok().flatten().unwrap_or_default()
}

/// A Rack-nested field (`user[password]` arrives as `{"user": {"password": …}}`), or "".
pub fn nested(params: &crate::params::Params, outer: &str, name: &str) -> String {
    params
        .get(outer)
        .and_then(|o| o.get(name))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_read_as_sentences() {
        let mut errors = crate::validate::Errors::default();
        errors.add("name", "can't be blank");
        errors.add("expires_at", "must be in the future");
        let err = errors.into_result().unwrap_err();
        assert_eq!(
            full_message(&err),
            "Expires at must be in the future. Name can't be blank."
        );
    }
}
