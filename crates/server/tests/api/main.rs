//! The server's integration tests: one binary, scenarios as modules, each run against SQLite
//! and PostgreSQL. They drive the real server over real HTTP.

// A failed unwrap is a failed test, with its location; that is what we want here.
#![allow(clippy::unwrap_used)]

mod support;

mod architecture;
mod artifact_uploads;
mod authorization;
mod bridges;
mod browser;
mod conventions;
mod disclosure;
mod git;
mod git_security;
mod hostile;
mod lifecycle;
mod matrix;
mod multi_project;
mod projects;
mod protected_refs;
mod python_gitlab;
mod runner_registration;
mod runners;
mod running;
mod third_party_runner;
mod trigger_tokens;
mod triggering;
mod user_entities;
mod users;
mod variables;
mod web;
mod webhooks;
