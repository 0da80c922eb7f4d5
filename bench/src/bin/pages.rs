//! The web UI with a long history: starts a real `pipewright serve` (release build, no
//! embedded runner), fills a project with `--pipelines` triggered pipelines (10,000 by
//! default, 3 jobs each), signs in through the sign-in form, and times each page a user opens:
//! the dashboard, the overview, the pipelines list (first, a deep page, filtered), the jobs list,
//! a pipeline, a job and the CI/CD settings. Pages must not get slower as history grows: every
//! list is a bounded, indexed window (no `COUNT(*)` of the project's history). With
//! `--passed true` a protocol-level runner first runs every job to success, so every
//! pipeline listed has passed (a passed pipeline's row says whether it passed with warnings).
//!
//!     cargo build --release -p pipewright -p pipewright-bench
//!     target/release/pages [--pipelines 10000] [--requests 200] [--passed true]
//!                          [--database-url postgres://…]

use std::sync::Arc;
use std::time::Instant;

use pipewright_bench::{Server, flags, histogram, quantiles};

const CONFIG: &str = "stages: [test, build, package]\nrun_tests:\n  stage: test\n  script: [make test]\nbuild_package:\n  stage: build\n  script: [make build]\nupload_package:\n  stage: package\n  script: [make upload]\n";

fn cookie_of(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

fn csrf(body: &str) -> String {
    let marker = "name=\"authenticity_token\" value=\"";
    body.find(marker)
        .map(|i| {
            let rest = &body[i + marker.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_string()
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let mut pipelines = 10_000usize;
    let mut requests = 200usize;
    let mut database_url = None;
    let mut passed = false;
    for (flag, value) in flags() {
        match flag.as_str() {
            "--passed" => passed = value == "true",
            "--pipelines" => pipelines = value.parse().unwrap_or(pipelines),
            "--requests" => requests = value.parse().unwrap_or(requests),
            "--database-url" => database_url = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    let server = Arc::new(Server::start(database_url.as_deref(), &["--no-embedded-runner"]).await);
    let project = fill_history(&server, pipelines).await;
    if passed {
        run_every_job(&server).await;
    }
    let (client, session) = sign_in(&server).await;
    let newest = server
        .get(&format!("/projects/{project}/pipelines?per_page=1"))
        .await;
    let pipeline = newest[0]["id"].as_i64().unwrap_or(1);
    let jobs = server
        .get(&format!("/projects/{project}/pipelines/{pipeline}/jobs"))
        .await;
    let job = jobs[0]["id"].as_i64().unwrap_or(1);
    let pages = [
        ("dashboard", "/".to_string()),
        ("overview", "/root/history".to_string()),
        ("pipelines, page 1", "/root/history/-/pipelines".to_string()),
        (
            "pipelines, page 400",
            "/root/history/-/pipelines?page=400".to_string(),
        ),
        (
            "pipelines, status+source",
            "/root/history/-/pipelines?status=created&source=trigger".to_string(),
        ),
        (
            "pipelines, ref",
            "/root/history/-/pipelines?ref=main".to_string(),
        ),
        ("jobs, page 1", "/root/history/-/jobs".to_string()),
        (
            "jobs, pending",
            "/root/history/-/jobs?status=pending".to_string(),
        ),
        ("pipeline", format!("/root/history/-/pipelines/{pipeline}")),
        ("job", format!("/root/history/-/jobs/{job}")),
        (
            "settings/ci_cd",
            "/root/history/-/settings/ci_cd".to_string(),
        ),
    ];
    println!(
        "{requests} sequential requests per page, signed in, on a project with {pipelines} pipelines:"
    );
    for (name, path) in pages {
        let mut hist = histogram();
        for _ in 0..requests {
            let start = Instant::now();
            let res = client
                .get(format!("{}{path}", server.url))
                .header("Cookie", &session)
                .send()
                .await
                .expect("page");
            assert_eq!(res.status(), 200, "{path}");
            let _ = res.bytes().await.expect("body");
            let _ = hist.record(start.elapsed().as_micros() as u64);
        }
        println!("  {name:<26} {}", quantiles(&hist));
    }
}

/// A project with `pipelines` triggered pipelines (32 clients at once); its id.
async fn fill_history(server: &Arc<Server>, pipelines: usize) -> i64 {
    let project = server.project_with("history", CONFIG).await;
    let trigger = server
        .post_form(
            &format!("/projects/{project}/triggers"),
            &[("description", "bench")],
        )
        .await;
    let token = trigger["token"].as_str().unwrap_or_default().to_string();

    let started = Instant::now();
    let url = format!("{}/api/v4/projects/{project}/trigger/pipeline", server.url);
    let mut tasks = Vec::new();
    let per_task = pipelines.div_ceil(32);
    for t in 0..32 {
        let (server, url, token) = (server.clone(), url.clone(), token.clone());
        let count = per_task.min(pipelines.saturating_sub(t * per_task));
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                let res = server
                    .client
                    .post(&url)
                    .form(&[("token", token.as_str()), ("ref", "main")])
                    .send()
                    .await
                    .expect("trigger");
                assert_eq!(res.status(), 201, "trigger");
            }
        }));
    }
    for task in tasks {
        task.await.expect("trigger task");
    }
    println!(
        "history: {pipelines} pipelines ({} jobs) in {:?}",
        pipelines * 3,
        started.elapsed()
    );

    project
}

/// Runs every queued job to success with 16 protocol-level runner clients (request, then
/// `PUT /jobs/:id` with `success`), until the queue is empty.
async fn run_every_job(server: &Server) {
    let runner = server
        .post_form(
            "/user/runners",
            &[("runner_type", "instance_type"), ("run_untagged", "true")],
        )
        .await;
    let token = runner["token"].as_str().unwrap_or_default().to_string();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (client, url, token) = (server.client.clone(), server.url.clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let mut ran = 0usize;
            loop {
                let res = client
                    .post(format!("{url}/api/v4/jobs/request"))
                    .json(&serde_json::json!({"token": token}))
                    .send()
                    .await
                    .expect("request");
                if res.status() == 204 {
                    return ran;
                }
                let job: serde_json::Value = res.json().await.expect("job");
                let res = client
                    .put(format!("{url}/api/v4/jobs/{}", job["id"]))
                    .json(&serde_json::json!({
                        "token": job["token"], "state": "success", "exit_code": 0,
                    }))
                    .send()
                    .await
                    .expect("update");
                assert_eq!(res.status(), 200, "job update");
                ran += 1;
            }
        }));
    }
    let mut ran = 0;
    for worker in workers {
        ran += worker.await.expect("runner task");
    }
    println!(
        "runner: {ran} jobs run to success in {:?}",
        started.elapsed()
    );
}

/// Signs in the way a browser does: the form's CSRF cookie and token, then the session. The
/// client (no redirects) and the session cookie.
async fn sign_in(server: &Server) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = client
        .get(format!("{}/users/sign_in", server.url))
        .send()
        .await
        .expect("sign-in page");
    let form_cookie = cookie_of(&form, "_pipewright_csrf").unwrap_or_default();
    let token = csrf(&form.text().await.unwrap_or_default());
    let signed_in = client
        .post(format!("{}/users/sign_in", server.url))
        .header("Cookie", form_cookie)
        .form(&[
            ("authenticity_token", token.as_str()),
            ("user[login]", "root"),
            ("user[password]", "bench-password"),
        ])
        .send()
        .await
        .expect("sign in");
    let session = cookie_of(&signed_in, "_pipewright_session").expect("a session cookie");

    (client, session)
}
