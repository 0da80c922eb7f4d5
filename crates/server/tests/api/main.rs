//! The server's integration tests: one binary, scenarios as modules, each run against SQLite
//! and PostgreSQL. They drive the real server over real HTTP.

// Scenarios read like the docs, step after step, even when that takes more than the
// 120 lines product code keeps to.
#![allow(clippy::too_many_lines)]
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
mod dry_run;
mod git;
mod git_security;
mod group_levels;
mod groups;
mod hostile;
mod idempotent_triggers;
mod includes;
mod inputs;
mod lifecycle;
mod matrix;
mod metrics;
mod multi_project;
mod path_formats;
mod pipeline_schedules;
mod projects;
mod protected_refs;
mod python_gitlab;
mod python_runner;
mod repository_pages;
mod reserved_names;
mod reverse_proxy;
mod runner_registration;
mod runners;
mod running;
mod self_service;
mod signed_webhooks;
mod third_party_runner;
mod trigger_rotation;
mod trigger_tokens;
mod triggering;
mod user_entities;
mod users;
mod variables;
mod web;
mod webhooks;
