//! The server's domain layer: the modules that decide things — who may see and change a
//! project and its protected refs, how a pipeline is created and moves on, what bridges start,
//! what goes into a job's log and its artifacts, what a pipeline's variables are, which webhook
//! events are queued. Each takes plain values (and the [`AppState`](crate::state::AppState)
//! with the store and the repositories) and returns plain values; none builds an HTTP response.
//!
//! The direction is one way: `api/`, `web/`, `git_http.rs` and the maintenance loop call into
//! this layer; nothing here imports from `api/` or `web/` (a test in `tests/api/architecture.rs`
//! holds every module of the crate to that, and to an acyclic module graph).

pub mod accounts;
pub mod artifacts;
pub mod bridges;
pub mod ci_variables;
pub mod config_files;
pub mod cron;
pub mod dispatch;
pub mod groups;
pub mod idempotency;
pub mod job_logs;
pub mod job_payload;
pub mod job_processing;
pub mod job_queue;
pub mod job_spec;
pub mod job_token;
pub mod linked_pipelines;
pub mod manual_actions;
pub mod pipeline_context;
pub mod pipeline_creation;
pub mod pipeline_variables;
pub mod projects;
pub mod protected_refs;
pub mod push_pipelines;
pub mod push_rules;
pub mod runner_registration;
pub mod schedules;
pub mod signed_webhooks;
pub mod tokens;
pub mod trigger_tokens;
pub mod triggers;
pub mod webhooks;
