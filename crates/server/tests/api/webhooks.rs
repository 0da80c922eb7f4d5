//! Project webhooks: a tag pushed to A fires A's hook at B's trigger URL and B runs with A's
//! event in `TRIGGER_PAYLOAD` (the seeds' cross-project webhook); local addresses are refused
//! unless the admin allows them; a Pipeline Hook aimed at a trigger URL is refused; failed
//! deliveries retry with backoff and survive a restart; deliveries are listed with what was
//! answered; special-purpose addresses (and IPv6 spellings of local ones) are refused, and
//! proxy variables cannot route a delivery around the address check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::running::{finished_pipeline, job_log, start_runner};
use crate::support::{Backend, TestApp, assert_json};

both_backends!(
    a_tag_push_hook_triggers_another_project,
    hooks_are_guarded,
    hooks_refuse_special_addresses,
);

async fn allow_local(app: &TestApp) {
    let res = app
        .request(
            reqwest::Method::PUT,
            "/application/settings",
            Some(&app.root_token),
            Some(json!({"allow_local_requests_from_web_hooks_and_services": true})),
        )
        .await;
    assert_eq!(res.status(), 200);
}

fn repo(app: &TestApp, tmp: &std::path::Path, name: &str, config: &str) -> std::path::PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let work = local_repo(&dir, config);
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(&work, &dir, &["push", "-q", "-o", "ci.skip", &url, "main"]);
    work
}

async fn a_tag_push_hook_triggers_another_project(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    allow_local(&app).await;
    let a = app.create_project(&app.root_token, "hooked").await["id"]
        .as_i64()
        .unwrap();
    let b = app.create_project(&app.root_token, "receiver").await["id"]
        .as_i64()
        .unwrap();
    let work_a = repo(&app, tmp.path(), "hooked", "job:\n  script: [echo a]\n");
    repo(
        &app,
        tmp.path(),
        "receiver",
        "show:\n  script:\n    - cat $TRIGGER_PAYLOAD\n",
    );
    let res = app
        .post(
            &format!("/projects/{b}/triggers"),
            Some(&app.root_token),
            json!({"description": "from a"}),
        )
        .await;
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let hook_url = format!(
        "{}/api/v4/projects/{b}/ref/main/trigger/pipeline?token={token}",
        app.url
    );
    let res = app
        .post(
            &format!("/projects/{a}/hooks"),
            Some(&app.root_token),
            json!({"url": hook_url, "push_events": false, "tag_push_events": true, "token": "hook-secret"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let hook: Value = res.json().await.unwrap();
    assert_eq!(hook["tag_push_events"], true);
    assert!(
        hook.get("token").is_none(),
        "the secret token is never shown"
    );

    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let dir_a = tmp.path().join("hooked");
    git_ok(&work_a, &dir_a, &["tag", "v1.0"]);
    let url_a = remote(&app, "root", &app.root_token, "root/hooked");
    git_ok(
        &work_a,
        &dir_a,
        &["push", "-q", "-o", "ci.skip", &url_a, "v1.0"],
    );

    let mut pipelines: Vec<Value> = Vec::new();
    for _ in 0..100 {
        pipelines = app.root_json(&format!("/projects/{b}/pipelines")).await;
        if !pipelines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pipelines.len(), 1, "the hook triggered B");
    assert_eq!(pipelines[0]["source"], "trigger");
    assert_eq!(pipelines[0]["ref"], "main");
    let (done, jobs) = finished_pipeline(&app, b, &pipelines[0]).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let log = job_log(&app, b, &jobs, "show").await;
    assert!(log.contains("\"object_kind\":\"tag_push\""), "{log}");
    assert!(log.contains("\"event_name\":\"tag_push\""), "{log}");
    // As on GitLab, the URL's ref replaces the body's `ref` in TRIGGER_PAYLOAD.
    assert!(log.contains("\"ref\":\"main\""), "{log}");
    assert!(log.contains("root/hooked"), "{log}");

    let events: Vec<Value> = app
        .root_json(&format!("/projects/{a}/hooks/{}/events", hook["id"]))
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["trigger"], "Tag Push Hook");
    assert_eq!(events[0]["state"], "delivered");
    assert_eq!(events[0]["response_status"], "201");
    runner.abort();
}

/// A receiver that records requests and answers with a scripted sequence of statuses.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    r.seen.lock().unwrap().push((headers, body));
    let next = {
        let mut s = r.statuses.lock().unwrap();
        if s.is_empty() { 200 } else { s.remove(0) }
    };
    StatusCode::from_u16(next).unwrap()
}

// A hook receiver of the test's own, not a Pipewright route (those live in the route table).
#[allow(clippy::disallowed_methods)]
async fn start_receiver(statuses: Vec<u16>, port: u16) -> (Receiver, tokio::task::JoinHandle<()>) {
    let receiver = Receiver {
        seen: Default::default(),
        statuses: Arc::new(Mutex::new(statuses)),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (receiver, task)
}

async fn hooks_are_guarded(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let a = app.create_project(&app.root_token, "guarded-hooks").await["id"]
        .as_i64()
        .unwrap();
    repo(
        &app,
        tmp.path(),
        "guarded-hooks",
        "job:\n  script: [echo a]\n",
    );
    let path = format!("/projects/{a}/hooks");
    // Local addresses are refused by default, at creation.
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
    ] {
        let res = app
            .post(&path, Some(&app.root_token), json!({"url": url}))
            .await;
        // GitLab's API names no reason (the web UI does).
        assert_json(res, 422, json!({"error": "Invalid url given"})).await;
    }
    let res = app
        .post(
            &path,
            Some(&app.root_token),
            json!({"url": "ftp://example.com/"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let (dev_id, dev) = app.create_user("hook-dev").await;
    app.add_member(a, dev_id, 30).await;
    assert_eq!(app.get(&path, Some(&dev)).await.status(), 403);
    allow_local(&app).await;

    // A Pipeline Hook aimed at a trigger URL is refused (403) by the trigger endpoint.
    let res = app
        .post(
            &format!("/projects/{a}/triggers"),
            Some(&app.root_token),
            json!({"description": "loop"}),
        )
        .await;
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let loop_url = format!(
        "{}/api/v4/projects/{a}/trigger/pipeline?token={token}&ref=main",
        app.url
    );
    let res = app
        .post(
            &path,
            Some(&app.root_token),
            json!({"url": loop_url, "push_events": false, "pipeline_events": true}),
        )
        .await;
    let loop_hook: Value = res.json().await.unwrap();
    let res = app
        .post(
            &format!("/projects/{a}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let mut events: Vec<Value> = Vec::new();
    for _ in 0..100 {
        events = app
            .root_json(&format!("{path}/{}/events", loop_hook["id"]))
            .await;
        if events.iter().any(|e| e["response_status"] == "403") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        events.iter().any(|e| e["response_status"] == "403"),
        "{events:#?}"
    );
    let pipelines: Vec<Value> = app.root_json(&format!("/projects/{a}/pipelines")).await;
    assert_eq!(pipelines.len(), 1, "the hook did not start a pipeline");
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("{path}/{}", loop_hook["id"]),
            Some(&app.root_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);

    // A receiver that fails twice, then answers: the delivery is retried with backoff.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (receiver, task) = start_receiver(vec![500, 502], port).await;
    let res = app
        .post(
            &path,
            Some(&app.root_token),
            json!({"url": format!("http://127.0.0.1:{port}/hook"), "token": "s3cret"}),
        )
        .await;
    let hook: Value = res.json().await.unwrap();
    let res = app
        .post(
            &format!("{path}/{}/test/push_events", hook["id"]),
            Some(&app.root_token),
            json!({}),
        )
        .await;
    assert_json(res, 201, json!({"message": "201 Created"})).await;
    let events_path = format!("{path}/{}/events", hook["id"]);
    let mut event = Value::Null;
    for _ in 0..100 {
        let events: Vec<Value> = app.root_json(&events_path).await;
        if events.first().is_some_and(|e| e["state"] == "delivered") {
            event = events[0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(event["state"], "delivered", "{event:#?}");
    assert_eq!(event["attempts"], 3);
    assert!(event["uuid"].is_string(), "{event:#?}");
    // This delivery's three attempts, by its UUID: the push (whose events are queued by a task
    // after `git push` returns) may on a loaded machine have seen this hook too.
    let seen: Vec<_> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(headers, _)| {
            headers
                .get("x-gitlab-event-uuid")
                .and_then(|v| v.to_str().ok())
                == event["uuid"].as_str()
        })
        .cloned()
        .collect();
    assert_eq!(seen.len(), 3);
    let (headers, body) = &seen[2];
    assert_eq!(headers["x-gitlab-event"], "Push Hook");
    assert_eq!(headers["x-gitlab-token"], "s3cret");
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.contains_key("x-gitlab-event-uuid"));
    assert_eq!(headers["x-gitlab-instance"], app.url.as_str());
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["object_kind"], "push");
    assert_eq!(
        payload["project"]["path_with_namespace"],
        "root/guarded-hooks"
    );
    task.abort();
}

/// Deliveries live in the database: queued while the receiver is down, they are sent by the
/// next server once it is up.
mod deliveries_survive_a_restart {
    use super::*;

    async fn scenario(backend: Backend) {
        let first = TestApp::start_with(backend, |c| {
            c.webhook_retry_base = Duration::from_millis(200);
        })
        .await;
        let tmp = tempfile::tempdir().unwrap();
        allow_local(&first).await;
        let a = first.create_project(&first.root_token, "restarts").await["id"]
            .as_i64()
            .unwrap();
        let work = repo(&first, tmp.path(), "restarts", "job:\n  script: [echo a]\n");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let res = first
            .post(
                &format!("/projects/{a}/hooks"),
                Some(&first.root_token),
                json!({"url": format!("http://127.0.0.1:{port}/hook")}),
            )
            .await;
        let hook: Value = res.json().await.unwrap();
        // Nothing listens yet: the push's delivery fails and waits for a retry.
        git_ok(
            &work,
            tmp.path(),
            &["commit", "-q", "--allow-empty", "-m", "Second"],
        );
        let second_sha = git_ok(&work, tmp.path(), &["rev-parse", "HEAD"])
            .trim()
            .to_string();
        let url = remote(&first, "root", &first.root_token, "root/restarts");
        git_ok(
            &work,
            tmp.path(),
            &["push", "-q", "-o", "ci.skip", &url, "main"],
        );
        let events_path = format!("/projects/{a}/hooks/{}/events", hook["id"]);
        for _ in 0..100 {
            let events: Vec<Value> = first.root_json(&events_path).await;
            if events
                .first()
                .is_some_and(|e| e["attempts"].as_i64() >= Some(1) && e["state"] == "pending")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let second = first
            .start_replica_with(|c| c.webhook_retry_base = Duration::from_millis(200))
            .await;
        let root = first.root_token.clone();
        drop(first);
        let (receiver, task) = start_receiver(vec![], port).await;
        let mut delivered = false;
        for _ in 0..150 {
            let events: Vec<Value> = second
                .get(&events_path, Some(&root))
                .await
                .json()
                .await
                .unwrap();
            if events.first().is_some_and(|e| e["state"] == "delivered") {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(delivered, "the queued delivery was sent after the restart");
        // Only this push counts: the port was free when the hook was made, so under load
        // another test's server may have used it (and queued its own hooks to it) since, and
        // the first push's event may still have been waiting for its hooks when this one's
        // hook was added.
        let ours = receiver
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body.contains(&second_sha))
            .count();
        assert_eq!(ours, 1, "delivered exactly once");
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        scenario(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        scenario(Backend::Postgres).await
    }
}

/// Hook URLs that reach the local network in disguise, or special-purpose ranges no hook can
/// be meant for.
async fn hooks_refuse_special_addresses(app: TestApp) {
    let a = app.create_project(&app.root_token, "special-hooks").await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/projects/{a}/hooks");
    let create = |url: &'static str| {
        let app = &app;
        let path = path.clone();
        async move {
            app.post(&path, Some(&app.root_token), json!({ "url": url }))
                .await
        }
    };
    // Local addresses spelled another way: refused while local requests are not allowed.
    let disguised = [
        "http://[64:ff9b::7f00:1]/hook",   // NAT64 of 127.0.0.1
        "http://[::ffff:0:7f00:1]/hook",   // IPv4-translated 127.0.0.1
        "http://[2002:7f00:1::1]/hook",    // 6to4 around 127.0.0.1
        "http://[2002:a9fe:a9fe::1]/hook", // 6to4 around 169.254.169.254
        "http://[64:ff9b:1::a00:1]/hook",  // local-use NAT64
        "http://[fec0::1]/hook",           // site-local
        "http://100.100.100.200/hook",     // shared address space
    ];
    // Never a hook's destination, whatever the setting.
    let special = [
        "http://0.0.0.1/hook",
        "http://0.1.2.3/hook",
        "http://[::127.0.0.1]/hook", // IPv4-compatible
        "http://[::]/hook",
        "http://224.0.0.1/hook",
        "http://239.255.255.250/hook",
        "http://[ff02::1]/hook",
        "http://240.0.0.1/hook",
        "http://255.255.255.255/hook",
        "http://198.18.0.1/hook",
        "http://192.0.2.1/hook",
        "http://[2001:db8::1]/hook",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", // Teredo
        "http://[64:ff9b::e000:1]/hook",                      // NAT64 of multicast
    ];
    for url in disguised.iter().chain(special.iter()) {
        let res = create(url).await;
        assert_eq!(res.status(), 422, "{url}");
        assert_json(res, 422, json!({"error": "Invalid url given"})).await;
    }
    // The admin's setting lets the local network in, and nothing more.
    allow_local(&app).await;
    for url in disguised {
        assert_eq!(create(url).await.status(), 201, "{url}");
    }
    for url in special {
        assert_eq!(create(url).await.status(), 422, "{url}");
    }
    let hooks: Vec<Value> = app.root_json(&path).await;
    assert_eq!(hooks.len(), disguised.len());
}

/// `HTTP_PROXY` and friends are ignored by the hook sender: a proxy would resolve the hook's
/// name again, itself, and reach what the checked address was not. The server must run with
/// those variables set, which a test cannot do to its own process; so the scenario starts
/// this test binary again, as a replica on the same database with the variables set (the
/// `replica` test, which does nothing otherwise), and watches a delivery go past the proxy.
mod hooks_ignore_proxy_variables {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncWriteExt;

    use super::*;

    const REPLICA_DATABASE: &str = "PIPEWRIGHT_TEST_PROXY_REPLICA_DATABASE";

    /// A proxy that counts who came and turns them away.
    async fn start_proxy() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        (port, hits)
    }

    async fn scenario(backend: Backend) {
        // This server's own sender stays idle after its first (empty) round: the delivery is
        // the replica's to send.
        let app = TestApp::start_with(backend, |c| {
            c.maintenance_interval = Duration::from_secs(3600);
        })
        .await;
        let tmp = tempfile::tempdir().unwrap();
        allow_local(&app).await;
        let a = app.create_project(&app.root_token, "proxied").await["id"]
            .as_i64()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (receiver, task) = start_receiver(vec![], port).await;
        let (proxy_port, proxy_hits) = start_proxy().await;
        let path = format!("/projects/{a}/hooks");
        let res = app
            .post(
                &path,
                Some(&app.root_token),
                json!({"url": format!("http://127.0.0.1:{port}/hook")}),
            )
            .await;
        let hook: Value = res.json().await.unwrap();
        // The push queues exactly one delivery. (Pushing before the hook existed and then
        // queueing a test event raced: the push is turned into events after `git push`
        // returns, so it could see the new hook and queue a second delivery.)
        repo(&app, tmp.path(), "proxied", "job:\n  script: [echo a]\n");

        let proxy = format!("http://127.0.0.1:{proxy_port}");
        let mut replica = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "webhooks::hooks_ignore_proxy_variables::replica",
                "--test-threads=1",
            ])
            .env(REPLICA_DATABASE, &app.database_url)
            .envs(
                [
                    "HTTP_PROXY",
                    "http_proxy",
                    "HTTPS_PROXY",
                    "https_proxy",
                    "ALL_PROXY",
                    "all_proxy",
                ]
                .map(|name| (name, proxy.as_str())),
            )
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();

        let events_path = format!("{path}/{}/events", hook["id"]);
        let mut event = Value::Null;
        for _ in 0..300 {
            let events: Vec<Value> = app.root_json(&events_path).await;
            // Claimed (`sending`), then answered one way or another.
            if events
                .first()
                .is_some_and(|e| e["attempts"].as_i64() >= Some(1) && e["state"] != "sending")
            {
                event = events[0].clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replica.kill().await.unwrap();
        assert_eq!(event["state"], "delivered", "{event:#?}");
        assert_eq!(proxy_hits.load(Ordering::SeqCst), 0, "the proxy was asked");
        let ours = receiver
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body.contains("root/proxied"))
            .count();
        assert_eq!(ours, 1, "delivered straight to the receiver");
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        scenario(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        scenario(Backend::Postgres).await
    }

    /// The replica the scenario starts (with proxy variables set); on its own it does
    /// nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replica() {
        let Ok(database_url) = std::env::var(REPLICA_DATABASE) else {
            return;
        };
        let _replica = TestApp::start_on_database(&database_url).await;
        // Serves (and sends due deliveries) until the scenario ends it.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}
