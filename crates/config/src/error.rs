//! The config engine's one error: a message in GitLab's words where GitLab has them, and where
//! in which file it happened when that is known.

use std::fmt;

/// Where in a config file something was written (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub message: String,
    pub location: Option<Location>,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
            location: None,
        }
    }

    pub fn at(message: impl Into<String>, location: Location) -> Self {
        ConfigError {
            message: message.into(),
            location: Some(location),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(
                f,
                "{} (in {} at line {}, column {})",
                self.message, l.file, l.line, l.column
            ),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
