//! Malformed strings are refused before anything reads them: a NUL byte or invalid UTF-8 in a
//! request's path, query string, parameters or HTTP Basic credentials. There is no legitimate
//! use for either, and letting them through means SQLite stores them and PostgreSQL fails on
//! them (`invalid byte sequence for encoding "UTF8": 0x00`, a 500).
//!
//! GitLab does this once, in front of everything (API, git over HTTP, pages):
//! `Gitlab::Middleware::HandleMalformedStrings` (lib/gitlab/middleware/handle_malformed_strings.rb)
//! answers `400` with `Content-Type: text/plain` and the body `Bad Request` when the
//! percent-decoded path, the decoded Basic credentials (or the raw `Authorization` value) or any
//! parameter value (query, form or JSON body, nested) contains a NUL byte or invalid UTF-8, or
//! cannot be decoded at all. Pipewright checks the same things in two places that answer alike:
//! [`refuse_malformed`], a layer over every route, for what comes before the body, and
//! [`crate::params::Params`], where bodies are parsed (urlencoded, multipart and JSON), through
//! [`check_value`]. Raw bodies (git packs, job logs, artifact files) are data and are not
//! checked, as in GitLab. Stricter than GitLab in two details: keys are checked as well as
//! values, and nesting is checked to any depth (GitLab stops at three levels).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

/// The layer: refuses a request whose path, query string or Basic credentials are malformed.
pub async fn refuse_malformed(request: Request, next: Next) -> Response {
    if url_malformed(request.uri()) || credentials_malformed(request.headers()) {
        return crate::error::malformed_response();
    }
    next.run(request).await
}

fn url_malformed(uri: &axum::http::Uri) -> bool {
    if !well_formed(uri.path()) {
        return true;
    }
    let Some(query) = uri.query() else {
        return false;
    };
    query
        .split(['&', ';'])
        .flat_map(|pair| pair.splitn(2, '='))
        .any(|component| !well_formed(component))
}

/// Whether a URL component decodes to well-formed text. A URI holds only visible ASCII, so
/// one without `%` is well formed as it is (the common case costs no allocation).
fn well_formed(component: &str) -> bool {
    !component.contains('%') || decode(component.as_bytes(), false).is_some()
}

/// A NUL byte in HTTP Basic credentials (headers themselves cannot carry one; base64 can).
fn credentials_malformed(headers: &axum::http::HeaderMap) -> bool {
    matches!(
        crate::basic_auth::credentials(headers),
        Ok(Some((username, secret))) if username.contains('\0') || secret.contains('\0')
    )
}

/// Percent-decodes `raw` (with `+` as a space in form encoding) into well-formed text: `None`
/// for a bad escape (`%zz`, a lone `%`), invalid UTF-8, or a NUL byte.
pub fn decode(raw: &[u8], plus_is_space: bool) -> Option<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'%' => {
                let hex = tail.get(..2)?;
                let text = std::str::from_utf8(hex).ok()?;
                bytes.push(u8::from_str_radix(text, 16).ok()?);
                rest = &tail[2..];
                continue;
            }
            b'+' if plus_is_space => bytes.push(b' '),
            other => bytes.push(other),
        }
        rest = tail;
    }
    let text = String::from_utf8(bytes).ok()?;
    (!text.contains('\0')).then_some(text)
}

/// Whether a parsed parameter (a JSON value, or what a form built) holds a NUL byte in any key
/// or string, at any depth. (Invalid UTF-8 cannot reach a `Value`: parsing refused it.)
pub fn check_value(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.contains('\0'),
        Value::Array(items) => items.iter().all(check_value),
        Value::Object(map) => map.iter().all(|(k, v)| !k.contains('\0') && check_value(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn uri(s: &str) -> axum::http::Uri {
        s.parse().expect("a URI")
    }

    #[test]
    fn nul_bytes_bad_escapes_and_invalid_utf8_are_malformed() {
        for bad in [
            "/api/v4/projects/root%2Fdemo%00",
            "/api/v4/projects/%ff%fe",
            "/api/v4/projects/%zz",
            "/api/v4/projects/50%",
            "/api/v4/projects?search=a%00",
            "/api/v4/projects?search=%c0",
            "/api/v4/projects?se%00arch=a",
            "/api/v4/projects?a=1;b=%00",
            "/api/v4/users?username=%",
        ] {
            assert!(url_malformed(&uri(bad)), "{bad}");
        }
        for good in [
            "/api/v4/projects/root%2Fdemo",
            "/api/v4/projects?search=caf%C3%A9+au+lait&per_page=2",
            "/root/demo.git/info/refs?service=git-upload-pack",
            "/api/v4/projects?flag&x=",
            "/-/health",
        ] {
            assert!(!url_malformed(&uri(good)), "{good}");
        }
    }

    #[test]
    fn decoding_keeps_what_forms_mean() {
        assert_eq!(decode(b"a+b%20c", true).as_deref(), Some("a b c"));
        assert_eq!(decode(b"a+b", false).as_deref(), Some("a+b"));
        assert_eq!(decode(b"caf%C3%A9", true).as_deref(), Some("café"));
        assert_eq!(decode(b"%00", true), None);
        assert_eq!(decode(b"%4", true), None);
        assert_eq!(decode(b"%\xc3\xa9", true), None);
    }

    #[test]
    fn nested_values_are_checked_at_any_depth() {
        assert!(check_value(&json!({"a": ["b", {"c": 1, "d": true}]})));
        assert!(!check_value(&json!({"a": "b\u{0}"})));
        assert!(!check_value(&json!({"a": [{"b": ["c", "\u{0}"]}]})));
        assert!(!check_value(&json!({"a\u{0}": "b"})));
    }
}
