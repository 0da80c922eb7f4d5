//! Model validation with GitLab's messages, collected per field into
//! `{"message": {"field": ["…"]}}`.

use std::collections::BTreeMap;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Default)]
pub struct Errors(BTreeMap<String, Vec<String>>);

impl Errors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }

    pub fn into_result(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

const MAX_NAME: usize = 255;

/// Top-level paths that belong to the server, never to a namespace: a top-level group may not
/// take them (GitLab: `lib/gitlab/path_regex.rb`, `TOP_LEVEL_ROUTES`, the part of that list
/// this server routes or may route), and `routes::collapse_nested_namespace` leaves their URLs
/// alone.
pub const RESERVED_TOP_LEVEL: &[&str] = &[
    "-",
    ".well-known",
    "admin",
    "api",
    "assets",
    "dashboard",
    "explore",
    "groups",
    "help",
    "projects",
    "public",
    "search",
    "uploads",
    "users",
];

/// GitLab's rule for CI/CD variable keys (project variables, pipeline and trigger variables):
/// only letters, digits and `_`. Emptiness and length are checked by each caller, whose
/// messages differ.
pub fn variable_key_chars(key: &str) -> bool {
    key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// GitLab's path rule: letters, digits, `_`, `-`, `.`; starts with a letter, digit or `_`;
/// does not end in `.git` or `.atom` or with a special character.
pub fn path_is_valid(path: &str) -> bool {
    let bytes = path.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    path.len() <= MAX_NAME
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && (first.is_ascii_alphanumeric() || *first == b'_')
        && (last.is_ascii_alphanumeric() || *last == b'_')
        && !path.ends_with(".git")
        && !path.ends_with(".atom")
        && !path.contains("..")
}

/// Top-level paths a namespace may not take, as its pages would be masked by the server's own
/// routes (GitLab: lib/gitlab/path_regex.rb, `TOP_LEVEL_ROUTES`; the message is the
/// namespace path validator's, not verified word for word).
const RESERVED_NAMESPACES: &[&str] = &[
    "-",
    ".well-known",
    "404.html",
    "422.html",
    "500.html",
    "502.html",
    "503.html",
    "abuse_reports",
    "admin",
    "api",
    "assets",
    "autocomplete",
    "ci",
    "dashboard",
    "explore",
    "favicon.ico",
    "files",
    "groups",
    "health_check",
    "help",
    "import",
    "invites",
    "jwt",
    "notification_settings",
    "oauth",
    "profile",
    "projects",
    "public",
    "robots.txt",
    "s",
    "search",
    "sent_notifications",
    "snippets",
    "u",
    "unsubscribes",
    "uploads",
    "users",
];

pub fn username(errors: &mut Errors, username: &str) {
    if username.is_empty() {
        errors.add("username", "can't be blank");
    } else if RESERVED_NAMESPACES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(username))
    {
        errors.add("username", "is a reserved name");
    } else if !path_is_valid(username) {
        errors.add(
            "username",
            "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-' or end in '.', '.git' or '.atom'.",
        );
    }
}

pub fn email(errors: &mut Errors, email: &str) {
    let valid = email.len() <= MAX_NAME
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.starts_with('.')
        });
    if !valid {
        errors.add("email", "is invalid");
    }
}

pub fn name(errors: &mut Errors, field: &str, name: &str) {
    if name.trim().is_empty() {
        errors.add(field, "can't be blank");
    } else if name.chars().count() > MAX_NAME {
        errors.add(field, "is too long (maximum is 255 characters)");
    } else if name.chars().any(char::is_control) {
        errors.add(
            field,
            "can contain only letters, digits, emoji, '_', '.', '+', dashes, or spaces.",
        );
    }
}

pub fn password(errors: &mut Errors, password: &str) {
    if password.chars().count() < 8 {
        errors.add("password", "is too short (minimum is 8 characters)");
    } else if password.len() > 128 {
        errors.add("password", "is too long (maximum is 128 characters)");
    }
}

#[cfg(test)]
mod tests {
    use super::path_is_valid;

    #[test]
    fn paths() {
        for ok in ["demo", "my-project", "a.b", "_x", "v1"] {
            assert!(path_is_valid(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", "a/b", "..", "x.git", "a..b", "é", "a b"] {
            assert!(!path_is_valid(bad), "{bad}");
        }
    }
}
