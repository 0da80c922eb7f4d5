//! Tokens and passwords on the wire: serialized as plain strings, never printed by `Debug`, so
//! a logged payload or update cannot leak a runner token, a job token or a registry password.

use serde::{Deserialize, Serialize};

/// A secret string (a runner token, a job token, a password). `Debug` prints `[MASKED]`;
/// [`SecretString::expose`] is the one way to the text.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(secret: impl Into<String>) -> SecretString {
        SecretString(secret.into())
    }

    /// The secret itself, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SecretString {
    fn from(secret: &str) -> SecretString {
        SecretString::new(secret)
    }
}

impl From<String> for SecretString {
    fn from(secret: String) -> SecretString {
        SecretString(secret)
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[MASKED]")
    }
}

#[cfg(test)]
mod tests {
    use super::SecretString;

    #[test]
    fn debug_never_shows_the_secret() {
        let token = SecretString::new("glcbt-abc123");
        assert_eq!(format!("{token:?}"), "[MASKED]");
        assert_eq!(token.expose(), "glcbt-abc123");
    }
}
