//! The server's integration tests: one binary, scenarios as modules, each run against SQLite
//! and PostgreSQL. They drive the real server over real HTTP.

// A failed unwrap is a failed test, with its location; that is what we want here.
#![allow(clippy::unwrap_used)]

mod support;

mod authorization;
mod bridges;
mod browser;
mod conventions;
mod git;
mod lifecycle;
mod matrix;
mod multi_project;
mod projects;
mod python_gitlab;
mod runners;
mod running;
mod triggering;
mod triggers;
mod users;
mod variables;
mod web;
mod webhooks;
