//! `Idempotency-Key` on the endpoints that create pipelines (issue 14 §4): a client that
//! retries a trigger after a timeout gets the first pipeline back instead of a second one.

use reqwest::Response;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::TestApp;
use crate::triggering::triggerable_project;

both_backends!(
    a_retried_trigger_answers_the_first_pipeline_again,
    the_same_key_with_other_parameters_is_refused,
    eight_concurrent_triggers_with_one_key_create_one_pipeline,
    a_trigger_that_created_nothing_frees_its_key,
    the_api_endpoint_honours_the_key_and_checks_it,
);

async fn trigger(app: &TestApp, path: &str, key: Option<&str>, body: Value) -> Response {
    let mut req = app.client.post(app.api(path)).json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.unwrap()
}

/// How many pipelines a project has (up to 100).
pub async fn pipeline_count(app: &TestApp, project: i64) -> usize {
    let list: Vec<Value> = app
        .root_json(&format!("/projects/{project}/pipelines?per_page=100"))
        .await;
    list.len()
}

fn replayed(res: &Response) -> bool {
    res.headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn a_retried_trigger_answers_the_first_pipeline_again(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "retry", tmp.path()).await;
    let path = format!("/projects/{id}/trigger/pipeline");
    let body = json!({"token": token, "ref": "main", "variables": {"B": "2", "A": "1"}});
    let first = trigger(&app, &path, Some("deploy-42"), body.clone()).await;
    assert_eq!(first.status(), 201);
    assert!(!replayed(&first));
    let first: Value = first.json().await.unwrap();
    // Same key, token and parameters (variables in another order): the same answer, nothing new.
    let again = json!({"token": token, "ref": "main", "variables": {"A": "1", "B": "2"}});
    let second = trigger(&app, &path, Some("deploy-42"), again).await;
    assert_eq!(second.status(), 201);
    assert!(replayed(&second));
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    assert_eq!(pipeline_count(&app, id).await, 1);
    // Another server on the same database agrees (keys live in the database).
    let replica = app.start_replica().await;
    let third = trigger(&replica, &path, Some("deploy-42"), body.clone()).await;
    assert_eq!(third.status(), 201);
    assert!(replayed(&third));
    assert_eq!(third.json::<Value>().await.unwrap(), first);
    // The webhook form is the same endpoint: its own key creates once too.
    let hook = format!("/projects/{id}/ref/main/trigger/pipeline?token={token}");
    let hooked = trigger(&app, &hook, Some("hook-1"), json!({})).await;
    assert_eq!(hooked.status(), 201);
    let hooked: Value = hooked.json().await.unwrap();
    let rehooked = trigger(&app, &hook, Some("hook-1"), json!({})).await;
    assert!(replayed(&rehooked));
    assert_eq!(rehooked.json::<Value>().await.unwrap()["id"], hooked["id"]);
    // Without a key, every request creates.
    trigger(&app, &path, None, body.clone()).await;
    trigger(&app, &path, None, body).await;
    assert_eq!(pipeline_count(&app, id).await, 4);
}

async fn the_same_key_with_other_parameters_is_refused(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "mismatch", tmp.path()).await;
    let path = format!("/projects/{id}/trigger/pipeline");
    let first = trigger(
        &app,
        &path,
        Some("k"),
        json!({"token": token, "ref": "main"}),
    )
    .await;
    assert_eq!(first.status(), 201);
    for other in [
        json!({"token": token, "ref": "exists"}),
        json!({"token": token, "ref": "main", "variables": {"X": "1"}}),
        json!({"token": token, "ref": "main", "inputs": {"env": "prod"}}),
    ] {
        let res = trigger(&app, &path, Some("k"), other).await;
        assert_eq!(res.status(), 422);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"message": "Idempotency-Key was already used with different parameters"})
        );
    }
    // A key belongs to its credential: another trigger token's "k" is another key.
    let other_token: Value = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "other"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let other_token = other_token["token"].as_str().unwrap();
    let res = trigger(
        &app,
        &path,
        Some("k"),
        json!({"token": other_token, "ref": "main"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert!(!replayed(&res));
    // A wrong token is still a 404, whatever its key.
    let res = trigger(
        &app,
        &path,
        Some("k"),
        json!({"token": "nope", "ref": "main"}),
    )
    .await;
    assert_eq!(res.status(), 404);
    assert_eq!(pipeline_count(&app, id).await, 2);
}

async fn eight_concurrent_triggers_with_one_key_create_one_pipeline(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "race", tmp.path()).await;
    let url = app.api(&format!("/projects/{id}/trigger/pipeline"));
    let requests = (0..8).map(|_| {
        let req = app
            .client
            .post(&url)
            .header("Idempotency-Key", "same-for-all")
            .form(&[("token", token.as_str()), ("ref", "main")]);
        tokio::spawn(async move {
            let res = req.send().await.unwrap();
            let replay = replayed(&res);
            (
                res.status().as_u16(),
                replay,
                res.json::<Value>().await.unwrap(),
            )
        })
    });
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await.unwrap());
    }
    assert!(
        answers.iter().all(|(status, _, _)| *status == 201),
        "{answers:?}"
    );
    assert_eq!(answers.iter().filter(|(_, replay, _)| !replay).count(), 1);
    let ids: std::collections::BTreeSet<_> =
        answers.iter().map(|(_, _, b)| b["id"].as_i64()).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(pipeline_count(&app, id).await, 1);
}

async fn a_trigger_that_created_nothing_frees_its_key(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "freed", tmp.path()).await;
    let path = format!("/projects/{id}/trigger/pipeline");
    // 400, nothing created: the key is not kept, the retry runs the chain again.
    for _ in 0..2 {
        let res = trigger(
            &app,
            &path,
            Some("r"),
            json!({"token": token, "ref": "nope"}),
        )
        .await;
        assert_eq!(res.status(), 400);
        assert!(!replayed(&res));
    }
    // A broken config saves a failed pipeline (422): that answer is kept and replayed.
    let broken = json!({"token": token, "ref": "broken"});
    let first = trigger(&app, &path, Some("b"), broken.clone()).await;
    assert_eq!(first.status(), 422);
    let first: Value = first.json().await.unwrap();
    let again = trigger(&app, &path, Some("b"), broken).await;
    assert_eq!(again.status(), 422);
    assert!(replayed(&again));
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(pipeline_count(&app, id).await, 1);
}

async fn the_api_endpoint_honours_the_key_and_checks_it(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, _, _) = triggerable_project(&app, "api", tmp.path()).await;
    let post = |key: &str, body: Value| {
        app.client
            .post(app.api(&format!("/projects/{id}/pipeline")))
            .header("PRIVATE-TOKEN", &app.root_token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let vars =
        json!([{"key": "A", "value": "1"}, {"key": "B", "value": "2", "variable_type": "file"}]);
    let first = post("api-1", json!({"ref": "main", "variables": vars}))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let swapped =
        json!([{"key": "B", "value": "2", "variable_type": "file"}, {"key": "A", "value": "1"}]);
    let second = post("api-1", json!({"ref": "main", "variables": swapped}))
        .await
        .unwrap();
    assert_eq!(second.status(), 201);
    assert!(replayed(&second));
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    // A variable's type is a parameter too.
    let retyped = json!([{"key": "A", "value": "1"}, {"key": "B", "value": "2"}]);
    let res = post("api-1", json!({"ref": "main", "variables": retyped}))
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(pipeline_count(&app, id).await, 1);
    // Keys are 1 to 255 printable characters.
    for bad in [String::new(), "x".repeat(256), "tab\there".to_string()] {
        let res = post(&bad, json!({"ref": "main"})).await.unwrap();
        assert_eq!(res.status(), 400, "{bad:?}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"message": "400 Bad request - Idempotency-Key must be 1 to 255 printable characters"})
        );
    }
    let longest = post(&"x".repeat(255), json!({"ref": "main"}))
        .await
        .unwrap();
    assert_eq!(longest.status(), 201);
    assert_eq!(pipeline_count(&app, id).await, 2);
}
