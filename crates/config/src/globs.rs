//! Path globs for `rules:exists`, `rules:changes` and `only/except: changes`: each compiled at
//! most once per parsed config (the server caches parsed configs by blob id) — on first use,
//! so a config whose `changes` never meets a diff pays nothing — and matched within GitLab's
//! limit on how much work a clause may cost.
//!
//! GitLab: lib/gitlab/ci/build/rules/rule/clause/exists.rb and
//! lib/gitlab/ci/build/rules/rule/clause/changes.rb. A glob without metacharacters is looked
//! up as a path, `**/*.ext` is a suffix test, and every other glob is matched against paths
//! one by one — at most `MAX_PATTERN_COMPARISONS` (globs × paths) of them: past that GitLab
//! does not compare at all and takes the clause as satisfied, and so does Pipewright.
//!
//! Glob syntax (as before this module): `*` within a path segment, `**` across segments,
//! `?` one character, `{a,b}` alternatives; a leading `./` is ignored.

use std::sync::OnceLock;

use regex::Regex;

/// Glob × path comparisons a clause may need; past this the clause is taken as satisfied.
pub const MAX_PATTERN_COMPARISONS: usize = 50_000;

/// GitLab's `WILDCARD_NESTED_PATTERN`: the prefix of an extension glob.
const WILDCARD_NESTED: &str = "**/*";

/// The globs of one clause, ready to match.
#[derive(Debug, Clone)]
pub struct PathGlobs {
    globs: Vec<Glob>,
}

#[derive(Debug, Clone)]
enum Glob {
    /// No metacharacters: this exact path.
    Exact(String),
    /// `**/*.ext`: any path ending in `.ext`.
    Extension(String),
    /// Anything else, compiled on first use; one that does not compile matches nothing.
    Pattern(Pattern),
}

#[derive(Debug, Clone)]
struct Pattern {
    glob: String,
    compiled: OnceLock<Option<Regex>>,
}

impl Pattern {
    fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| Regex::new(&to_regex(&self.glob)).ok())
            .as_ref()
    }
}

impl PathGlobs {
    pub fn new(patterns: &[String]) -> PathGlobs {
        PathGlobs {
            globs: patterns.iter().map(|p| Glob::new(p)).collect(),
        }
    }

    /// `rules:exists`: whether any glob matches one of the commit's `files`. `stop` is asked
    /// before each scan of the file list; once it answers true the answer no longer matters
    /// (the caller abandons the plan) and `false` is returned at once.
    pub fn exists_in(&self, files: &[String], stop: &dyn Fn() -> bool) -> bool {
        let patterns: Vec<&Pattern> = self
            .globs
            .iter()
            .filter_map(|g| match g {
                Glob::Pattern(pattern) => Some(pattern),
                _ => None,
            })
            .collect();
        let cheap = self.globs.iter().any(|glob| match glob {
            Glob::Exact(path) => !stop() && files.iter().any(|f| f == path),
            Glob::Extension(suffix) => !stop() && files.iter().any(|f| f.ends_with(suffix)),
            Glob::Pattern(_) => false,
        });
        if cheap {
            return true;
        }
        if patterns.is_empty() {
            return false;
        }
        if patterns.len().saturating_mul(files.len()) > MAX_PATTERN_COMPARISONS {
            return true;
        }
        patterns
            .into_iter()
            .filter_map(Pattern::regex)
            .any(|re| !stop() && files.iter().any(|f| re.is_match(f)))
    }

    /// `changes`: whether any glob matches one of the `changed` paths; past the comparison
    /// limit the clause is taken as satisfied, as GitLab does.
    pub fn any_changed(&self, changed: &[String], stop: &dyn Fn() -> bool) -> bool {
        if self.globs.len().saturating_mul(changed.len()) > MAX_PATTERN_COMPARISONS {
            return true;
        }
        self.globs
            .iter()
            .any(|glob| !stop() && changed.iter().any(|path| glob.matches(path)))
    }
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        let pattern = pattern.trim_start_matches("./");
        if is_exact(pattern) {
            return Glob::Exact(pattern.to_string());
        }
        if let Some(suffix) = pattern.strip_prefix(WILDCARD_NESTED)
            && suffix.starts_with('.')
            && !suffix.contains('/')
            && is_exact(suffix)
        {
            return Glob::Extension(suffix.to_string());
        }
        Glob::Pattern(Pattern {
            glob: pattern.to_string(),
            compiled: OnceLock::new(),
        })
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Glob::Exact(exact) => path == exact,
            Glob::Extension(suffix) => path.ends_with(suffix.as_str()),
            Glob::Pattern(pattern) => pattern.regex().is_some_and(|re| re.is_match(path)),
        }
    }
}

/// GitLab's `exact_glob?`: nothing `File.fnmatch?` would treat specially.
fn is_exact(glob: &str) -> bool {
    !glob.contains(['*', '?', '[', '{'])
}

fn to_regex(pattern: &str) -> String {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '{' => re.push_str("(?:"),
            '}' => re.push(')'),
            ',' => re.push('|'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).matches(path)
    }

    fn never() -> bool {
        false
    }

    #[test]
    fn globs_match_as_before() {
        assert!(matches("*.md", "README.md"));
        assert!(!matches("*.md", "docs/README.md"));
        assert!(matches("docs/**/*", "docs/a/b.md"));
        assert!(matches("**/*.rs", "src/main.rs"));
        assert!(matches("**/*.rs", "main.rs"));
        assert!(!matches("**/*.rs", "main.rsx"));
        assert!(matches("{a,b}.txt", "b.txt"));
        assert!(matches("./Dockerfile", "Dockerfile"));
        assert!(!matches("Dockerfile", "sub/Dockerfile"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "a/c"));
    }

    #[test]
    fn globs_are_classified_as_gitlab_does() {
        assert!(matches!(Glob::new("Dockerfile"), Glob::Exact(_)));
        assert!(matches!(Glob::new("**/*.js"), Glob::Extension(_)));
        assert!(matches!(Glob::new("**/*.so.1"), Glob::Extension(_)));
        assert!(matches!(Glob::new("**/*.{js,ts}"), Glob::Pattern(_)));
        assert!(matches!(Glob::new("src/*.js"), Glob::Pattern(_)));
    }

    #[test]
    fn too_many_comparisons_satisfy_the_clause() {
        let files: Vec<String> = (0..3_000).map(|i| format!("src/file{i}.txt")).collect();
        let few: Vec<String> = (0..16).map(|i| format!("nothing-{i}/*.md")).collect();
        let many: Vec<String> = (0..200).map(|i| format!("nothing-{i}/*.md")).collect();
        // 16 × 3,000 = 48,000 comparisons: made, and nothing matches.
        assert!(!PathGlobs::new(&few).exists_in(&files, &never));
        assert!(!PathGlobs::new(&few).any_changed(&files, &never));
        // 200 × 3,000 = 600,000: not made; the clause holds.
        assert!(PathGlobs::new(&many).exists_in(&files, &never));
        assert!(PathGlobs::new(&many).any_changed(&files, &never));
        // Exact and extension globs do not count toward the limit for `exists`.
        let mut exact: Vec<String> = (0..200).map(|i| format!("missing-{i}")).collect();
        exact.push("**/*.md".into());
        assert!(!PathGlobs::new(&exact).exists_in(&files, &never));
        exact.push("src/file7.txt".into());
        assert!(PathGlobs::new(&exact).exists_in(&files, &never));
    }

    #[test]
    fn a_stopped_scan_ends_at_once() {
        let files: Vec<String> = vec!["a.md".into()];
        let globs = PathGlobs::new(&["*.md".to_string()]);
        assert!(globs.exists_in(&files, &never));
        assert!(!globs.exists_in(&files, &|| true));
        assert!(!globs.any_changed(&files, &|| true));
    }
}
