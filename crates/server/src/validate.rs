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

/// The paths GitLab routes at the top level (GitLab: lib/gitlab/path_regex.rb,
/// `TOP_LEVEL_ROUTES`, GitLab 17.x): no user and no top-level group may take one, as its pages
/// would be masked by the server's own routes (`/api/…`, `/groups/…`, `/-/…`), and
/// `routes::collapse_nested_namespace` leaves the URLs under them alone.
pub const TOP_LEVEL_ROUTES: &[&str] = &[
    "-",
    ".well-known",
    "404.html",
    "422.html",
    "500.html",
    "502.html",
    "503.html",
    "admin",
    "api",
    "apple-touch-icon.png",
    "assets",
    "dashboard",
    "deploy.html",
    "explore",
    "favicon.ico",
    "favicon.png",
    "groups",
    "health_check",
    "help",
    "import",
    "jwt",
    "login",
    "o",
    "oauth",
    "profile",
    "projects",
    "public",
    "robots.txt",
    "s",
    "search",
    "sitemap",
    "sitemap.xml",
    "sitemap.xml.gz",
    "slash-command-logo.png",
    "snippets",
    "unsubscribes",
    "uploads",
    "users",
    "v2",
];

/// The words that follow a project's path in its URLs outside `/-/` (GitLab: `PROJECT_WILDCARD_ROUTES`
/// in lib/gitlab/path_regex.rb): a project, or a group below the top level, named one of them
/// would make `/a/b/edit` or `/a/b/-/jobs` ambiguous for the router. GitLab's two-segment
/// entries (`environments/folders`, `gitlab-lfs/objects`, `info/lfs/objects`) can never equal
/// one path segment, so they are left out.
pub const PROJECT_WILDCARD_ROUTES: &[&str] = &[
    "-",
    "badges",
    "blame",
    "blob",
    "builds",
    "commits",
    "create",
    "create_dir",
    "edit",
    "files",
    "find_file",
    "new",
    "preview",
    "raw",
    "refs",
    "tree",
    "update",
    "wikis",
];

/// What follows `/groups/*id/` (GitLab: `GROUP_ROUTES`): a subgroup may not take it either.
pub const GROUP_ROUTES: &[&str] = &["-"];

/// GitLab's format message for a project's path (`project_path_format_message`).
const PROJECT_PATH_FORMAT: &str = "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'";

/// GitLab's format message for a namespace's path: a group's or a username
/// (`namespace_format_message`).
const NAMESPACE_PATH_FORMAT: &str = "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-' or end in '.', '.git' or '.atom'.";

/// GitLab compares reserved words case-insensitively (`Regexp::IGNORECASE` in path_regex.rb).
fn reserved(list: &[&str], path: &str) -> bool {
    list.iter().any(|word| word.eq_ignore_ascii_case(path))
}

/// The message `AbstractPathValidator` adds for a reserved path (GitLab:
/// app/validators/abstract_path_validator.rb): `"#{value} is a reserved name"`.
fn reserved_name(errors: &mut Errors, field: &str, path: &str) {
    errors.add(field, format!("{path} is a reserved name"));
}

/// A project's `path` (GitLab: app/validators/project_path_validator.rb): the format first,
/// then the words of `PROJECT_WILDCARD_ROUTES` (a project directly below a user or a
/// top-level group may still be called `api`: only its namespace's segment is top-level).
pub fn project_path(errors: &mut Errors, path: &str) {
    if !path_is_valid(path) {
        errors.add("path", PROJECT_PATH_FORMAT);
    } else if reserved(PROJECT_WILDCARD_ROUTES, path) {
        reserved_name(errors, "path", path);
    }
}

/// A group's `path` (GitLab: app/validators/namespace_path_validator.rb over
/// `full_namespace_path_regex`): a top-level group may not take a top-level route, a subgroup
/// not a word of `PROJECT_WILDCARD_ROUTES | GROUP_ROUTES`.
pub fn group_path(errors: &mut Errors, path: &str, top_level: bool) {
    let taken = if top_level {
        reserved(TOP_LEVEL_ROUTES, path)
    } else {
        reserved(PROJECT_WILDCARD_ROUTES, path) || reserved(GROUP_ROUTES, path)
    };
    if !path_is_valid(path) {
        errors.add("path", NAMESPACE_PATH_FORMAT);
    } else if taken {
        reserved_name(errors, "path", path);
    }
}

/// A username, which is also its user's top-level namespace (GitLab: app/models/user.rb,
/// `exclusion: { in: Gitlab::PathRegex::TOP_LEVEL_ROUTES, message: '%{value} is a reserved
/// name' }`, and the namespace's `NamespacePathValidator`, which ignores case).
pub fn username(errors: &mut Errors, username: &str) {
    if username.is_empty() {
        errors.add("username", "can't be blank");
    } else if reserved(TOP_LEVEL_ROUTES, username) {
        reserved_name(errors, "username", username);
    } else if !path_is_valid(username) {
        errors.add("username", NAMESPACE_PATH_FORMAT);
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
