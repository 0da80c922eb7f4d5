//! Authorization fixes the matrix (`matrix/`) found, each replayed as the caller who got the
//! wrong answer.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git, git_ok, local_repo, remote};
use crate::support::{TestApp, assert_json};

both_backends!(
    a_guest_of_a_public_project_reads_what_any_visitor_reads,
    a_guest_of_a_private_project_reads_no_protected_branch_rule,
    a_guest_of_a_private_project_is_refused_code_not_told_it_is_missing,
    strangers_do_not_list_the_members_of_a_public_project,
    the_jobs_api_is_for_signed_in_callers,
    anonymous_callers_authenticate_before_member_only_actions,
);

/// A project of root's with `visibility`, a `main` branch, and `guest` as its Guest; returns
/// (project id, guest token).
async fn project_with_guest(app: &TestApp, name: &str, visibility: &str) -> (i64, String) {
    let root = app.root_token.clone();
    let res = app
        .post(
            "/projects",
            Some(&root),
            json!({"name": name, "visibility": visibility}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let work = local_repo(tmp.path(), "job:\n  script: echo\n");
    let url = remote(app, "root", &root, &format!("root/{name}"));
    git_ok(
        &work,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "main"],
    );
    let (guest_id, guest) = app.create_user(&format!("{name}-guest")).await;
    app.add_member(id, guest_id, 10).await;
    (id, guest)
}

/// A Guest used to get 403 where a stranger got 200: the role table asked Guests for Reporter
/// even where no role is needed at all.
async fn a_guest_of_a_public_project_reads_what_any_visitor_reads(app: TestApp) {
    let (id, guest) = project_with_guest(&app, "open", "public").await;
    for path in [
        format!("/projects/{id}/repository/branches"),
        format!("/projects/{id}/repository/files/.gitlab-ci.yml/raw?ref=main"),
        format!("/projects/{id}/pipelines"),
    ] {
        assert_eq!(
            app.get(&path, None).await.status(),
            200,
            "{path} to a visitor"
        );
        assert_eq!(
            app.get(&path, Some(&guest)).await.status(),
            200,
            "{path} to a Guest"
        );
    }
    // And git: a Guest clones a public project like anyone.
    let tmp = tempfile::tempdir().unwrap();
    let url = remote(&app, "open-guest", &guest, "root/open");
    git_ok(tmp.path(), tmp.path(), &["ls-remote", &url]);
}

/// The single protected-branch rule needed only visibility while the list needed Reporter.
async fn a_guest_of_a_private_project_reads_no_protected_branch_rule(app: TestApp) {
    let (id, guest) = project_with_guest(&app, "closed", "private").await;
    let list = format!("/projects/{id}/protected_branches");
    assert_eq!(app.get(&list, Some(&guest)).await.status(), 403);
    assert_json(
        app.get(&format!("{list}/main"), Some(&guest)).await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;
    assert_eq!(
        app.get(&format!("{list}/main"), Some(&app.root_token))
            .await
            .status(),
        200
    );
}

/// Git answered a Guest of a private project as if it did not exist; GitLab tells a user who
/// can see the project that they may not download its code (git_http_controller.rb).
async fn a_guest_of_a_private_project_is_refused_code_not_told_it_is_missing(app: TestApp) {
    let (_, guest) = project_with_guest(&app, "closed-code", "private").await;
    let host = app.url.trim_start_matches("http://");
    let res = app
        .client
        .get(format!(
            "http://{host}/root/closed-code.git/info/refs?service=git-upload-pack"
        ))
        .basic_auth("closed-code-guest", Some(&guest))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.text().await.unwrap(),
        "You are not allowed to download code from this project.\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    let url = remote(&app, "closed-code-guest", &guest, "root/closed-code");
    let out = git(tmp.path(), tmp.path(), &["ls-remote", &url]);
    assert!(!out.status.success());
}

/// GitLab's members API authenticates first (lib/api/members.rb); a visitor could list who
/// works on a public project.
async fn strangers_do_not_list_the_members_of_a_public_project(app: TestApp) {
    let (id, guest) = project_with_guest(&app, "people", "public").await;
    for path in [
        format!("/projects/{id}/members"),
        format!("/projects/{id}/members/all"),
        format!("/projects/{id}/members/1"),
    ] {
        assert_json(
            app.get(&path, None).await,
            401,
            json!({"message": "401 Unauthorized"}),
        )
        .await;
    }
    let (_, stranger) = app.create_user("people-stranger").await;
    let members: Value = app
        .get(&format!("/projects/{id}/members"), Some(&stranger))
        .await
        .json()
        .await
        .unwrap();
    assert!(members.as_array().unwrap().len() >= 2, "{members}");
    let _ = guest;
}

/// GitLab's jobs API authenticates first (lib/api/ci/jobs.rb), even on public projects.
async fn the_jobs_api_is_for_signed_in_callers(app: TestApp) {
    let (id, guest) = project_with_guest(&app, "jobs-open", "public").await;
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let jobs: Value = app
        .get(&format!("/projects/{id}/jobs"), Some(&guest))
        .await
        .json()
        .await
        .unwrap();
    let job = jobs[0]["id"].as_i64().unwrap();
    for path in [
        format!("/projects/{id}/jobs"),
        format!("/projects/{id}/jobs/{job}"),
        format!("/projects/{id}/jobs/{job}/trace"),
    ] {
        assert_json(
            app.get(&path, None).await,
            401,
            json!({"message": "401 Unauthorized"}),
        )
        .await;
        assert_eq!(app.get(&path, Some(&guest)).await.status(), 200, "{path}");
    }
    // The pipelines API stays readable, as in GitLab (`authenticate_non_get!`).
    assert_eq!(
        app.get(&format!("/projects/{id}/pipelines"), None)
            .await
            .status(),
        200
    );
}

/// What needs a role asks a visitor to sign in before anything is looked up: a private
/// project, a missing one and a public one answer alike.
async fn anonymous_callers_authenticate_before_member_only_actions(app: TestApp) {
    let (private, _) = project_with_guest(&app, "quiet", "private").await;
    let (public, _) = project_with_guest(&app, "loud", "public").await;
    for id in [private, public, 999_999] {
        for (method, path) in [
            (Method::GET, format!("/projects/{id}/hooks")),
            (Method::GET, format!("/projects/{id}/variables")),
            (Method::POST, format!("/projects/{id}/pipeline")),
            (Method::DELETE, format!("/projects/{id}")),
        ] {
            assert_json(
                app.request(method.clone(), &path, None, Some(json!({"ref": "main"})))
                    .await,
                401,
                json!({"message": "401 Unauthorized"}),
            )
            .await;
        }
    }
}
