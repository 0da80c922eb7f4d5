//! Which ref names git accepts: the rules of `git check-ref-format` (no options), in one place.
//!
//! Every ref name that comes from a user — a trigger's or the pipelines API's `ref`, a
//! push's commands — is checked with [`is_valid_ref_name`] before anything is decided with
//! it. A name git would normalise (`refs/heads//main` is `refs/heads/main` to git) is refused
//! rather than normalised, so a check can never look at one name while git acts on another.

/// `git check-ref-format <name>`: whether `name` (a full name such as `refs/heads/main`) is a
/// ref name git accepts as it is.
///
/// The rules (see git-check-ref-format(1)): at least two `/`-separated components, none empty
/// (so no leading, trailing or doubled `/`), none starting with `.` or ending with `.lock`;
/// no `..`, no `@{`, not `@` alone; no ASCII control character, space, `~`, `^`, `:`, `?`,
/// `*`, `[` or `\`; not ending with `.`.
pub fn is_valid_ref_name(name: &str) -> bool {
    if name.is_empty() || name == "@" || name.ends_with('.') {
        return false;
    }
    if name.contains("..") || name.contains("@{") {
        return false;
    }
    let forbidden = |c: char| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    };
    if name.chars().any(forbidden) {
        return false;
    }
    let mut components = 0;
    for component in name.split('/') {
        if component.is_empty() || component.starts_with('.') || component.ends_with(".lock") {
            return false;
        }
        components += 1;
    }
    components >= 2
}

/// A branch's short name (`main`, `release/1.0`) is valid when `refs/heads/<name>` is.
pub fn is_valid_branch_name(name: &str) -> bool {
    is_valid_ref_name(&format!("refs/heads/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_git_accepts() {
        for ok in [
            "refs/heads/main",
            "refs/heads/release/1.0",
            "refs/tags/v1.0.0",
            "refs/heads/feature-x_y",
            "refs/heads/über",
            "refs/heads/a.b",
            "refs/heads/@",
            "refs/heads/x@y",
        ] {
            assert!(is_valid_ref_name(ok), "{ok}");
        }
    }

    #[test]
    fn names_git_refuses_or_would_normalise() {
        for bad in [
            "",
            "main",
            "@",
            "refs/heads//main",
            "refs/heads/main/",
            "/refs/heads/main",
            "refs/heads/.hidden",
            "refs/heads/a/.b",
            "refs/heads/main.lock",
            "refs/heads/a..b",
            "refs/heads/a@{1}",
            "refs/heads/end.",
            "refs/heads/sp ace",
            "refs/heads/tab\there",
            "refs/heads/nl\nx",
            "refs/heads/cr\rx",
            "refs/heads/nul\0x",
            "refs/heads/del\u{7f}x",
            "refs/heads/a~1",
            "refs/heads/a^",
            "refs/heads/a:b",
            "refs/heads/a?",
            "refs/heads/a*",
            "refs/heads/a[b",
            "refs/heads/a\\b",
        ] {
            assert!(!is_valid_ref_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn branch_names_are_checked_under_refs_heads() {
        assert!(is_valid_branch_name("main"));
        assert!(is_valid_branch_name("release/1.0"));
        assert!(!is_valid_branch_name("/main"));
        assert!(!is_valid_branch_name("main//x"));
        assert!(!is_valid_branch_name(""));
    }
}
