//! Issue 14 §5: webhooks signed with the trigger's token (GitHub's `X-Hub-Signature-256`,
//! Gitea's and Forgejo's signature headers) run trigger pipelines without a token in the URL;
//! anything not signed right is the 404 of a wrong token.

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{TestApp, assert_json};
use crate::triggering::triggerable_project;

both_backends!(
    github_gitea_and_forgejo_signed_pushes_run_trigger_pipelines,
    unsigned_or_wrongly_signed_webhooks_are_not_found,
    a_signed_webhook_obeys_the_tokens_restrictions_and_limits,
    a_redelivered_webhook_answers_its_first_pipeline_again,
);

fn sign(key: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn deliver(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.api(path))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.unwrap()
}

async fn first_trigger(app: &TestApp, project: i64) -> i64 {
    let list: Vec<Value> = app
        .root_json(&format!("/projects/{project}/triggers"))
        .await;
    list[0]["id"].as_i64().unwrap()
}

async fn pipeline_count(app: &TestApp, project: i64) -> usize {
    let list: Vec<Value> = app
        .root_json(&format!("/projects/{project}/pipelines"))
        .await;
    list.len()
}

async fn github_gitea_and_forgejo_signed_pushes_run_trigger_pipelines(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, sha) = triggerable_project(&app, "hooked", tmp.path()).await;
    let trigger_id = first_trigger(&app, id).await;
    let path = format!("/projects/{id}/triggers/{trigger_id}/webhook");
    let body = r#"{"ref":"refs/heads/main","after":"0123","repository":{"full_name":"a/b"}}"#;
    let sig = sign(&token, body);
    for headers in [
        vec![
            ("X-Hub-Signature-256", format!("sha256={sig}")),
            ("X-GitHub-Event", "push".into()),
            ("X-GitHub-Delivery", "d-1".into()),
        ],
        vec![("X-Gitea-Signature", sig.clone())],
        vec![("X-Forgejo-Signature", sig.clone())],
    ] {
        let res = deliver(&app, &path, &headers, body).await;
        assert_eq!(res.status(), 201, "{headers:?}");
        let pipeline: Value = res.json().await.unwrap();
        assert_eq!(pipeline["source"], "trigger");
        assert_eq!(pipeline["ref"], "main");
        assert_eq!(pipeline["sha"], sha.as_str());
        // The raw body is TRIGGER_PAYLOAD, byte for byte.
        let pid = pipeline["id"].as_i64().unwrap();
        let vars: Vec<Value> = app
            .root_json(&format!("/projects/{id}/pipelines/{pid}/variables"))
            .await;
        let payload = vars.iter().find(|v| v["key"] == "TRIGGER_PAYLOAD").unwrap();
        assert_eq!(payload["value"], body);
        assert_eq!(payload["variable_type"], "file");
    }

    // The query's `ref` wins over the body's; tags are refs too.
    let tag_body = r#"{"ref":"refs/tags/v1.0"}"#;
    let headers = [("X-Gitea-Signature", sign(&token, tag_body))];
    let res = deliver(&app, &path, &headers, tag_body).await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert_eq!(pipeline["ref"], "v1.0");
    let res = deliver(&app, &format!("{path}?ref=skip"), &headers, tag_body).await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert_eq!(pipeline["ref"], "skip");

    // No ref anywhere: Grape's missing parameter.
    let bare = r#"{"zen":"Design for failure."}"#;
    assert_json(
        deliver(
            &app,
            &path,
            &[("X-Gitea-Signature", sign(&token, bare))],
            bare,
        )
        .await,
        400,
        json!({"error": "ref is missing"}),
    )
    .await;
}

async fn unsigned_or_wrongly_signed_webhooks_are_not_found(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "guarded", tmp.path()).await;
    let trigger_id = first_trigger(&app, id).await;
    let other: Value = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "other"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let other_token = other["token"].as_str().unwrap();
    let path = format!("/projects/{id}/triggers/{trigger_id}/webhook");
    let body = r#"{"ref":"refs/heads/main"}"#;
    let good = sign(&token, body);
    let before = pipeline_count(&app, id).await;
    let not_found = json!({"message": "404 Not Found"});

    let mut flipped = good.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (what, path, headers, body) in [
        ("no signature", path.clone(), vec![], body),
        (
            "one changed digit",
            path.clone(),
            vec![("X-Hub-Signature-256", format!("sha256={flipped}"))],
            body,
        ),
        (
            "GitHub's header without its prefix",
            path.clone(),
            vec![("X-Hub-Signature-256", good.clone())],
            body,
        ),
        (
            "signed with another trigger's token",
            path.clone(),
            vec![("X-Gitea-Signature", sign(other_token, body))],
            body,
        ),
        (
            "signed with the token's first 4 characters",
            path.clone(),
            vec![("X-Gitea-Signature", sign(&token[..10], body))],
            body,
        ),
        (
            "another body",
            path.clone(),
            vec![("X-Forgejo-Signature", good.clone())],
            r#"{"ref":"refs/heads/main","x":1}"#,
        ),
        (
            "not hex",
            path.clone(),
            vec![("X-Forgejo-Signature", "zz".into())],
            body,
        ),
        (
            "an unknown trigger",
            format!("/projects/{id}/triggers/999999/webhook"),
            vec![("X-Gitea-Signature", good.clone())],
            body,
        ),
        (
            "another project",
            format!("/projects/999999/triggers/{trigger_id}/webhook"),
            vec![("X-Gitea-Signature", good.clone())],
            body,
        ),
        (
            "the token in the URL instead",
            format!("{path}?token={token}"),
            vec![],
            body,
        ),
    ] {
        let res = deliver(&app, &path, &headers, body).await;
        assert_eq!(res.status(), 404, "{what}");
        assert_eq!(res.json::<Value>().await.unwrap(), not_found, "{what}");
    }
    assert_eq!(pipeline_count(&app, id).await, before, "nothing ran");
}

async fn a_signed_webhook_obeys_the_tokens_restrictions_and_limits(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "limited", tmp.path()).await;
    let trigger_id = first_trigger(&app, id).await;
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/projects/{id}/triggers/{trigger_id}"),
            Some(&app.root_token),
            Some(json!({"ref_patterns": ["v*"]})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let path = format!("/projects/{id}/triggers/{trigger_id}/webhook");
    let body = r#"{"ref":"refs/heads/main"}"#;
    assert_json(
        deliver(
            &app,
            &path,
            &[("X-Gitea-Signature", sign(&token, body))],
            body,
        )
        .await,
        400,
        json!({"message": {"base": ["Reference not allowed for this trigger token"]}}),
    )
    .await;

    // A body past TRIGGER_PAYLOAD's 1 MiB is refused before anything is checked.
    let big = format!(
        r#"{{"ref":"refs/tags/v1.0","pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let res = deliver(
        &app,
        &path,
        &[("X-Gitea-Signature", sign(&token, &big))],
        &big,
    )
    .await;
    assert_eq!(res.status(), 413);

    // A rotated token signs from then on; the old one no longer does, grace period or not.
    let rotated: Value = app
        .post(
            &format!("/projects/{id}/triggers/{trigger_id}/rotate"),
            Some(&app.root_token),
            json!({"grace_period_seconds": 600}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new = rotated["token"].as_str().unwrap();
    let tag = r#"{"ref":"refs/tags/v1.0"}"#;
    let res = deliver(
        &app,
        &path,
        &[("X-Gitea-Signature", sign(&token, tag))],
        tag,
    )
    .await;
    assert_eq!(res.status(), 404);
    let res = deliver(&app, &path, &[("X-Gitea-Signature", sign(new, tag))], tag).await;
    assert_eq!(res.status(), 201);
}

/// A forge redelivers a webhook with the same delivery id (after a timeout, or by hand): the
/// id is an idempotency key, so the redelivery answers the first pipeline again instead of
/// starting another; another delivery id is another pipeline.
async fn a_redelivered_webhook_answers_its_first_pipeline_again(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "redelivered", tmp.path()).await;
    let trigger_id = first_trigger(&app, id).await;
    let path = format!("/projects/{id}/triggers/{trigger_id}/webhook");
    let body = r#"{"ref":"refs/heads/main","after":"0123"}"#;
    let sig = sign(&token, body);
    for delivery_header in [
        "X-GitHub-Delivery",
        "X-Gitea-Delivery",
        "X-Forgejo-Delivery",
    ] {
        let headers = [
            ("X-Hub-Signature-256", format!("sha256={sig}")),
            (delivery_header, format!("{delivery_header}-72d3162e")),
        ];
        let first = deliver(&app, &path, &headers, body).await;
        assert_eq!(first.status(), 201);
        assert!(first.headers().get("idempotent-replayed").is_none());
        let first: Value = first.json().await.unwrap();
        let again = deliver(&app, &path, &headers, body).await;
        assert_eq!(again.status(), 201, "{delivery_header}");
        assert_eq!(
            again.headers().get("idempotent-replayed").unwrap(),
            "true",
            "{delivery_header}"
        );
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["id"], first["id"], "{delivery_header}");
    }
    assert_eq!(pipeline_count(&app, id).await, 3);
    // A new delivery id is a new pipeline.
    let headers = [
        ("X-Hub-Signature-256", format!("sha256={sig}")),
        ("X-GitHub-Delivery", "another".to_string()),
    ];
    assert_eq!(deliver(&app, &path, &headers, body).await.status(), 201);
    assert_eq!(pipeline_count(&app, id).await, 4);
}
