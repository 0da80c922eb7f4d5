//! The web UI, served by `pipewright serve` beside the API: server-rendered pages (askama
//! templates compiled into the binary, with their CSS and a little JavaScript) at GitLab's
//! URLs, so links users already have keep their shape.
//!
//! Pages reuse the API's pieces rather than re-implementing them: the same project lookup and
//! permission table (`permissions.rs`), and for every change the very API operation a `curl`
//! would reach (a page calls the handler with the signed-in user as the caller). A page never
//! shows JSON errors: `error.rs` turns failures into 404 pages, sign-in redirects and flash
//! messages. Forms are protected by CSRF tokens (`session.rs`).

pub mod account;
pub mod admin;
pub mod assets;
pub mod error;
pub mod hooks;
pub mod jobs;
pub mod pipelines;
pub mod projects;
pub mod session;
pub mod settings;
pub mod view;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Every page and form of the web UI.
pub fn routes() -> Router<AppState> {
    let project = "/{namespace}/{repo}";
    Router::new()
        .route("/users/sign_in", get(account::show).post(account::create))
        .route("/users/sign_out", post(account::destroy))
        .route("/", get(projects::dashboard))
        .route("/admin", get(admin::show))
        .route("/admin/users", post(admin::create_user))
        .route("/admin/users/{id}/{action}", post(admin::user_state))
        .route("/admin/settings", post(admin::update_settings))
        .route("/-/assets/{file}", get(assets::serve))
        .route(project, get(projects::overview))
        .route(
            &format!("{project}/-/pipelines"),
            get(pipelines::list).post(pipelines::run),
        )
        .route(
            &format!("{project}/-/pipelines/{{id}}"),
            get(pipelines::show),
        )
        .route(
            &format!("{project}/-/pipelines/{{id}}/{{action}}"),
            post(pipelines::act),
        )
        .route(&format!("{project}/-/jobs"), get(jobs::list))
        .route(&format!("{project}/-/jobs/{{id}}"), get(jobs::show))
        .route(
            &format!("{project}/-/jobs/{{id}}/trace.json"),
            get(jobs::trace),
        )
        .route(
            &format!("{project}/-/jobs/{{id}}/{{action}}"),
            post(jobs::act),
        )
        .route(
            &format!("{project}/-/jobs/{{id}}/artifacts/download"),
            get(jobs::artifacts_download),
        )
        .route(
            &format!("{project}/-/jobs/{{id}}/artifacts/browse"),
            get(jobs::artifacts_browse),
        )
        .route(
            &format!("{project}/-/jobs/{{id}}/artifacts/browse/{{*dir}}"),
            get(jobs::artifacts_browse),
        )
        .route(
            &format!("{project}/-/jobs/{{id}}/artifacts/file/{{*path}}"),
            get(jobs::artifacts_file),
        )
        .route(&format!("{project}/-/settings/ci_cd"), get(settings::show))
        .route(
            &format!("{project}/-/settings/ci_cd/triggers"),
            post(settings::create_trigger),
        )
        .route(
            &format!("{project}/-/settings/ci_cd/triggers/{{id}}/{{action}}"),
            post(settings::trigger),
        )
        .route(
            &format!("{project}/-/settings/ci_cd/variables"),
            post(settings::variable),
        )
        .route(
            &format!("{project}/-/settings/ci_cd/job_token_scope"),
            post(settings::job_token_scope),
        )
        .route(
            &format!("{project}/-/settings/ci_cd/runners"),
            post(settings::create_runner),
        )
        .route(
            &format!("{project}/-/settings/ci_cd/runners/{{id}}/remove"),
            post(settings::remove_runner),
        )
        .route(
            &format!("{project}/-/hooks"),
            get(hooks::show).post(hooks::create),
        )
        .route(
            &format!("{project}/-/hooks/{{id}}/{{action}}"),
            post(hooks::act),
        )
}
