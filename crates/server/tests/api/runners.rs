//! Runner management and the runner side's token checks.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{TestApp, assert_json};

both_backends!(runners_are_created_listed_edited_and_removed);

async fn runners_are_created_listed_edited_and_removed(app: TestApp) {
    let root = Some(app.root_token.as_str());
    let (maint_id, maint) = app.create_user("maint").await;
    let (dev_id, dev) = app.create_user("dev").await;
    let project = app.create_project(&app.root_token, "ci").await;
    let id = project["id"].as_i64().unwrap();
    app.add_member(id, maint_id, 40).await;
    app.add_member(id, dev_id, 30).await;

    // Instance runners are for admins.
    let res = app.post("/user/runners", root, json!({"runner_type": "instance_type", "description": "shared", "tag_list": ["docker", "linux"]})).await;
    assert_eq!(res.status(), 201);
    let shared: Value = res.json().await.unwrap();
    let shared_token = shared["token"].as_str().unwrap().to_string();
    assert!(shared_token.starts_with("glrt-") && shared_token.len() > 20);
    assert_eq!(shared["token_expires_at"], Value::Null);
    assert_json(
        app.post(
            "/user/runners",
            Some(&maint),
            json!({"runner_type": "instance_type"}),
        )
        .await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;

    // Project runners are for the project's Maintainers.
    let res = app
        .post(
            "/user/runners",
            Some(&maint),
            json!({"runner_type": "project_type", "project_id": id, "run_untagged": false}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let own: Value = res.json().await.unwrap();
    let own_id = own["id"].as_i64().unwrap();
    assert_json(
        app.post(
            "/user/runners",
            Some(&dev),
            json!({"runner_type": "project_type", "project_id": id}),
        )
        .await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;
    assert_json(
        app.post("/user/runners", Some(&maint), json!({})).await,
        400,
        json!({"error": "runner_type is missing"}),
    )
    .await;
    assert_json(
        app.post(
            "/user/runners",
            Some(&maint),
            json!({"runner_type": "nope"}),
        )
        .await,
        400,
        json!({"error": "runner_type does not have a valid value"}),
    )
    .await;
    assert_json(
        app.post(
            "/user/runners",
            Some(&maint),
            json!({"runner_type": "project_type"}),
        )
        .await,
        400,
        json!({"error": "project_id is missing"}),
    )
    .await;

    // Listings.
    let mine: Vec<Value> = app
        .get("/runners", Some(&maint))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        mine.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [own_id]
    );
    assert_eq!(mine[0]["runner_type"], "project_type");
    assert_eq!(mine[0]["status"], "never_contacted");
    let all: Vec<Value> = app.get("/runners/all", root).await.json().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(app.get("/runners/all", Some(&maint)).await.status(), 403);

    // Details and edits.
    let details: Value = app
        .get(&format!("/runners/{own_id}"), Some(&maint))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(details["run_untagged"], false);
    assert_eq!(details["projects"][0]["id"], id);
    let res = app
        .request(
            Method::PUT,
            &format!("/runners/{own_id}"),
            Some(&maint),
            Some(json!({"tag_list": "a,b", "paused": true})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let edited: Value = res.json().await.unwrap();
    assert_eq!(edited["tag_list"], json!(["a", "b"]));
    assert_eq!(edited["paused"], true);
    assert_eq!(edited["active"], false);
    assert_eq!(
        app.get(&format!("/runners/{}", shared["id"]), Some(&maint))
            .await
            .status(),
        403
    );
    assert_json(
        app.get("/runners/424242", root).await,
        404,
        json!({"message": "404 Runner Not Found"}),
    )
    .await;

    // The runner side: verify, then unregister by token.
    let res = app
        .post("/runners/verify", None, json!({"token": shared_token}))
        .await;
    assert_eq!(res.status(), 200);
    let verified: Value = res.json().await.unwrap();
    assert_eq!(verified["id"], shared["id"]);
    let contacted: Value = app
        .get(&format!("/runners/{}", shared["id"]), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(contacted["status"], "online");
    assert_json(
        app.post("/runners/verify", None, json!({"token": "glrt-nope"}))
            .await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;
    let res = app
        .request(
            Method::DELETE,
            "/runners",
            None,
            Some(json!({"token": shared_token})),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.post("/runners/verify", None, json!({"token": shared_token}))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.request(
            Method::DELETE,
            &format!("/runners/{own_id}"),
            Some(&maint),
            None
        )
        .await
        .status(),
        204
    );
    let all: Vec<Value> = app.get("/runners/all", root).await.json().await.unwrap();
    assert!(all.is_empty());
}
