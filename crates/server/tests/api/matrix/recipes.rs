//! How to ask each route: the request a caller entitled to it would make (so an allowed cell
//! gets a real answer, not a validation error), with the path's parameters taken from the
//! fixture. Routes that destroy what they name get a throwaway target, made again after each
//! success. Also the route variants, and the few answers where GitLab departs from the general
//! rules of `expect.rs`.

use std::collections::HashMap;

use pipewright_server::routes::Access;
use reqwest::Method;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use super::Case;
use super::callers::{Cred, Who};
use super::expect::{Expect, Got};
use super::fixture::{Fixture, ProjectFx, Vis};

/// The same route asked differently: `(method, path, variant, access)`.
pub const VARIANTS: &[(&str, &str, &str, Access)] = &[
    // Pushing asks for the ref list with `service=git-receive-pack`.
    (
        "GET",
        "/{namespace}/{repo}/info/refs",
        "info/refs for a push",
        Access::Developer,
    ),
    // On a protected branch, acting on a job needs the right to push to it (GitLab:
    // app/policies/ci/build_policy.rb, `protected_ref` prevents `update_build`): Maintainers.
    (
        "POST",
        "/api/v4/projects/{id}/jobs/{job_id}/play",
        "a manual job of the protected main",
        Access::Maintainer,
    ),
    (
        "POST",
        "/api/v4/projects/{id}/jobs/{job_id}/retry",
        "a job of the protected main",
        Access::Maintainer,
    ),
];

/// Where the caller's token goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// `PRIVATE-TOKEN` or `JOB-TOKEN` (API), Basic (git), the session cookie (pages).
    Header,
    /// The `token` parameter (the runner protocol, the trigger endpoint).
    TokenParam,
    /// The JSON body signed with the caller's secret, GitHub's way (`X-Hub-Signature-256`):
    /// signed webhooks.
    Signature,
}

enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    Text(&'static str),
    /// Exact bytes, as signed.
    Signed(String),
    Zip,
}

struct Req {
    path: String,
    body: Body,
    slot: Slot,
    headers: Vec<(&'static str, String)>,
    /// The throwaway this request may destroy: made again after a success.
    consumes: Option<String>,
}

impl Req {
    fn get(path: impl Into<String>) -> Req {
        Req {
            path: path.into(),
            body: Body::None,
            slot: Slot::Header,
            headers: Vec::new(),
            consumes: None,
        }
    }

    fn json(path: impl Into<String>, body: Value) -> Req {
        Req {
            body: Body::Json(body),
            ..Req::get(path)
        }
    }

    fn form(path: impl Into<String>, fields: &[(&str, &str)]) -> Req {
        Req {
            body: Body::Form(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Req::get(path)
        }
    }

    fn token_param(mut self) -> Req {
        self.slot = Slot::TokenParam;
        self
    }

    fn signed(mut self) -> Req {
        self.slot = Slot::Signature;
        self
    }

    fn consumes(mut self, key: String) -> Req {
        self.consumes = Some(key);
        self
    }
}

/// One cell: a case, a target, a caller.
pub struct Ctx<'a> {
    fx: &'a Fixture,
    case: &'a Case,
    vis: Option<Vis>,
    who: Who,
    throwaways: &'a mut HashMap<String, i64>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        fx: &'a Fixture,
        case: &'a Case,
        vis: Option<Vis>,
        who: Who,
        throwaways: &'a mut HashMap<String, i64>,
    ) -> Self {
        Ctx {
            fx,
            case,
            vis,
            who,
            throwaways,
        }
    }

    /// The project asked about (the private one for routes not under a project's path).
    fn p(&self) -> &'a ProjectFx {
        self.fx.project(self.vis.unwrap_or(Vis::Private))
    }

    fn vis_name(&self) -> &'static str {
        match self.vis.unwrap_or(Vis::Private) {
            Vis::Public => "public",
            Vis::Private => "private",
        }
    }

    fn key(&self) -> String {
        format!("{}:{:?}", self.case.label(), self.vis)
    }

    /// The route's throwaway target: made by `make` unless the last one is still there.
    async fn throwaway<F: std::future::Future<Output = i64>>(&mut self, make: F) -> (i64, String) {
        let key = self.key();
        let id = match self.throwaways.get(&key) {
            Some(id) => *id,
            None => {
                let id = make.await;
                self.throwaways.insert(key.clone(), id);
                id
            }
        };
        (id, key)
    }

    fn owner(&self) -> &'a str {
        self.fx.token(Who::Owner)
    }

    fn maintainer(&self) -> &'a str {
        self.fx.token(Who::Maintainer)
    }

    /// A new pipeline on `feature` with pending jobs, by the Developer.
    async fn pending_pipeline(fx: &Fixture, project: i64) -> i64 {
        let p = fx
            .call(
                Method::POST,
                &format!("/projects/{project}/pipeline"),
                fx.token(Who::Developer),
                json!({"ref": "feature"}),
            )
            .await;
        p["id"].as_i64().unwrap()
    }

    async fn first_job(fx: &Fixture, project: i64, pipeline: i64) -> i64 {
        let jobs = fx
            .call(
                Method::GET,
                &format!("/projects/{project}/pipelines/{pipeline}/jobs"),
                fx.root(),
                json!({}),
            )
            .await;
        jobs[0]["id"].as_i64().unwrap()
    }

    async fn new_user(fx: &Fixture) -> i64 {
        let name = fx.unique("throwaway");
        let user = fx
            .call(
                Method::POST,
                "/users",
                fx.root(),
                json!({"username": name, "name": name, "email": format!("{name}@example.com"),
                       "password": super::fixture::PASSWORD}),
            )
            .await;
        user["id"].as_i64().unwrap()
    }

    /// A new token of the Developer's (scope `api`).
    async fn developer_token(fx: &Fixture) -> i64 {
        let developer = fx.user(Who::Developer).id;
        let t = fx
            .call(
                Method::POST,
                &format!("/users/{developer}/personal_access_tokens"),
                fx.root(),
                json!({"name": "throwaway", "scopes": ["api"]}),
            )
            .await;
        t["id"].as_i64().unwrap()
    }

    async fn new_member(fx: &Fixture, project: i64) -> i64 {
        let user = Self::new_user(fx).await;
        fx.call(
            Method::POST,
            &format!("/projects/{project}/members"),
            fx.token(Who::Owner),
            json!({"user_id": user, "access_level": 30}),
        )
        .await;
        user
    }

    async fn new_protected_branch(fx: &Fixture, project: i64) -> i64 {
        let rule = fx
            .call(
                Method::POST,
                &format!("/projects/{project}/protected_branches"),
                fx.token(Who::Maintainer),
                json!({"name": fx.unique("throwaway-")}),
            )
            .await;
        rule["id"].as_i64().unwrap()
    }

    async fn new_trigger(fx: &Fixture, project: i64) -> i64 {
        let t = fx
            .call(
                Method::POST,
                &format!("/projects/{project}/triggers"),
                fx.token(Who::Maintainer),
                json!({"description": "throwaway"}),
            )
            .await;
        t["id"].as_i64().unwrap()
    }

    /// A schedule of `feature` (unprotected) owned by the Developer, with the variable
    /// `MATRIX_VAR`.
    async fn new_schedule(fx: &Fixture, project: i64) -> i64 {
        let developer = fx.token(Who::Developer);
        let s = fx
            .call(
                Method::POST,
                &format!("/projects/{project}/pipeline_schedules"),
                developer,
                json!({"description": "matrix", "ref": "feature", "cron": "0 4 1 1 *"}),
            )
            .await;
        let id = s["id"].as_i64().unwrap();
        fx.call(
            Method::POST,
            &format!("/projects/{project}/pipeline_schedules/{id}/variables"),
            developer,
            json!({"key": "MATRIX_VAR", "value": "v"}),
        )
        .await;
        id
    }

    async fn public_group(fx: &Fixture) -> i64 {
        let path = fx.unique("allowlist-group-");
        let g = fx
            .call(
                Method::POST,
                "/groups",
                fx.root(),
                json!({"name": path, "path": path, "visibility": "public"}),
            )
            .await;
        g["id"].as_i64().unwrap()
    }

    async fn public_project(fx: &Fixture) -> i64 {
        let p = fx
            .call(
                Method::POST,
                "/projects",
                fx.token(Who::Owner),
                json!({"name": fx.unique("allowlist-target"), "visibility": "public"}),
            )
            .await;
        p["id"].as_i64().unwrap()
    }
}

/// Whether the case has a recipe (a new route fails the matrix until it gets one).
pub fn has_recipe(case: &Case) -> bool {
    KNOWN
        .iter()
        .any(|(m, p)| *m == case.method.as_str() && *p == case.path)
}

/// Every `(method, path)` `recipe` answers.
const KNOWN: &[(&str, &str)] = &[
    ("GET", "/-/health"),
    ("GET", "/-/liveness"),
    ("GET", "/-/readiness"),
    ("GET", "/-/metrics"),
    ("GET", "/{namespace}/{repo}/info/refs"),
    ("POST", "/{namespace}/{repo}/git-upload-pack"),
    ("POST", "/{namespace}/{repo}/git-receive-pack"),
    ("GET", "/api/v4/version"),
    ("GET", "/api/v4/user"),
    ("GET", "/api/v4/users"),
    ("POST", "/api/v4/users"),
    ("GET", "/api/v4/users/{id}"),
    ("PUT", "/api/v4/users/{id}"),
    ("DELETE", "/api/v4/users/{id}"),
    ("POST", "/api/v4/users/{id}/block"),
    ("POST", "/api/v4/users/{id}/unblock"),
    ("GET", "/api/v4/users/{id}/personal_access_tokens"),
    ("POST", "/api/v4/users/{id}/personal_access_tokens"),
    ("GET", "/api/v4/personal_access_tokens"),
    ("GET", "/api/v4/personal_access_tokens/self"),
    ("DELETE", "/api/v4/personal_access_tokens/self"),
    ("GET", "/api/v4/personal_access_tokens/{id}"),
    ("DELETE", "/api/v4/personal_access_tokens/{id}"),
    ("POST", "/api/v4/personal_access_tokens/self/rotate"),
    ("POST", "/api/v4/personal_access_tokens/{id}/rotate"),
    ("GET", "/api/v4/projects"),
    ("POST", "/api/v4/projects"),
    ("GET", "/api/v4/groups"),
    ("POST", "/api/v4/groups"),
    ("GET", "/groups/{*id}"),
    ("GET", "/api/v4/groups/{id}"),
    ("PUT", "/api/v4/groups/{id}"),
    ("DELETE", "/api/v4/groups/{id}"),
    ("GET", "/api/v4/groups/{id}/subgroups"),
    ("GET", "/api/v4/groups/{id}/projects"),
    ("GET", "/api/v4/groups/{id}/members"),
    ("POST", "/api/v4/groups/{id}/members"),
    ("GET", "/api/v4/groups/{id}/members/all"),
    ("GET", "/api/v4/groups/{id}/members/{user_id}"),
    ("PUT", "/api/v4/groups/{id}/members/{user_id}"),
    ("DELETE", "/api/v4/groups/{id}/members/{user_id}"),
    ("GET", "/api/v4/groups/{id}/members/all/{user_id}"),
    ("GET", "/api/v4/groups/{id}/runners"),
    ("GET", "/api/v4/groups/{id}/variables"),
    ("POST", "/api/v4/groups/{id}/variables"),
    ("GET", "/api/v4/groups/{id}/variables/{key}"),
    ("PUT", "/api/v4/groups/{id}/variables/{key}"),
    ("DELETE", "/api/v4/groups/{id}/variables/{key}"),
    ("GET", "/api/v4/projects/{id}"),
    ("PUT", "/api/v4/projects/{id}"),
    ("DELETE", "/api/v4/projects/{id}"),
    ("GET", "/api/v4/projects/{id}/members"),
    ("POST", "/api/v4/projects/{id}/members"),
    ("GET", "/api/v4/projects/{id}/members/all"),
    ("GET", "/api/v4/projects/{id}/members/{user_id}"),
    ("PUT", "/api/v4/projects/{id}/members/{user_id}"),
    ("DELETE", "/api/v4/projects/{id}/members/{user_id}"),
    ("GET", "/api/v4/projects/{id}/members/all/{user_id}"),
    ("GET", "/api/v4/projects/{id}/protected_branches"),
    ("POST", "/api/v4/projects/{id}/protected_branches"),
    ("GET", "/api/v4/projects/{id}/protected_branches/{name}"),
    ("DELETE", "/api/v4/projects/{id}/protected_branches/{name}"),
    ("GET", "/api/v4/projects/{id}/repository/branches"),
    ("GET", "/api/v4/projects/{id}/repository/branches/{branch}"),
    ("GET", "/api/v4/projects/{id}/repository/tags"),
    (
        "GET",
        "/api/v4/projects/{id}/repository/files/{file_path}/raw",
    ),
    ("GET", "/api/v4/projects/{id}/repository/commits/{sha}"),
    ("GET", "/api/v4/projects/{id}/triggers"),
    ("POST", "/api/v4/projects/{id}/triggers"),
    ("GET", "/api/v4/projects/{id}/triggers/{trigger_id}"),
    ("PUT", "/api/v4/projects/{id}/triggers/{trigger_id}"),
    ("DELETE", "/api/v4/projects/{id}/triggers/{trigger_id}"),
    ("POST", "/api/v4/projects/{id}/triggers/{trigger_id}/rotate"),
    (
        "POST",
        "/api/v4/projects/{id}/triggers/{trigger_id}/webhook",
    ),
    ("GET", "/api/v4/projects/{id}/pipelines"),
    ("GET", "/api/v4/projects/{id}/pipeline_schedules"),
    ("POST", "/api/v4/projects/{id}/pipeline_schedules"),
    (
        "GET",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}",
    ),
    (
        "PUT",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}",
    ),
    (
        "DELETE",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}",
    ),
    (
        "GET",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/pipelines",
    ),
    (
        "POST",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/play",
    ),
    (
        "POST",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/take_ownership",
    ),
    (
        "POST",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables",
    ),
    (
        "GET",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables/{key}",
    ),
    (
        "PUT",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables/{key}",
    ),
    (
        "DELETE",
        "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables/{key}",
    ),
    ("GET", "/api/v4/projects/{id}/pipelines/latest"),
    ("GET", "/api/v4/projects/{id}/pipelines/{pipeline_id}"),
    ("DELETE", "/api/v4/projects/{id}/pipelines/{pipeline_id}"),
    (
        "GET",
        "/api/v4/projects/{id}/pipelines/{pipeline_id}/variables",
    ),
    ("GET", "/api/v4/projects/{id}/pipelines/{pipeline_id}/jobs"),
    ("GET", "/api/v4/projects/{id}/jobs/{job_id}"),
    ("POST", "/api/v4/projects/{id}/pipeline"),
    ("POST", "/api/v4/projects/{id}/trigger/pipeline"),
    ("POST", "/api/v4/projects/{id}/ref/{*rest}"),
    ("GET", "/api/v4/projects/{id}/ci/lint"),
    ("POST", "/api/v4/projects/{id}/ci/lint"),
    ("POST", "/api/v4/user/runners"),
    ("GET", "/api/v4/runners"),
    ("DELETE", "/api/v4/runners"),
    ("GET", "/api/v4/runners/all"),
    ("POST", "/api/v4/runners/verify"),
    ("POST", "/api/v4/runners"),
    ("POST", "/api/v4/runners/reset_registration_token"),
    (
        "POST",
        "/api/v4/projects/{id}/runners/reset_registration_token",
    ),
    ("GET", "/api/v4/runners/{id}"),
    ("PUT", "/api/v4/runners/{id}"),
    ("DELETE", "/api/v4/runners/{id}"),
    ("POST", "/api/v4/jobs/request"),
    ("PUT", "/api/v4/jobs/{id}"),
    ("PATCH", "/api/v4/jobs/{id}/trace"),
    ("GET", "/api/v4/projects/{id}/jobs/{job_id}/trace"),
    ("GET", "/api/v4/projects/{id}/jobs"),
    ("POST", "/api/v4/projects/{id}/jobs/{job_id}/cancel"),
    ("POST", "/api/v4/projects/{id}/jobs/{job_id}/retry"),
    ("POST", "/api/v4/projects/{id}/jobs/{job_id}/play"),
    ("POST", "/api/v4/projects/{id}/jobs/{job_id}/erase"),
    (
        "POST",
        "/api/v4/projects/{id}/pipelines/{pipeline_id}/cancel",
    ),
    (
        "POST",
        "/api/v4/projects/{id}/pipelines/{pipeline_id}/retry",
    ),
    ("GET", "/api/v4/job"),
    (
        "GET",
        "/api/v4/projects/{id}/pipelines/{pipeline_id}/bridges",
    ),
    ("GET", "/api/v4/projects/{id}/job_token_scope"),
    ("PATCH", "/api/v4/projects/{id}/job_token_scope"),
    ("GET", "/api/v4/projects/{id}/job_token_scope/allowlist"),
    ("POST", "/api/v4/projects/{id}/job_token_scope/allowlist"),
    (
        "DELETE",
        "/api/v4/projects/{id}/job_token_scope/allowlist/{target_project_id}",
    ),
    (
        "GET",
        "/api/v4/projects/{id}/job_token_scope/groups_allowlist",
    ),
    (
        "POST",
        "/api/v4/projects/{id}/job_token_scope/groups_allowlist",
    ),
    (
        "DELETE",
        "/api/v4/projects/{id}/job_token_scope/groups_allowlist/{target_group_id}",
    ),
    ("GET", "/api/v4/projects/{id}/variables"),
    ("POST", "/api/v4/projects/{id}/variables"),
    ("GET", "/api/v4/projects/{id}/variables/{key}"),
    ("PUT", "/api/v4/projects/{id}/variables/{key}"),
    ("DELETE", "/api/v4/projects/{id}/variables/{key}"),
    ("GET", "/api/v4/admin/ci/variables"),
    ("POST", "/api/v4/admin/ci/variables"),
    ("GET", "/api/v4/admin/ci/variables/{key}"),
    ("PUT", "/api/v4/admin/ci/variables/{key}"),
    ("DELETE", "/api/v4/admin/ci/variables/{key}"),
    ("GET", "/api/v4/projects/{id}/hooks"),
    ("POST", "/api/v4/projects/{id}/hooks"),
    ("GET", "/api/v4/projects/{id}/hooks/{hook_id}"),
    ("PUT", "/api/v4/projects/{id}/hooks/{hook_id}"),
    ("DELETE", "/api/v4/projects/{id}/hooks/{hook_id}"),
    (
        "POST",
        "/api/v4/projects/{id}/hooks/{hook_id}/test/{trigger}",
    ),
    ("GET", "/api/v4/projects/{id}/hooks/{hook_id}/events"),
    ("GET", "/api/v4/application/settings"),
    ("PUT", "/api/v4/application/settings"),
    ("POST", "/api/v4/jobs/{id}/artifacts"),
    ("GET", "/api/v4/jobs/{id}/artifacts"),
    ("GET", "/api/v4/projects/{id}/jobs/{job_id}/artifacts"),
    ("DELETE", "/api/v4/projects/{id}/jobs/{job_id}/artifacts"),
    ("POST", "/api/v4/projects/{id}/jobs/{job_id}/artifacts/keep"),
    (
        "GET",
        "/api/v4/projects/{id}/jobs/{job_id}/artifacts/{*artifact_path}",
    ),
    ("GET", "/api/v4/projects/{id}/jobs/artifacts/{*rest}"),
    ("GET", "/users/sign_in"),
    ("POST", "/users/sign_in"),
    ("POST", "/users/sign_out"),
    ("GET", "/"),
    ("GET", "/admin"),
    ("POST", "/admin/users"),
    ("POST", "/admin/users/{id}/{action}"),
    ("POST", "/admin/settings"),
    ("GET", "/-/assets/{file}"),
    ("GET", "/projects/new"),
    ("POST", "/projects"),
    ("GET", "/groups/new"),
    ("POST", "/groups"),
    ("GET", "/groups/-/{id}/settings/ci_cd"),
    ("POST", "/groups/-/{id}/settings/ci_cd/variables"),
    ("GET", "/users/sign_up"),
    ("POST", "/users"),
    ("GET", "/-/user_settings/profile"),
    ("POST", "/-/user_settings/profile"),
    ("GET", "/-/user_settings/password/edit"),
    ("POST", "/-/user_settings/password"),
    ("GET", "/-/user_settings/personal_access_tokens"),
    ("POST", "/-/user_settings/personal_access_tokens"),
    (
        "POST",
        "/-/user_settings/personal_access_tokens/{id}/{action}",
    ),
    ("GET", "/{namespace}/{repo}"),
    ("GET", "/{namespace}/{repo}/-/pipelines"),
    ("POST", "/{namespace}/{repo}/-/pipelines"),
    ("GET", "/{namespace}/{repo}/-/pipelines/{id}"),
    ("POST", "/{namespace}/{repo}/-/pipelines/{id}/{action}"),
    ("GET", "/{namespace}/{repo}/-/jobs"),
    ("GET", "/{namespace}/{repo}/-/jobs/{id}"),
    ("GET", "/{namespace}/{repo}/-/jobs/{id}/trace.json"),
    ("POST", "/{namespace}/{repo}/-/jobs/{id}/{action}"),
    ("GET", "/{namespace}/{repo}/-/jobs/{id}/artifacts/download"),
    ("GET", "/{namespace}/{repo}/-/jobs/{id}/artifacts/browse"),
    (
        "GET",
        "/{namespace}/{repo}/-/jobs/{id}/artifacts/browse/{*dir}",
    ),
    (
        "GET",
        "/{namespace}/{repo}/-/jobs/{id}/artifacts/file/{*path}",
    ),
    ("GET", "/{namespace}/{repo}/-/tree/{*id}"),
    ("GET", "/{namespace}/{repo}/-/blob/{*id}"),
    ("GET", "/{namespace}/{repo}/-/raw/{*id}"),
    ("GET", "/{namespace}/{repo}/-/commits/{*id}"),
    ("GET", "/{namespace}/{repo}/-/branches"),
    ("GET", "/{namespace}/{repo}/-/tags"),
    ("GET", "/{namespace}/{repo}/-/pipeline_schedules"),
    ("POST", "/{namespace}/{repo}/-/pipeline_schedules"),
    ("GET", "/{namespace}/{repo}/-/pipeline_schedules/new"),
    ("GET", "/{namespace}/{repo}/-/pipeline_schedules/{id}/edit"),
    ("POST", "/{namespace}/{repo}/-/pipeline_schedules/{id}"),
    (
        "POST",
        "/{namespace}/{repo}/-/pipeline_schedules/{id}/{action}",
    ),
    ("GET", "/{namespace}/{repo}/-/settings/ci_cd"),
    ("POST", "/{namespace}/{repo}/-/settings/ci_cd/triggers"),
    (
        "POST",
        "/{namespace}/{repo}/-/settings/ci_cd/triggers/{id}/{action}",
    ),
    ("POST", "/{namespace}/{repo}/-/settings/ci_cd/variables"),
    (
        "POST",
        "/{namespace}/{repo}/-/settings/ci_cd/job_token_scope",
    ),
    ("POST", "/{namespace}/{repo}/-/settings/ci_cd/runners"),
    (
        "POST",
        "/{namespace}/{repo}/-/settings/ci_cd/runners/{id}/remove",
    ),
    ("GET", "/{namespace}/{repo}/edit"),
    ("POST", "/{namespace}/{repo}"),
    ("POST", "/{namespace}/{repo}/-/delete"),
    ("GET", "/{namespace}/{repo}/-/settings/repository"),
    ("POST", "/{namespace}/{repo}/-/protected_branches"),
    (
        "POST",
        "/{namespace}/{repo}/-/protected_branches/{id}/unprotect",
    ),
    ("GET", "/{namespace}/{repo}/-/project_members"),
    ("POST", "/{namespace}/{repo}/-/project_members"),
    (
        "POST",
        "/{namespace}/{repo}/-/project_members/{user_id}/{action}",
    ),
    ("GET", "/{namespace}/{repo}/-/hooks"),
    ("POST", "/{namespace}/{repo}/-/hooks"),
    ("POST", "/{namespace}/{repo}/-/hooks/{id}/{action}"),
];

/// The request for a cell.
async fn recipe(ctx: &mut Ctx<'_>) -> Req {
    let fx = ctx.fx;
    let p = ctx.p();
    let pid = p.id;
    let api = |rest: &str| format!("/api/v4/projects/{pid}{rest}");
    let page = |rest: &str| format!("/{}{rest}", p.full_path);
    let method = ctx.case.method.as_str();
    let variant = ctx.case.variant;
    match (method, ctx.case.path.as_str(), variant) {
        ("GET", "/{namespace}/{repo}/info/refs", Some(_)) => {
            Req::get(page(".git/info/refs?service=git-receive-pack"))
        }
        ("POST", "/api/v4/projects/{id}/jobs/{job_id}/play", Some(_)) => {
            let (job, key) = ctx
                .throwaway(async { fx.finished_pipeline(p.id, Who::Maintainer, "main").await.2 })
                .await;
            Req::json(api(&format!("/jobs/{job}/play")), json!({})).consumes(key)
        }
        ("POST", "/api/v4/projects/{id}/jobs/{job_id}/retry", Some(_)) => {
            let (job, key) = ctx
                .throwaway(async { fx.finished_pipeline(p.id, Who::Maintainer, "main").await.1 })
                .await;
            Req::json(api(&format!("/jobs/{job}/retry")), json!({})).consumes(key)
        }
        (_, path, _) if super::is_api(path) => api_recipe(ctx, method, path).await,
        (_, path, _) if super::is_git(path) => git_recipe(ctx, path),
        (_, path, _) => web_recipe(ctx, fx, method, path, &page).await,
    }
}

fn git_recipe(ctx: &Ctx<'_>, path: &str) -> Req {
    let repo = format!("/{}.git", ctx.p().full_path);
    match path {
        "/{namespace}/{repo}/info/refs" => {
            Req::get(format!("{repo}/info/refs?service=git-upload-pack"))
        }
        "/{namespace}/{repo}/git-upload-pack" => Req {
            body: Body::Text("0000"),
            headers: vec![(
                "content-type",
                "application/x-git-upload-pack-request".into(),
            )],
            ..Req::get(format!("{repo}/git-upload-pack"))
        },
        _ => Req {
            body: Body::Text("0000"),
            headers: vec![(
                "content-type",
                "application/x-git-receive-pack-request".into(),
            )],
            ..Req::get(format!("{repo}/git-receive-pack"))
        },
    }
}

async fn api_recipe(ctx: &mut Ctx<'_>, method: &str, path: &str) -> Req {
    let fx = ctx.fx;
    let p = ctx.p();
    let pid = p.id;
    let api = |rest: &str| format!("/api/v4/projects/{pid}{rest}");
    let developer = fx.user(Who::Developer).id;
    let root = fx.root().to_string();
    match (method, path.trim_start_matches("/api/v4")) {
        // `/-/metrics`: the matrix asks from loopback, inside the default allowlist.
        ("GET", "/-/health" | "/-/liveness" | "/-/readiness" | "/-/metrics") => Req::get(path),
        ("GET", "/version" | "/user" | "/users" | "/personal_access_tokens") => Req::get(path),
        ("GET", "/personal_access_tokens/self" | "/runners" | "/runners/all") => Req::get(path),
        ("GET", "/projects" | "/application/settings" | "/admin/ci/variables") => Req::get(path),
        ("POST", "/users") => {
            let name = fx.unique("created");
            Req::json(
                path,
                json!({"username": name, "name": name, "email": format!("{name}@example.com"),
                       "password": super::fixture::PASSWORD}),
            )
        }
        ("GET", "/users/{id}") => Req::get(format!("/api/v4/users/{}", fx.user(Who::Guest).id)),
        ("PUT", "/users/{id}") => {
            let (id, _) = ctx.throwaway(Ctx::new_user(fx)).await;
            Req::json(format!("/api/v4/users/{id}"), json!({"name": "Renamed"}))
        }
        ("DELETE", "/users/{id}") => {
            let (id, key) = ctx.throwaway(Ctx::new_user(fx)).await;
            Req::get(format!("/api/v4/users/{id}")).consumes(key)
        }
        ("POST", "/users/{id}/block") => {
            let (id, key) = ctx.throwaway(Ctx::new_user(fx)).await;
            Req::json(format!("/api/v4/users/{id}/block"), json!({})).consumes(key)
        }
        ("POST", "/users/{id}/unblock") => {
            let (id, key) = ctx
                .throwaway(async {
                    let id = Ctx::new_user(fx).await;
                    fx.call(
                        Method::POST,
                        &format!("/users/{id}/block"),
                        &root,
                        json!({}),
                    )
                    .await;
                    id
                })
                .await;
            Req::json(format!("/api/v4/users/{id}/unblock"), json!({})).consumes(key)
        }
        ("GET", "/users/{id}/personal_access_tokens") => {
            Req::get(format!("/api/v4/users/{developer}/personal_access_tokens"))
        }
        ("POST", "/users/{id}/personal_access_tokens") => Req::json(
            format!("/api/v4/users/{developer}/personal_access_tokens"),
            json!({"name": "matrix", "scopes": ["read_api"]}),
        ),
        ("DELETE", "/personal_access_tokens/self") => Req::get(path),
        ("GET", "/personal_access_tokens/{id}") => Req::get(format!(
            "/api/v4/personal_access_tokens/{}",
            fx.developer_token_id
        )),
        ("DELETE", "/personal_access_tokens/{id}") => {
            let (id, key) = ctx.throwaway(Ctx::developer_token(fx)).await;
            Req::get(format!("/api/v4/personal_access_tokens/{id}")).consumes(key)
        }
        // A rotation the caller may make is refused for its date (400), so the caller's own
        // token is not revoked halfway through the matrix.
        ("POST", "/personal_access_tokens/self/rotate") => {
            Req::json(path, json!({"expires_at": "2001-01-01"}))
        }
        ("POST", "/personal_access_tokens/{id}/rotate") => {
            let (id, key) = ctx.throwaway(Ctx::developer_token(fx)).await;
            Req::json(
                format!("/api/v4/personal_access_tokens/{id}/rotate"),
                json!({}),
            )
            .consumes(key)
        }
        ("POST", "/projects") => Req::json(path, json!({"name": fx.unique("new-project")})),
        ("POST", "/user/runners") => Req::json(
            path,
            json!({"runner_type": "project_type", "project_id": pid}),
        ),
        // Legacy registration reads no user credentials: whoever asks, a token that is
        // nobody's is refused for what it is (410 while registration tokens are off).
        ("POST", "/runners") => Req::json(path, json!({"token": "GR1348941matrix-nobody"})),
        ("POST", "/runners/reset_registration_token") => Req::json(path, json!({})),
        ("DELETE", "/runners") | ("POST", "/runners/verify") => {
            Req::json(path, json!({})).token_param()
        }
        ("GET", "/runners/{id}") => Req::get(format!("/api/v4/runners/{}", p.runner_id)),
        ("PUT", "/runners/{id}") => Req::json(
            format!("/api/v4/runners/{}", p.runner_id),
            json!({"description": "renamed"}),
        ),
        ("DELETE", "/runners/{id}") => {
            let (id, key) = ctx.throwaway(fx.new_project_runner(pid)).await;
            Req::get(format!("/api/v4/runners/{id}")).consumes(key)
        }
        ("POST", "/jobs/request") => {
            Req::json(path, json!({"info": {"features": {"refspecs": true}}})).token_param()
        }
        ("PUT", "/jobs/{id}") => {
            Req::json(format!("/api/v4/jobs/{}", p.hold), json!({})).token_param()
        }
        ("PATCH", "/jobs/{id}/trace") => Req {
            body: Body::Text("x"),
            headers: vec![
                ("content-range", "0-0".into()),
                ("content-type", "text/plain".into()),
            ],
            ..Req::get(format!("/api/v4/jobs/{}/trace", p.hold))
        },
        ("GET", "/job") => Req::get(path),
        ("POST", "/jobs/{id}/artifacts") => Req {
            body: Body::Zip,
            ..Req::get(format!("/api/v4/jobs/{}/artifacts", p.hold))
        },
        ("GET", "/jobs/{id}/artifacts") => Req::get(format!("/api/v4/jobs/{}/artifacts", p.build)),
        ("PUT", "/application/settings") => Req::json(
            path,
            json!({"allow_local_requests_from_web_hooks_and_services": true}),
        ),
        ("POST", "/admin/ci/variables") => {
            Req::json(path, json!({"key": fx.unique("MATRIX_NEW_"), "value": "v"}))
        }
        ("GET", "/admin/ci/variables/{key}") => {
            let (_, _) = ctx
                .throwaway(instance_variable(fx, "MATRIX_INSTANCE"))
                .await;
            Req::get("/api/v4/admin/ci/variables/MATRIX_INSTANCE")
        }
        ("PUT", "/admin/ci/variables/{key}") => {
            let (_, _) = ctx.throwaway(instance_variable(fx, "MATRIX_UPDATED")).await;
            Req::json(
                "/api/v4/admin/ci/variables/MATRIX_UPDATED",
                json!({"value": "v2"}),
            )
        }
        ("DELETE", "/admin/ci/variables/{key}") => {
            let (n, key) = ctx
                .throwaway(async {
                    let n = fx.unique("").parse::<i64>().unwrap();
                    instance_variable(fx, &format!("MATRIX_GONE_{n}")).await;
                    n
                })
                .await;
            Req::get(format!("/api/v4/admin/ci/variables/MATRIX_GONE_{n}")).consumes(key)
        }
        ("GET", "/groups") => Req::get(path),
        ("POST", "/groups") => {
            let name = fx.unique("created-group-");
            Req::json(path, json!({"name": name, "path": name}))
        }
        (_, rest) if rest.starts_with("/groups/{id}") => {
            group_recipe(ctx, method, &rest["/groups/{id}".len()..]).await
        }
        (_, rest) if rest.starts_with("/projects/{id}") => {
            project_recipe(ctx, method, &rest["/projects/{id}".len()..], &api).await
        }
        other => panic!("no recipe for {other:?}"),
    }
}

async fn instance_variable(fx: &Fixture, key: &str) -> i64 {
    fx.call(
        Method::POST,
        "/admin/ci/variables",
        fx.root(),
        json!({"key": key, "value": "v"}),
    )
    .await;
    0
}

/// A group route, on the fixture's public or private group; what it destroys is a throwaway
/// subgroup (whose members are the group's, inherited) or a throwaway member.
async fn group_recipe(ctx: &mut Ctx<'_>, method: &str, rest: &str) -> Req {
    let fx = ctx.fx;
    let vis = ctx.vis.unwrap_or(Vis::Private);
    let gid = fx.group(vis);
    let api = |rest: &str| format!("/api/v4/groups/{gid}{rest}");
    let guest = fx.user(Who::Guest).id;
    let vis_name = ctx.vis_name();
    let new_member = || async move {
        let user = Ctx::new_user(fx).await;
        fx.call(
            Method::POST,
            &format!("/groups/{gid}/members"),
            fx.token(Who::Owner),
            json!({"user_id": user, "access_level": 30}),
        )
        .await;
        user
    };
    match (method, rest) {
        ("GET", "" | "/subgroups" | "/projects" | "/members" | "/members/all") => {
            Req::get(api(rest))
        }
        ("PUT", "") => Req::json(api(""), json!({"description": "changed"})),
        ("DELETE", "") => {
            let (id, key) = ctx.throwaway(fx.member_group(Some(gid), vis_name)).await;
            Req::get(format!("/api/v4/groups/{id}")).consumes(key)
        }
        ("POST", "/members") => {
            let (user, key) = ctx.throwaway(Ctx::new_user(fx)).await;
            Req::json(api(rest), json!({"user_id": user, "access_level": 30})).consumes(key)
        }
        ("GET", "/members/{user_id}") => Req::get(api(&format!("/members/{guest}"))),
        ("GET", "/members/all/{user_id}") => Req::get(api(&format!("/members/all/{guest}"))),
        ("PUT", "/members/{user_id}") => {
            let (user, _) = ctx.throwaway(new_member()).await;
            Req::json(
                api(&format!("/members/{user}")),
                json!({"access_level": 20}),
            )
        }
        ("DELETE", "/members/{user_id}") => {
            let (user, key) = ctx.throwaway(new_member()).await;
            Req::get(api(&format!("/members/{user}"))).consumes(key)
        }
        ("GET", "/variables" | "/runners") => Req::get(api(rest)),
        ("POST", "/variables") => Req::json(
            api(rest),
            json!({"key": fx.unique("MATRIX_GROUP_"), "value": "v"}),
        ),
        (_, "/variables/{key}") => {
            let (n, key) = ctx
                .throwaway(async {
                    let n = i64::from(fx.unique("").parse::<u32>().unwrap());
                    fx.call(
                        Method::POST,
                        &format!("/groups/{gid}/variables"),
                        fx.root(),
                        json!({"key": format!("MATRIX_GV_{n}"), "value": "v"}),
                    )
                    .await;
                    n
                })
                .await;
            let path = api(&format!("/variables/MATRIX_GV_{n}"));
            match method {
                "PUT" => Req::json(path, json!({"value": "changed"})),
                "DELETE" => Req::get(path).consumes(key),
                _ => Req::get(path),
            }
        }
        other => panic!("no recipe for the group route {other:?}"),
    }
}

async fn project_recipe(
    ctx: &mut Ctx<'_>,
    method: &str,
    rest: &str,
    api: &dyn Fn(&str) -> String,
) -> Req {
    let fx = ctx.fx;
    let p = ctx.p();
    let pid = p.id;
    let guest = fx.user(Who::Guest).id;
    let vis_name = ctx.vis_name();
    let root = fx.root().to_string();
    let owner = ctx.owner();
    let maintainer = ctx.maintainer();
    match (method, rest) {
        ("GET", "") => Req::get(api("")),
        ("PUT", "") => Req::json(api(""), json!({"description": "changed"})),
        ("DELETE", "") => {
            let (id, key) = ctx
                .throwaway(async { fx.member_project(&fx.unique("doomed"), vis_name).await })
                .await;
            Req::get(format!("/api/v4/projects/{id}")).consumes(key)
        }
        ("GET", "/members" | "/members/all") => Req::get(api(rest)),
        ("POST", "/members") => {
            let (user, key) = ctx.throwaway(Ctx::new_user(fx)).await;
            Req::json(
                api("/members"),
                json!({"user_id": user, "access_level": 30}),
            )
            .consumes(key)
        }
        ("GET", "/members/{user_id}") => Req::get(api(&format!("/members/{guest}"))),
        ("GET", "/members/all/{user_id}") => Req::get(api(&format!("/members/all/{guest}"))),
        ("PUT", "/members/{user_id}") => {
            let (user, _) = ctx.throwaway(Ctx::new_member(fx, pid)).await;
            Req::json(
                api(&format!("/members/{user}")),
                json!({"access_level": 20}),
            )
        }
        ("DELETE", "/members/{user_id}") => {
            let (user, key) = ctx.throwaway(Ctx::new_member(fx, pid)).await;
            Req::get(api(&format!("/members/{user}"))).consumes(key)
        }
        ("GET", "/protected_branches") => Req::get(api(rest)),
        ("POST", "/protected_branches") => {
            Req::json(api(rest), json!({"name": fx.unique("protected-")}))
        }
        ("GET", "/protected_branches/{name}") => Req::get(api("/protected_branches/main")),
        ("DELETE", "/protected_branches/{name}") => {
            let (n, key) = ctx
                .throwaway(async {
                    let name = fx.unique("unprotect-");
                    fx.call(
                        Method::POST,
                        &format!("/projects/{pid}/protected_branches"),
                        maintainer,
                        json!({"name": name}),
                    )
                    .await;
                    name.trim_start_matches("unprotect-").parse().unwrap()
                })
                .await;
            Req::get(api(&format!("/protected_branches/unprotect-{n}"))).consumes(key)
        }
        ("GET", "/repository/branches" | "/repository/tags") => Req::get(api(rest)),
        ("GET", "/repository/branches/{branch}") => Req::get(api("/repository/branches/main")),
        ("GET", "/repository/files/{file_path}/raw") => {
            Req::get(api("/repository/files/.gitlab-ci.yml/raw?ref=main"))
        }
        ("GET", "/repository/commits/{sha}") => Req::get(api("/repository/commits/main")),
        ("POST", "/runners/reset_registration_token") => Req::json(api(rest), json!({})),
        ("GET", "/triggers") => Req::get(api(rest)),
        ("POST", "/triggers") => Req::json(api(rest), json!({"description": "new"})),
        ("GET", "/triggers/{trigger_id}") => Req::get(api(&format!("/triggers/{}", p.trigger_id))),
        ("PUT", "/triggers/{trigger_id}") => Req::json(
            api(&format!("/triggers/{}", p.trigger_id)),
            json!({"description": "renamed"}),
        ),
        ("POST", "/triggers/{trigger_id}/webhook") => Req::json(
            api(&format!("/triggers/{}/webhook?ref=feature", p.trigger_id)),
            json!({"ref": "refs/heads/feature"}),
        )
        .signed(),
        // A throwaway: rotating the fixture's trigger would change the token other cells use.
        ("POST", "/triggers/{trigger_id}/rotate") => {
            let (id, _) = ctx.throwaway(Ctx::new_trigger(fx, pid)).await;
            Req::json(api(&format!("/triggers/{id}/rotate")), json!({}))
        }
        ("DELETE", "/triggers/{trigger_id}") => {
            let (id, key) = ctx.throwaway(Ctx::new_trigger(fx, pid)).await;
            Req::get(api(&format!("/triggers/{id}"))).consumes(key)
        }
        ("GET", "/pipelines" | "/jobs") => Req::get(api(rest)),
        ("GET", "/pipelines/latest") => Req::get(api("/pipelines/latest?ref=stable")),
        ("GET", "/pipelines/{pipeline_id}") => Req::get(api(&format!("/pipelines/{}", p.pipeline))),
        ("DELETE", "/pipelines/{pipeline_id}") => {
            let (id, key) = ctx.throwaway(Ctx::pending_pipeline(fx, pid)).await;
            Req::get(api(&format!("/pipelines/{id}"))).consumes(key)
        }
        ("GET", "/pipelines/{pipeline_id}/variables" | "/pipelines/{pipeline_id}/jobs")
        | ("GET", "/pipelines/{pipeline_id}/bridges") => {
            Req::get(api(&rest.replace("{pipeline_id}", &p.pipeline.to_string())))
        }
        ("GET", "/jobs/{job_id}" | "/jobs/{job_id}/trace" | "/jobs/{job_id}/artifacts") => {
            Req::get(api(&rest.replace("{job_id}", &p.build.to_string())))
        }
        ("GET", "/jobs/{job_id}/artifacts/{*artifact_path}") => {
            Req::get(api(&format!("/jobs/{}/artifacts/out/a.txt", p.build)))
        }
        ("GET", "/jobs/artifacts/{*rest}") => {
            Req::get(api("/jobs/artifacts/stable/download?job=build"))
        }
        ("POST", "/pipeline") => Req::json(api(rest), json!({"ref": "feature"})),
        ("POST", "/trigger/pipeline") => {
            Req::json(api(rest), json!({"ref": "feature"})).token_param()
        }
        ("POST", "/ref/{*rest}") => {
            Req::json(api("/ref/feature/trigger/pipeline"), json!({})).token_param()
        }
        ("GET", "/ci/lint") => Req::get(api(rest)),
        ("POST", "/ci/lint") => Req::json(api(rest), json!({"content": "job:\n  script: echo\n"})),
        ("POST", "/jobs/{job_id}/cancel") => {
            let (job, key) = ctx
                .throwaway(async {
                    let pipeline = Ctx::pending_pipeline(fx, pid).await;
                    Ctx::first_job(fx, pid, pipeline).await
                })
                .await;
            Req::json(api(&format!("/jobs/{job}/cancel")), json!({})).consumes(key)
        }
        // A retried job is no longer retryable, a played one no longer playable (GitLab
        // answers 403 `Job is not retryable`): each success gets a fresh target.
        ("POST", "/jobs/{job_id}/retry") => {
            let (job, key) = ctx
                .throwaway(async { fx.finished_pipeline(pid, Who::Developer, "feature").await.1 })
                .await;
            Req::json(api(&format!("/jobs/{job}/retry")), json!({})).consumes(key)
        }
        ("POST", "/jobs/{job_id}/play") => {
            let (job, key) = ctx
                .throwaway(async { fx.finished_pipeline(pid, Who::Developer, "feature").await.2 })
                .await;
            Req::json(api(&format!("/jobs/{job}/play")), json!({})).consumes(key)
        }
        ("POST", "/jobs/{job_id}/erase") | ("DELETE", "/jobs/{job_id}/artifacts") => {
            let (job, key) = ctx
                .throwaway(async { fx.finished_pipeline(pid, Who::Developer, "feature").await.1 })
                .await;
            let req = if method == "POST" {
                Req::json(api(&format!("/jobs/{job}/erase")), json!({}))
            } else {
                Req::get(api(&format!("/jobs/{job}/artifacts")))
            };
            req.consumes(key)
        }
        ("POST", "/jobs/{job_id}/artifacts/keep") => {
            Req::json(api(&format!("/jobs/{}/artifacts/keep", p.build)), json!({}))
        }
        ("POST", "/pipelines/{pipeline_id}/cancel") => {
            let (id, key) = ctx.throwaway(Ctx::pending_pipeline(fx, pid)).await;
            Req::json(api(&format!("/pipelines/{id}/cancel")), json!({})).consumes(key)
        }
        ("POST", "/pipelines/{pipeline_id}/retry") => {
            let (id, key) = ctx.throwaway(fx.failed_pipeline(pid)).await;
            Req::json(api(&format!("/pipelines/{id}/retry")), json!({})).consumes(key)
        }
        ("GET", "/job_token_scope" | "/job_token_scope/allowlist") => Req::get(api(rest)),
        ("GET", "/job_token_scope/groups_allowlist") => Req::get(api(rest)),
        ("POST", "/job_token_scope/groups_allowlist") => {
            let (target, key) = ctx.throwaway(Ctx::public_group(fx)).await;
            Req::json(api(rest), json!({"target_group_id": target})).consumes(key)
        }
        ("DELETE", "/job_token_scope/groups_allowlist/{target_group_id}") => {
            let (target, key) = ctx
                .throwaway(async {
                    let target = Ctx::public_group(fx).await;
                    fx.call(
                        Method::POST,
                        &format!("/projects/{pid}/job_token_scope/groups_allowlist"),
                        &root,
                        json!({"target_group_id": target}),
                    )
                    .await;
                    target
                })
                .await;
            Req::get(api(&format!("/job_token_scope/groups_allowlist/{target}"))).consumes(key)
        }
        ("PATCH", "/job_token_scope") => Req::json(api(rest), json!({"enabled": true})),
        ("POST", "/job_token_scope/allowlist") => {
            let (target, key) = ctx.throwaway(Ctx::public_project(fx)).await;
            Req::json(api(rest), json!({"target_project_id": target})).consumes(key)
        }
        ("DELETE", "/job_token_scope/allowlist/{target_project_id}") => {
            let (target, key) = ctx
                .throwaway(async {
                    let target = Ctx::public_project(fx).await;
                    fx.call(
                        Method::POST,
                        &format!("/projects/{pid}/job_token_scope/allowlist"),
                        &root,
                        json!({"target_project_id": target}),
                    )
                    .await;
                    target
                })
                .await;
            Req::get(api(&format!("/job_token_scope/allowlist/{target}"))).consumes(key)
        }
        ("GET", "/variables") => Req::get(api(rest)),
        ("POST", "/variables") => Req::json(
            api(rest),
            json!({"key": fx.unique("MATRIX_NEW_"), "value": "v"}),
        ),
        ("GET", "/variables/{key}") => Req::get(api("/variables/MATRIX_VAR")),
        ("PUT", "/variables/{key}") => {
            Req::json(api("/variables/MATRIX_VAR"), json!({"value": "changed"}))
        }
        ("DELETE", "/variables/{key}") => {
            let (n, key) = ctx
                .throwaway(async {
                    let n: i64 = fx.unique("").parse().unwrap();
                    fx.call(
                        Method::POST,
                        &format!("/projects/{pid}/variables"),
                        owner,
                        json!({"key": format!("MATRIX_GONE_{n}"), "value": "v"}),
                    )
                    .await;
                    n
                })
                .await;
            Req::get(api(&format!("/variables/MATRIX_GONE_{n}"))).consumes(key)
        }
        ("GET", "/pipeline_schedules") => Req::get(api(rest)),
        ("POST", "/pipeline_schedules") => Req::json(
            api(rest),
            json!({"description": "new", "ref": "feature", "cron": "0 4 1 1 *"}),
        ),
        (_, rest) if rest.starts_with("/pipeline_schedules/{schedule_id}") => {
            schedule_recipe(ctx, method, rest, api).await
        }
        ("GET", "/hooks") => Req::get(api(rest)),
        ("POST", "/hooks") => Req::json(
            api(rest),
            json!({"url": "http://127.0.0.1:9/matrix-new", "push_events": true}),
        ),
        ("GET", "/hooks/{hook_id}") => Req::get(api(&format!("/hooks/{}", p.hook_id))),
        ("GET", "/hooks/{hook_id}/events") => {
            Req::get(api(&format!("/hooks/{}/events", p.hook_id)))
        }
        ("PUT", "/hooks/{hook_id}") => Req::json(
            api(&format!("/hooks/{}", p.hook_id)),
            json!({"url": "http://127.0.0.1:9/matrix-hook", "push_events": true}),
        ),
        ("POST", "/hooks/{hook_id}/test/{trigger}") => Req::json(
            api(&format!("/hooks/{}/test/push_events", p.hook_id)),
            json!({}),
        ),
        ("DELETE", "/hooks/{hook_id}") => {
            let (id, key) = ctx.throwaway(fx.new_hook(pid)).await;
            Req::get(api(&format!("/hooks/{id}"))).consumes(key)
        }
        other => panic!("no recipe for project route {other:?}"),
    }
}

/// `/pipeline_schedules/{schedule_id}…`: each route gets a Developer-owned schedule of its own
/// (made again after a success for the routes that consume it).
async fn schedule_recipe(
    ctx: &mut Ctx<'_>,
    method: &str,
    rest: &str,
    api: &dyn Fn(&str) -> String,
) -> Req {
    let fx = ctx.fx;
    let pid = ctx.p().id;
    let (sid, key) = ctx.throwaway(Ctx::new_schedule(fx, pid)).await;
    let sub = &rest["/pipeline_schedules/{schedule_id}".len()..];
    let path = api(&format!(
        "/pipeline_schedules/{sid}{}",
        sub.replace("{key}", "MATRIX_VAR")
    ));
    match (method, sub) {
        ("GET", "" | "/pipelines" | "/variables/{key}") => Req::get(path),
        ("PUT", "") => Req::json(path, json!({"description": "renamed"})),
        ("DELETE", "" | "/variables/{key}") => Req::get(path).consumes(key),
        ("POST", "/play") => Req::json(path, json!({})),
        ("POST", "/take_ownership") => Req::json(path, json!({})).consumes(key),
        ("POST", "/variables") => {
            Req::json(path, json!({"key": fx.unique("MATRIX_NEW_"), "value": "v"}))
        }
        ("PUT", "/variables/{key}") => Req::json(path, json!({"value": "changed"})),
        other => panic!("no recipe for schedule route {other:?}"),
    }
}

async fn web_recipe(
    ctx: &mut Ctx<'_>,
    fx: &Fixture,
    method: &str,
    path: &str,
    page: &dyn Fn(&str) -> String,
) -> Req {
    let p = ctx.p();
    let pid = p.id;
    let root = fx.root().to_string();
    let project_rest = path.strip_prefix("/{namespace}/{repo}");
    match (method, path, project_rest) {
        ("GET", "/users/sign_in" | "/" | "/admin", _) => Req::get(path),
        ("GET", "/groups/{*id}", _) => Req::get(format!(
            "/groups/{}",
            fx.group(ctx.vis.unwrap_or(Vis::Private))
        )),
        // No credentials: the form's CSRF check refuses it before anything else.
        ("POST", "/users/sign_in", _) => Req::form(path, &[("user[login]", "nobody")]),
        ("POST", "/users/sign_out", _) => Req::form(path, &[]),
        ("POST", "/admin/users", _) => {
            let name = fx.unique("web-created");
            let email = format!("{name}@example.com");
            Req::form(
                path,
                &[
                    ("username", &name),
                    ("name", &name),
                    ("email", &email),
                    ("password", super::fixture::PASSWORD),
                ],
            )
        }
        ("POST", "/admin/users/{id}/{action}", _) => {
            let (id, key) = ctx.throwaway(Ctx::new_user(fx)).await;
            Req::form(format!("/admin/users/{id}/block"), &[]).consumes(key)
        }
        ("POST", "/admin/settings", _) => Req::form(
            path,
            &[("allow_local_requests_from_web_hooks_and_services", "true")],
        ),
        ("GET", "/-/assets/{file}", _) => Req::get("/-/assets/app.css"),
        ("GET", "/-/user_settings/personal_access_tokens", _) => Req::get(path),
        (
            "GET",
            "/users/sign_up" | "/-/user_settings/profile" | "/-/user_settings/password/edit",
            _,
        ) => Req::get(path),
        ("POST", "/users", _) => Req::form(path, &[("new_user[username]", "nobody")]),
        ("GET", "/projects/new" | "/groups/new", _) => Req::get(path),
        ("POST", "/groups", _) => {
            let name = fx.unique("web-group-");
            Req::form(path, &[("name", &name), ("path", &name)])
        }
        // Sent as users write them: `/groups/<id>/-/…` is routed as `/groups/-/<id>/…`.
        ("GET", "/groups/-/{id}/settings/ci_cd", _) => Req::get(format!(
            "/groups/{}/-/settings/ci_cd",
            fx.group(ctx.vis.unwrap_or(Vis::Private))
        )),
        ("POST", "/groups/-/{id}/settings/ci_cd/variables", _) => {
            let gid = fx.group(ctx.vis.unwrap_or(Vis::Private));
            let key = fx.unique("MATRIX_WEB_GV_");
            Req::form(
                format!("/groups/{gid}/-/settings/ci_cd/variables"),
                &[("key", &key), ("value", "v")],
            )
        }
        ("POST", "/projects", _) => {
            let name = fx.unique("web-project");
            Req::form(path, &[("name", &name)])
        }
        // The name is kept and the email left as it is: nothing a later cell depends on.
        ("POST", "/-/user_settings/profile", _) => Req::form(path, &[("user[name]", "Matrix")]),
        // A wrong current password: refused (422) without changing anything or ending the
        // caller's sessions.
        ("POST", "/-/user_settings/password", _) => Req::form(
            path,
            &[("user[password]", "wrong"), ("user[new_password]", "x")],
        ),
        ("POST", "/-/user_settings/personal_access_tokens", _) => {
            Req::form(path, &[("name", "matrix"), ("scopes[]", "read_api")])
        }
        ("POST", "/-/user_settings/personal_access_tokens/{id}/{action}", _) => {
            let (id, key) = ctx.throwaway(Ctx::developer_token(fx)).await;
            Req::form(
                format!("/-/user_settings/personal_access_tokens/{id}/revoke"),
                &[],
            )
            .consumes(key)
        }
        ("GET", _, Some("" | "/-/pipelines" | "/-/jobs" | "/-/settings/ci_cd" | "/-/hooks")) => {
            Req::get(page(project_rest.unwrap_or_default()))
        }
        // The repository pages (issue 17): the fixture's `.gitlab-ci.yml` on `stable`.
        ("GET", _, Some("/-/branches" | "/-/tags")) => {
            Req::get(page(project_rest.unwrap_or_default()))
        }
        ("GET", _, Some("/-/tree/{*id}")) => Req::get(page(
            &project_rest.unwrap_or_default().replace("{*id}", "stable"),
        )),
        // The commits page filtered to a path, the fuller form of `/-/commits/:ref`.
        ("GET", _, Some("/-/blob/{*id}" | "/-/raw/{*id}" | "/-/commits/{*id}")) => Req::get(page(
            &project_rest
                .unwrap_or_default()
                .replace("{*id}", "stable/.gitlab-ci.yml"),
        )),
        ("POST", _, Some("/-/pipelines")) => Req::form(page("/-/pipelines"), &[("ref", "feature")]),
        ("GET", _, Some("/-/pipelines/{id}")) => {
            Req::get(page(&format!("/-/pipelines/{}", p.pipeline)))
        }
        ("POST", _, Some("/-/pipelines/{id}/{action}")) => {
            let (id, key) = ctx.throwaway(Ctx::pending_pipeline(fx, pid)).await;
            Req::form(page(&format!("/-/pipelines/{id}/cancel")), &[]).consumes(key)
        }
        ("GET", _, Some(rest)) if rest.starts_with("/-/jobs/{id}") => {
            let rest = rest
                .replace("{id}", &p.build.to_string())
                .replace("{*dir}", "out")
                .replace("{*path}", "out/a.txt");
            Req::get(page(&rest))
        }
        ("POST", _, Some("/-/jobs/{id}/{action}")) => {
            let (job, key) = ctx
                .throwaway(async { fx.finished_pipeline(pid, Who::Developer, "feature").await.1 })
                .await;
            Req::form(page(&format!("/-/jobs/{job}/retry")), &[]).consumes(key)
        }
        ("GET", _, Some("/-/pipeline_schedules" | "/-/pipeline_schedules/new")) => {
            Req::get(page(project_rest.unwrap_or_default()))
        }
        ("POST", _, Some("/-/pipeline_schedules")) => Req::form(
            page("/-/pipeline_schedules"),
            &[
                ("description", "web"),
                ("ref", "feature"),
                ("cron", "0 4 1 1 *"),
                ("cron_timezone", "UTC"),
            ],
        ),
        ("GET", _, Some("/-/pipeline_schedules/{id}/edit")) => {
            let (id, _) = ctx.throwaway(Ctx::new_schedule(fx, pid)).await;
            Req::get(page(&format!("/-/pipeline_schedules/{id}/edit")))
        }
        ("POST", _, Some("/-/pipeline_schedules/{id}")) => {
            let (id, _) = ctx.throwaway(Ctx::new_schedule(fx, pid)).await;
            Req::form(
                page(&format!("/-/pipeline_schedules/{id}")),
                &[("description", "renamed on the page")],
            )
        }
        ("POST", _, Some("/-/pipeline_schedules/{id}/{action}")) => {
            let (id, _) = ctx.throwaway(Ctx::new_schedule(fx, pid)).await;
            Req::form(page(&format!("/-/pipeline_schedules/{id}/play")), &[])
        }
        ("POST", _, Some("/-/settings/ci_cd/triggers")) => Req::form(
            page("/-/settings/ci_cd/triggers"),
            &[("description", "web")],
        ),
        ("POST", _, Some("/-/settings/ci_cd/triggers/{id}/{action}")) => {
            let (id, key) = ctx.throwaway(Ctx::new_trigger(fx, pid)).await;
            Req::form(
                page(&format!("/-/settings/ci_cd/triggers/{id}/revoke")),
                &[],
            )
            .consumes(key)
        }
        ("POST", _, Some("/-/settings/ci_cd/variables")) => {
            let key = fx.unique("MATRIX_WEB_");
            Req::form(
                page("/-/settings/ci_cd/variables"),
                &[("key", &key), ("value", "v")],
            )
        }
        ("POST", _, Some("/-/settings/ci_cd/job_token_scope")) => Req::form(
            page("/-/settings/ci_cd/job_token_scope"),
            &[("op", "enabled"), ("enabled", "true")],
        ),
        ("POST", _, Some("/-/settings/ci_cd/runners")) => Req::form(
            page("/-/settings/ci_cd/runners"),
            &[("description", "web runner")],
        ),
        ("POST", _, Some("/-/settings/ci_cd/runners/{id}/remove")) => {
            let (id, key) = ctx.throwaway(fx.new_project_runner(pid)).await;
            Req::form(page(&format!("/-/settings/ci_cd/runners/{id}/remove")), &[]).consumes(key)
        }
        ("GET", _, Some("/edit" | "/-/settings/repository" | "/-/project_members")) => {
            Req::get(page(project_rest.unwrap_or_default()))
        }
        ("POST", _, Some("")) => Req::form(page(""), &[("description", "matrix")]),
        // The wrong confirmation: refused (a redirect with a message), nothing deleted.
        ("POST", _, Some("/-/delete")) => {
            Req::form(page("/-/delete"), &[("confirm_name", "not-the-path")])
        }
        ("POST", _, Some("/-/protected_branches")) => {
            let name = fx.unique("matrix-web-");
            Req::form(page("/-/protected_branches"), &[("name", &name)])
        }
        ("POST", _, Some("/-/protected_branches/{id}/unprotect")) => {
            let (id, key) = ctx.throwaway(Ctx::new_protected_branch(fx, pid)).await;
            Req::form(page(&format!("/-/protected_branches/{id}/unprotect")), &[]).consumes(key)
        }
        // Nobody by that name: the API's refusal comes back as the page's message.
        ("POST", _, Some("/-/project_members")) => Req::form(
            page("/-/project_members"),
            &[("username", "matrix-nobody"), ("access_level", "30")],
        ),
        ("POST", _, Some("/-/project_members/{user_id}/{action}")) => {
            let (id, key) = ctx.throwaway(Ctx::new_member(fx, pid)).await;
            Req::form(page(&format!("/-/project_members/{id}/remove")), &[]).consumes(key)
        }
        ("POST", _, Some("/-/hooks")) => Req::form(
            page("/-/hooks"),
            &[
                ("url", "http://127.0.0.1:9/matrix-web"),
                ("push_events", "true"),
            ],
        ),
        ("POST", _, Some("/-/hooks/{id}/{action}")) => {
            let (id, key) = ctx.throwaway(fx.new_hook(pid)).await;
            Req::form(page(&format!("/-/hooks/{id}/remove")), &[]).consumes(key)
        }
        other => {
            let _ = root;
            panic!("no recipe for page {other:?}")
        }
    }
}

/// Asks one cell and classifies the answer.
pub async fn run(mut ctx: Ctx<'_>) -> Got {
    let req = recipe(&mut ctx).await;
    let fx = ctx.fx;
    let who = ctx.who;
    let cred = fx.cred(who, ctx.vis);
    let is_git = super::is_git(&ctx.case.path);
    let is_api = super::is_api(&ctx.case.path);
    let mut builder = fx.client.request(
        ctx.case.method.clone(),
        format!("{}{}", fx.app.url, req.path),
    );
    for (name, value) in &req.headers {
        builder = builder.header(*name, value);
    }
    let mut body = req.body;
    if is_git {
        if let Some((user, secret)) = cred.basic() {
            builder = builder.basic_auth(user, Some(secret));
        }
    } else if req.slot == Slot::TokenParam {
        if let Some(secret) = cred.secret() {
            match &mut body {
                Body::Json(Value::Object(map)) => {
                    map.insert("token".into(), json!(secret));
                }
                _ => panic!("a token parameter needs a JSON body"),
            }
        }
    } else if req.slot == Slot::Signature {
        let Body::Json(value) = &body else {
            panic!("a signed webhook needs a JSON body")
        };
        let text = value.to_string();
        if let Some(secret) = cred.secret() {
            use hmac::{KeyInit, Mac};
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(text.as_bytes());
            let signature = hex::encode(mac.finalize().into_bytes());
            builder = builder.header("X-Hub-Signature-256", format!("sha256={signature}"));
        }
        builder = builder.header("Content-Type", "application/json");
        body = Body::Signed(text);
    } else {
        match &cred {
            Cred::Pat { token, .. } | Cred::Other(token) => {
                builder = builder.header("PRIVATE-TOKEN", token);
            }
            Cred::Job(token) => builder = builder.header("JOB-TOKEN", token),
            Cred::None => {}
        }
        if !is_api && let Some(session) = fx.sessions.get(&who) {
            builder = builder.header("Cookie", &session.cookie);
            if let Body::Form(fields) = &mut body {
                fields.push(("authenticity_token".into(), session.csrf.clone()));
            }
        }
    }
    builder = match body {
        Body::None => builder,
        Body::Json(v) => builder.json(&v),
        Body::Form(fields) => builder.form(&fields),
        Body::Text(t) => builder.body(t),
        Body::Signed(text) => builder.body(text),
        Body::Zip => {
            let form = reqwest::multipart::Form::new()
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(super::fixture::artifacts_zip())
                        .file_name("artifacts.zip"),
                )
                .text("artifact_type", "archive")
                .text("artifact_format", "zip");
            builder.multipart(form)
        }
    };
    let res = builder.send().await.expect("request");
    let status = res.status().as_u16();
    let to_sign_in = res
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|l| l.starts_with("/users/sign_in"));
    let got = if (300..400).contains(&status) && to_sign_in {
        Got::SignIn
    } else {
        Got::Status(status)
    };
    let _ = res.bytes().await;
    if let (Some(key), Got::Status(200..=399)) = (req.consumes, &got) {
        ctx.throwaways.remove(&key);
    }
    got
}

/// Where GitLab's answer for one endpoint departs from the general rules of `expect.rs`.
pub fn exception(case: &Case, who: Who, vis: Option<Vis>) -> Option<Expect> {
    let anonymous = who == Who::Anonymous || (who.is_job_token() && is_plain_api(case));
    match (case.method.as_str(), case.path.as_str()) {
        // A token on the user settings page is its owner's alone (the Developer's here); it
        // is not found for anyone else, administrators included.
        ("POST", "/-/user_settings/personal_access_tokens/{id}/{action}")
            if who.has_session() && who != Who::Blocked && who != Who::Developer =>
        {
            Some(Expect::Status(404))
        }
        // Sign-up is off in the fixture (GitLab's `signup_enabled`): the page does not exist.
        ("GET", "/users/sign_up") | ("POST", "/users") => Some(Expect::Status(404)),
        // Signing out ends at the sign-in page, whoever asks.
        ("POST", "/users/sign_out") => Some(Expect::SignIn),
        // Only the trigger's owner (the Maintainer who made it) or an administrator may change
        // it (GitLab: app/policies/ci/trigger_policy.rb, `admin_trigger` needs `is_owner`).
        // A signed webhook (issue 14 §5): only the trigger's own token signs it; anything
        // else (a job token, a user's token, no signature) is a wrong signature, 404.
        ("POST", "/api/v4/projects/{id}/triggers/{trigger_id}/webhook")
            if who != Who::TriggerToken =>
        {
            Some(Expect::Status(404))
        }
        // Rotating (issue 14 §2) follows the same rule.
        ("PUT", "/api/v4/projects/{id}/triggers/{trigger_id}")
        | ("POST", "/api/v4/projects/{id}/triggers/{trigger_id}/rotate")
            if who == Who::Owner =>
        {
            Some(Expect::Status(403))
        }
        // Reading a pipeline's variables: GitLab's pipelines API authenticates only writes
        // (`authenticate_non_get!`) and then asks `read_pipeline_variable`: an anonymous
        // caller sees the public project, and is refused with 403.
        ("GET", "/api/v4/projects/{id}/pipelines/{pipeline_id}/variables") if anonymous => {
            Some(Expect::Status(if vis == Some(Vis::Public) {
                403
            } else {
                404
            }))
        }
        // Another user's token: not found, to anyone but an administrator (GitLab 16:
        // lib/api/personal_access_tokens.rb `not_found!` unless `read_user_personal_access_tokens`;
        // later releases answer 401 to reads and 400 to revocations — a refusal either way,
        // and never a hint that the token exists).
        (
            "GET" | "DELETE" | "POST",
            "/api/v4/personal_access_tokens/{id}" | "/api/v4/personal_access_tokens/{id}/rotate",
        ) if (who.role().is_some() && who != Who::Developer) || who == Who::NonMember => {
            if who == Who::ReadApiToken && case.method != Method::GET {
                None
            } else {
                Some(Expect::Status(404))
            }
        }
        _ => schedule_exception(case, who, vis),
    }
}

/// GitLab's pipeline schedule API (lib/api/ci/pipeline_schedules.rb) finds the schedule
/// before it authorizes: whoever sees the project but may not read its schedules (a Guest of
/// the private one) gets `404 Pipeline Schedule Not Found` — except on the variable writes,
/// which ask `set_pipeline_variables` of the project first (403). Editing a schedule and its
/// variables is its owner's alone (`update_pipeline_schedule`: the Developer here), so
/// Maintainers and Owners are refused; pages answer those with 404.
fn schedule_exception(case: &Case, who: Who, vis: Option<Vis>) -> Option<Expect> {
    let path = case.path.as_str();
    let method = case.method.as_str();
    let owner_only = matches!(
        (method, path),
        (
            "PUT",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}"
        ) | (
            "POST",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables"
        ) | (
            "PUT",
            "/api/v4/projects/{id}/pipeline_schedules/{schedule_id}/variables/{key}"
        ) | ("GET", "/{namespace}/{repo}/-/pipeline_schedules/{id}/edit")
            | ("POST", "/{namespace}/{repo}/-/pipeline_schedules/{id}")
    );
    if owner_only && matches!(who, Who::Maintainer | Who::Owner) {
        let page = !super::is_api(path);
        return Some(Expect::Status(if page { 404 } else { 403 }));
    }
    let finds_first = path.starts_with("/api/v4/projects/{id}/pipeline_schedules/{schedule_id}")
        && !(path.contains("/variables") && method != "GET");
    if finds_first && who == Who::Guest && vis == Some(Vis::Private) {
        return Some(Expect::Status(404));
    }
    None
}

/// An API route that does not read job tokens.
fn is_plain_api(case: &Case) -> bool {
    super::is_api(&case.path)
        && !matches!(
            case.access,
            Access::ReadOrJobToken
                | Access::JobToken
                | Access::OwnJobToken
                | Access::TriggerToken
                | Access::RunnerToken
        )
}
