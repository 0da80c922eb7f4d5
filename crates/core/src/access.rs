//! Project roles and visibility, with GitLab's numeric access levels.

use serde::{Deserialize, Serialize};

/// A member's role in a project, ordered so that `>=` means "at least this role".
/// The numbers are GitLab's (`Gitlab::Access`), which the API exposes as `access_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "i64", try_from = "i64")]
pub enum AccessLevel {
    Guest = 10,
    Reporter = 20,
    Developer = 30,
    Maintainer = 40,
    Owner = 50,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 5] = [
        AccessLevel::Guest,
        AccessLevel::Reporter,
        AccessLevel::Developer,
        AccessLevel::Maintainer,
        AccessLevel::Owner,
    ];

    pub fn from_i64(value: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|l| *l as i64 == value)
    }

    pub fn as_i64(self) -> i64 {
        self as i64
    }

    pub fn name(self) -> &'static str {
        match self {
            AccessLevel::Guest => "Guest",
            AccessLevel::Reporter => "Reporter",
            AccessLevel::Developer => "Developer",
            AccessLevel::Maintainer => "Maintainer",
            AccessLevel::Owner => "Owner",
        }
    }
}

impl From<AccessLevel> for i64 {
    fn from(level: AccessLevel) -> i64 {
        level as i64
    }
}

impl TryFrom<i64> for AccessLevel {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        AccessLevel::from_i64(value).ok_or_else(|| format!("invalid access level {value}"))
    }
}

/// Who may see a project when they are not a member of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Members only; everyone else gets a 404, never a 403.
    Private,
    /// Any signed-in user can read.
    Internal,
    /// Anyone, even anonymous, can read.
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Visibility::Private),
            "internal" => Some(Visibility::Internal),
            "public" => Some(Visibility::Public),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_levels_are_gitlabs_numbers_and_ordered() {
        assert_eq!(AccessLevel::from_i64(40), Some(AccessLevel::Maintainer));
        assert_eq!(AccessLevel::from_i64(35), None);
        assert!(AccessLevel::Owner > AccessLevel::Maintainer);
        assert!(AccessLevel::Developer >= AccessLevel::Developer);
    }
}
