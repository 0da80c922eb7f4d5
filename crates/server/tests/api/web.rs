//! The web UI over real HTTP, the way a browser uses it: session cookies, CSRF tokens in
//! forms, redirects. (The real-browser test is `browser.rs`.)

use std::collections::HashMap;

use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::both_backends;
use crate::lifecycle::{project_with, run_pipeline};
use crate::running::{
    finish, finished_pipeline, register_runner, request, start_runner, trace, wait_for,
};
use crate::support::{ROOT_PASSWORD, TestApp};
use crate::triggering::{curl, triggerable_project};

both_backends!(
    signing_in_and_out,
    sign_in_is_throttled,
    pages_enforce_project_permissions,
    trigger_tokens_are_managed_in_the_settings_page,
    triggered_pipelines_and_jobs_show_their_trigger,
    the_live_log_feed_continues_from_its_cursor,
    admins_create_and_block_users,
    expired_sessions_sign_nobody_in,
    settings_forms_change_what_the_api_sees,
    job_pages_play_retry_and_browse_artifacts,
    lists_page_by_twenty,
    runner_timestamps_show_on_the_job_page,
    the_graph_links_needs,
    developers_run_pipelines_from_the_page,
);

/// A browser: a cookie jar and no automatic redirects.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
    /// `Set-Cookie` headers of the last response, for asserting attributes.
    pub last_set_cookies: Vec<String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let marker = "name=\"authenticity_token\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Browser {
            base: app.url.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            last_set_cookies: Vec::new(),
        }
    }

    /// A browser whose requests arrive through a reverse proxy that says it forwarded them
    /// for `forwarded_for` (the `X-Forwarded-For` header the proxy sends).
    pub fn behind_proxy(app: &TestApp, forwarded_for: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded_for.parse().unwrap());
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers)
                .build()
                .unwrap(),
            ..Browser::new(app)
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn page(&mut self, res: reqwest::Response) -> Page {
        self.last_set_cookies = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for cookie in &self.last_set_cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        Page {
            status: res.status().as_u16(),
            location: res
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_string()),
            body: res.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.page(res).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.page(res).await
    }

    /// Posts a form with the CSRF token of the page at `from`.
    pub async fn submit(&mut self, from: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let token = self.get(from).await.csrf();
        let mut fields = vec![("authenticity_token", token.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    pub async fn sign_in(app: &TestApp, login: &str, password: &str) -> Browser {
        let mut browser = Browser::new(app);
        let page = browser.sign_in_as(login, password).await;
        assert_eq!(page.status, 303, "sign in as {login}: {}", page.body);
        browser
    }

    pub async fn sign_in_as(&mut self, login: &str, password: &str) -> Page {
        let form = self.get("/users/sign_in").await;
        let token = form.csrf();
        self.post(
            "/users/sign_in",
            &[
                ("authenticity_token", token.as_str()),
                ("user[login]", login),
                ("user[password]", password),
            ],
        )
        .await
    }
}

const PASSWORD: &str = "a-long-password";

async fn signing_in_and_out(app: TestApp) {
    let mut browser = Browser::new(&app);
    // Signed out, the dashboard sends you to the sign-in page and back.
    let page = browser.get("/").await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/users/sign_in?redirect_to=%2F")
    );

    let form = browser.get("/users/sign_in").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Sign in to Pipewright"));
    let token = form.csrf();

    // A form without its token is refused, whatever the credentials.
    let page = browser
        .post(
            "/users/sign_in",
            &[("user[login]", "root"), ("user[password]", ROOT_PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 422);

    let page = browser
        .post(
            "/users/sign_in",
            &[
                ("authenticity_token", &token),
                ("user[login]", "root"),
                ("user[password]", "wrong"),
            ],
        )
        .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Invalid login or password."));
    // Unknown users get the very same answer.
    let token = browser.get("/users/sign_in").await.csrf();
    let page = browser
        .post(
            "/users/sign_in",
            &[
                ("authenticity_token", &token),
                ("user[login]", "nobody"),
                ("user[password]", "x"),
            ],
        )
        .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Invalid login or password."));

    let page = browser.sign_in_as("root", ROOT_PASSWORD).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/"));
    let session = browser
        .last_set_cookies
        .iter()
        .find(|c| c.starts_with("_pipewright_session="))
        .expect("a session cookie")
        .clone();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    // Only a digest of the session id is stored.
    let id = session
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert_eq!(id.len(), 64);

    app.create_project(&app.root_token, "dash").await;
    let page = browser.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("root/dash"), "{}", page.body);
    assert!(page.body.contains("@root"));

    // Signing out ends the session on the server, not only in this browser.
    let token = page.csrf();
    let page = browser
        .post("/users/sign_out", &[("authenticity_token", &token)])
        .await;
    assert_eq!(page.status, 303);
    let mut stolen = Browser::new(&app);
    stolen.cookies.insert("_pipewright_session".into(), id);
    assert_eq!(stolen.get("/").await.status, 303);
    assert_eq!(browser.get("/").await.status, 303);

    // Sign-in redirects only to local paths.
    let mut browser = Browser::new(&app);
    let form = browser
        .get("/users/sign_in?redirect_to=//evil.example")
        .await;
    let token = form.csrf();
    let page = browser
        .post(
            "/users/sign_in",
            &[
                ("authenticity_token", &token),
                ("user[login]", "root"),
                ("user[password]", ROOT_PASSWORD),
                ("redirect_to", "//evil.example"),
            ],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/"));
}

async fn sign_in_is_throttled(app: TestApp) {
    app.create_user("mallory").await;
    // Replicas share the count: five wrong guesses here and five on another server.
    let replica = app.start_replica().await;
    let mut elsewhere = Browser::new(&replica);
    let mut browser = Browser::new(&app);
    for i in 0..10 {
        let target = if i % 2 == 0 {
            &mut browser
        } else {
            &mut elsewhere
        };
        let page = target.sign_in_as("mallory", "guess").await;
        assert_eq!(page.status, 401);
    }
    assert_eq!(elsewhere.sign_in_as("mallory", PASSWORD).await.status, 429);
    // Locked now, even with the right password.
    let page = browser.sign_in_as("mallory", PASSWORD).await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(page.body.contains("Too many failed sign-in attempts"));
    // Other accounts are not locked by it.
    let mut other = Browser::new(&app);
    assert_eq!(other.sign_in_as("root", ROOT_PASSWORD).await.status, 303);
}

async fn pages_enforce_project_permissions(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (project, _, _) = triggerable_project(&app, "perm", tmp.path()).await;
    let (alice, _) = app.create_user("alice").await;
    let (dave, _) = app.create_user("dave").await;
    app.create_user("eve").await;
    app.add_member(project, alice, 40).await;
    app.add_member(project, dave, 30).await;

    let mut anonymous = Browser::new(&app);
    let page = anonymous.get("/root/perm/-/pipelines").await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/users/sign_in?redirect_to=%2Froot%2Fperm%2F%2D%2Fpipelines")
    );
    // A missing project asks for a sign-in too (GitLab's `route_not_found`).
    assert_eq!(anonymous.get("/root/missing").await.status, 303);

    let mut eve = Browser::sign_in(&app, "eve", PASSWORD).await;
    for path in [
        "/root/perm",
        "/root/perm/-/pipelines",
        "/root/perm/-/jobs",
        "/root/perm/-/settings/ci_cd",
    ] {
        let page = eve.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.body.contains("404"));
    }

    let mut dave = Browser::sign_in(&app, "dave", PASSWORD).await;
    assert_eq!(dave.get("/root/perm").await.status, 200);
    assert_eq!(dave.get("/root/perm/-/pipelines").await.status, 200);
    let overview = dave.get("/root/perm").await;
    assert!(
        !overview.body.contains("/-/settings/ci_cd"),
        "no settings link for a Developer"
    );
    assert_eq!(dave.get("/root/perm/-/settings/ci_cd").await.status, 404);
    assert_eq!(dave.get("/root/perm/-/hooks").await.status, 404);
    assert_eq!(dave.get("/admin").await.status, 404);
    // Nor can a Developer post to the settings forms.
    let token = overview.csrf();
    let page = dave
        .post(
            "/root/perm/-/settings/ci_cd/triggers",
            &[("authenticity_token", &token), ("description", "sneaky")],
        )
        .await;
    assert_eq!(page.status, 404);

    let mut alice = Browser::sign_in(&app, "alice", PASSWORD).await;
    let page = alice.get("/root/perm/-/settings/ci_cd").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Pipeline trigger tokens"));
    assert_eq!(alice.get("/root/perm/-/hooks").await.status, 200);
    assert_eq!(alice.get("/root/perm/-/pipelines/999999").await.status, 404);
    assert_eq!(alice.get("/root/perm/-/jobs/abc").await.status, 404);
    // Unknown pages are the UI's 404 page; unknown API paths keep Grape's JSON.
    let page = alice.get("/no/such/page/at/all").await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("404: Page not found"));
    let res = app.get("/no/such/route", Some(&app.root_token)).await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"error": "404 Not Found"})
    );
}

async fn trigger_tokens_are_managed_in_the_settings_page(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (project, _, _) = triggerable_project(&app, "tok", tmp.path()).await;
    let (alice, _) = app.create_user("alice").await;
    let (bob, _) = app.create_user("bob").await;
    app.add_member(project, alice, 40).await;
    app.add_member(project, bob, 40).await;
    let settings = "/root/tok/-/settings/ci_cd";

    let mut alice = Browser::sign_in(&app, "alice", PASSWORD).await;
    let page = alice
        .submit(
            settings,
            &format!("{settings}/triggers"),
            &[("description", "<b>Deploy</b> from CI")],
        )
        .await;
    assert_eq!(page.status, 303);
    let page = alice.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body.contains("Trigger token was created."),
        "{}",
        page.body
    );
    // User content is escaped, never markup.
    assert!(page.body.contains("&#60;b&#62;Deploy&#60;/b&#62; from CI"));
    assert!(!page.body.contains("<b>Deploy"));
    let token = full_token(&page.body).expect("alice sees her whole token");
    assert!(token.starts_with("glptt-") && token.len() == 46, "{token}");
    assert!(
        page.body
            .contains("A revoked trigger token cannot be added back.")
    );
    // The examples are filled in with this project's id and URL.
    assert!(page.body.contains(&format!(
        "{}/api/v4/projects/{project}/trigger/pipeline",
        app.url
    )));
    // The flash is shown once.
    assert!(
        !alice
            .get(settings)
            .await
            .body
            .contains("Trigger token was created.")
    );

    // Another Maintainer sees the 4 characters only.
    let mut bob = Browser::sign_in(&app, "bob", PASSWORD).await;
    let page = bob.get(settings).await;
    assert!(
        !page.body.contains(&token),
        "bob must not see alice's token"
    );
    assert!(page.body.contains(&format!(">{}</code>", &token[6..10])));
    // ...and cannot rename it.
    let trigger_id = trigger_id(&page.body, "from CI");
    let page = bob
        .submit(
            settings,
            &format!("{settings}/triggers/{trigger_id}/update"),
            &[("description", "mine now")],
        )
        .await;
    let page = bob.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body
            .contains("not authorized to update the pipeline trigger token"),
        "{}",
        page.body
    );

    // Alice renames hers.
    let page = alice
        .submit(
            settings,
            &format!("{settings}/triggers/{trigger_id}/update"),
            &[("description", "Deploy")],
        )
        .await;
    let page = alice.get(page.location.as_deref().unwrap()).await;
    assert!(page.body.contains("value=\"Deploy\""));

    // The token works with curl, until it is revoked.
    let url = format!("{}/api/v4/projects/{project}/trigger/pipeline", app.url);
    let (status, _) = curl(&[
        "-X",
        "POST",
        "-F",
        &format!("token={token}"),
        "-F",
        "ref=main",
        &url,
    ]);
    assert_eq!(status, 201);
    let mut used = false;
    for _ in 0..50 {
        let page = alice.get(settings).await;
        if trigger_row(&page.body, "Deploy").contains("just now</time>") {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(used, "the table shows when the token was last used");

    // A revoke without the form's token is refused.
    let page = alice
        .post(&format!("{settings}/triggers/{trigger_id}/revoke"), &[])
        .await;
    assert_eq!(page.status, 422);
    let page = alice
        .submit(
            settings,
            &format!("{settings}/triggers/{trigger_id}/revoke"),
            &[],
        )
        .await;
    let page = alice.get(page.location.as_deref().unwrap()).await;
    assert!(page.body.contains("Trigger token was revoked."));
    assert!(!page.body.contains(&token));
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-F",
        &format!("token={token}"),
        "-F",
        "ref=main",
        &url,
    ]);
    assert_eq!(status, 404);
    assert_eq!(body, json!({"message": "404 Not Found"}));

    // Form errors come back as GitLab's messages.
    let long = "x".repeat(256);
    let page = alice
        .submit(
            settings,
            &format!("{settings}/triggers"),
            &[("description", &long)],
        )
        .await;
    let page = alice.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body
            .contains("is too long (maximum is 255 characters)"),
        "{}",
        page.body
    );
}

/// The first whole trigger token on a settings page.
fn full_token(body: &str) -> Option<String> {
    let marker = "class=\"token-full\">";
    let start = body.find(marker)? + marker.len();
    let end = body[start..].find('<')?;
    Some(body[start..start + end].to_string())
}

/// The triggers table's row that contains `needle`.
fn trigger_row<'a>(body: &'a str, needle: &str) -> &'a str {
    body.split("data-testid=\"trigger-row\"")
        .skip(1)
        .map(|row| row.split("</tr>").next().unwrap())
        .find(|row| row.contains(needle))
        .expect("a row with the needle")
}

/// The id of the trigger whose table row contains `needle`.
fn trigger_id(body: &str, needle: &str) -> String {
    let row = trigger_row(body, needle);
    let marker = "data-trigger-id=\"";
    let start = row.find(marker).unwrap() + marker.len();
    let end = row[start..].find('"').unwrap();
    row[start..start + end].to_string()
}

async fn triggered_pipelines_and_jobs_show_their_trigger(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (project, token, _) = triggerable_project(&app, "shown", tmp.path()).await;
    let (dave, _) = app.create_user("dave").await;
    app.add_member(project, dave, 30).await;
    let url = format!("{}/api/v4/projects/{project}/trigger/pipeline", app.url);
    let (status, pipeline) = curl(&[
        "-X",
        "POST",
        "-F",
        &format!("token={token}"),
        "-F",
        "ref=main",
        "-F",
        "variables[UPLOAD_TO_S3]=true",
        &url,
    ]);
    assert_eq!(status, 201);
    let pipeline_id = pipeline["id"].as_i64().unwrap();

    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let page = root.get("/root/shown/-/pipelines").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-testid=\"triggered-label\""),
        "{}",
        page.body
    );
    let page = root.get("/root/shown/-/pipelines?source=push").await;
    assert!(
        !page.body.contains("data-testid=\"pipeline-row\""),
        "filtered out"
    );
    let page = root
        .get("/root/shown/-/pipelines?source=trigger&status=created&ref=main")
        .await;
    assert_eq!(page.status, 200);

    let page = root
        .get(&format!("/root/shown/-/pipelines/{pipeline_id}"))
        .await;
    assert_eq!(page.status, 200);
    for job in ["run_tests", "build_package", "upload_package"] {
        assert!(page.body.contains(job), "{job} in the graph");
    }
    assert!(page.body.contains("UPLOAD_TO_S3"));

    let jobs: Vec<Value> = app
        .root_json(&format!("/projects/{project}/pipelines/{pipeline_id}/jobs"))
        .await;
    let upload = jobs.iter().find(|j| j["name"] == "upload_package").unwrap()["id"]
        .as_i64()
        .unwrap();
    let page = root.get("/root/shown/-/jobs").await;
    assert!(page.body.contains("data-testid=\"triggered-label\""));
    let page = root.get(&format!("/root/shown/-/jobs/{upload}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Trigger token:"));
    assert!(page.body.contains(&format!(">{}</code>", &token[6..10])));
    assert!(
        !page.body.contains(&token),
        "never the whole token on a job page"
    );
    assert!(
        page.body
            .contains("data-testid=\"trigger-variable-value\" hidden>true<"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Reveal values"));

    // The page's JSON, as GitLab's `jobs/:id.json`.
    let details: Value = serde_json::from_str(
        &root
            .get(&format!("/root/shown/-/jobs/{upload}.json"))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(details["trigger"]["short_token"], token[6..10]);
    assert!(
        details["trigger"]["variables"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "UPLOAD_TO_S3", "value": "true", "public": false}))
    );

    // A Developer sees the keys, not the values, and no reveal button.
    let mut dave = Browser::sign_in(&app, "dave", PASSWORD).await;
    let page = dave.get(&format!("/root/shown/-/jobs/{upload}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("UPLOAD_TO_S3"));
    assert!(!page.body.contains("trigger-variable-value"));
    assert!(!page.body.contains("Reveal values"));
    let page = dave
        .get(&format!("/root/shown/-/pipelines/{pipeline_id}"))
        .await;
    assert!(!page.body.contains("revealed-value"));
    let details: Value = serde_json::from_str(
        &dave
            .get(&format!("/root/shown/-/jobs/{upload}.json"))
            .await
            .body,
    )
    .unwrap();
    assert!(
        details["trigger"]["variables"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "UPLOAD_TO_S3", "public": false}))
    );
}

async fn the_live_log_feed_continues_from_its_cursor(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (project, token, _) = triggerable_project(&app, "live", tmp.path()).await;
    let url = format!("{}/api/v4/projects/{project}/trigger/pipeline", app.url);
    let (status, created) = curl(&[
        "-X",
        "POST",
        "-F",
        &format!("token={token}"),
        "-F",
        "ref=main",
        &url,
    ]);
    assert_eq!(status, 201);
    let runner = register_runner(&app).await;
    let job = request(&app, &runner).await.expect("a job");
    let id = job["id"].as_i64().unwrap();
    let first = "section_start:1700000000:step_script\r\x1b[0K\x1b[32;1mRunning\x1b[0;m\n$ make test\n\x1b[31mred <b>\x1b[0m\npart";
    assert_eq!(trace(&app, &job, 0, first).await.status(), 202);

    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let page = root.get(&format!("/root/live/-/jobs/{id}")).await;
    assert!(
        page.body.contains("term-fg-red"),
        "ANSI colours: {}",
        page.body
    );
    assert!(page.body.contains("red &lt;b&gt;"));
    assert!(page.body.contains("log-section"));
    assert!(page.body.contains("data-complete=\"false\""));
    // While the job runs its sidebar and its pipeline refresh themselves...
    assert!(
        page.body
            .contains("id=\"job-sidebar\" aria-label=\"Job details\" data-live")
    );
    let pipeline_page = format!("/root/live/-/pipelines/{}", created["id"]);
    assert!(
        root.get(&pipeline_page)
            .await
            .body
            .contains("id=\"pipeline-live\" data-live")
    );

    let feed = |cursor: String| format!("/root/live/-/jobs/{id}/trace.json?cursor={cursor}");
    let page = root.get(&feed(String::new())).await;
    let body: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(body["complete"], false);
    assert_eq!(body["status"], "running");
    let lines: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "line")
        .map(|i| i["html"].as_str().unwrap())
        .collect();
    assert!(lines.iter().any(|l| l.contains("make test")));
    assert!(
        !lines.iter().any(|l| l.contains("part")),
        "a partial line waits"
    );
    let cursor = body["cursor"].as_str().unwrap().to_string();

    let more = "ial line\nsection_end:1700000003:step_script\r\x1b[0K\n";
    assert_eq!(trace(&app, &job, first.len(), more).await.status(), 202);
    assert_eq!(finish(&app, &job, "success").await.status(), 200);
    let page = root.get(&feed(cursor)).await;
    let body: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(body["complete"], true);
    assert_eq!(body["status"], "success");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["type"], "line");
    assert!(items[0]["html"].as_str().unwrap().contains("partial line"));
    assert!(
        !items
            .iter()
            .any(|i| i["html"].as_str().is_some_and(|h| h.contains("make test"))),
        "only what is new"
    );
    assert!(
        items
            .iter()
            .any(|i| i["type"] == "section_end" && i["duration"] == "00:03")
    );
    // ...and stop once it is done (the pipeline waits on later stages, so it is still live).
    let page = root.get(&format!("/root/live/-/jobs/{id}")).await;
    assert!(
        !page.body.contains("data-live"),
        "a finished job's page is final"
    );
    // Nonsense cursors start over rather than fail.
    assert_eq!(root.get(&feed("garbage~~".into())).await.status, 200);
}

async fn admins_create_and_block_users(app: TestApp) {
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let page = root.get("/admin").await;
    assert_eq!(page.status, 200);
    // The embedded runner's isolation is stated (`serve` fills it in; here no runner runs).
    assert!(
        page.body.contains("Embedded runner and job isolation")
            && page
                .body
                .contains("No embedded runner runs in this process."),
        "{}",
        page.body
    );
    let page = root
        .submit(
            "/admin",
            "/admin/users",
            &[
                ("name", "Carol"),
                ("username", "carol"),
                ("email", "carol@example.com"),
                ("password", "carol-password"),
            ],
        )
        .await;
    let page = root.get(page.location.as_deref().unwrap()).await;
    assert!(page.body.contains("User was created."), "{}", page.body);
    let mut carol = Browser::sign_in(&app, "carol", "carol-password").await;
    assert_eq!(carol.get("/").await.status, 200);
    assert_eq!(carol.get("/admin").await.status, 404);

    let users: Vec<Value> = app.root_json("/users?username=carol").await;
    let id = users[0]["id"].as_i64().unwrap();
    root.submit("/admin", &format!("/admin/users/{id}/block"), &[])
        .await;
    // Blocked: the open session ends and signing in fails.
    assert_eq!(carol.get("/").await.status, 303);
    assert_eq!(
        Browser::new(&app)
            .sign_in_as("carol", "carol-password")
            .await
            .status,
        401
    );

    root.submit(
        "/admin",
        "/admin/settings",
        &[("allow_local_requests_from_web_hooks_and_services", "true")],
    )
    .await;
    let settings: Value = app.root_json("/application/settings").await;
    assert_eq!(
        settings["allow_local_requests_from_web_hooks_and_services"],
        true
    );
}

async fn expired_sessions_sign_nobody_in(app: TestApp) {
    use pipewright_core::Timestamp;
    let root: Value = app.root_json("/user").await;
    let now = Timestamp::now().millis();
    let id = "ab".repeat(32);
    app.store
        .create_web_session(&pipewright_store::WebSession {
            id_digest: pipewright_server::secrets::token_digest(&id),
            user_id: root["id"].as_i64().unwrap(),
            created_at: Timestamp(now - 10_000),
            last_seen_at: Timestamp(now - 10_000),
            expires_at: Timestamp(now - 1),
        })
        .await
        .unwrap();
    let mut browser = Browser::new(&app);
    browser.cookies.insert("_pipewright_session".into(), id);
    assert_eq!(browser.get("/").await.status, 303);
    // Garbage cookies are simply no session.
    browser
        .cookies
        .insert("_pipewright_session".into(), "x'; DROP TABLE users".into());
    assert_eq!(browser.get("/").await.status, 303);
    assert_eq!(
        app.store
            .delete_expired_web_sessions(Timestamp::now())
            .await
            .unwrap(),
        1
    );
}

/// The page after a form's redirect.
async fn after(browser: &mut Browser, page: Page) -> Page {
    assert_eq!(page.status, 303, "{}", page.body);
    browser.get(page.location.as_deref().unwrap()).await
}

async fn settings_forms_change_what_the_api_sees(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let project = project_with(&app, "forms", "job:\n  script: [x]\n", tmp.path()).await;
    let other = app.create_project(&app.root_token, "other").await["id"]
        .as_i64()
        .unwrap();
    let (alice, _) = app.create_user("alice").await;
    app.add_member(project, alice, 40).await;
    app.add_member(other, alice, 30).await;
    let settings = "/root/forms/-/settings/ci_cd";
    let mut alice = Browser::sign_in(&app, "alice", PASSWORD).await;

    // Variables: add, change, refuse a bad key, remove.
    let form = format!("{settings}/variables");
    let page = alice
        .submit(
            settings,
            &form,
            &[
                ("key", "DEPLOY_KEY"),
                ("value", "s3cr3t-value-123"),
                ("masked", "true"),
            ],
        )
        .await;
    assert!(
        after(&mut alice, page)
            .await
            .body
            .contains("Variable was added.")
    );
    let vars: Value = app
        .root_json(&format!("/projects/{project}/variables"))
        .await;
    assert_eq!(vars[0]["key"], "DEPLOY_KEY");
    assert_eq!(vars[0]["masked"], true);
    let page = alice
        .submit(
            settings,
            &form,
            &[
                ("_method", "put"),
                ("key", "DEPLOY_KEY"),
                ("value", "another-value-456"),
                ("variable_type", "file"),
            ],
        )
        .await;
    assert!(
        after(&mut alice, page)
            .await
            .body
            .contains("Variable was updated.")
    );
    let vars: Value = app
        .root_json(&format!("/projects/{project}/variables"))
        .await;
    assert_eq!(vars[0]["value"], "another-value-456");
    assert_eq!(vars[0]["variable_type"], "file");
    let page = alice
        .submit(settings, &form, &[("key", "bad key"), ("value", "x")])
        .await;
    let page = after(&mut alice, page).await;
    assert!(page.body.contains("flash-alert"), "{}", page.body);
    let page = alice
        .submit(
            settings,
            &form,
            &[("_method", "delete"), ("key", "DEPLOY_KEY")],
        )
        .await;
    assert!(
        after(&mut alice, page)
            .await
            .body
            .contains("Variable was removed.")
    );
    let vars: Value = app
        .root_json(&format!("/projects/{project}/variables"))
        .await;
    assert_eq!(vars, json!([]));

    // Job token permissions: the allowlist by path, and the switch.
    let form = format!("{settings}/job_token_scope");
    let page = alice
        .submit(
            settings,
            &form,
            &[("op", "add"), ("target_project_path", "root/other")],
        )
        .await;
    assert!(
        after(&mut alice, page)
            .await
            .body
            .contains("root/other can now use")
    );
    let list: Value = app
        .root_json(&format!("/projects/{project}/job_token_scope/allowlist"))
        .await;
    assert!(
        list.as_array().unwrap().iter().any(|p| p["id"] == other),
        "{list}"
    );
    let page = alice
        .submit(
            settings,
            &form,
            &[("op", "add"), ("target_project_path", "root/nope")],
        )
        .await;
    assert!(
        after(&mut alice, page)
            .await
            .body
            .contains("The target_project that you are attempting to access does not exist")
    );
    let page = alice
        .submit(
            settings,
            &form,
            &[("op", "remove"), ("target_project_id", &other.to_string())],
        )
        .await;
    after(&mut alice, page).await;
    let list: Value = app
        .root_json(&format!("/projects/{project}/job_token_scope/allowlist"))
        .await;
    assert!(!list.as_array().unwrap().iter().any(|p| p["id"] == other));
    let page = alice
        .submit(settings, &form, &[("op", "enabled"), ("enabled", "false")])
        .await;
    after(&mut alice, page).await;
    let scope: Value = app
        .root_json(&format!("/projects/{project}/job_token_scope"))
        .await;
    assert_eq!(scope["inbound_enabled"], false);

    // A project runner: its token is shown once; the project's runners list has it.
    let page = alice
        .submit(
            settings,
            &format!("{settings}/runners"),
            &[("description", "web runner"), ("tag_list", "linux")],
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("glrt-"), "{}", page.body);
    let page = alice.get(settings).await;
    assert!(page.body.contains("web runner"));
    let runners: Vec<Value> = app.root_json("/runners/all").await;
    let runner = runners
        .iter()
        .find(|r| r["description"] == "web runner")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let page = alice
        .submit(
            settings,
            &format!("{settings}/runners/{runner}/remove"),
            &[],
        )
        .await;
    assert!(
        after(&mut alice, page)
            .await
            .body
            .contains("The runner was removed.")
    );

    // Webhooks: the local-network guard applies to the form too.
    let hooks = "/root/forms/-/hooks";
    let page = alice
        .submit(
            hooks,
            hooks,
            &[("url", "http://127.0.0.1:9/hook"), ("push_events", "true")],
        )
        .await;
    let page = after(&mut alice, page).await;
    assert!(
        page.body
            .contains("Url is blocked: Requests to the local network are not allowed"),
        "{}",
        page.body
    );
    // Once an admin allows local requests, the same kind of URL is accepted.
    let res = app
        .request(
            reqwest::Method::PUT,
            "/application/settings",
            Some(&app.root_token),
            Some(json!({"allow_local_requests_from_web_hooks_and_services": true})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let page = alice
        .submit(
            hooks,
            hooks,
            &[
                ("url", "http://127.0.0.1:9/ci"),
                ("pipeline_events", "true"),
            ],
        )
        .await;
    let page = after(&mut alice, page).await;
    assert!(page.body.contains("Webhook was created."), "{}", page.body);
    assert!(page.body.contains("http://127.0.0.1:9/ci"));
    assert!(page.body.contains("Pipeline events"));
    let listed: Vec<Value> = app.root_json(&format!("/projects/{project}/hooks")).await;
    assert_eq!(listed.len(), 1);
    let hook = listed[0]["id"].as_i64().unwrap();
    // "Test" queues a sample event; its delivery is listed under the hook.
    let page = alice
        .submit(
            hooks,
            &format!("{hooks}/{hook}/test"),
            &[("trigger", "push_events")],
        )
        .await;
    let page = after(&mut alice, page).await;
    assert!(
        page.body.contains("A test event was queued"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<td>Push Hook</td>"), "{}", page.body);
    let page = alice
        .submit(
            hooks,
            &format!("{hooks}/{hook}/test"),
            &[("trigger", "bogus")],
        )
        .await;
    assert!(after(&mut alice, page).await.body.contains("flash-alert"));
    let page = alice
        .submit(hooks, &format!("{hooks}/{hook}/remove"), &[])
        .await;
    assert!(
        after(&mut alice, page)
            .await
            .body
            .contains("Webhook was deleted.")
    );
}

const ARTIFACTS: &str = r#"build:
  script:
    - mkdir -p out/nested
    - echo "hello from build" > out/greeting.txt
    - echo "<script>x</script>" > out/nested/page.html
  artifacts:
    paths: [out/]
    expire_in: 1 week
release:
  when: manual
  script: [echo released]
"#;

async fn job_pages_play_retry_and_browse_artifacts(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "arts", ARTIFACTS, tmp.path()).await;
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let pipeline = run_pipeline(&app, id).await;
    let (_, jobs) = finished_pipeline(&app, id, &pipeline).await;
    let build = jobs.iter().find(|j| j["name"] == "build").unwrap()["id"]
        .as_i64()
        .unwrap();
    let release = jobs.iter().find(|j| j["name"] == "release").unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let job_page = format!("/root/arts/-/jobs/{build}");

    let page = root.get(&job_page).await;
    assert!(page.body.contains("Job artifacts"));
    assert!(
        page.body.contains("hello from build")
            || page.body.contains("out/greeting.txt")
            || page.body.contains("Uploading artifacts")
    );
    let base = format!("/root/arts/-/jobs/{build}/artifacts");
    let page = root.get(&format!("{base}/browse")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("{base}/browse/out")),
        "{}",
        page.body
    );
    let page = root.get(&format!("{base}/browse/out")).await;
    assert!(page.body.contains(&format!("{base}/file/out/greeting.txt")));
    assert!(page.body.contains(&format!("{base}/browse/out/nested")));
    assert_eq!(
        root.get(&format!("{base}/browse/missing")).await.status,
        404
    );
    // Files are downloads, never rendered as pages of ours.
    let res = reqwest::Client::new()
        .get(format!("{}{base}/file/out/nested/page.html", app.url))
        .header("Cookie", root.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-disposition"], "attachment");
    let page = root.get(&format!("{base}/file/out/greeting.txt")).await;
    assert_eq!(page.body, "hello from build\n");
    let page = root.get(&format!("{base}/download")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.starts_with("PK"));

    // Keep the artifacts; they no longer expire.
    let page = root
        .submit(&job_page, &format!("/root/arts/-/jobs/{build}/keep"), &[])
        .await;
    assert!(after(&mut root, page).await.body.contains("expire never"));

    // Run the manual job from its page; retry the build from its page.
    let page = root
        .submit(&job_page, &format!("/root/arts/-/jobs/{release}/play"), &[])
        .await;
    assert!(
        after(&mut root, page)
            .await
            .body
            .contains("The job is starting.")
    );
    wait_for(&app, &format!("/projects/{id}/jobs/{release}"), |j| {
        j["status"] == "success"
    })
    .await;
    let page = root
        .submit(&job_page, &format!("/root/arts/-/jobs/{build}/retry"), &[])
        .await;
    let retried = page.location.clone().unwrap();
    assert_ne!(retried, job_page, "the retry is a new job");
    assert!(
        after(&mut root, page)
            .await
            .body
            .contains("The job is retrying.")
    );
    // The old attempt is listed as retried.
    let page = root.get("/root/arts/-/jobs").await;
    assert!(page.body.contains(">retried<"));
    runner.abort();
}

async fn lists_page_by_twenty(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (project, token, _) = triggerable_project(&app, "many", tmp.path()).await;
    let url = format!("{}/api/v4/projects/{project}/trigger/pipeline", app.url);
    for _ in 0..21 {
        let (status, _) = curl(&[
            "-X",
            "POST",
            "-F",
            &format!("token={token}"),
            "-F",
            "ref=main",
            &url,
        ]);
        assert_eq!(status, 201);
    }
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let rows = |page: &Page| page.body.matches("data-testid=\"pipeline-row\"").count();
    let first = root.get("/root/many/-/pipelines?source=trigger").await;
    assert_eq!(rows(&first), 20);
    assert!(
        first
            .body
            .contains("href=\"/root/many/-/pipelines?source=trigger&#38;page=2\" rel=\"next\""),
        "{}",
        first.body
    );
    assert!(!first.body.contains("rel=\"prev\""));
    let second = root
        .get("/root/many/-/pipelines?source=trigger&page=2")
        .await;
    assert_eq!(rows(&second), 1);
    assert!(second.body.contains("rel=\"prev\""));
    assert!(!second.body.contains("rel=\"next\""));
    // Nonsense page numbers are page 1.
    assert_eq!(rows(&root.get("/root/many/-/pipelines?page=-3").await), 20);
    let jobs = root.get("/root/many/-/jobs?page=2").await;
    assert_eq!(jobs.body.matches("data-testid=\"job-row\"").count(), 20);
}

async fn runner_timestamps_show_on_the_job_page(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let config = "variables:\n  FF_TIMESTAMPS: \"true\"\nstamped:\n  script: [echo stamped line]\n";
    let id = project_with(&app, "stamps", config, tmp.path()).await;
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let pipeline = run_pipeline(&app, id).await;
    let (_, jobs) = finished_pipeline(&app, id, &pipeline).await;
    let job = jobs[0]["id"].as_i64().unwrap();
    // The raw log carries GitLab Runner's per-line prefix...
    let raw = app
        .get(
            &format!("/projects/{id}/jobs/{job}/trace"),
            Some(&app.root_token),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        raw.lines().all(|l| l.len() > 32 && &l[26..32] == "Z 00O "),
        "{raw}"
    );
    // ...which the page shows as a time column beside each line.
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let page = root.get(&format!("/root/stamps/-/jobs/{job}")).await;
    assert!(page.body.contains("class=\"log-ts\""), "{}", page.body);
    assert!(page.body.contains("stamped line"));
    assert!(
        !page.body.contains("00O "),
        "the prefix itself is not shown"
    );
    runner.abort();
}

async fn the_graph_links_needs(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let config = "stages: [build, test, deploy]\ncompile:\n  stage: build\n  script: [x]\nlint:\n  stage: build\n  script: [x]\nunit:\n  stage: test\n  needs: [compile]\n  script: [x]\nship:\n  stage: deploy\n  needs: [unit, lint]\n  script: [x]\n";
    let id = project_with(&app, "dag", config, tmp.path()).await;
    let pipeline = run_pipeline(&app, id).await;
    let jobs: Vec<Value> = app
        .root_json(&format!("/projects/{id}/pipelines/{}/jobs", pipeline["id"]))
        .await;
    let job_id = |name: &str| {
        jobs.iter().find(|j| j["name"] == name).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    let page = root
        .get(&format!("/root/dag/-/pipelines/{}", pipeline["id"]))
        .await;
    assert!(
        page.body
            .contains(&format!("id=\"job-node-{}\"", job_id("compile")))
    );
    assert!(
        page.body
            .contains(&format!("data-needs=\"{} \"", job_id("compile"))),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!(
        "data-needs=\"{} {} \"",
        job_id("unit"),
        job_id("lint")
    )));
    assert!(page.body.contains(&format!(
        "<a href=\"#job-node-{}\">unit</a>",
        job_id("unit")
    )));
}

async fn developers_run_pipelines_from_the_page(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (project, _, _) = triggerable_project(&app, "runs", tmp.path()).await;
    let (dave, _) = app.create_user("dave").await;
    let (rita, _) = app.create_user("rita").await;
    app.add_member(project, dave, 30).await;
    app.add_member(project, rita, 20).await;
    let list = "/root/runs/-/pipelines";

    let mut dave = Browser::sign_in(&app, "dave", PASSWORD).await;
    let page = dave.get(list).await;
    assert!(page.body.contains("data-testid=\"run-pipeline\""));
    // `main` is protected: a Developer may not run it, in GitLab's words.
    let page = dave.submit(list, list, &[("ref", "main")]).await;
    let page = dave.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body
            .contains("You do not have sufficient permission to run a pipeline on &#39;main&#39;."),
        "{}",
        page.body
    );
    let page = dave
        .submit(
            list,
            list,
            &[
                ("ref", "skip"),
                ("variable_key", "UPLOAD_TO_S3"),
                ("variable_value", "yes"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let target = page.location.clone().unwrap();
    let id: i64 = target.rsplit('/').next().unwrap().parse().unwrap();
    let page = dave.get(&target).await;
    assert!(
        page.body.contains(&format!("Pipeline #{id} was created.")),
        "{}",
        page.body
    );
    let pipeline: Value = app
        .root_json(&format!("/projects/{project}/pipelines/{id}"))
        .await;
    assert_eq!(pipeline["source"], "web");
    assert_eq!(pipeline["user"]["username"], "dave");
    let vars: Value = app
        .root_json(&format!("/projects/{project}/pipelines/{id}/variables"))
        .await;
    assert_eq!(vars[0]["key"], "UPLOAD_TO_S3");
    assert_eq!(vars[0]["value"], "yes");

    // GitLab's creation errors come back as the flash message.
    let page = dave.submit(list, list, &[("ref", "no-such-branch")]).await;
    let page = dave.get(page.location.as_deref().unwrap()).await;
    assert!(page.body.contains("flash-alert"), "{}", page.body);
    let page = dave
        .submit(list, list, &[("ref", "skip"), ("variable_key", "bad key")])
        .await;
    let page = dave.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body
            .contains("Variable keys may contain only letters, digits and _.")
    );

    // A Reporter sees pipelines but cannot run one.
    let mut rita = Browser::sign_in(&app, "rita", PASSWORD).await;
    let page = rita.get(list).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("data-testid=\"run-pipeline\""));
    let token = page.csrf();
    let page = rita
        .post(list, &[("authenticity_token", &token), ("ref", "main")])
        .await;
    assert_eq!(page.status, 404);
}
