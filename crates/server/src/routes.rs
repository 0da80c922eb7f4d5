//! The route table: every route the server answers, as data — method, path template, handler
//! and who may call it. The router is built from this table (`lib.rs`), and the authorization
//! matrix test (`tests/api/matrix.rs`) iterates the very same table, so a route cannot be added
//! without being tested for who may reach it. axum's `Router` cannot list its routes; this can.
//!
//! `Router::route` is a disallowed method (`clippy.toml`) everywhere but [`build`]: a route
//! added any other way fails the lints.
//!
//! [`Access`] is the requirement a route *declares* (GitLab's, for that endpoint); the handler
//! enforces it through `permissions.rs` and the credential extractors. The matrix test checks
//! that what the handlers enforce is what the table declares, for every kind of caller.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;

use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials are read at all: health checks, static assets, the sign-in form.
    Open,
    /// Anyone; a token, when one is sent, must be valid (GitLab's optional authentication).
    Public,
    /// Any signed-in user, about themselves or what they own (their tokens, their runners).
    SignedIn,
    /// The user named by the path's `{id}`, or an administrator.
    SelfOrAdmin,
    /// Instance administrators only.
    Admin,
    /// Whoever can see the project: anyone when it is public, its members (Guest and up) when
    /// it is private. Everyone else gets `404 Project Not Found`.
    See,
    /// As [`Access::See`], for signed-in callers only (GitLab's members API).
    SignedInToSee,
    /// Read the repository and CI/CD: anyone when the project is public, Reporters and up when
    /// it is private.
    Read,
    /// As [`Access::Read`], for signed-in callers only (GitLab's jobs API).
    SignedInToRead,
    /// As [`Access::Read`], or a `CI_JOB_TOKEN` of this project or of one its job token scope
    /// lets in (acting as the job's user).
    ReadOrJobToken,
    /// Developers and up (and administrators).
    Developer,
    /// Maintainers and up (and administrators).
    Maintainer,
    /// Owners (and administrators).
    Owner,
    /// Whoever can see the group (`{id}`): anyone when it is public, signed-in users when it
    /// is internal, its members and its ancestors', and members of a project below it, when
    /// it is private; `404 Group Not Found` to everyone else.
    GroupSee,
    /// As [`Access::GroupSee`], for signed-in callers only (GitLab's members API; a member
    /// of a project below a private group only gets 403).
    GroupSignedInToSee,
    /// Maintainers and Owners of the group, direct or inherited (and administrators).
    GroupMaintainer,
    /// Owners of the group, direct or inherited (and administrators).
    GroupOwner,
    /// The runner protocol: a runner's authentication token in the `token` parameter.
    RunnerToken,
    /// The runner protocol about one job: that running job's own token.
    OwnJobToken,
    /// Any running job's `CI_JOB_TOKEN` (`GET /job`).
    JobToken,
    /// The trigger endpoint: a trigger token of the project, or a `CI_JOB_TOKEN` whose job may
    /// create pipelines there, in the `token` parameter.
    TriggerToken,
}

/// One route: a method on a path template, its handler and its declared [`Access`].
pub struct Route {
    pub method: Method,
    pub path: String,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.method, self.path, self.access)
    }
}

macro_rules! method_constructor {
    ($name:ident, $method:ident) => {
        pub fn $name<H, T>(path: impl Into<String>, handler: H, access: Access) -> Route
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            Route {
                method: Method::$method,
                path: path.into(),
                access,
                handler: axum::routing::$name(handler),
            }
        }
    };
}

impl Route {
    method_constructor!(get, GET);
    method_constructor!(post, POST);
    method_constructor!(put, PUT);
    method_constructor!(patch, PATCH);
    method_constructor!(delete, DELETE);

    /// Limits this route's request body (`DefaultBodyLimit`), e.g. for uploads and git pushes.
    pub fn body_limit(mut self, bytes: usize) -> Route {
        self.handler = self.handler.layer(DefaultBodyLimit::max(bytes));
        self
    }
}

/// The router serving exactly `table`.
#[allow(clippy::disallowed_methods)] // the one place routes are added
pub fn build(table: Vec<Route>) -> Router<AppState> {
    table.into_iter().fold(Router::new(), |router, route| {
        router.route(&route.path, route.handler)
    })
}

/// `GET /api/v4/projects/` is `GET /api/v4/projects`: GitLab's API router accepts a trailing
/// slash (issue 15 §4 — a third-party runner client sent one; not verified in GitLab's source:
/// Grape's path patterns are Mustermann's, which allow it). Applied before routing (`lib.rs`
/// wraps the router with it), only to `/api/v4/...` paths, so the route table stays the only
/// place routes are added and page URLs keep their own meaning.
pub fn trim_api_trailing_slash<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let path = req.uri().path();
    if !path.starts_with("/api/v4/") || !path.ends_with('/') {
        return req;
    }
    let trimmed = path.trim_end_matches('/');
    let rewritten = match req.uri().query() {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_string(),
    };
    if let Ok(pq) = axum::http::uri::PathAndQuery::try_from(rewritten) {
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Every request path is normalised here, once, before routing (`lib.rs`).
pub fn normalize_path<B>(req: axum::http::Request<B>) -> axum::http::Request<B> {
    collapse_nested_namespace(trim_api_trailing_slash(req))
}

/// A project in a subgroup (`acme/backend/api`) has pages at `/acme/backend/api/-/…`, git at
/// `/acme/backend/api.git/…` and its overview at `/acme/backend/api`; the route table knows
/// only `/{namespace}/{repo}/…` (axum matches one segment per parameter). So the namespace's
/// segments are joined into one percent-encoded segment (`/acme%2Fbackend/api/-/…`) before
/// routing, and `Segments` decodes it back to `acme/backend`. GitLab's router does the same
/// with a wildcard `*namespace_id` ending before `/-/` (GitLab: `config/routes/project.rb`,
/// `doc/development/routing.md`). Paths under a reserved top-level segment are left alone.
pub fn collapse_nested_namespace<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let Some(rewritten) = collapsed(req.uri().path()) else {
        return req;
    };
    let rewritten = match req.uri().query() {
        Some(q) => format!("{rewritten}?{q}"),
        None => rewritten,
    };
    if let Ok(pq) = axum::http::uri::PathAndQuery::try_from(rewritten) {
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The collapsed path, when `path` names a project below a top-level namespace, or a group's
/// page under `/-/` (see [`collapsed_group`]).
fn collapsed(path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("/groups/") {
        return collapsed_group(rest);
    }
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if crate::validate::TOP_LEVEL_ROUTES.contains(segments.first()?) {
        return None;
    }
    // The project is the segment before the first `-`, or the first `….git`, or the one
    // before a project page outside `/-/` (`/a/b/c/edit`: GitLab reserves those names as
    // project paths, `PROJECT_WILDCARD_ROUTES` in lib/gitlab/path_regex.rb), or (an overview
    // page) the last one.
    let project_at = match segments.iter().position(|s| *s == "-") {
        Some(dash) => dash.checked_sub(1)?,
        None => match segments.iter().position(|s| s.ends_with(".git")) {
            Some(git) => git,
            None if segments.last() == Some(&"edit") => segments.len().checked_sub(2)?,
            None if segments.last().is_some_and(|s| !s.is_empty()) => segments.len() - 1,
            None => return None,
        },
    };
    if project_at < 2 || segments[..project_at].iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(format!(
        "/{}/{}",
        segments[..project_at].join("%2F"),
        segments[project_at..].join("/")
    ))
}

/// A group's page under `/-/` (`/groups/acme/backend/-/settings/ci_cd`: GitLab's `*group_id`
/// ends before `/-/`, config/routes/group.rb) is routed as `/groups/-/acme%2Fbackend/settings/
/// ci_cd`: axum's catch-all `/groups/{*id}` (the group page) can be followed by nothing, and a
/// `/groups/{id}/-/…` route would conflict with it, while a static `-` segment does not (and
/// no group may be called `-`).
fn collapsed_group(rest: &str) -> Option<String> {
    let (group, page) = rest.split_once("/-/")?;
    if group.is_empty() || group.split('/').any(str::is_empty) {
        return None;
    }
    Some(format!("/groups/-/{}/{page}", group.replace('/', "%2F")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_project_in_a_subgroup_is_routed_as_one_namespace_segment() {
        let collapse = |uri: &str| {
            let req = axum::http::Request::builder().uri(uri).body(()).unwrap();
            super::normalize_path(req).uri().to_string()
        };
        assert_eq!(
            collapse("/acme/backend/api/-/pipelines?page=2"),
            "/acme%2Fbackend/api/-/pipelines?page=2"
        );
        assert_eq!(
            collapse("/a/b/c/api.git/info/refs?service=git-upload-pack"),
            "/a%2Fb%2Fc/api.git/info/refs?service=git-upload-pack"
        );
        assert_eq!(collapse("/acme/backend/api"), "/acme%2Fbackend/api");
        assert_eq!(
            collapse("/groups/acme/backend/-/settings/ci_cd"),
            "/groups/-/acme%2Fbackend/settings/ci_cd"
        );
        assert_eq!(
            collapse("/groups/acme/-/settings/ci_cd/variables"),
            "/groups/-/acme/settings/ci_cd/variables"
        );
        assert_eq!(
            collapse("/acme/backend/api/edit"),
            "/acme%2Fbackend/api/edit"
        );
        assert_eq!(
            collapse("/acme/backend/api/-/jobs/7/artifacts/file/x/-/y"),
            "/acme%2Fbackend/api/-/jobs/7/artifacts/file/x/-/y"
        );
        // Two segments, reserved prefixes and odd shapes are left alone.
        for unchanged in [
            "/root/demo/-/jobs",
            "/root/demo.git/info/refs",
            "/root/demo",
            "/root/demo/edit",
            "/groups/acme/backend",
            "/groups/new",
            "/admin/users/3/block",
            "/api/v4/projects/a%2Fb%2Fc",
            "/-/assets/app.css",
            "/users/sign_in",
            "/a//b/-/jobs",
            "/a/b/c/",
        ] {
            assert_eq!(collapse(unchanged), unchanged);
        }
    }

    #[test]
    fn a_trailing_slash_on_an_api_path_is_dropped_before_routing() {
        let trim = |uri: &str| {
            let req = axum::http::Request::builder().uri(uri).body(()).unwrap();
            super::trim_api_trailing_slash(req).uri().to_string()
        };
        assert_eq!(trim("/api/v4/projects/"), "/api/v4/projects");
        assert_eq!(trim("/api/v4/projects//?page=2"), "/api/v4/projects?page=2");
        assert_eq!(trim("/api/v4/projects"), "/api/v4/projects");
        assert_eq!(trim("/root/project/"), "/root/project/");
        assert_eq!(trim("/api/v4/"), "/api/v4");
    }

    #[test]
    fn every_method_and_path_is_in_the_table_once() {
        let config = crate::ServerConfig::new("http://localhost", "/nonexistent");
        let table = crate::route_table(&config);
        let mut seen = std::collections::HashSet::new();
        for route in &table {
            assert!(
                seen.insert((route.method.clone(), route.path.clone())),
                "{route:?} is in the table twice"
            );
        }
        assert!(table.len() > 100, "the whole server is in the table");
    }
}
