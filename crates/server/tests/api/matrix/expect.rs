//! What each caller should get from each route: derived from the route's declared access, the
//! caller and the project's visibility, the way GitLab answers. Written independently of the
//! server's own permission table (`permissions.rs`), so a mistake there shows up here.
//!
//! The API (GitLab: lib/api/helpers.rb, lib/api/api_guard.rb, lib/gitlab/auth/auth_finders.rb):
//! a revoked, expired or unknown token is 401 wherever credentials are read; a blocked user's
//! token is 403 `Your account has been blocked.`; a `read_api` token is 403
//! `insufficient_scope` for anything but GET; a project the caller may not see is
//! `404 Project Not Found`; seen but not allowed is 403, or 401 when anonymous. A job token is
//! read only by the routes that accept one (GitLab's `job_token_allowed`); elsewhere its
//! caller is anonymous.
//!
//! Git (GitLab: app/controllers/repositories/git_http_client_controller.rb,
//! git_http_controller.rb): anonymous and bad credentials get 401 (git then asks for a
//! password); a user who can see the project but not do the operation gets 403; anyone else 404.
//!
//! Pages: a visitor is sent to sign in; a signed-in user who may not do something gets 404.

use pipewright_core::AccessLevel;
use pipewright_server::routes::Access;

use super::Case;
use super::callers::Who;
use super::fixture::Vis;

/// What a cell answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Status(u16),
    /// A redirect to the sign-in page.
    SignIn,
}

/// What a cell should answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Let through: anything but 401, 403, 404, 405, a sign-in redirect or a 5xx (a request
    /// the caller may make can still be refused as invalid, 400, 409 or 422).
    Allowed,
    Status(u16),
    SignIn,
}

impl Expect {
    pub fn admits(&self, got: &Got) -> bool {
        match (self, got) {
            (Expect::Allowed, Got::Status(s)) => !matches!(s, 401 | 403 | 404 | 405 | 500..),
            (Expect::Status(e), Got::Status(s)) => e == s,
            (Expect::SignIn, Got::SignIn) => true,
            _ => false,
        }
    }
}

enum Surface {
    Api,
    Git,
    Web,
}

fn surface(case: &Case) -> Surface {
    if super::is_api(&case.path) {
        Surface::Api
    } else if super::is_git(&case.path) {
        Surface::Git
    } else {
        Surface::Web
    }
}

pub fn expected(case: &Case, who: Who, vis: Option<Vis>) -> Expect {
    if let Some(e) = super::recipes::exception(case, who, vis) {
        return e;
    }
    match surface(case) {
        Surface::Api => api(case, who, vis),
        Surface::Git => git(case.access, who, vis.unwrap_or(Vis::Public)),
        Surface::Web => web(case.access, who, vis),
    }
}

/// Whether the route reads a user's credentials (and so refuses bad ones).
fn reads_user_credentials(access: Access) -> bool {
    !matches!(
        access,
        Access::Open
            | Access::RunnerToken
            | Access::OwnJobToken
            | Access::JobToken
            | Access::TriggerToken
    )
}

fn api(case: &Case, who: Who, vis: Option<Vis>) -> Expect {
    let access = case.access;
    if reads_user_credentials(access) {
        match who {
            Who::RevokedToken | Who::ExpiredToken | Who::RunnerToken | Who::TriggerToken => {
                return Expect::Status(401);
            }
            Who::Blocked => return Expect::Status(403),
            Who::ReadApiToken if case.method != reqwest::Method::GET => {
                return Expect::Status(403);
            }
            _ => {}
        }
    }
    // A job token where none is accepted: the caller is anonymous.
    let who = if who.is_job_token() && access != Access::ReadOrJobToken {
        match access {
            Access::RunnerToken | Access::OwnJobToken | Access::JobToken | Access::TriggerToken => {
                who
            }
            _ => Who::Anonymous,
        }
    } else {
        who
    };
    match access {
        Access::Open | Access::Public => Expect::Allowed,
        Access::SignedIn => signed_in(who, || Expect::Allowed),
        Access::SelfOrAdmin => signed_in(who, || {
            if matches!(who, Who::Admin | Who::Developer) {
                Expect::Allowed
            } else {
                Expect::Status(403)
            }
        }),
        Access::Admin => signed_in(who, || {
            if who == Who::Admin {
                Expect::Allowed
            } else {
                Expect::Status(403)
            }
        }),
        Access::RunnerToken => match who {
            Who::RunnerToken => Expect::Allowed,
            // GitLab: `requires :token`.
            Who::Anonymous => Expect::Status(400),
            _ => Expect::Status(403),
        },
        Access::OwnJobToken => match who {
            Who::OwnJobToken => Expect::Allowed,
            _ => Expect::Status(403),
        },
        Access::JobToken => {
            if who.is_job_token() {
                Expect::Allowed
            } else {
                Expect::Status(401)
            }
        }
        Access::TriggerToken => match who {
            Who::OwnJobToken | Who::AllowlistedJobToken | Who::TriggerToken => Expect::Allowed,
            Who::Anonymous => Expect::Status(400),
            _ => Expect::Status(404),
        },
        // A group's members hold the same roles in the fixture's groups as in its projects,
        // so a group route answers as the project route of the same access would.
        Access::GroupSee => project_answer(Access::See, who, vis.unwrap_or(Vis::Private)),
        Access::GroupSignedInToSee => {
            project_answer(Access::SignedInToSee, who, vis.unwrap_or(Vis::Private))
        }
        Access::GroupMaintainer => {
            project_answer(Access::Maintainer, who, vis.unwrap_or(Vis::Private))
        }
        Access::GroupOwner => project_answer(Access::Owner, who, vis.unwrap_or(Vis::Private)),
        project => project_answer(project, who, vis.unwrap_or(Vis::Private)),
    }
}

fn signed_in(who: Who, then: impl FnOnce() -> Expect) -> Expect {
    if who == Who::Anonymous {
        Expect::Status(401)
    } else {
        then()
    }
}

/// What `who` may do in a project (as a user); `None` when they cannot see it.
fn project_permits(access: Access, who: Who, vis: Vis) -> Option<bool> {
    let role = match who {
        // A job acts as its user (the Developer), in its own project at least as a Reporter;
        // a job of a project the allowlist does not name sees nothing.
        Who::OwnJobToken | Who::AllowlistedJobToken => Some(AccessLevel::Developer),
        Who::OtherJobToken => return None,
        other => other.role(),
    };
    if who == Who::Admin {
        return Some(true);
    }
    let visible = role.is_some() || vis == Vis::Public;
    if !visible {
        return None;
    }
    let at_least = |level: AccessLevel| role.is_some_and(|r| r >= level);
    Some(match access {
        Access::See | Access::SignedInToSee => true,
        Access::Read | Access::SignedInToRead | Access::ReadOrJobToken => {
            vis == Vis::Public || at_least(AccessLevel::Reporter)
        }
        Access::Developer => at_least(AccessLevel::Developer),
        Access::Maintainer => at_least(AccessLevel::Maintainer),
        Access::Owner => at_least(AccessLevel::Owner),
        other => panic!("{other:?} is not a project access"),
    })
}

fn project_answer(access: Access, who: Who, vis: Vis) -> Expect {
    // What needs a role or a signed-in caller asks an anonymous one to authenticate first,
    // before looking the project up (GitLab's `before { authenticate! }`).
    let needs_sign_in = !matches!(access, Access::See | Access::Read | Access::ReadOrJobToken);
    if who == Who::Anonymous && needs_sign_in {
        return Expect::Status(401);
    }
    match project_permits(access, who, vis) {
        None => Expect::Status(404),
        Some(true) => Expect::Allowed,
        Some(false) if who == Who::Anonymous => Expect::Status(401),
        Some(false) => Expect::Status(403),
    }
}

fn git(access: Access, who: Who, vis: Vis) -> Expect {
    match who {
        Who::RevokedToken
        | Who::ExpiredToken
        | Who::Blocked
        | Who::RunnerToken
        | Who::TriggerToken => return Expect::Status(401),
        // `read_api` carries no repository scope: seen, but not allowed.
        Who::ReadApiToken => return Expect::Status(403),
        _ => {}
    }
    let pushing = access == Access::Developer;
    if who.is_job_token() && pushing {
        // GitLab: a job token never pushes.
        return match project_permits(Access::Read, who, vis) {
            None => Expect::Status(404),
            Some(_) => Expect::Status(403),
        };
    }
    match project_permits(access, who, vis) {
        Some(true) => Expect::Allowed,
        _ if who == Who::Anonymous => Expect::Status(401),
        None => Expect::Status(404),
        Some(false) => Expect::Status(403),
    }
}

fn web(access: Access, who: Who, vis: Option<Vis>) -> Expect {
    // Pages know sessions only; the blocked user's session ended with the block.
    let who = if who.has_session() && who != Who::Blocked {
        who
    } else {
        Who::Anonymous
    };
    let denied = || {
        if who == Who::Anonymous {
            Expect::SignIn
        } else {
            Expect::Status(404)
        }
    };
    match access {
        Access::Open | Access::Public => Expect::Allowed,
        Access::SignedIn => {
            if who == Who::Anonymous {
                Expect::SignIn
            } else {
                Expect::Allowed
            }
        }
        Access::Admin => {
            if who == Who::Admin {
                Expect::Allowed
            } else {
                denied()
            }
        }
        // The fixture's groups hold the same roles as its projects.
        Access::GroupSee => match project_permits(Access::See, who, vis.unwrap_or(Vis::Private)) {
            Some(true) => Expect::Allowed,
            _ => denied(),
        },
        Access::GroupMaintainer => {
            match project_permits(Access::Maintainer, who, vis.unwrap_or(Vis::Private)) {
                Some(true) => Expect::Allowed,
                _ => denied(),
            }
        }
        Access::GroupOwner => {
            match project_permits(Access::Owner, who, vis.unwrap_or(Vis::Private)) {
                Some(true) => Expect::Allowed,
                _ => denied(),
            }
        }
        project => match project_permits(project, who, vis.unwrap_or(Vis::Private)) {
            Some(true) => Expect::Allowed,
            _ => denied(),
        },
    }
}
