//! The kinds of caller the matrix asks as, and how each presents itself to the API, to git and
//! to the web UI.

use pipewright_core::AccessLevel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    Anonymous,
    /// Signed in, no membership in either project.
    NonMember,
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
    /// An instance administrator who is no member of the projects.
    Admin,
    /// A Maintainer of both projects whose account was blocked (token and session made before).
    Blocked,
    /// A Maintainer's revoked token.
    RevokedToken,
    /// A Maintainer's expired token.
    ExpiredToken,
    /// A Maintainer's token with the `read_api` scope only.
    ReadApiToken,
    /// `CI_JOB_TOKEN` of a running job of the project asked about (its user is the Developer).
    OwnJobToken,
    /// `CI_JOB_TOKEN` of a running job in a project the target's allowlist lets in (its user is
    /// the Developer).
    AllowlistedJobToken,
    /// `CI_JOB_TOKEN` of a running job in a project the allowlist does not name (its user is
    /// the Developer).
    OtherJobToken,
    /// An instance runner's authentication token.
    RunnerToken,
    /// A pipeline trigger token of the project asked about.
    TriggerToken,
}

pub const EVERYONE: [Who; 17] = [
    Who::Anonymous,
    Who::NonMember,
    Who::Guest,
    Who::Reporter,
    Who::Developer,
    Who::Maintainer,
    Who::Owner,
    Who::Admin,
    Who::Blocked,
    Who::RevokedToken,
    Who::ExpiredToken,
    Who::ReadApiToken,
    Who::OwnJobToken,
    Who::AllowlistedJobToken,
    Who::OtherJobToken,
    Who::RunnerToken,
    Who::TriggerToken,
];

impl Who {
    /// The caller's role in both projects, when they act as a user.
    pub fn role(self) -> Option<AccessLevel> {
        match self {
            Who::Guest => Some(AccessLevel::Guest),
            Who::Reporter => Some(AccessLevel::Reporter),
            Who::Developer => Some(AccessLevel::Developer),
            Who::Maintainer | Who::ReadApiToken => Some(AccessLevel::Maintainer),
            Who::Owner => Some(AccessLevel::Owner),
            _ => None,
        }
    }

    pub fn is_job_token(self) -> bool {
        matches!(
            self,
            Who::OwnJobToken | Who::AllowlistedJobToken | Who::OtherJobToken
        )
    }

    /// Who has a web session (the blocked user's is ended by the block).
    pub fn has_session(self) -> bool {
        matches!(
            self,
            Who::NonMember
                | Who::Guest
                | Who::Reporter
                | Who::Developer
                | Who::Maintainer
                | Who::Owner
                | Who::Admin
                | Who::Blocked
        )
    }
}

/// What a caller sends.
#[derive(Debug, Clone)]
pub enum Cred {
    None,
    /// A personal access token (valid or not) of `username`.
    Pat {
        username: String,
        token: String,
    },
    Job(String),
    /// A token that is no user's: a runner's or a trigger's.
    Other(String),
}

impl Cred {
    /// The secret, whatever it is.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Cred::None => None,
            Cred::Pat { token, .. } => Some(token),
            Cred::Job(t) | Cred::Other(t) => Some(t),
        }
    }

    /// HTTP Basic credentials as git sends them.
    pub fn basic(&self) -> Option<(String, String)> {
        match self {
            Cred::None => None,
            Cred::Pat { username, token } => Some((username.clone(), token.clone())),
            Cred::Job(t) => Some(("gitlab-ci-token".into(), t.clone())),
            Cred::Other(t) => Some(("runner".into(), t.clone())),
        }
    }
}
