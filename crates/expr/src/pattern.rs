//! A compiled `=~` pattern: RE2 semantics (the `regex` family's), built so that compiling one
//! stays cheap whatever the rest of the binary enables.
//!
//! Why not `regex::Regex`: its engine builds a full DFA for small patterns whenever
//! `regex-automata`'s `dfa-build` feature is on, and Cargo turns features on for the whole
//! build: `tracing-subscriber`'s `env-filter` (through `matchers`) does, so in the server every
//! pattern compile paid for determinization (a 50-job config parsed in 4.2–8.4 ms instead of
//! 1.5 ms, measured with the `plan` bench built alone and with `-p pipewright`). Patterns are
//! compiled on every config-cache miss, and `=~ $VAR` patterns on every plan; they match short
//! strings a few times, which the lazy DFA does as well without the up-front cost.

use regex_automata::meta;

/// A pattern and the text it was written as (two patterns are equal when their texts are, as
/// Ruby compares `Regexp`s by source).
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: meta::Regex,
}

impl Pattern {
    /// Compiles `source` (inline flags such as `(?i)` included) with the limits the
    /// expression language allows: 1 MiB for the compiled program and for the lazy DFA's cache.
    pub fn new(source: String) -> Result<Self, Box<meta::BuildError>> {
        let config = meta::Config::new()
            .nfa_size_limit(Some(1 << 20))
            .hybrid_cache_capacity(1 << 20)
            // What `regex::Regex` would do, minus the full DFA (see the module's comment).
            .dfa(false)
            .utf8_empty(true);
        let regex = meta::Builder::new()
            .configure(config)
            .build(&source)
            .map_err(Box::new)?;
        Ok(Pattern { source, regex })
    }

    /// The pattern as written (after the flags were turned into an inline group).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_regex_does() {
        let p = Pattern::new("(?i)^release/v\\d+$".into()).unwrap();
        assert!(p.is_match("RELEASE/v12"));
        assert!(!p.is_match("release/v12-rc"));
        assert_eq!(p.as_str(), "(?i)^release/v\\d+$");
        // Unicode classes and an empty match in a multi-byte haystack, as `regex` behaves.
        let p = Pattern::new("^\\w+é$".into()).unwrap();
        assert!(p.is_match("caféé"));
        assert!(Pattern::new("".into()).unwrap().is_match("ü"));
    }

    #[test]
    fn a_pattern_over_the_size_limit_is_refused() {
        assert!(Pattern::new("(\\w{100}){100}".into()).is_err());
        assert!(Pattern::new("(".into()).is_err());
    }
}
