//! A wrapper for secrets (tokens, passwords, masked values) that never prints its contents.

use std::fmt;

/// A secret string. `Debug` and `Display` print only a redacted form (the known prefix, if any,
/// followed by `****`), so a secret that ends up in a log line or an error message by mistake
/// does not leak. Use [`Secret::expose`] at the one place that really needs the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    /// The public prefix of a GitLab-style token (`glpat-`, `glptt-`, …), if it has one.
    fn prefix(&self) -> &str {
        match self.0.find('-') {
            Some(i) if i <= 6 && self.0.starts_with("gl") => &self.0[..=i],
            _ => "",
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}****)", self.prefix())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}****", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("glpat-abcdefghijklmnopqrstuvwxyz");
        assert_eq!(format!("{s:?}"), "Secret(glpat-****)");
        assert_eq!(s.to_string(), "glpat-****");
        assert_eq!(Secret::new("hunter2").to_string(), "****");
    }
}
