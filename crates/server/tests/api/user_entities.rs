//! What others see of a user: beside a job (and to anyone reading another user's profile) a
//! user is GitLab's `Entities::User` — name, username, public profile — never the account's
//! email or admin flag; a webhook receiver gets GitLab's `[REDACTED]` for the email.

use serde_json::{Value, json};

use crate::both_backends;
use crate::lifecycle::{project_with, run_pipeline};
use crate::running::{register_runner, request};
use crate::support::TestApp;

both_backends!(
    jobs_show_their_user_without_email_or_admin_flag,
    webhooks_redact_the_users_email,
);

fn assert_no_account_details(user: &Value, context: &str) {
    assert_eq!(user["username"], "root", "{context}: {user}");
    for key in ["email", "is_admin", "can_create_project", "identities"] {
        assert!(user.get(key).is_none(), "{context} shows {key}: {user}");
    }
}

/// A Reporter reading a job of an admin's pipeline — by the API, the project's job list, the
/// pipeline's job list or the job's own token — learns the admin's name, not their email
/// address or that they are an admin. Another user's profile is the same entity.
async fn jobs_show_their_user_without_email_or_admin_flag(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "shown", "build:\n  script: [echo]\n", tmp.path()).await;
    let (rita_id, rita) = app.create_user("rita").await;
    app.add_member(id, rita_id, 20).await;
    let pipeline = run_pipeline(&app, id).await;
    let runner = register_runner(&app).await;
    let job = request(&app, &runner).await.expect("a job");

    let read = |path: String| {
        let (app, rita) = (&app, rita.clone());
        async move {
            let res = app.get(&path, Some(&rita)).await;
            assert_eq!(res.status(), 200, "{path}");
            res.json::<Value>().await.unwrap()
        }
    };
    let one = read(format!("/projects/{id}/jobs/{}", job["id"])).await;
    assert_no_account_details(&one["user"], "GET job");
    assert!(one["user"]["created_at"].is_string(), "{one}");
    let list = read(format!("/projects/{id}/jobs")).await;
    assert_no_account_details(&list[0]["user"], "job list");
    let list = read(format!("/projects/{id}/pipelines/{}/jobs", pipeline["id"])).await;
    assert_no_account_details(&list[0]["user"], "pipeline jobs");
    let mine = app
        .client
        .get(app.api("/job"))
        .header("JOB-TOKEN", job["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_no_account_details(&mine["user"], "GET /job");
    // An admin reading it sees the same entity, as on GitLab.
    let as_root: Value = app
        .root_json(&format!("/projects/{id}/jobs/{}", job["id"]))
        .await;
    assert_no_account_details(&as_root["user"], "GET job as admin");

    let profile = read("/users/1".to_string()).await;
    assert_no_account_details(&profile, "another user's profile");
    let own = read(format!("/users/{rita_id}")).await;
    assert_eq!(
        own["email"], "rita@example.com",
        "one's own profile is full"
    );
}

/// A Maintainer's webhook gets `[REDACTED]` where the user's email would be, in user objects and
/// in a push's `user_email`.
async fn webhooks_redact_the_users_email(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "hooked", "build:\n  script: [echo]\n", tmp.path()).await;
    let res = app
        .request(
            reqwest::Method::PUT,
            "/application/settings",
            Some(&app.root_token),
            Some(json!({"allow_local_requests_from_web_hooks_and_services": true})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post(
            &format!("/projects/{id}/hooks"),
            Some(&app.root_token),
            json!({"url": "http://127.0.0.1:9/hook", "push_events": true, "pipeline_events": true}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let hook = res.json::<Value>().await.unwrap()["id"].clone();
    run_pipeline(&app, id).await;
    for trigger in ["push_events", "pipeline_events"] {
        let res = app
            .post(
                &format!("/projects/{id}/hooks/{hook}/test/{trigger}"),
                Some(&app.root_token),
                json!({}),
            )
            .await;
        assert_eq!(res.status(), 201, "{trigger}");
    }
    let events: Vec<Value> = app
        .root_json(&format!("/projects/{id}/hooks/{hook}/events"))
        .await;
    let sent = |kind: &str| {
        events
            .iter()
            .find(|e| e["request_data"]["object_kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} delivery in {events:#?}"))["request_data"]
            .clone()
    };
    let push = sent("push");
    assert_eq!(push["user_username"], "root");
    assert_eq!(push["user_email"], "[REDACTED]");
    let pipeline = sent("pipeline");
    assert_eq!(pipeline["user"]["username"], "root");
    assert_eq!(pipeline["user"]["email"], "[REDACTED]");
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("admin@example.com"))
    );
}
