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

/// The characters and shape of every path we have ever accepted: letters, digits, `_`, `-`,
/// `.`; starting with a letter, digit or `_`, ending with a letter, digit or `_`; no `..`; not
/// ending in `.git` or `.atom`; at most 255 bytes. Such a path is safe as a directory name and
/// in a URL (no `/`, no `.`/`..` segment, nothing to escape). New paths must also pass GitLab's
/// stricter rules (`project_path`, `group_path`, `username`), which accept only a subset of this;
/// this looser check serves where a path that may predate them is only looked at.
pub fn path_is_valid(path: &str) -> bool {
    let bytes = path.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    path.len() <= MAX_NAME
        && bytes.iter().all(|b| path_char(*b))
        && (first.is_ascii_alphanumeric() || *first == b'_')
        && (last.is_ascii_alphanumeric() || *last == b'_')
        && no_git_suffix(path)
        && !path.contains("..")
}

fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// `NO_SUFFIX_REGEX` (GitLab: lib/gitlab/path_regex.rb): `(?<!\.git|\.atom)`, case-sensitive.
fn no_git_suffix(path: &str) -> bool {
    !path.ends_with(".git") && !path.ends_with(".atom")
}

/// `PROJECT_PATH_FORMAT_REGEX` (GitLab: lib/gitlab/path_regex.rb):
/// `[a-zA-Z0-9_\.][a-zA-Z0-9_\-\.]*` without a `.git`/`.atom` ending.
fn project_format(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first().is_some_and(|b| *b != b'-')
        && bytes.iter().all(|b| path_char(*b))
        && no_git_suffix(path)
}

/// `NAMESPACE_FORMAT_REGEX` (GitLab: lib/gitlab/path_regex.rb): the project format that also
/// does not end in `.` (`PATH_REGEX_STR + '[a-zA-Z0-9_\-]|[a-zA-Z0-9_]'`).
fn namespace_format(path: &str) -> bool {
    project_format(path) && !path.ends_with('.')
}

/// `Gitlab::Regex.oci_repository_path_regex` (GitLab: lib/gitlab/regex.rb,
/// `\A[a-zA-Z0-9]+([._-][a-zA-Z0-9]+)*\z`), which app/models/project.rb and
/// app/models/namespace.rb (groups and users' namespaces) check on top of the format whenever a
/// path is set (GitLab 14.9+ for projects): letters and digits at both ends, and never two of
/// `.`, `_`, `-` in a row. So `.x`, `_x`, `x_`, `x-` and `a..b` are refused, as on GitLab.
fn oci_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    let special = |b: &u8| matches!(b, b'_' | b'-' | b'.');
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(|b| path_char(*b))
        && !bytes.windows(2).any(|w| special(&w[0]) && special(&w[1]))
}

/// `oci_repository_path_regex_message` (GitLab: lib/gitlab/regex.rb, current wording; GitLab
/// before 17 said "must not start or end with a special character and must not contain
/// consecutive special characters." — which release changed it could not be verified).
const OCI_PATH_FORMAT: &str = "can only include non-accented letters, digits, '_', '-' and '.'. It must not start with '-', '_', or '.', nor end with '-', '_', '.', '.git', or '.atom'.";

/// `validates :path, length: { maximum: 255 }` (app/models/project.rb, namespace.rb).
fn path_length(errors: &mut Errors, field: &str, path: &str) {
    if path.len() > MAX_NAME {
        errors.add(field, "is too long (maximum is 255 characters)");
    }
}

fn oci(errors: &mut Errors, field: &str, path: &str) {
    if !oci_path(path) {
        errors.add(field, OCI_PATH_FORMAT);
    }
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
/// GitLab's model runs the path validator first, then the length and OCI format
/// (app/models/project.rb), each adding its own message.
pub fn project_path(errors: &mut Errors, path: &str) {
    if !project_format(path) {
        errors.add("path", PROJECT_PATH_FORMAT);
    } else if reserved(PROJECT_WILDCARD_ROUTES, path) {
        reserved_name(errors, "path", path);
    }
    path_length(errors, "path", path);
    oci(errors, "path", path);
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
    // app/models/namespace.rb: length, then the OCI format, then `NamespacePathValidator`.
    path_length(errors, "path", path);
    oci(errors, "path", path);
    if !namespace_format(path) {
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
        oci(errors, "username", username);
    } else {
        // The user's namespace's errors, which app/models/user.rb copies to `username`.
        path_length(errors, "username", username);
        oci(errors, "username", username);
        if !namespace_format(username) {
            errors.add("username", NAMESPACE_PATH_FORMAT);
        }
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
    use super::{namespace_format, oci_path, path_is_valid, project_format};

    #[test]
    fn paths() {
        for ok in ["demo", "my-project", "a.b", "_x", "v1"] {
            assert!(path_is_valid(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", "a/b", "..", "x.git", "a..b", "é", "a b"] {
            assert!(!path_is_valid(bad), "{bad}");
        }
    }

    /// lib/gitlab/regex.rb `oci_repository_path_regex` and path_regex.rb's format regexes.
    #[test]
    fn gitlab_path_rules() {
        for ok in ["a", "demo", "my-project", "a.b", "a_b-c.d", "V1", "1"] {
            assert!(
                oci_path(ok) && project_format(ok) && namespace_format(ok),
                "{ok}"
            );
        }
        for bad in [
            "", ".x", "_x", "x_", "x-", "-x", "x.", "a..b", "a._b", "a-_b", "é", "a b",
        ] {
            assert!(!oci_path(bad), "{bad}");
        }
        // The format regexes alone are looser, as GitLab's.
        for ok in [".x", "_x", "x_", "a..b", "x."] {
            assert!(project_format(ok), "{ok}");
        }
        assert!(!namespace_format("x.") && !project_format("-x") && !project_format("x.git"));
        assert!(
            oci_path("x.git") && oci_path("x.atom"),
            "only the format refuses these"
        );
    }
}
