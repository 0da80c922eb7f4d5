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

/// Who may create projects in a group: GitLab's `project_creation_level` (lib/gitlab/access.rb,
/// `project_creation_string_options`; the numbers are its constants, which the application
/// setting `default_project_creation` takes). A group without its own level follows the
/// instance's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectCreationLevel {
    /// `noone`: nobody, not even Owners or administrators.
    NoOne,
    /// `owner`: Owners (GitLab 17.7+).
    Owner,
    /// `maintainer`: Maintainers and Owners.
    Maintainer,
    /// `developer`: Developers, Maintainers and Owners (GitLab's default).
    Developer,
    /// `administrator`: instance administrators only.
    Administrator,
}

impl ProjectCreationLevel {
    pub const ALL: [ProjectCreationLevel; 5] = [
        ProjectCreationLevel::NoOne,
        ProjectCreationLevel::Owner,
        ProjectCreationLevel::Maintainer,
        ProjectCreationLevel::Developer,
        ProjectCreationLevel::Administrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectCreationLevel::NoOne => "noone",
            ProjectCreationLevel::Owner => "owner",
            ProjectCreationLevel::Maintainer => "maintainer",
            ProjectCreationLevel::Developer => "developer",
            ProjectCreationLevel::Administrator => "administrator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// GitLab's number: `NO_ONE_PROJECT_ACCESS` 0, `MAINTAINER_PROJECT_ACCESS` 1,
    /// `DEVELOPER_MAINTAINER_PROJECT_ACCESS` 2, `ADMINISTRATOR_PROJECT_ACCESS` 3,
    /// `OWNER_PROJECT_ACCESS` 4.
    pub fn as_i64(self) -> i64 {
        match self {
            ProjectCreationLevel::NoOne => 0,
            ProjectCreationLevel::Maintainer => 1,
            ProjectCreationLevel::Developer => 2,
            ProjectCreationLevel::Administrator => 3,
            ProjectCreationLevel::Owner => 4,
        }
    }

    pub fn from_i64(value: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_i64() == value)
    }

    /// The least group role that may create projects under this level; `None` when no role
    /// is enough (`noone`, `administrator`).
    pub fn least_role(self) -> Option<AccessLevel> {
        match self {
            ProjectCreationLevel::Owner => Some(AccessLevel::Owner),
            ProjectCreationLevel::Maintainer => Some(AccessLevel::Maintainer),
            ProjectCreationLevel::Developer => Some(AccessLevel::Developer),
            ProjectCreationLevel::NoOne | ProjectCreationLevel::Administrator => None,
        }
    }
}

/// Who may create subgroups in a group besides its Owners: GitLab's `subgroup_creation_level`
/// (lib/gitlab/access.rb, `subgroup_creation_string_options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubgroupCreationLevel {
    /// `owner`: Owners only (`OWNER_SUBGROUP_ACCESS`).
    Owner,
    /// `maintainer`: Maintainers too (`MAINTAINER_SUBGROUP_ACCESS`, the column's default for
    /// new groups in GitLab's db/structure.sql).
    Maintainer,
}

impl SubgroupCreationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            SubgroupCreationLevel::Owner => "owner",
            SubgroupCreationLevel::Maintainer => "maintainer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(SubgroupCreationLevel::Owner),
            "maintainer" => Some(SubgroupCreationLevel::Maintainer),
            _ => None,
        }
    }

    /// The least group role that may create a subgroup.
    pub fn least_role(self) -> AccessLevel {
        match self {
            SubgroupCreationLevel::Owner => AccessLevel::Owner,
            SubgroupCreationLevel::Maintainer => AccessLevel::Maintainer,
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

    #[test]
    fn creation_levels_round_trip_gitlabs_words_and_numbers() {
        for level in ProjectCreationLevel::ALL {
            assert_eq!(ProjectCreationLevel::parse(level.as_str()), Some(level));
            assert_eq!(ProjectCreationLevel::from_i64(level.as_i64()), Some(level));
        }
        assert_eq!(
            ProjectCreationLevel::from_i64(2),
            Some(ProjectCreationLevel::Developer)
        );
        assert_eq!(ProjectCreationLevel::parse("developers"), None);
        assert_eq!(
            SubgroupCreationLevel::parse("owner"),
            Some(SubgroupCreationLevel::Owner)
        );
        assert_eq!(SubgroupCreationLevel::parse("developer"), None);
    }
}
