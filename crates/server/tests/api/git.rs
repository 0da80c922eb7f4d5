//! The real `git` client against the git smart HTTP server: push, tag, clone, permissions,
//! protected branches, and reading what was pushed through the repository API.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{TestApp, assert_json};

both_backends!(
    push_tag_clone_and_read_back,
    roles_and_protected_branches_govern_git,
);

/// Runs `git` with no user or system configuration and no prompts.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> Output {
    std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Pipewright Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .output()
        .expect("run git")
}

pub fn git_ok(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = git(dir, home, args);
    assert!(
        out.status.success(),
        "git {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `http://user:token@host/path.git` for the project.
pub fn remote(app: &TestApp, user: &str, token: &str, path: &str) -> String {
    let host = app.url.trim_start_matches("http://");
    format!("http://{user}:{token}@{host}/{path}.git")
}

/// Creates a local repository with a `.gitlab-ci.yml` and one commit; returns its directory.
pub fn local_repo(root: &Path, ci: &str) -> std::path::PathBuf {
    let dir = root.join("work");
    std::fs::create_dir_all(&dir).expect("mkdir");
    git_ok(&dir, root, &["init", "-q"]);
    std::fs::write(dir.join(".gitlab-ci.yml"), ci).expect("write");
    git_ok(&dir, root, &["add", "."]);
    git_ok(&dir, root, &["commit", "-q", "-m", "Add CI config"]);
    dir
}

async fn push_tag_clone_and_read_back(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let project = app.create_project(&app.root_token, "demo").await;
    let id = project["id"].as_i64().unwrap();
    let url = remote(&app, "root", &app.root_token, "root/demo");

    let work = local_repo(tmp.path(), "test:\n  script: echo v1\n");
    git_ok(&work, tmp.path(), &["tag", "v1.0"]);
    std::fs::write(work.join(".gitlab-ci.yml"), "test:\n  script: echo v2\n").unwrap();
    git_ok(&work, tmp.path(), &["commit", "-q", "-am", "Second"]);
    git_ok(&work, tmp.path(), &["push", "-q", &url, "main", "v1.0"]);

    // Clone it back, over HTTP, with the password instead of a token.
    let host = app.url.trim_start_matches("http://");
    let password_url = format!(
        "http://root:{}@{host}/root/demo.git",
        crate::support::ROOT_PASSWORD
    );
    git_ok(
        tmp.path(),
        tmp.path(),
        &["clone", "-q", &password_url, "clone"],
    );
    let cloned = std::fs::read_to_string(tmp.path().join("clone/.gitlab-ci.yml")).unwrap();
    assert_eq!(cloned, "test:\n  script: echo v2\n");
    let tags = git_ok(&tmp.path().join("clone"), tmp.path(), &["tag"]);
    assert_eq!(tags.trim(), "v1.0");

    // The raw-file API at the branch and at the tag.
    let root = Some(app.root_token.as_str());
    let at_main = app
        .get(
            &format!("/projects/{id}/repository/files/.gitlab-ci.yml/raw?ref=main"),
            root,
        )
        .await;
    assert_eq!(at_main.status(), 200);
    assert_eq!(at_main.text().await.unwrap(), "test:\n  script: echo v2\n");
    let at_tag = app
        .get(
            &format!("/projects/{id}/repository/files/.gitlab-ci.yml/raw?ref=v1.0"),
            root,
        )
        .await;
    assert_eq!(at_tag.text().await.unwrap(), "test:\n  script: echo v1\n");
    // Default ref is the default branch.
    let default = app
        .get(
            &format!("/projects/{id}/repository/files/.gitlab-ci.yml/raw"),
            root,
        )
        .await;
    assert_eq!(default.text().await.unwrap(), "test:\n  script: echo v2\n");
    assert_json(
        app.get(
            &format!("/projects/{id}/repository/files/missing.txt/raw?ref=main"),
            root,
        )
        .await,
        404,
        json!({"message": "404 File Not Found"}),
    )
    .await;
    assert_json(
        app.get(
            &format!("/projects/{id}/repository/files/x/raw?ref=nope"),
            root,
        )
        .await,
        404,
        json!({"message": "404 Commit Not Found"}),
    )
    .await;
    assert_json(
        app.get(
            &format!("/projects/{id}/repository/files/..%2F..%2Fetc%2Fpasswd/raw?ref=main"),
            root,
        )
        .await,
        400,
        json!({"error": "file_path should be a valid file path"}),
    )
    .await;

    // Branches, tags and commits.
    let branches: Vec<Value> = app
        .get(&format!("/projects/{id}/repository/branches"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(branches.len(), 1);
    assert_eq!(branches[0]["name"], "main");
    assert_eq!(branches[0]["default"], true);
    assert_eq!(
        branches[0]["protected"], true,
        "the default branch is protected when first pushed"
    );
    assert_eq!(branches[0]["commit"]["title"], "Second");
    let tags: Vec<Value> = app
        .get(&format!("/projects/{id}/repository/tags"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags[0]["name"], "v1.0");
    assert_eq!(tags[0]["commit"]["title"], "Add CI config");
    let sha = branches[0]["commit"]["id"].as_str().unwrap();
    let commit: Value = app
        .get(&format!("/projects/{id}/repository/commits/{sha}"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(commit["id"], sha);
    let by_name: Value = app
        .get(&format!("/projects/{id}/repository/commits/main"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_name["id"], sha);
    let project: Value = app
        .get(&format!("/projects/{id}"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(project["empty_repo"], false);

    // The push created a pipeline for the branch and one for the tag (source `push`).
    let mut pipelines = Vec::new();
    for _ in 0..100 {
        pipelines = app
            .get(&format!("/projects/{id}/pipelines"), root)
            .await
            .json::<Vec<Value>>()
            .await
            .unwrap();
        if pipelines.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut refs: Vec<(&str, &str)> = pipelines
        .iter()
        .map(|p| (p["ref"].as_str().unwrap(), p["source"].as_str().unwrap()))
        .collect();
    refs.sort();
    assert_eq!(refs, vec![("main", "push"), ("v1.0", "push")]);
}

async fn roles_and_protected_branches_govern_git(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let project = app.create_project(&app.root_token, "guarded").await;
    let id = project["id"].as_i64().unwrap();
    let (guest_id, guest) = app.create_user("guest").await;
    let (reporter_id, reporter) = app.create_user("reporter").await;
    let (dev_id, dev) = app.create_user("developer").await;
    let (_, outsider) = app.create_user("outsider").await;
    app.add_member(id, guest_id, 10).await;
    app.add_member(id, reporter_id, 20).await;
    app.add_member(id, dev_id, 30).await;

    let work = local_repo(tmp.path(), "job:\n  script: true\n");
    git_ok(
        &work,
        tmp.path(),
        &[
            "push",
            "-q",
            &remote(&app, "root", &app.root_token, "root/guarded"),
            "main",
        ],
    );

    // Anonymous and Guest cannot clone a private project; an outsider sees nothing.
    let host = app.url.trim_start_matches("http://");
    let anon = git(
        tmp.path(),
        tmp.path(),
        &[
            "clone",
            "-q",
            &format!("http://{host}/root/guarded.git"),
            "anon",
        ],
    );
    assert!(!anon.status.success());
    let out = git(
        tmp.path(),
        tmp.path(),
        &[
            "clone",
            "-q",
            &remote(&app, "guest", &guest, "root/guarded"),
            "g",
        ],
    );
    assert!(!out.status.success(), "a Guest must not clone");
    let out = git(
        tmp.path(),
        tmp.path(),
        &[
            "clone",
            "-q",
            &remote(&app, "outsider", &outsider, "root/guarded"),
            "o",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not be found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A Reporter can clone but not push.
    git_ok(
        tmp.path(),
        tmp.path(),
        &[
            "clone",
            "-q",
            &remote(&app, "reporter", &reporter, "root/guarded"),
            "r",
        ],
    );
    let r = tmp.path().join("r");
    git_ok(&r, tmp.path(), &["checkout", "-q", "-b", "reporter-branch"]);
    std::fs::write(r.join("x.txt"), "x").unwrap();
    git_ok(&r, tmp.path(), &["add", "."]);
    git_ok(&r, tmp.path(), &["commit", "-q", "-m", "x"]);
    let out = git(&r, tmp.path(), &["push", "origin", "reporter-branch"]);
    assert!(!out.status.success(), "a Reporter must not push");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("You are not allowed to push code to this project."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A Developer can push a new branch but not to the protected default branch.
    git_ok(
        tmp.path(),
        tmp.path(),
        &[
            "clone",
            "-q",
            &remote(&app, "developer", &dev, "root/guarded"),
            "d",
        ],
    );
    let d = tmp.path().join("d");
    std::fs::write(d.join("y.txt"), "y").unwrap();
    git_ok(&d, tmp.path(), &["add", "."]);
    git_ok(&d, tmp.path(), &["commit", "-q", "-m", "y"]);
    let out = git(&d, tmp.path(), &["push", "origin", "main"]);
    assert!(
        !out.status.success(),
        "a Developer must not push to protected main"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("You are not allowed to push code to protected branches on this project."),
        "{stderr}"
    );
    git_ok(&d, tmp.path(), &["push", "-q", "origin", "main:feature/y"]);

    // Unprotecting main lets the Developer push; protecting it again for Developers works too.
    let root = Some(app.root_token.as_str());
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("/projects/{id}/protected_branches/main"),
            root,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    git_ok(&d, tmp.path(), &["push", "-q", "origin", "main"]);
    let res = app
        .post(
            &format!("/projects/{id}/protected_branches"),
            root,
            json!({"name": "release/*", "push_access_level": 30}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let rule: Value = res.json().await.unwrap();
    assert_eq!(rule["push_access_levels"][0]["access_level"], 30);
    assert_json(
        app.post(
            &format!("/projects/{id}/protected_branches"),
            root,
            json!({"name": "release/*"}),
        )
        .await,
        409,
        json!({"message": "Protected branch 'release/*' already exists"}),
    )
    .await;
    git_ok(
        &d,
        tmp.path(),
        &["push", "-q", "origin", "main:release/1.0"],
    );
}
