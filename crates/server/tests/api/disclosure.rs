//! What the server must not give away: a sign-in that sends you to another site (or loses your
//! session on a bad target), a private project told apart from a missing one, and a public
//! project's pipelines naming the private projects they are linked to.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::support::{ROOT_PASSWORD, TestApp};
use crate::web::Browser;

both_backends!(
    sign_in_redirects_stay_on_this_server,
    private_projects_answer_like_missing_ones,
    linked_pipelines_hide_private_projects,
);

const PASSWORD: &str = "a-long-password";

/// Posts the sign-in form as root with `redirect_to`.
async fn sign_in_to(browser: &mut Browser, redirect_to: &str) -> crate::web::Page {
    let token = browser.get("/users/sign_in").await.csrf();
    browser
        .post(
            "/users/sign_in",
            &[
                ("authenticity_token", token.as_str()),
                ("user[login]", "root"),
                ("user[password]", ROOT_PASSWORD),
                ("redirect_to", redirect_to),
            ],
        )
        .await
}

async fn sign_in_redirects_stay_on_this_server(app: TestApp) {
    // Browsers drop tabs and newlines from a URL: `/\t/evil.example/` would be
    // `//evil.example/`, another site.
    for target in [
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\\evil.example",
        "//evil.example",
    ] {
        let mut browser = Browser::new(&app);
        let form = browser
            .get(&format!("/users/sign_in?redirect_to={}", urlencode(target)))
            .await;
        assert!(
            form.body.contains("name=\"redirect_to\" value=\"/\""),
            "{target:?}: {}",
            form.body
        );
        let page = sign_in_to(&mut browser, target).await;
        assert_eq!(page.status, 303, "{target:?}");
        assert_eq!(page.location.as_deref(), Some("/"), "{target:?}");
    }

    // CR/LF could not become a header: that was a 500 that lost the new session. Now it is
    // the dashboard, signed in.
    let mut browser = Browser::new(&app);
    let page = sign_in_to(&mut browser, "/x\r\nSet-Cookie: injected=1").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/"));
    assert!(
        !browser
            .last_set_cookies
            .iter()
            .any(|c| c.starts_with("injected")),
        "{:?}",
        browser.last_set_cookies
    );
    assert_eq!(browser.get("/").await.status, 200, "the session survived");
    // Signed in already, the sign-in page redirects at once, with the same rule.
    let page = browser.get("/users/sign_in?redirect_to=/x%0d%0a").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/"));
    let page = browser
        .get("/users/sign_in?redirect_to=/%09/evil.example/")
        .await;
    assert_eq!(page.location.as_deref(), Some("/"));

    // A local path, with its query, still brings you back.
    let mut browser = Browser::new(&app);
    let page = sign_in_to(&mut browser, "/root/demo/-/pipelines?status=failed").await;
    assert_eq!(
        page.location.as_deref(),
        Some("/root/demo/-/pipelines?status=failed")
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn set_visibility(app: &TestApp, project: i64, visibility: &str) {
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/projects/{project}"),
            Some(&app.root_token),
            Some(json!({ "visibility": visibility })),
        )
        .await;
    assert_eq!(res.status(), 200);
}

async fn private_projects_answer_like_missing_ones(app: TestApp) {
    let secret = app.create_project(&app.root_token, "secret").await["id"]
        .as_i64()
        .unwrap();
    let (alice, alice_token) = app.create_user("alice").await;
    app.create_user("eve").await;
    let own = app.create_project(&app.root_token, "alices").await["id"]
        .as_i64()
        .unwrap();
    app.add_member(own, alice, 40).await;

    // Signed out: every project URL asks for a sign-in, whether there is a project or not
    // (GitLab's `route_not_found`).
    let mut anonymous = Browser::new(&app);
    for (existing, missing) in [
        ("/root/secret", "/root/missing"),
        ("/root/secret/-/pipelines", "/root/missing/-/pipelines"),
        ("/root/secret/-/pipelines/1", "/root/missing/-/pipelines/1"),
        ("/root/secret/-/jobs", "/root/missing/-/jobs"),
        (
            "/root/secret/-/settings/ci_cd",
            "/root/missing/-/settings/ci_cd",
        ),
    ] {
        let a = anonymous.get(existing).await;
        let b = anonymous.get(missing).await;
        assert_eq!(a.status, 303, "{existing}");
        assert_eq!(b.status, 303, "{missing}");
        assert_eq!(
            a.location.unwrap().replace("secret", "X"),
            b.location.unwrap().replace("missing", "X"),
            "{existing}"
        );
    }
    // Signed in without access: the same 404 page for both.
    let mut eve = Browser::sign_in(&app, "eve", PASSWORD).await;
    let a = eve.get("/root/secret/-/pipelines").await;
    let b = eve.get("/root/missing/-/pipelines").await;
    assert_eq!((a.status, b.status), (404, 404));
    assert_eq!(a.body, b.body);

    // The job token allowlist form: a project you cannot see is "not found or not yours",
    // word for word what a missing one is.
    let mut alice = Browser::sign_in(&app, "alice", PASSWORD).await;
    let settings = "/root/alices/-/settings/ci_cd";
    let mut flashes = Vec::new();
    for target in ["root/secret", "root/missing"] {
        let page = alice
            .submit(
                settings,
                &format!("{settings}/job_token_scope"),
                &[("op", "add"), ("target_project_path", target)],
            )
            .await;
        assert_eq!(page.status, 303);
        let page = alice.get(page.location.as_deref().unwrap()).await;
        let flash = flash_text(&page.body);
        assert!(
            flash.contains("does not exist or you don"),
            "{target}: {flash}"
        );
        flashes.push(flash);
    }
    assert_eq!(flashes[0], flashes[1]);
    let list: Value = app
        .root_json(&format!("/projects/{own}/job_token_scope/allowlist"))
        .await;
    assert_eq!(list, json!([]), "nothing was let in");

    // Root lets the private project in: Alice, a Maintainer here who cannot see it, is shown
    // the entry (to remove it) but not the project's name.
    let res = app
        .post(
            &format!("/projects/{own}/job_token_scope/allowlist"),
            Some(&app.root_token),
            json!({ "target_project_id": secret }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let page = alice.get(settings).await;
    assert!(!page.body.contains("root/secret"), "{}", page.body);
    assert!(page.body.contains("A project you cannot see"));
    let res = app
        .get(
            &format!("/projects/{own}/job_token_scope/allowlist"),
            Some(&alice_token),
        )
        .await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list, json!([{ "id": secret }]));
    let list: Value = app
        .root_json(&format!("/projects/{own}/job_token_scope/allowlist"))
        .await;
    assert_eq!(list[0]["path_with_namespace"], "root/secret");
}

/// The flash message of a page.
fn flash_text(body: &str) -> String {
    let start = body.find("class=\"flash").expect("a flash message");
    let rest = &body[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest.find("</div>").unwrap();
    rest[open..close].to_string()
}

/// A project named `name` with `config` as its `.gitlab-ci.yml`.
async fn project_with_ci(app: &TestApp, tmp: &std::path::Path, name: &str, config: &str) -> i64 {
    let id = app.create_project(&app.root_token, name).await["id"]
        .as_i64()
        .unwrap();
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let work = local_repo(&dir, config);
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(&work, &dir, &["push", "-q", "-o", "ci.skip", &url, "main"]);
    id
}

/// Runs `upstream`'s pipeline as root and waits for its bridge's downstream pipeline;
/// returns (upstream pipeline id, downstream pipeline id).
async fn bridged_pipeline(app: &TestApp, upstream: i64) -> (i64, i64) {
    let pipeline = crate::lifecycle::run_pipeline(app, upstream).await;
    let id = pipeline["id"].as_i64().unwrap();
    let mut bridges: Vec<Value> = Vec::new();
    for _ in 0..100 {
        bridges = app
            .root_json(&format!("/projects/{upstream}/pipelines/{id}/bridges"))
            .await;
        if let Some(down) = bridges[0]["downstream_pipeline"]["id"].as_i64() {
            return (id, down);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no downstream pipeline: {bridges:#?}");
}

const B_JOB: &str = "b_job:\n  script: [echo b]\n";

async fn linked_pipelines_hide_private_projects(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, eve_token) = app.create_user("eve").await;
    let mut eve = Browser::sign_in(&app, "eve", PASSWORD).await;
    let mut anonymous = Browser::new(&app);
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;

    // A public project triggers a private one.
    project_with_ci(&app, tmp.path(), "hidden-downstream", B_JOB).await;
    let public_up = project_with_ci(
        &app,
        tmp.path(),
        "public-upstream",
        "deploy:\n  trigger:\n    project: root/hidden-downstream\n",
    )
    .await;
    set_visibility(&app, public_up, "public").await;
    let (up, _) = bridged_pipeline(&app, public_up).await;

    let bridges_path = format!("/projects/{public_up}/pipelines/{up}/bridges");
    for token in [None, Some(eve_token.as_str())] {
        let res = app.get(&bridges_path, token).await;
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        assert!(!body.contains("hidden-downstream"), "{body}");
        let bridges: Vec<Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(bridges[0]["name"], "deploy");
        assert!(bridges[0]["downstream_pipeline"].is_null(), "{body}");
    }
    let page_path = format!("/root/public-upstream/-/pipelines/{up}");
    for viewer in [&mut anonymous, &mut eve] {
        let page = viewer.get(&page_path).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("deploy"));
        assert!(!page.body.contains("hidden-downstream"), "{}", page.body);
    }
    // Who may read the downstream project still sees the link.
    let page = root.get(&page_path).await;
    assert!(
        page.body.contains("root/hidden-downstream #"),
        "{}",
        page.body
    );
    let bridges: Vec<Value> = app.root_json(&bridges_path).await;
    assert!(
        bridges[0]["downstream_pipeline"]["web_url"]
            .as_str()
            .unwrap()
            .contains("/root/hidden-downstream/-/pipelines/")
    );

    // A private project triggers a public one: the public pipeline does not name its upstream.
    let public_down = project_with_ci(&app, tmp.path(), "public-downstream", B_JOB).await;
    set_visibility(&app, public_down, "public").await;
    let hidden_up = project_with_ci(
        &app,
        tmp.path(),
        "hidden-upstream",
        "deploy:\n  trigger:\n    project: root/public-downstream\n",
    )
    .await;
    let (_, down) = bridged_pipeline(&app, hidden_up).await;
    let pipeline_path = format!("/projects/{public_down}/pipelines/{down}");
    for token in [None, Some(eve_token.as_str())] {
        let res = app.get(&pipeline_path, token).await;
        assert_eq!(res.status(), 200);
        let pipeline: Value = res.json().await.unwrap();
        assert_eq!(pipeline["source"], "pipeline");
        assert!(pipeline["upstream"].is_null(), "{pipeline}");
    }
    let pipeline: Value = app.root_json(&pipeline_path).await;
    assert_eq!(pipeline["upstream"]["project_id"], hidden_up);
    for path in [
        format!("/root/public-downstream/-/pipelines/{down}"),
        "/root/public-downstream/-/pipelines".to_string(),
        "/root/public-downstream".to_string(),
    ] {
        for viewer in [&mut anonymous, &mut eve] {
            let page = viewer.get(&path).await;
            assert_eq!(page.status, 200, "{path}");
            assert!(
                !page.body.contains("hidden-upstream"),
                "{path}: {}",
                page.body
            );
        }
        let page = root.get(&path).await;
        assert!(page.body.contains("root/hidden-upstream #"), "{path}");
    }
}
