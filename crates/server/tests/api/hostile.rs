//! Hostile input that used to get through: each scenario replays malformed requests from the
//! catalogue against the real server and expects GitLab's refusal, on both databases.

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::running::{register_runner, request, trace};
use crate::support::{PgCluster, TestApp};
use crate::triggering::triggerable_project;

both_backends!(
    a_log_chunk_without_a_valid_content_range_is_refused,
    nul_bytes_and_invalid_utf8_are_refused_everywhere,
    a_body_that_cannot_be_read_is_a_bad_request,
    rules_exists_over_many_files_is_bounded_like_gitlabs,
);

/// `PATCH /jobs/:id/trace` with `Content-Range` and body given raw.
async fn patch_trace(
    app: &TestApp,
    job: &Value,
    range: Option<&[u8]>,
    body: &str,
) -> reqwest::Response {
    let mut req = app
        .client
        .patch(app.api(&format!("/jobs/{}/trace", job["id"])))
        .header("JOB-TOKEN", job["token"].as_str().unwrap())
        .header("Content-Type", "text/plain")
        .body(body.to_string());
    if let Some(range) = range {
        req = req.header(
            "Content-Range",
            reqwest::header::HeaderValue::from_bytes(range).unwrap(),
        );
    }
    req.send().await.unwrap()
}

async fn a_log_chunk_without_a_valid_content_range_is_refused(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "trace", tmp.path()).await;
    let runner = register_runner(&app).await;
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": token, "ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let job = request(&app, &runner).await.expect("a job");
    assert_eq!(trace(&app, &job, 0, "first\n").await.status(), 202);

    // No header at all: GitLab's 400.
    let res = patch_trace(&app, &job, None, "injected\n").await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "400 Missing header Content-Range"})
    );
    // Garbage ranges: 416 with the log's current range, as for a chunk at the wrong offset.
    for garbage in [
        &b"bytes=abc"[..],
        b"-5-10",
        b"6",
        b"12345678901234567890123-12345678901234567890130",
        "６-１０".as_bytes(),
        b"",
    ] {
        let res = patch_trace(&app, &job, Some(garbage), "injected\n").await;
        assert_eq!(res.status(), 416, "{:?}", String::from_utf8_lossy(garbage));
        assert_eq!(res.headers()["range"], "0-6");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"message": "416 Range Not Satisfiable"})
        );
    }
    // Nothing was appended; the next real chunk continues the log.
    assert_eq!(trace(&app, &job, 6, "second\n").await.status(), 202);
    let res = app
        .get(
            &format!("/projects/{id}/jobs/{}/trace", job["id"]),
            Some(&app.root_token),
        )
        .await;
    assert_eq!(res.text().await.unwrap(), "first\nsecond\n");
}

/// Asserts GitLab's answer to a malformed string: 400, plain text `Bad Request`.
async fn assert_malformed(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 400, "{what}");
    assert_eq!(res.headers()["content-type"], "text/plain", "{what}");
    assert_eq!(res.text().await.unwrap(), "Bad Request", "{what}");
}

async fn nul_bytes_and_invalid_utf8_are_refused_everywhere(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, _, _) = triggerable_project(&app, "demo", tmp.path()).await;
    let root = app.root_token.clone();
    let (user_id, _) = app.create_user("alice").await;
    let api = |path: &str| app.api(path);
    let client = &app.client;

    // In the path and the query string, percent-encoded: lookups PostgreSQL used to fail on.
    for path in [
        "/projects/root%2Fdemo%00".to_string(),
        "/projects/root%2Fdem%ff".to_string(),
        "/projects/root%2Fdemo%zz".to_string(),
        "/projects?search=de%00mo".to_string(),
        "/projects?search=%c0%af".to_string(),
        "/users?username=alice%00".to_string(),
        format!("/projects/{id}/pipelines?ref=ma%00in"),
        format!("/projects/{id}/jobs/artifacts/main/download?job=te%00st"),
        format!("/projects/{id}/repository/branches/ma%00in"),
        format!("/projects/{id}/pipelines?scope%00=x"),
    ] {
        let res = client
            .get(api(&path))
            .header("PRIVATE-TOKEN", &root)
            .send()
            .await
            .unwrap();
        assert_malformed(res, &path).await;
    }
    // Git over HTTP and the pages, anonymous or not.
    for url in [
        format!(
            "{}/root/demo%00.git/info/refs?service=git-upload-pack",
            app.url
        ),
        format!(
            "{}/root/demo.git/info/refs?service=git-upload-pack%00",
            app.url
        ),
        format!("{}/root/de%00mo/-/pipelines", app.url),
        format!("{}/users/sign_in?redirect_to=%00", app.url),
    ] {
        assert_malformed(client.get(&url).send().await.unwrap(), &url).await;
    }
    let res = client
        .get(format!(
            "{}/root/demo.git/info/refs?service=git-upload-pack",
            app.url
        ))
        .basic_auth("root\0", Some("x"))
        .send()
        .await
        .unwrap();
    assert_malformed(res, "NUL in Basic credentials").await;
    // Web sign-in: a form body.
    let res = client
        .post(format!("{}/users/sign_in", app.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("user%5Blogin%5D=root%00&user%5Bpassword%5D=x")
        .send()
        .await
        .unwrap();
    assert_malformed(res, "sign-in form").await;

    // In bodies, every way parameters arrive: values SQLite used to store.
    let triggers = format!("/projects/{id}/triggers");
    let json_bodies = [
        (triggers.clone(), json!({"description": "ci\u{0}"})),
        (
            format!("/projects/{id}/variables"),
            json!({"key": "K", "value": "v\u{0}"}),
        ),
        (
            format!("/projects/{id}/variables"),
            json!({"key": "K", "value": "v", "description": "d\u{0}"}),
        ),
        (
            format!("/users/{user_id}/personal_access_tokens"),
            json!({"name": "n\u{0}", "scopes": ["api"]}),
        ),
        (
            format!("/projects/{id}/hooks"),
            json!({"url": "https://example.com/hook", "token": "t\u{0}"}),
        ),
        (
            "/users".to_string(),
            json!({"username": "bob", "name": "Bob", "email": "bob\u{0}@example.com", "password": "a-long-password"}),
        ),
        // Nested: a pipeline variable inside a list of objects, and a key.
        (
            format!("/projects/{id}/pipeline"),
            json!({"ref": "main", "variables": [{"key": "K", "value": "v\u{0}"}]}),
        ),
        (
            format!("/projects/{id}/pipeline"),
            json!({"ref": "main", "variables": [{"key": "K\u{0}", "value": "v"}]}),
        ),
        (triggers.clone(), json!({"description\u{0}": "ci"})),
    ];
    for (path, body) in &json_bodies {
        let res = app.post(path, Some(&root), body.clone()).await;
        assert_malformed(res, &format!("JSON {path} {body}")).await;
    }
    for body in ["description=ci%00", "description=ci%ff", "description=ci%0"] {
        let res = client
            .post(api(&triggers))
            .header("PRIVATE-TOKEN", &root)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_malformed(res, body).await;
    }
    for value in [&b"ci\0"[..], b"ci\xff"] {
        let form = reqwest::multipart::Form::new().part(
            "description",
            reqwest::multipart::Part::bytes(value.to_vec()),
        );
        let res = client
            .post(api(&triggers))
            .header("PRIVATE-TOKEN", &root)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_malformed(res, &format!("multipart {value:?}")).await;
    }

    // Nothing was stored, and the well-formed requests still work.
    let listed: Vec<Value> = app.root_json(&triggers).await;
    assert_eq!(listed.len(), 1, "only the seed trigger: {listed:?}");
    let variables: Vec<Value> = app.root_json(&format!("/projects/{id}/variables")).await;
    assert!(variables.is_empty(), "{variables:?}");
    let hooks: Vec<Value> = app.root_json(&format!("/projects/{id}/hooks")).await;
    assert!(hooks.is_empty(), "{hooks:?}");
    let users: Vec<Value> = app.root_json("/users?username=bob").await;
    assert!(users.is_empty(), "{users:?}");
    let res = app
        .post(&triggers, Some(&root), json!({"description": "café ✓"}))
        .await;
    assert_eq!(res.status(), 201);
    let found: Vec<Value> = app.root_json("/projects?search=de%6Do").await;
    assert_eq!(found.len(), 1);
    let res = client
        .get(format!(
            "{}/root/demo.git/info/refs?service=git-upload-pack",
            app.url
        ))
        .basic_auth("root", Some(&root))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Sends `request` as raw bytes, closes the sending side, and returns the response's status
/// line and body.
async fn raw_http(app: &TestApp, request: Vec<u8>) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

async fn a_body_that_cannot_be_read_is_a_bad_request(app: TestApp) {
    let head = |extra: &str| {
        format!(
            "POST /api/v4/projects HTTP/1.1\r\nHost: x\r\nPRIVATE-TOKEN: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n{extra}\r\n",
            app.root_token
        )
    };
    // A chunk size that is not hexadecimal.
    let bad_chunk = format!(
        "{}zz\r\nname=x\r\n0\r\n\r\n",
        head("Transfer-Encoding: chunked\r\n")
    );
    // A body cut short: 100 bytes announced, 6 sent, then the client stops sending.
    let truncated = format!("{}name=x", head("Content-Length: 100\r\n"));
    for (what, request) in [("bad chunk size", bad_chunk), ("truncated body", truncated)] {
        let (status, body) = raw_http(&app, request.into_bytes()).await;
        assert!(status.starts_with("HTTP/1.1 400"), "{what}: {status}");
        assert!(
            body.contains("400 Bad request - the request body could not be read"),
            "{what}: {body}"
        );
    }
    // Nothing was created.
    let projects: Vec<Value> = app.root_json("/projects?search=x").await;
    assert!(projects.iter().all(|p| p["name"] != "x"), "{projects:?}");
}

/// `rules: exists` with 200 globs that match none of 3,000 files: 600,000 comparisons, past
/// GitLab's 50,000, so (as in GitLab) the rule is taken as satisfied without comparing.
fn scanning_config() -> String {
    let globs: Vec<String> = (0..200)
        .map(|i| format!("\"missing-{i}/**/*.md\""))
        .collect();
    format!(
        "build:\n  script: make\nscan:\n  script: scan\n  rules:\n    - exists: [{}]\nnarrow:\n  script: narrow\n  rules:\n    - exists: [\"missing/*.md\", \"src/dir7/*.none\"]\n",
        globs.join(", ")
    )
}

async fn trigger(app: &TestApp, id: i64, token: &str) -> reqwest::Response {
    app.post(
        &format!("/projects/{id}/trigger/pipeline"),
        None,
        json!({"token": token, "ref": "main"}),
    )
    .await
}

async fn rules_exists_over_many_files_is_bounded_like_gitlabs(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let project = app.create_project(&app.root_token, "scan").await;
    let id = project["id"].as_i64().unwrap();
    let work = local_repo(tmp.path(), &scanning_config());
    for i in 0..3_000 {
        let dir = work.join(format!("src/dir{}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("file{i}.rs")), format!("{i}\n")).unwrap();
    }
    git_ok(&work, tmp.path(), &["add", "."]);
    git_ok(&work, tmp.path(), &["commit", "-q", "-m", "3,000 files"]);
    let url = remote(&app, "root", &app.root_token, "root/scan");
    git_ok(
        &work,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "main"],
    );
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "scan"}),
        )
        .await;
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Three at once: each answers, and the server keeps answering meanwhile.
    let (a, b, c, health) = tokio::join!(
        trigger(&app, id, &token),
        trigger(&app, id, &token),
        trigger(&app, id, &token),
        app.client.get(format!("{}/-/health", app.url)).send()
    );
    assert_eq!(health.unwrap().status(), 200);
    for res in [a, b, c] {
        assert_eq!(res.status(), 201);
        let pipeline: Value = res.json().await.unwrap();
        let jobs: Vec<Value> = app
            .root_json(&format!("/projects/{id}/pipelines/{}/jobs", pipeline["id"]))
            .await;
        let mut names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
        names.sort();
        // `scan`: past the limit, satisfied; `narrow`: 2 × 3,000 comparisons, none matches.
        assert_eq!(names, ["build", "scan"]);
    }

    // A server whose planning budget is spent at once: the pipeline fails with a config
    // error instead of holding the request.
    let hurried = app
        .start_replica_with(|c| c.plan_timeout = std::time::Duration::ZERO)
        .await;
    let res = trigger(&hurried, id, &token).await;
    assert_eq!(res.status(), 422);
    let message = pipewright_config::PLAN_INTERRUPTED;
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": {"base": [message]}})
    );
    let failed: Vec<Value> = app
        .root_json(&format!("/projects/{id}/pipelines?status=failed"))
        .await;
    assert_eq!(failed.len(), 1);
}

/// What the trigger load saw: each answer's status and, for a 201, the pipeline's id.
type Answers = std::sync::Arc<std::sync::Mutex<Vec<(u16, Option<i64>, std::time::Duration)>>>;

/// Four clients triggering pipelines back to back until `stop` is set.
fn trigger_load(
    app: &TestApp,
    id: i64,
    token: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answers: Answers,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    (0..4)
        .map(|_| {
            let (client, stop, answers) = (client.clone(), stop.clone(), answers.clone());
            let url = app.api(&format!("/projects/{id}/trigger/pipeline"));
            let body = json!({"token": token, "ref": "main"});
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = std::time::Instant::now();
                    let res = client.post(&url).json(&body).send().await.unwrap();
                    let status = res.status().as_u16();
                    let pipeline = res
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_i64());
                    answers
                        .lock()
                        .unwrap()
                        .push((status, pipeline, started.elapsed()));
                    if status != 201 {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            })
        })
        .collect()
}

/// Waits until `answers` holds `n` answers with `status` after the first `skip`.
async fn wait_for_answers(answers: &Answers, skip: usize, status: u16, n: usize) {
    for _ in 0..600 {
        let seen = answers
            .lock()
            .unwrap()
            .iter()
            .skip(skip)
            .filter(|a| a.0 == status)
            .count();
        if seen >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no {n} answers with status {status}");
}

/// With PostgreSQL stopped under trigger load, requests fail fast with a 503 and readiness is
/// red; when it is back, triggers succeed again and no acknowledged pipeline is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_at_once_and_loses_no_acknowledged_pipeline() {
    let cluster = tokio::task::spawn_blocking(PgCluster::private)
        .await
        .unwrap();
    let app = TestApp::start_on_database(&cluster.create_database().await).await;
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "outage", tmp.path()).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answers: Answers = Default::default();
    let load = trigger_load(&app, id, &token, stop.clone(), answers.clone());
    wait_for_answers(&answers, 0, 201, 20).await;

    let cluster = std::sync::Arc::new(cluster);
    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    let down = answers.lock().unwrap().len();
    wait_for_answers(&answers, down, 503, 8).await;
    let readiness = app
        .client
        .get(format!("{}/-/readiness", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(readiness.status(), 503);
    assert_eq!(readiness.json::<Value>().await.unwrap()["status"], "failed");
    let res = app
        .get(&format!("/projects/{id}"), Some(&app.root_token))
        .await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "503 Service Unavailable - the database is not answering, try again later"})
    );
    let page = app
        .client
        .get(format!("{}/root/outage/-/pipelines", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);

    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .unwrap();
    let up = answers.lock().unwrap().len();
    wait_for_answers(&answers, up, 201, 20).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let readiness = app
        .client
        .get(format!("{}/-/readiness", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(readiness.status(), 200);

    let answers = answers.lock().unwrap().clone();
    let failed: Vec<_> = answers.iter().filter(|a| a.0 != 201).collect();
    let slowest = failed.iter().map(|a| a.2).max().unwrap_or_default();
    eprintln!(
        "{} triggers: {} failed during the outage, the slowest answer after {slowest:?}",
        answers.len(),
        failed.len()
    );
    assert!(
        failed.iter().all(|a| a.0 == 503),
        "only 503s while the database is down: {failed:?}"
    );
    for (_, pipeline, _) in answers.iter().filter(|a| a.0 == 201) {
        let pipeline = pipeline.expect("a 201 names its pipeline");
        let res = app
            .get(
                &format!("/projects/{id}/pipelines/{pipeline}"),
                Some(&app.root_token),
            )
            .await;
        assert_eq!(
            res.status(),
            200,
            "acknowledged pipeline {pipeline} is kept"
        );
    }
    drop(app);
}
