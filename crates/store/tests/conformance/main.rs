//! The store's conformance suite: the same tests, at the level of the `Store` trait, on a real
//! SQLite file and on a real PostgreSQL database, so the two backends cannot drift apart.
//! One module per entity; `queue` checks the job queue's invariants (one winner per claim,
//! conditional transitions, leases) and `migrations` upgrades a database holding rows written
//! at the oldest schema; `backup` the snapshot `pipewright backup` takes.

// A failed unwrap is a failed test, with its location; that is what we want here.
#![allow(clippy::unwrap_used)]

mod backup;
mod groups;
mod hooks;
mod idempotency;
mod jobs;
mod migrations;
mod pipelines;
mod projects;
mod queue;
mod runners;
mod schedules;
mod sessions;
mod support;
mod users;
mod variables;
