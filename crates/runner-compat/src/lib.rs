//! Pipewright's compatibility check with a third-party runner client: this crate owns no code,
//! only the integration test in `tests/gitlab_runner_crate.rs`, which runs a small runner built
//! on Collabora's `gitlab-runner` crate from crates.io against an in-process Pipewright server
//! (runner token, `POST /jobs/request`, streamed `PATCH /jobs/:id/trace`, `PUT /jobs/:id`). It is
//! a separate workspace member so that no other Pipewright crate ever depends on `gitlab-runner`.
