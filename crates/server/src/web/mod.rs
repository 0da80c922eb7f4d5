//! The web UI, served by `pipewright serve` beside the API: server-rendered pages (askama
//! templates compiled into the binary, with their CSS and a little JavaScript) at GitLab's
//! URLs, so links users already have keep their shape.
//!
//! Pages reuse the API's pieces rather than re-implementing them: the same project lookup and
//! permission table (`permissions.rs`), and for every change the very API operation a `curl`
//! would reach (a page calls the handler with the signed-in user as the caller). A page never
//! shows JSON errors: `error.rs` turns failures into 404 pages, sign-in redirects and flash
//! messages. Forms are protected by CSRF tokens (`session.rs`).

pub mod access;
pub mod account;
pub mod admin;
pub mod assets;
pub mod error;
pub mod forms;
pub mod group_settings;
pub mod groups;
pub mod hooks;
pub mod jobs;
pub mod members;
pub mod new_group;
pub mod new_project;
pub mod pipeline_schedules;
pub mod pipelines;
pub mod project_settings;
pub mod projects;
pub mod repository;
pub mod session;
pub mod settings;
pub mod sign_up;
pub mod user_settings;
pub mod view;

use crate::routes::{Access, Route};

/// Every page and form of the web UI. A page's [`Access`] is the API's for the same thing;
/// pages answer 404 where the API answers 403 or 404, and send visitors to sign in.
pub fn routes() -> Vec<Route> {
    use Access::*;
    let project = "/{namespace}/{repo}";
    let pipelines = format!("{project}/-/pipelines");
    let jobs = format!("{project}/-/jobs");
    let job = format!("{jobs}/{{id}}");
    let settings = format!("{project}/-/settings/ci_cd");
    let schedules = format!("{project}/-/pipeline_schedules");
    let schedule = format!("{schedules}/{{id}}");
    let mut table = vec![
        Route::get("/users/sign_in", account::show, Open),
        Route::post("/users/sign_in", account::create, Open),
        Route::post("/users/sign_out", account::destroy, Public),
        Route::get("/", projects::dashboard, SignedIn),
        Route::get("/admin", admin::show, Admin),
        Route::post("/admin/users", admin::create_user, Admin),
        Route::post("/admin/users/{id}/{action}", admin::user_state, Admin),
        Route::post("/admin/settings", admin::update_settings, Admin),
        Route::get("/-/assets/{file}", assets::serve, Open),
        Route::get(project, projects::overview, See),
        Route::get(&pipelines, pipelines::list, Read),
        Route::post(&pipelines, pipelines::run, Developer),
        Route::get(format!("{pipelines}/{{id}}"), pipelines::show, Read),
        Route::post(
            format!("{pipelines}/{{id}}/{{action}}"),
            pipelines::act,
            Developer,
        ),
        Route::get(&schedules, pipeline_schedules::list, Read),
        Route::post(&schedules, pipeline_schedules::create, Developer),
        Route::get(
            format!("{schedules}/new"),
            pipeline_schedules::new,
            Developer,
        ),
        Route::get(
            format!("{schedule}/edit"),
            pipeline_schedules::edit,
            Developer,
        ),
        Route::post(&schedule, pipeline_schedules::update, Developer),
        Route::post(
            format!("{schedule}/{{action}}"),
            pipeline_schedules::act,
            Developer,
        ),
        Route::get(&jobs, jobs::list, Read),
        Route::get(&job, jobs::show, Read),
        Route::get(format!("{job}/trace.json"), jobs::trace, Read),
        Route::post(format!("{job}/{{action}}"), jobs::act, Developer),
        Route::get(
            format!("{job}/artifacts/download"),
            jobs::artifacts_download,
            Read,
        ),
        Route::get(
            format!("{job}/artifacts/browse"),
            jobs::artifacts_browse,
            Read,
        ),
        Route::get(
            format!("{job}/artifacts/browse/{{*dir}}"),
            jobs::artifacts_browse,
            Read,
        ),
        Route::get(
            format!("{job}/artifacts/file/{{*path}}"),
            jobs::artifacts_file,
            Read,
        ),
        Route::get(&settings, settings::show, Maintainer),
        Route::post(
            format!("{settings}/triggers"),
            settings::create_trigger,
            Maintainer,
        ),
        Route::post(
            format!("{settings}/triggers/{{id}}/{{action}}"),
            settings::trigger,
            Maintainer,
        ),
        Route::post(
            format!("{settings}/variables"),
            settings::variable,
            Maintainer,
        ),
        Route::post(
            format!("{settings}/job_token_scope"),
            settings::job_token_scope,
            Maintainer,
        ),
        Route::post(
            format!("{settings}/runners"),
            settings::create_runner,
            Maintainer,
        ),
        Route::post(
            format!("{settings}/runners/{{id}}/remove"),
            settings::remove_runner,
            Maintainer,
        ),
        Route::get(format!("{project}/-/hooks"), hooks::show, Maintainer),
        Route::post(format!("{project}/-/hooks"), hooks::create, Maintainer),
        Route::post(
            format!("{project}/-/hooks/{{id}}/{{action}}"),
            hooks::act,
            Maintainer,
        ),
    ];
    table.extend(group_routes());
    table.extend(repository_routes());
    table.extend(self_service_routes());
    table
}

/// A group's page, the new group form and a group's CI/CD settings.
fn group_routes() -> Vec<Route> {
    use Access::*;
    vec![
        // Matched before the group page's `/groups/{*id}`: a static segment wins in axum.
        Route::get("/groups/new", new_group::new, SignedIn),
        Route::post("/groups", new_group::create, SignedIn),
        Route::get("/groups/{*id}", groups::show, GroupSee),
        // `/groups/a/b/-/settings/ci_cd` arrives as `/groups/-/a%2Fb/settings/ci_cd`
        // (`routes::normalize_path`: a route cannot follow the group page's wildcard).
        Route::get(
            "/groups/-/{id}/settings/ci_cd",
            group_settings::show,
            GroupOwner,
        ),
        Route::post(
            "/groups/-/{id}/settings/ci_cd/variables",
            group_settings::variable,
            GroupOwner,
        ),
    ]
}

/// The read-only repository pages: files and folders, a file, its raw bytes, commits,
/// branches and tags.
fn repository_routes() -> Vec<Route> {
    use Access::*;
    let project = "/{namespace}/{repo}";
    vec![
        Route::get(format!("{project}/-/tree/{{*id}}"), repository::tree, Read),
        Route::get(format!("{project}/-/blob/{{*id}}"), repository::blob, Read),
        Route::get(format!("{project}/-/raw/{{*id}}"), repository::raw, Read),
        Route::get(
            format!("{project}/-/commits/{{*id}}"),
            repository::commits,
            Read,
        ),
        Route::get(format!("{project}/-/branches"), repository::branches, Read),
        Route::get(format!("{project}/-/tags"), repository::tags, Read),
    ]
}

/// The self-service pages (issue 17): sign-up, the user's own settings, new projects and a
/// project's settings, members and protected branches.
fn self_service_routes() -> Vec<Route> {
    use Access::*;
    let tokens = "/-/user_settings/personal_access_tokens";
    let project = "/{namespace}/{repo}";
    let members = format!("{project}/-/project_members");
    vec![
        Route::get(
            format!("{project}/edit"),
            project_settings::edit,
            Maintainer,
        ),
        Route::post(project, project_settings::update, Maintainer),
        Route::post(
            format!("{project}/-/delete"),
            project_settings::destroy,
            Owner,
        ),
        Route::get(
            format!("{project}/-/settings/repository"),
            project_settings::repository,
            Maintainer,
        ),
        Route::post(
            format!("{project}/-/protected_branches"),
            project_settings::protect,
            Maintainer,
        ),
        Route::post(
            format!("{project}/-/protected_branches/{{id}}/unprotect"),
            project_settings::unprotect,
            Maintainer,
        ),
        Route::get(&members, members::list, See),
        Route::post(&members, members::create, Maintainer),
        Route::post(
            format!("{members}/{{user_id}}/{{action}}"),
            members::act,
            Maintainer,
        ),
        Route::get("/projects/new", new_project::new, SignedIn),
        Route::post("/projects", new_project::create, SignedIn),
        Route::get("/users/sign_up", sign_up::new, Open),
        Route::post("/users", sign_up::create, Open),
        Route::get("/-/user_settings/profile", user_settings::profile, SignedIn),
        Route::post(
            "/-/user_settings/profile",
            user_settings::update_profile,
            SignedIn,
        ),
        Route::get(
            "/-/user_settings/password/edit",
            user_settings::edit_password,
            SignedIn,
        ),
        Route::post(
            "/-/user_settings/password",
            user_settings::update_password,
            SignedIn,
        ),
        Route::get(tokens, user_settings::tokens, SignedIn),
        Route::post(tokens, user_settings::create_token, SignedIn),
        Route::post(
            format!("{tokens}/{{id}}/{{action}}"),
            user_settings::token_action,
            SignedIn,
        ),
    ]
}
