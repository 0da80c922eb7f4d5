//! The authorization matrix: every route of the server's own route table
//! (`pipewright_server::route_table`) × every kind of caller → the status GitLab answers,
//! asserted, on both databases.
//!
//! The table is the router (`routes.rs`), so a new route is in this test the moment it exists:
//! the test fails until the route has a request recipe here (`recipes.rs`). What each caller
//! should get is derived from the route's declared [`Access`] (`expect.rs`), with the few
//! endpoint-specific answers GitLab gives written out beside it. A private project answers 404
//! to everyone who may not see it.
//!
//! One fixture per backend (`fixture.rs`): a public and a private project with a member of
//! every role, pipelines with finished, running and manual jobs, artifacts, a trigger, a hook,
//! a variable, a project runner, an instance runner, and running jobs in a project on the job
//! token allowlist and in one that is not. Routes that destroy something get a throwaway target
//! (made again after each success); routes that destroy the caller's own credential run last.
//!
//! A failure lists every wrong cell at once: route, caller, expected, got.

mod callers;
mod expect;
mod fixture;
mod recipes;

use std::collections::HashMap;
use std::fmt::Write as _;

use pipewright_server::routes::{Access, Route};
use reqwest::Method;

use crate::both_backends;
use crate::support::TestApp;
use callers::{EVERYONE, Who};
use fixture::{Fixture, Vis};
use recipes::Ctx;

both_backends!(every_route_answers_every_caller_as_gitlab_does);

/// A cell that fails today because of a finding another branch is fixing.
pub struct Open {
    pub finding: &'static str,
    pub method: &'static str,
    /// A route's path template, or a variant's name.
    pub route: &'static str,
    /// `None`: every caller.
    pub who: Option<Who>,
    /// `None`: both projects.
    pub on: Option<Vis>,
}

/// Known authorization findings still open: cells that fail today for one of them, each named
/// with its issue. An entry is removed when its fix lands (the cell is then asserted like any
/// other); the test says when an entry starts passing.
pub const KNOWN_OPEN: &[Open] = &[
    // Empty: every finding the matrix knew of is closed. Add an entry only with its issue.
];

/// Routes that destroy the caller's own credential (their token, their session, the runner),
/// run after every other route.
const LAST: &[(&str, &str)] = &[
    ("DELETE", "/api/v4/personal_access_tokens/self"),
    ("DELETE", "/api/v4/runners"),
    ("POST", "/users/sign_out"),
];

/// One route to exercise: a table entry, or a variant of one (the same route with a request
/// that needs a different access, e.g. acting on a job of a protected branch).
pub struct Case {
    pub method: Method,
    pub path: String,
    pub variant: Option<&'static str>,
    pub access: Access,
}

impl Case {
    fn label(&self) -> String {
        match self.variant {
            Some(v) => format!("{} {} [{v}]", self.method, self.path),
            None => format!("{} {}", self.method, self.path),
        }
    }

    /// Whether the route is about one project or group (and so runs on the public and the
    /// private one).
    fn per_project(&self) -> bool {
        self.path.contains("/projects/{id}")
            || self.path.contains("/groups/{id}")
            || self.path.starts_with("/groups/{*id}")
            || self.path.starts_with("/groups/-/{id}")
            || self.path.starts_with("/{namespace}/{repo}")
    }
}

/// API routes (and the health checks, which answer like them).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
        || (path.starts_with("/-/")
            && !path.starts_with("/-/assets/")
            && !path.starts_with("/-/user_settings/"))
}

fn is_git(path: &str) -> bool {
    path.starts_with("/{namespace}/{repo}/")
        && (path.ends_with("/info/refs") || path.contains("/git-"))
}

fn cases(table: &[Route]) -> Vec<Case> {
    let mut cases: Vec<Case> = table
        .iter()
        .map(|r| Case {
            method: r.method.clone(),
            path: r.path.clone(),
            variant: None,
            access: r.access,
        })
        .collect();
    for (method, path, variant, access) in recipes::VARIANTS {
        cases.push(Case {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: path.to_string(),
            variant: Some(variant),
            access: *access,
        });
    }
    let last = |c: &Case| {
        LAST.iter()
            .position(|(m, p)| c.method.as_str() == *m && c.path == *p)
    };
    cases.sort_by_key(|c| last(c).map_or(0, |i| i + 1));
    cases
}

fn known_open(case: &Case, who: Who, vis: Option<Vis>) -> Option<&'static str> {
    let key = case.variant.unwrap_or(case.path.as_str());
    KNOWN_OPEN
        .iter()
        .find(|o| {
            o.method == case.method.as_str()
                && o.route == key
                && o.who.is_none_or(|w| w == who)
                && o.on.is_none_or(|v| Some(v) == vis)
        })
        .map(|o| o.finding)
}

async fn every_route_answers_every_caller_as_gitlab_does(app: TestApp) {
    let started = std::time::Instant::now();
    let fx = Fixture::build(app).await;
    eprintln!("matrix fixture ready in {:?}", started.elapsed());
    let config = pipewright_server::ServerConfig::new(&fx.app.url, "/unused");
    let table = pipewright_server::route_table(&config);
    let cases = cases(&table);

    let missing: Vec<String> = cases
        .iter()
        .filter(|c| !recipes::has_recipe(c))
        .map(Case::label)
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a request recipe in tests/api/matrix/recipes.rs:\n  {}",
        missing.join("\n  ")
    );

    let mut wrong = Vec::new();
    let mut open_hits: HashMap<&'static str, usize> = HashMap::new();
    let mut cells = 0;
    let mut throwaways = HashMap::new();
    for case in &cases {
        let case_started = std::time::Instant::now();
        let targets: Vec<Option<Vis>> = if case.per_project() {
            vec![Some(Vis::Public), Some(Vis::Private)]
        } else {
            vec![None]
        };
        for vis in targets {
            for who in EVERYONE {
                cells += 1;
                let ctx = Ctx::new(&fx, case, vis, who, &mut throwaways);
                let got = recipes::run(ctx).await;
                let expected = expect::expected(case, who, vis);
                if expected.admits(&got) {
                    continue;
                }
                match known_open(case, who, vis) {
                    Some(finding) => *open_hits.entry(finding).or_default() += 1,
                    None => wrong.push((case.label(), who, vis, expected, got)),
                }
            }
        }
        if case_started.elapsed() > std::time::Duration::from_millis(700) {
            eprintln!("matrix: {} took {:?}", case.label(), case_started.elapsed());
        }
    }
    eprintln!(
        "matrix: {} routes and variants, {cells} cells in {:?}; known open: {open_hits:?}",
        cases.len(),
        started.elapsed()
    );
    for o in KNOWN_OPEN {
        if !open_hits.contains_key(o.finding) {
            eprintln!("matrix: KNOWN_OPEN `{}` passes now: remove it", o.finding);
        }
    }
    if !wrong.is_empty() {
        let mut report = format!("{} cells answered otherwise than GitLab:\n", wrong.len());
        for (route, who, vis, expected, got) in &wrong {
            let on = vis
                .map(|v| format!(" on the {v:?} project"))
                .unwrap_or_default();
            let _ = writeln!(
                report,
                "  {route}{on} as {who:?}: expected {expected:?}, got {got:?}"
            );
        }
        panic!("{report}");
    }
}

/// A known-open entry that no longer matches anything would hide a future regression: each
/// names a real route (or variant) of the table.
#[test]
fn known_open_entries_name_real_routes() {
    let config = pipewright_server::ServerConfig::new("http://localhost", "/unused");
    let cases = cases(&pipewright_server::route_table(&config));
    for o in KNOWN_OPEN {
        assert!(
            cases.iter().any(|c| c.method.as_str() == o.method
                && (c.path == o.route || c.variant == Some(o.route))),
            "KNOWN_OPEN {}: no route {} {}",
            o.finding,
            o.method,
            o.route
        );
    }
}
