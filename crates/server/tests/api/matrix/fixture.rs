//! The world the matrix asks about, built once per backend through the API, git and the runner
//! protocol: users of every role, a public and a private project, their pipelines and jobs,
//! and the credentials of every kind of caller.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};

use pipewright_core::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use super::callers::{Cred, Who};
use crate::support::{ROOT_PASSWORD, TestApp};
use crate::web::Browser;

pub const PASSWORD: &str = "a-long-password";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vis {
    Public,
    Private,
}

/// `build` makes the archive every finished `build` job carries; `hold` stays running (its
/// token is the project's `CI_JOB_TOKEN`); `manual_job` waits to be played.
pub const CONFIG: &str = r#"build:
  script: echo build
  artifacts:
    paths: [out/]
hold:
  script: echo hold
  rules:
    - if: '$HOLD == "yes"'
manual_job:
  script: echo manual
  when: manual
"#;

const HOLD_CONFIG: &str = "hold:\n  script: echo hold\n";

pub struct User {
    pub id: i64,
    pub username: String,
    pub token: String,
}

/// One of the two projects the matrix asks about.
pub struct ProjectFx {
    pub id: i64,
    pub full_path: String,
    /// A successful pipeline on the unprotected `stable` branch, only ever read: `build` (with
    /// artifacts).
    pub pipeline: i64,
    pub build: i64,
    /// The running `hold` job whose token is this project's `CI_JOB_TOKEN`.
    pub hold: i64,
    pub job_token: String,
    pub trigger_id: i64,
    pub trigger_token: String,
    pub hook_id: i64,
    pub runner_id: i64,
}

pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub struct Fixture {
    pub app: TestApp,
    pub users: HashMap<Who, User>,
    pub revoked_token: String,
    pub expired_token: String,
    pub read_api_token: String,
    pub public: ProjectFx,
    pub private: ProjectFx,
    /// A public and a private group with a member of every role (as the projects have).
    pub public_group: i64,
    pub private_group: i64,
    /// The project on the targets' allowlists, and one that is not.
    pub allowlisted_project: i64,
    pub allowlisted_job_token: String,
    pub other_job_token: String,
    pub runner_token: String,
    pub sessions: HashMap<Who, Session>,
    /// The Developer's own token's id (for the `personal_access_tokens/:id` routes).
    pub developer_token_id: i64,
    /// The client cells ask with: redirects are answers, not followed.
    pub client: reqwest::Client,
    counter: AtomicU32,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    pub fn project(&self, vis: Vis) -> &ProjectFx {
        match vis {
            Vis::Public => &self.public,
            Vis::Private => &self.private,
        }
    }

    pub fn user(&self, who: Who) -> &User {
        &self.users[&who]
    }

    pub fn token(&self, who: Who) -> &str {
        &self.user(who).token
    }

    /// A name no cell used before.
    pub fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// What `who` sends when asking about `vis`'s project (or about nothing in particular).
    pub fn cred(&self, who: Who, vis: Option<Vis>) -> Cred {
        let maintainer = || self.user(Who::Maintainer).username.clone();
        let project = self.project(vis.unwrap_or(Vis::Private));
        match who {
            Who::Anonymous => Cred::None,
            Who::RevokedToken => Cred::Pat {
                username: maintainer(),
                token: self.revoked_token.clone(),
            },
            Who::ExpiredToken => Cred::Pat {
                username: maintainer(),
                token: self.expired_token.clone(),
            },
            Who::ReadApiToken => Cred::Pat {
                username: maintainer(),
                token: self.read_api_token.clone(),
            },
            Who::OwnJobToken => Cred::Job(project.job_token.clone()),
            Who::AllowlistedJobToken => Cred::Job(self.allowlisted_job_token.clone()),
            Who::OtherJobToken => Cred::Job(self.other_job_token.clone()),
            Who::RunnerToken => Cred::Other(self.runner_token.clone()),
            Who::TriggerToken => Cred::Other(project.trigger_token.clone()),
            user => {
                let u = self.user(user);
                Cred::Pat {
                    username: u.username.clone(),
                    token: u.token.clone(),
                }
            }
        }
    }

    /// An API call the fixture makes (as an owner or administrator), which must succeed.
    pub async fn call(&self, method: Method, path: &str, token: &str, body: Value) -> Value {
        let res = self
            .app
            .request(method.clone(), path, Some(token), Some(body))
            .await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert!(
            (200..300).contains(&status),
            "fixture: {method} {path} answered {status}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub fn root(&self) -> &str {
        &self.app.root_token
    }

    pub async fn build(app: TestApp) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let mut users = HashMap::new();
        let root: Value = app.root_json("/user").await;
        users.insert(
            Who::Admin,
            User {
                id: root["id"].as_i64().unwrap(),
                username: "root".into(),
                token: app.root_token.clone(),
            },
        );
        for (who, name) in [
            (Who::NonMember, "stranger"),
            (Who::Guest, "guest"),
            (Who::Reporter, "reporter"),
            (Who::Developer, "developer"),
            (Who::Maintainer, "maintainer"),
            (Who::Owner, "owner"),
            (Who::Blocked, "blocked"),
        ] {
            let (id, token) = app.create_user(name).await;
            users.insert(
                who,
                User {
                    id,
                    username: name.into(),
                    token,
                },
            );
        }
        let mut fx = Fixture {
            app,
            users,
            revoked_token: String::new(),
            expired_token: String::new(),
            read_api_token: String::new(),
            public: ProjectFx::empty(),
            private: ProjectFx::empty(),
            public_group: 0,
            private_group: 0,
            allowlisted_project: 0,
            allowlisted_job_token: String::new(),
            other_job_token: String::new(),
            runner_token: String::new(),
            sessions: HashMap::new(),
            developer_token_id: 0,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            counter: AtomicU32::new(0),
            _tmp: tempfile::tempdir().unwrap(),
        };
        fx.tokens().await;
        fx.call(
            Method::PUT,
            "/application/settings",
            &fx.app.root_token.clone(),
            json!({"allow_local_requests_from_web_hooks_and_services": true}),
        )
        .await;
        let runner = fx
            .call(
                Method::POST,
                "/user/runners",
                fx.root(),
                json!({"runner_type": "instance_type"}),
            )
            .await;
        fx.runner_token = runner["token"].as_str().unwrap().to_string();

        // The projects jobs come from: one on the targets' allowlists, one not.
        let allowlisted = fx.source_project("allowlisted", tmp.path()).await;
        let other = fx.source_project("elsewhere", tmp.path()).await;
        fx.allowlisted_project = allowlisted;
        fx.allowlisted_job_token = fx.hold_job(allowlisted, Who::Developer, "main").await.1;
        fx.other_job_token = fx.hold_job(other, Who::Developer, "main").await.1;

        fx.public = fx.target("matrix-public", "public", tmp.path()).await;
        fx.private = fx.target("matrix-private", "private", tmp.path()).await;
        fx.public_group = fx.member_group(None, "public").await;
        fx.private_group = fx.member_group(None, "private").await;
        fx.sign_in_everyone().await;
        let blocked = fx.user(Who::Blocked).id;
        fx.call(
            Method::POST,
            &format!("/users/{blocked}/block"),
            fx.root(),
            json!({}),
        )
        .await;
        fx._tmp = tmp;
        fx
    }

    /// The Maintainer's revoked, expired and `read_api` tokens; the Developer's token id.
    async fn tokens(&mut self) {
        let maintainer = self.user(Who::Maintainer).id;
        let root = self.root().to_string();
        let revoked = self
            .call(
                Method::POST,
                &format!("/users/{maintainer}/personal_access_tokens"),
                &root,
                json!({"name": "revoked", "scopes": ["api"]}),
            )
            .await;
        self.call(
            Method::DELETE,
            &format!("/personal_access_tokens/{}", revoked["id"]),
            &root,
            json!({}),
        )
        .await;
        self.revoked_token = revoked["token"].as_str().unwrap().to_string();
        let read_api = self
            .call(
                Method::POST,
                &format!("/users/{maintainer}/personal_access_tokens"),
                &root,
                json!({"name": "read-only", "scopes": ["read_api"]}),
            )
            .await;
        self.read_api_token = read_api["token"].as_str().unwrap().to_string();
        // The API refuses a past expiry date, so this one is written to the store directly.
        let expired = "glpat-matrix-expired-token-0000000000";
        self.app
            .store
            .create_personal_access_token(&pipewright_store::NewPersonalAccessToken {
                user_id: maintainer,
                name: "expired".into(),
                token_digest: pipewright_server::secrets::token_digest(expired),
                scopes: vec!["api".into()],
                expires_at: Some(Timestamp(Timestamp::now().millis() - 86_400_000)),
            })
            .await
            .unwrap();
        self.expired_token = expired.to_string();
        let developer = self.token(Who::Developer).to_string();
        let own = self
            .call(
                Method::GET,
                "/personal_access_tokens/self",
                &developer,
                json!({}),
            )
            .await;
        self.developer_token_id = own["id"].as_i64().unwrap();
    }

    /// A private project of the Developer's with one `hold` job in its config.
    async fn source_project(&self, name: &str, tmp: &std::path::Path) -> i64 {
        let developer = self.token(Who::Developer).to_string();
        let project = self.app.create_project(&developer, name).await;
        self.push(name, "developer", &developer, HOLD_CONFIG, tmp, &[])
            .await;
        project["id"].as_i64().unwrap()
    }

    /// Pushes `config` as `main` (and `extra` branches) of `<user>/<name>`, without pipelines.
    async fn push(
        &self,
        name: &str,
        user: &str,
        token: &str,
        config: &str,
        tmp: &std::path::Path,
        extra: &[&str],
    ) {
        let dir = tmp.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let work = crate::git::local_repo(&dir, config);
        let url = crate::git::remote(&self.app, user, token, &format!("{user}/{name}"));
        let mut refspecs = vec!["main".to_string()];
        refspecs.extend(extra.iter().map(|b| format!("main:{b}")));
        let mut args = vec!["push", "-q", "-o", "ci.skip", &url];
        args.extend(refspecs.iter().map(String::as_str));
        crate::git::git_ok(&work, &dir, &args);
    }

    /// Runs a pipeline as `who` on `ref_name` with `HOLD=yes`, and claims its jobs: the `hold`
    /// job stays running; any `build` is finished. Returns `(hold id, hold token)`.
    async fn hold_job(&self, project: i64, who: Who, ref_name: &str) -> (i64, String) {
        let pipeline = self
            .call(
                Method::POST,
                &format!("/projects/{project}/pipeline"),
                self.token(who),
                json!({"ref": ref_name, "variables": [{"key": "HOLD", "value": "yes"}]}),
            )
            .await;
        let jobs = self.claim_all().await;
        let mut hold = None;
        for job in jobs {
            if job["job_info"]["name"] == "hold" && pipeline_of(&job) == pipeline["id"] {
                hold = Some((
                    job["id"].as_i64().unwrap(),
                    job["token"].as_str().unwrap().to_string(),
                ));
            } else {
                self.finish(&job, "success").await;
            }
        }
        hold.expect("the hold job was claimed")
    }

    /// Claims every pending job with the instance runner.
    pub async fn claim_all(&self) -> Vec<Value> {
        let mut jobs = Vec::new();
        while let Some(job) = crate::running::request(&self.app, &self.runner_token).await {
            jobs.push(job);
        }
        jobs
    }

    pub async fn finish(&self, job: &Value, state: &str) {
        let res = crate::running::finish(&self.app, job, state).await;
        assert_eq!(res.status(), 200, "finish job {}", job["id"]);
    }

    /// A successful pipeline on `ref_name` (created by `who`): its `build` job finished with
    /// an artifacts archive. Returns `(pipeline id, build id, manual job id)`.
    pub async fn finished_pipeline(
        &self,
        project: i64,
        who: Who,
        ref_name: &str,
    ) -> (i64, i64, i64) {
        let pipeline = self
            .call(
                Method::POST,
                &format!("/projects/{project}/pipeline"),
                self.token(who),
                json!({"ref": ref_name}),
            )
            .await;
        let pipeline_id = pipeline["id"].as_i64().unwrap();
        let mut build = None;
        for job in self.claim_all().await {
            if pipeline_of(&job) == pipeline_id && job["job_info"]["name"] == "build" {
                self.upload_artifacts(&job).await;
                build = job["id"].as_i64();
            }
            self.finish(&job, "success").await;
        }
        let jobs = self
            .call(
                Method::GET,
                &format!("/projects/{project}/pipelines/{pipeline_id}/jobs?scope=manual"),
                self.root(),
                json!({}),
            )
            .await;
        let manual = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "manual_job")
            .and_then(|j| j["id"].as_i64())
            .unwrap_or(0);
        (pipeline_id, build.expect("build was claimed"), manual)
    }

    /// A failed pipeline on `feature` (its `build` failed): retryable.
    pub async fn failed_pipeline(&self, project: i64) -> i64 {
        let pipeline = self
            .call(
                Method::POST,
                &format!("/projects/{project}/pipeline"),
                self.token(Who::Developer),
                json!({"ref": "feature"}),
            )
            .await;
        let pipeline_id = pipeline["id"].as_i64().unwrap();
        for job in self.claim_all().await {
            let failed = pipeline_of(&job) == pipeline_id;
            self.finish(&job, if failed { "failed" } else { "success" })
                .await;
        }
        pipeline_id
    }

    async fn upload_artifacts(&self, job: &Value) {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(artifacts_zip()).file_name("artifacts.zip"),
            )
            .text("artifact_type", "archive")
            .text("artifact_format", "zip");
        let res = self
            .app
            .client
            .post(self.app.api(&format!("/jobs/{}/artifacts", job["id"])))
            .header("JOB-TOKEN", job["token"].as_str().unwrap())
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "upload artifacts");
    }

    /// A project the matrix asks about, owned by the Owner, with a member of every other role.
    async fn target(&self, name: &str, visibility: &str, tmp: &std::path::Path) -> ProjectFx {
        let owner = self.token(Who::Owner).to_string();
        let root = self.root().to_string();
        let id = self.member_project(name, visibility).await;
        self.push(name, "owner", &owner, CONFIG, tmp, &["feature", "stable"])
            .await;
        let scope = format!("/projects/{id}/job_token_scope");
        self.call(Method::PATCH, &scope, &owner, json!({"enabled": true}))
            .await;
        self.call(
            Method::POST,
            &format!("{scope}/allowlist"),
            &root,
            json!({"target_project_id": self.allowlisted_project}),
        )
        .await;
        let (pipeline, build, _) = self.finished_pipeline(id, Who::Developer, "stable").await;
        let (hold, job_token) = self.hold_job(id, Who::Developer, "feature").await;
        let maintainer = self.token(Who::Maintainer).to_string();
        let trigger = self
            .call(
                Method::POST,
                &format!("/projects/{id}/triggers"),
                &maintainer,
                json!({"description": "matrix"}),
            )
            .await;
        let hook_id = self.new_hook(id).await;
        self.call(
            Method::POST,
            &format!("/projects/{id}/variables"),
            &maintainer,
            json!({"key": "MATRIX_VAR", "value": "matrix-value"}),
        )
        .await;
        let runner_id = self.new_project_runner(id).await;
        ProjectFx {
            id,
            full_path: format!("owner/{name}"),
            pipeline,
            build,
            hold,
            job_token,
            trigger_id: trigger["id"].as_i64().unwrap(),
            trigger_token: trigger["token"].as_str().unwrap().to_string(),
            hook_id,
            runner_id,
        }
    }

    /// A project of the Owner's named `name` with a member of every other role; its id.
    pub async fn member_project(&self, name: &str, visibility: &str) -> i64 {
        let owner = self.token(Who::Owner).to_string();
        let project = self
            .call(
                Method::POST,
                "/projects",
                &owner,
                json!({"name": name, "visibility": visibility}),
            )
            .await;
        let id = project["id"].as_i64().unwrap();
        for (who, level) in [
            (Who::Guest, 10),
            (Who::Reporter, 20),
            (Who::Developer, 30),
            (Who::Maintainer, 40),
            (Who::Blocked, 40),
        ] {
            self.call(
                Method::POST,
                &format!("/projects/{id}/members"),
                &owner,
                json!({"user_id": self.user(who).id, "access_level": level}),
            )
            .await;
        }
        id
    }

    /// The group of `vis`: the public or the private one.
    pub fn group(&self, vis: Vis) -> i64 {
        match vis {
            Vis::Public => self.public_group,
            Vis::Private => self.private_group,
        }
    }

    /// A group made by the Owner with a member of every role; under `parent`, the members
    /// are inherited instead.
    pub async fn member_group(&self, parent: Option<i64>, visibility: &str) -> i64 {
        let owner = self.token(Who::Owner).to_string();
        let path = self.unique("matrix-group-");
        let group = self
            .call(
                Method::POST,
                "/groups",
                &owner,
                json!({"name": path, "path": path, "visibility": visibility, "parent_id": parent}),
            )
            .await;
        let id = group["id"].as_i64().unwrap();
        if parent.is_some() {
            return id;
        }
        for (who, level) in [
            (Who::Guest, 10),
            (Who::Reporter, 20),
            (Who::Developer, 30),
            (Who::Maintainer, 40),
            (Who::Blocked, 40),
        ] {
            self.call(
                Method::POST,
                &format!("/groups/{id}/members"),
                &owner,
                json!({"user_id": self.user(who).id, "access_level": level}),
            )
            .await;
        }
        id
    }

    pub async fn new_hook(&self, project: i64) -> i64 {
        let hook = self
            .call(
                Method::POST,
                &format!("/projects/{project}/hooks"),
                self.token(Who::Maintainer),
                json!({"url": "http://127.0.0.1:9/matrix-hook", "push_events": true}),
            )
            .await;
        hook["id"].as_i64().unwrap()
    }

    pub async fn new_project_runner(&self, project: i64) -> i64 {
        let runner = self
            .call(
                Method::POST,
                "/user/runners",
                self.token(Who::Maintainer),
                json!({"runner_type": "project_type", "project_id": project}),
            )
            .await;
        runner["id"].as_i64().unwrap()
    }

    /// Signs every user in to the web UI (the blocked user before the block).
    async fn sign_in_everyone(&mut self) {
        for who in [
            Who::NonMember,
            Who::Guest,
            Who::Reporter,
            Who::Developer,
            Who::Maintainer,
            Who::Owner,
            Who::Admin,
            Who::Blocked,
        ] {
            let (login, password) = match who {
                Who::Admin => ("root".to_string(), ROOT_PASSWORD),
                _ => (self.user(who).username.clone(), PASSWORD),
            };
            let mut browser = Browser::sign_in(&self.app, &login, password).await;
            let csrf = browser.get("/").await.csrf();
            self.sessions.insert(
                who,
                Session {
                    cookie: browser.cookie_header(),
                    csrf,
                },
            );
        }
    }
}

impl ProjectFx {
    fn empty() -> Self {
        ProjectFx {
            id: 0,
            full_path: String::new(),
            pipeline: 0,
            build: 0,
            hold: 0,
            job_token: String::new(),
            trigger_id: 0,
            trigger_token: String::new(),
            hook_id: 0,
            runner_id: 0,
        }
    }
}

/// The pipeline a claimed job belongs to (its `CI_PIPELINE_ID`).
fn pipeline_of(job: &Value) -> i64 {
    crate::running::vars(job)["CI_PIPELINE_ID"]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("CI_PIPELINE_ID")
}

/// The archive every `build` job uploads: `out/a.txt`.
pub fn artifacts_zip() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("out/a.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"made by build\n").unwrap();
    zip.finish().unwrap().into_inner()
}
