//! Protected branches guard what runs on them, not only pushes: a protected runner takes only
//! jobs of protected refs, and a Developer who may not update a protected branch can neither
//! run its pipelines nor play, retry, cancel or keep anything of them — in the API (403) and
//! on the pages (no buttons; a forged form is a 404). Letting Developers merge opens it, as on
//! GitLab. A bridge played or retried by hand needs the right to update the downstream branch.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::running::{finish, request};
use crate::support::{TestApp, assert_json};
use crate::web::Browser;

both_backends!(
    protected_runners_take_only_jobs_of_protected_branches,
    developers_cannot_change_jobs_of_a_branch_they_may_not_update,
    bridges_start_by_hand_only_for_those_who_may_update_the_downstream_branch,
);

const CONFIG: &str =
    "build:\n  script: [echo build]\nrelease:\n  when: manual\n  script: [echo release]\n";

/// `root/<name>` with `CONFIG` on `main` (protected by its first push) and on `feature`.
async fn project_with_feature_branch(app: &TestApp, name: &str, tmp: &std::path::Path) -> i64 {
    let id = app.create_project(&app.root_token, name).await["id"]
        .as_i64()
        .unwrap();
    let work = local_repo(tmp, CONFIG);
    git_ok(&work, tmp, &["branch", "feature"]);
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(&work, tmp, &["push", "-q", "-o", "ci.skip", &url, "--all"]);
    let protected: Vec<Value> = app
        .root_json(&format!("/projects/{id}/protected_branches"))
        .await;
    assert_eq!(protected.len(), 1);
    assert_eq!(protected[0]["name"], "main");
    id
}

async fn run_pipeline_as(app: &TestApp, token: &str, project: i64, ref_name: &str) -> Value {
    let res = app
        .post(
            &format!("/projects/{project}/pipeline"),
            Some(token),
            json!({"ref": ref_name}),
        )
        .await;
    assert_eq!(res.status(), 201, "pipeline on {ref_name}");
    res.json().await.unwrap()
}

async fn runner_with(app: &TestApp, access_level: &str) -> String {
    let res = app
        .post(
            "/user/runners",
            Some(&app.root_token),
            json!({"runner_type": "instance_type", "access_level": access_level}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let runner: Value = res.json().await.unwrap();
    runner["token"].as_str().unwrap().to_string()
}

/// A runner registered `ref_protected` never gets a job of an unprotected branch, even the
/// oldest one waiting; an ordinary runner takes that one.
async fn protected_runners_take_only_jobs_of_protected_branches(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with_feature_branch(&app, "guarded", tmp.path()).await;
    run_pipeline_as(&app, &app.root_token, id, "feature").await;
    run_pipeline_as(&app, &app.root_token, id, "main").await;
    let protected = runner_with(&app, "ref_protected").await;

    let job = request(&app, &protected).await.expect("main's job");
    assert_eq!(job["git_info"]["ref"], "main");
    assert_eq!(finish(&app, &job, "success").await.status(), 200);
    assert!(
        request(&app, &protected).await.is_none(),
        "feature's job is not for a protected runner"
    );

    let shared = runner_with(&app, "not_protected").await;
    let job = request(&app, &shared).await.expect("feature's job");
    assert_eq!(job["git_info"]["ref"], "feature");
}

fn job_id(jobs: &[Value], name: &str) -> i64 {
    jobs.iter().find(|j| j["name"] == name).unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn jobs_of(app: &TestApp, project: i64, pipeline: &Value) -> Vec<Value> {
    app.root_json(&format!(
        "/projects/{project}/pipelines/{}/jobs",
        pipeline["id"]
    ))
    .await
}

/// `main` is protected (Maintainers push and merge). A Developer may not run its pipelines, nor
/// play its manual job, retry or cancel its jobs and pipeline, or keep its artifacts: GitLab's
/// `403 Forbidden` in the API, and neither buttons nor working forms on the pages. On
/// `feature` the same Developer may do all of it; once Developers may merge into `main`, there
/// too.
async fn developers_cannot_change_jobs_of_a_branch_they_may_not_update(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with_feature_branch(&app, "locked", tmp.path()).await;
    let (dave_id, dave) = app.create_user("dave").await;
    app.add_member(id, dave_id, 30).await;
    let runner = runner_with(&app, "not_protected").await;

    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&dave),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 400, "Developers may not run main's pipelines");
    let main = run_pipeline_as(&app, &app.root_token, id, "main").await;
    let jobs = jobs_of(&app, id, &main).await;
    let (build, release) = (job_id(&jobs, "build"), job_id(&jobs, "release"));
    let job = request(&app, &runner).await.expect("build");
    assert_eq!(finish(&app, &job, "failed").await.status(), 200);

    let forbidden = json!({"message": "403 Forbidden"});
    let post = |path: String| {
        let dave = dave.clone();
        let app = &app;
        async move { app.post(&path, Some(&dave), json!({})).await }
    };
    let jobs_path = format!("/projects/{id}/jobs");
    let pipeline_path = format!("/projects/{id}/pipelines/{}", main["id"]);
    for path in [
        format!("{jobs_path}/{release}/play"),
        format!("{jobs_path}/{release}/cancel"),
        format!("{jobs_path}/{build}/retry"),
        format!("{jobs_path}/{build}/artifacts/keep"),
        format!("{pipeline_path}/retry"),
        format!("{pipeline_path}/cancel"),
    ] {
        assert_json(post(path).await, 403, forbidden.clone()).await;
    }
    // Nothing moved.
    let jobs = jobs_of(&app, id, &main).await;
    assert_eq!(jobs.len(), 2, "no retry was made: {jobs:#?}");
    let status = |name: &str| jobs.iter().find(|j| j["name"] == name).unwrap()["status"].clone();
    assert_eq!(status("release"), "manual");
    assert_eq!(status("build"), "failed");

    // The pages offer none of it, and a forged form finds nothing.
    let mut browser = Browser::sign_in(&app, "dave", "a-long-password").await;
    let release_page = format!("/root/locked/-/jobs/{release}");
    let page = browser.get(&release_page).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Run job"), "{}", page.body);
    let csrf = page.csrf();
    for action in [
        format!("/root/locked/-/jobs/{release}/play"),
        format!("/root/locked/-/jobs/{build}/retry"),
        format!("/root/locked/-/pipelines/{}/retry", main["id"]),
    ] {
        let page = browser
            .post(&action, &[("authenticity_token", csrf.as_str())])
            .await;
        assert_eq!(page.status, 404, "{action}");
    }
    let page = browser
        .get(&format!("/root/locked/-/pipelines/{}", main["id"]))
        .await;
    assert!(!page.body.contains("/retry\""), "{}", page.body);
    let page = browser.get(&format!("/root/locked/-/jobs/{build}")).await;
    assert!(!page.body.contains("/retry\""), "{}", page.body);

    // On an unprotected branch the Developer does all of it.
    let feature = run_pipeline_as(&app, &dave, id, "feature").await;
    let feature_jobs = jobs_of(&app, id, &feature).await;
    let feature_release = job_id(&feature_jobs, "release");
    let page = browser
        .get(&format!("/root/locked/-/jobs/{feature_release}"))
        .await;
    assert!(page.body.contains("Run job"), "{}", page.body);
    let res = post(format!("{jobs_path}/{feature_release}/play")).await;
    assert_eq!(res.status(), 200);

    // Developers may merge into `main` now: that is enough to update it (GitLab's
    // `can_update_branch?` is push or merge).
    let res = app
        .request(
            Method::DELETE,
            &format!("/projects/{id}/protected_branches/main"),
            Some(&app.root_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .post(
            &format!("/projects/{id}/protected_branches"),
            Some(&app.root_token),
            json!({"name": "main", "push_access_level": 40, "merge_access_level": 30}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = post(format!("{jobs_path}/{release}/play")).await;
    assert_eq!(res.status(), 200);
    let res = post(format!("{jobs_path}/{build}/retry")).await;
    assert_eq!(res.status(), 201);
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&dave),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201, "a Developer who may merge runs main");
}

const BRIDGE: &str =
    "deploy:\n  when: manual\n  trigger:\n    project: root/target\n    branch: main\n";

/// A Developer of both projects may not play (or retry) a bridge of an unprotected branch when
/// its downstream pipeline would run on the other project's protected `main`: the downstream
/// pipeline would otherwise run there as the upstream pipeline's user. As a Maintainer of the
/// target they may.
async fn bridges_start_by_hand_only_for_those_who_may_update_the_downstream_branch(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let target_dir = tmp.path().join("target");
    std::fs::create_dir_all(&target_dir).unwrap();
    let target = app.create_project(&app.root_token, "target").await["id"]
        .as_i64()
        .unwrap();
    let work = local_repo(&target_dir, "b_job:\n  script: [echo b]\n");
    let url = remote(&app, "root", &app.root_token, "root/target");
    git_ok(
        &work,
        &target_dir,
        &["push", "-q", "-o", "ci.skip", &url, "main"],
    );
    let source_dir = tmp.path().join("source");
    std::fs::create_dir_all(&source_dir).unwrap();
    let source = app.create_project(&app.root_token, "source").await["id"]
        .as_i64()
        .unwrap();
    let work = local_repo(&source_dir, BRIDGE);
    git_ok(&work, &source_dir, &["branch", "feature"]);
    let url = remote(&app, "root", &app.root_token, "root/source");
    git_ok(
        &work,
        &source_dir,
        &["push", "-q", "-o", "ci.skip", &url, "--all"],
    );
    let (dave_id, dave) = app.create_user("dave").await;
    app.add_member(source, dave_id, 30).await;
    app.add_member(target, dave_id, 30).await;

    let pipeline = run_pipeline_as(&app, &app.root_token, source, "feature").await;
    let bridge = job_id(&jobs_of(&app, source, &pipeline).await, "deploy");
    let play = format!("/projects/{source}/jobs/{bridge}/play");
    assert_json(
        app.post(&play, Some(&dave), json!({})).await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;
    let mut browser = Browser::sign_in(&app, "dave", "a-long-password").await;
    let job_page = format!("/root/source/-/jobs/{bridge}");
    let page = browser.get(&job_page).await;
    assert!(!page.body.contains("Run job"), "{}", page.body);
    let csrf = page.csrf();
    let page = browser
        .post(
            &format!("{job_page}/play"),
            &[("authenticity_token", csrf.as_str())],
        )
        .await;
    assert_eq!(page.status, 404);
    let downstream: Vec<Value> = app
        .root_json(&format!("/projects/{target}/pipelines"))
        .await;
    assert!(downstream.is_empty(), "{downstream:#?}");

    let res = app
        .request(
            Method::PUT,
            &format!("/projects/{target}/members/{dave_id}"),
            Some(&app.root_token),
            Some(json!({"access_level": 40})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(browser.get(&job_page).await.body.contains("Run job"));
    assert_eq!(app.post(&play, Some(&dave), json!({})).await.status(), 200);
    let bridges = crate::running::wait_for(
        &app,
        &format!("/projects/{source}/pipelines/{}/bridges", pipeline["id"]),
        |b| b[0]["status"] == "success",
    )
    .await;
    assert_eq!(bridges[0]["downstream_pipeline"]["project_id"], target);
}
