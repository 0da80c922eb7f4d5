//! Attacks on git over HTTP and the refs it moves, replayed against the real server: request
//! bodies that inflate without end, ref names git would normalise, force pushes and deletions
//! of protected branches, password guessing over git, and a CR/LF in a `.git` redirect.
//! (The server's peak memory under such bodies is measured on the real binary, in
//! `crates/pipewright/tests/crash.rs`.)

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git, git_ok, local_repo, remote};
use crate::support::{Backend, TestApp, assert_json};
use crate::triggering::triggerable_project;
use crate::web::Browser;

both_backends!(
    a_ref_git_would_normalise_is_not_found_before_the_protected_branch_check,
    protected_branches_refuse_force_pushes_and_deletions,
    any_protected_branch_rule_that_matches_lets_a_developer_push,
    git_passwords_share_the_sign_in_lockout,
);

const ZERO: &str = "0000000000000000000000000000000000000000";

/// One pkt-line.
fn pkt(payload: &str) -> String {
    format!("{:04x}{payload}", payload.len() + 4)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A fetch request git keeps reading without answering: `shallow` lines for a commit that
/// does not exist (git skips them and reads on), `bytes` of them, gzip-compressed.
fn endless_fetch_request(bytes: usize) -> Vec<u8> {
    let line = pkt(&format!("shallow {ZERO}\n"));
    gzip(line.repeat(bytes / line.len() + 1).as_bytes())
}

async fn post_git(app: &TestApp, path: &str, service: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(format!("{}/{path}/{service}", app.url))
        .basic_auth("root", Some(&app.root_token))
        .header("Content-Type", format!("application/x-{service}-request"))
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_past_the_limit_get_413_and_the_server_keeps_serving() {
    let app = TestApp::start_with(Backend::Sqlite, |config| {
        config.max_git_fetch_body_bytes = 64 * 1024;
        config.max_git_body_bytes = 256 * 1024;
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    app.create_project(&app.root_token, "bodies").await;
    let work = local_repo(tmp.path(), "job:\n  script: true\n");
    let url = remote(&app, "root", &app.root_token, "root/bodies");
    git_ok(&work, tmp.path(), &["push", "-q", &url, "main"]);

    // A fetch request that inflates to 10 MiB (from about 10 KiB), several at once.
    let bomb = endless_fetch_request(10 * 1024 * 1024);
    assert!(bomb.len() < 100 * 1024, "{}", bomb.len());
    let requests =
        (0..4).map(|_| post_git(&app, "root/bodies.git", "git-upload-pack", bomb.clone()));
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let text = res.text().await.unwrap();
        assert!(
            text.contains(
                "git-upload-pack request is larger than this server accepts (65536 bytes"
            ),
            "{text}"
        );
    }
    // A body that says gzip and is not.
    let res = post_git(
        &app,
        "root/bodies.git",
        "git-upload-pack",
        b"plain text".to_vec(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.text().await.unwrap(),
        "The request body is not valid gzip.\n"
    );

    // A push whose command list inflates past the push limit: refused, and main does not move.
    let before = git_ok(&work, tmp.path(), &["rev-parse", "main"]);
    let command = pkt(&format!(
        "{} {} refs/heads/x\n",
        "1".repeat(40),
        "2".repeat(40)
    ));
    let endless = command.repeat(4 * 1024 * 1024 / command.len());
    let res = post_git(
        &app,
        "root/bodies.git",
        "git-receive-pack",
        gzip(endless.as_bytes()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("git-receive-pack request is larger than this server accepts (262144 bytes")
    );

    // A real push over the limit fails too; one within it goes through.
    std::fs::write(work.join("big.bin"), random_bytes(400 * 1024)).unwrap();
    git_ok(&work, tmp.path(), &["add", "big.bin"]);
    git_ok(&work, tmp.path(), &["commit", "-q", "-m", "Big"]);
    let out = git(&work, tmp.path(), &["push", "-q", &url, "main"]);
    assert!(!out.status.success(), "a push past the limit must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("413"), "{stderr}");
    let branch: Value = app
        .get(
            "/projects/root%2Fbodies/repository/branches/main",
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(branch["commit"]["id"].as_str(), Some(before.trim()));
    git_ok(&work, tmp.path(), &["reset", "-q", "--hard", "HEAD~1"]);
    std::fs::write(work.join("small.txt"), "small").unwrap();
    git_ok(&work, tmp.path(), &["add", "small.txt"]);
    git_ok(&work, tmp.path(), &["commit", "-q", "-m", "Small"]);
    git_ok(&work, tmp.path(), &["push", "-q", &url, "main"]);

    // And clones still work.
    git_ok(tmp.path(), tmp.path(), &["clone", "-q", &url, "again"]);
    assert!(tmp.path().join("again/small.txt").exists());
}

/// Bytes that do not compress (a simple xorshift generator is enough).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn a_ref_git_would_normalise_is_not_found_before_the_protected_branch_check(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, _, _) = triggerable_project(&app, "ref-checks", tmp.path()).await;
    // A Developer's trigger: `main` is protected (Maintainers push), so they may not run it.
    let (dev_id, dev) = app.create_user("dev").await;
    app.add_member(id, dev_id, 40).await;
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&dev),
            json!({"description": "dev"}),
        )
        .await;
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/projects/{id}/members/{dev_id}"),
            Some(&app.root_token),
            Some(json!({"access_level": 30})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let base = |m: &str| json!({"message": {"base": [m]}});
    let trigger = format!("/projects/{id}/trigger/pipeline");
    assert_json(
        app.post(&trigger, None, json!({"token": token, "ref": "main"}))
            .await,
        400,
        base("You do not have sufficient permission to run a pipeline on 'main'. Please select a different branch or contact your administrator for assistance."),
    )
    .await;
    // The attack: git reads `refs/heads//main` as `main`; the check must not see `/main`.
    for sneaky in [
        "refs/heads//main",
        "refs/heads/main/",
        "main/",
        "/main",
        "main\r\n",
    ] {
        assert_json(
            app.post(&trigger, None, json!({"token": token, "ref": sneaky}))
                .await,
            400,
            base("Reference not found"),
        )
        .await;
        assert_json(
            app.post(
                &format!("/projects/{id}/pipeline"),
                Some(&dev),
                json!({"ref": sneaky}),
            )
            .await,
            400,
            base("Reference not found"),
        )
        .await;
    }
    // The webhook form takes the ref from the URL.
    assert_json(
        app.post(
            &format!("/projects/{id}/ref/refs%2Fheads%2F%2Fmain/trigger/pipeline"),
            None,
            json!({"token": token}),
        )
        .await,
        400,
        base("Reference not found"),
    )
    .await;
    let pipelines: Vec<Value> = app
        .get(
            &format!("/projects/{id}/pipelines?ref=%2Fmain"),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(pipelines.is_empty(), "{pipelines:?}");
}

async fn protected_branches_refuse_force_pushes_and_deletions(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let project = app.create_project(&app.root_token, "guarded").await;
    let id = project["id"].as_i64().unwrap();
    let (dev_id, dev) = app.create_user("developer").await;
    app.add_member(id, dev_id, 30).await;
    let work = local_repo(tmp.path(), "job:\n  script: true\n");
    let root_url = remote(&app, "root", &app.root_token, "root/guarded");
    let dev_url = remote(&app, "developer", &dev, "root/guarded");
    let w = |args: &[&str]| git_ok(&work, tmp.path(), args);
    w(&["push", "-q", &root_url, "main"]);
    for branch in ["release", "feature", "scratch"] {
        w(&["push", "-q", &root_url, &format!("main:{branch}")]);
    }
    let rules = format!("/projects/{id}/protected_branches");
    let protect = |name: &'static str, force: bool| {
        app.post(
            &rules,
            Some(&app.root_token),
            json!({"name": name, "push_access_level": 30, "allow_force_push": force}),
        )
    };
    assert_eq!(protect("release", false).await.status(), 201);
    assert_eq!(protect("feature", true).await.status(), 201);
    let sha_of = |branch: &'static str| {
        let app = &app;
        async move {
            let b: Value = app
                .get(
                    &format!("/projects/{id}/repository/branches/{branch}"),
                    Some(&app.root_token),
                )
                .await
                .json()
                .await
                .unwrap();
            b["commit"]["id"].as_str().unwrap().to_string()
        }
    };

    // History rewritten: a commit that does not descend from what the branches hold.
    w(&["checkout", "-q", "--orphan", "rewritten"]);
    std::fs::write(work.join("other.txt"), "other").unwrap();
    w(&["add", "."]);
    w(&["commit", "-q", "-m", "Rewritten"]);
    let main_before = sha_of("main").await;
    let release_before = sha_of("release").await;
    for (url, branch) in [(&root_url, "main"), (&dev_url, "release")] {
        let out = git(
            &work,
            tmp.path(),
            &["push", "--force", url, &format!("rewritten:{branch}")],
        );
        assert!(!out.status.success(), "force push to {branch}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "GitLab: You are not allowed to force push code to a protected branch on this project."
            ),
            "{stderr}"
        );
    }
    assert_eq!(sha_of("main").await, main_before);
    assert_eq!(sha_of("release").await, release_before);
    // A fast-forward of a protected branch goes through, beside a force push to an
    // unprotected one.
    w(&["checkout", "-q", "main"]);
    std::fs::write(work.join("next.txt"), "next").unwrap();
    w(&["add", "."]);
    w(&["commit", "-q", "-m", "Next"]);
    let out = git(
        &work,
        tmp.path(),
        &[
            "push",
            "--force",
            &dev_url,
            "main:release",
            "rewritten:scratch",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Force pushes to a branch whose rule allows them, and to unprotected ones, go through.
    w(&["push", "-q", "--force", &dev_url, "rewritten:feature"]);
    w(&["push", "-q", "--force", &dev_url, "main:scratch"]);

    // Deleting: the default branch never; a protected one only through the web interface.
    let deletions = [
        (
            &root_url,
            "main",
            "GitLab: The default branch of a project cannot be deleted.",
        ),
        (
            &root_url,
            "release",
            "GitLab: You can only delete protected branches using the web interface.",
        ),
        (
            &dev_url,
            "release",
            "GitLab: You are not allowed to delete protected branches from this project. Only a project maintainer or owner can delete a protected branch.",
        ),
    ];
    for (url, branch, message) in deletions {
        let out = git(&work, tmp.path(), &["push", url, &format!(":{branch}")]);
        assert!(!out.status.success(), "deleting {branch}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    assert_eq!(
        app.get(
            &format!("/projects/{id}/repository/branches/release"),
            Some(&app.root_token)
        )
        .await
        .status(),
        200
    );
    w(&["push", "-q", &dev_url, ":scratch"]);

    // A ref name git would normalise is refused before any check looks at it.
    let main = sha_of("main").await;
    let release = sha_of("release").await;
    let mut body = pkt(&format!(
        "{main} {release} refs/heads//main\0report-status side-band-64k\n"
    ))
    .into_bytes();
    body.extend_from_slice(b"0000");
    let res = app
        .client
        .post(format!("{}/root/guarded.git/git-receive-pack", app.url))
        .basic_auth("root", Some(&app.root_token))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer = String::from_utf8_lossy(&res.bytes().await.unwrap()).to_string();
    assert!(answer.contains("git does not accept"), "{answer}");
    assert!(answer.contains("ng refs/heads//main"), "{answer}");
    assert_eq!(sha_of("main").await, main);
}

/// Git's Basic auth with a password, as a git client sends it.
async fn git_with_password(app: &TestApp, user: &str, password: &str) -> StatusCode {
    app.client
        .get(format!(
            "{}/root/lockout.git/info/refs?service=git-upload-pack",
            app.url
        ))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
        .status()
}

async fn git_passwords_share_the_sign_in_lockout(app: TestApp) {
    app.create_project(&app.root_token, "lockout").await;
    let (alice_id, alice_token) = app.create_user("alice").await;
    let (bob_id, _) = app.create_user("bob").await;
    let project: Value = app.root_json("/projects/root%2Flockout").await;
    let id = project["id"].as_i64().unwrap();
    app.add_member(id, alice_id, 30).await;
    app.add_member(id, bob_id, 30).await;
    let password = "a-long-password";
    assert_eq!(git_with_password(&app, "alice", password).await, 200);

    // Ten wrong passwords over git lock the account: over git, and on the sign-in page.
    for _ in 0..10 {
        assert_eq!(git_with_password(&app, "alice", "guess").await, 401);
    }
    let res = app
        .client
        .get(format!(
            "{}/root/lockout.git/info/refs?service=git-upload-pack",
            app.url
        ))
        .basic_auth("alice", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the right password while locked");
    assert!(
        res.text()
            .await
            .unwrap()
            .starts_with("HTTP Basic: Access denied. If a password was provided")
    );
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in_as("alice", password).await.status, 429);

    // Ten wrong passwords on the sign-in page lock git too.
    for _ in 0..10 {
        assert_eq!(browser.sign_in_as("bob", "guess").await.status, 401);
    }
    assert_eq!(git_with_password(&app, "bob", password).await, 401);
    // Tokens still work for a locked account (they are not guessable passwords).
    assert_eq!(git_with_password(&app, "alice", &alice_token).await, 200);
    app.create_user("carol").await;

    // A wrong password costs the same whether the user exists or not.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        assert_eq!(git_with_password(&app, "carol", "wrong").await, 401);
        known.push(start.elapsed());
        let start = Instant::now();
        assert_eq!(git_with_password(&app, "nobody-here", "wrong").await, 401);
        unknown.push(start.elapsed());
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[2], unknown[2]);
    // The leak was 25x (25 ms against 1 ms); a factor of 4 catches it without flaking on a
    // loaded machine (the hash parameters themselves are checked in `sign_in`'s unit tests).
    assert!(
        unknown * 4 >= known && unknown > Duration::from_millis(2),
        "an unknown user answers in {unknown:?}, a known one in {known:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cr_lf_in_a_git_path_is_a_404_not_a_broken_redirect() {
    let app = TestApp::start(Backend::Sqlite).await;
    app.create_project(&app.root_token, "demo").await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/root/x%0d%0aY.git").await;
    assert_eq!(page.status, 404);
    let page = browser.get("/root/x%0aSet-Cookie:%20a=b.git").await;
    assert_eq!(page.status, 404);
    // The ordinary redirect is still there.
    let page = browser.get("/root/demo.git").await;
    assert_eq!(page.location.as_deref(), Some("/root/demo"));
}

/// GitLab grants a push when any protected-branch rule matching the branch grants it
/// (`access_levels_for_ref(ref, action:).any?`, app/models/concerns/protected_ref.rb): with
/// `main` for Maintainers and a wildcard `*` for Developers, a Developer may push to `main`.
async fn any_protected_branch_rule_that_matches_lets_a_developer_push(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let project = app.create_project(&app.root_token, "two-rules").await;
    let id = project["id"].as_i64().unwrap();
    let (dev_id, dev) = app.create_user("developer").await;
    app.add_member(id, dev_id, 30).await;
    let work = local_repo(tmp.path(), "job:\n  script: true\n");
    let root_url = remote(&app, "root", &app.root_token, "root/two-rules");
    let dev_url = remote(&app, "developer", &dev, "root/two-rules");
    let w = |args: &[&str]| git_ok(&work, tmp.path(), args);
    // The first push protects `main` for Maintainers, as GitLab's default.
    w(&["push", "-q", &root_url, "main"]);
    std::fs::write(work.join("next.txt"), "next").unwrap();
    w(&["add", "."]);
    w(&["commit", "-q", "-m", "Next"]);
    let refused = git(&work, tmp.path(), &["push", &dev_url, "main"]);
    assert!(
        !refused.status.success(),
        "only Maintainers push to main yet"
    );
    let res = app
        .post(
            &format!("/projects/{id}/protected_branches"),
            Some(&app.root_token),
            json!({"name": "*", "push_access_level": 30}),
        )
        .await;
    assert_eq!(res.status(), 201);
    w(&["push", "-q", &dev_url, "main"]);
}
