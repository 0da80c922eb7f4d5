//! Pipeline trigger tokens: GitLab's permission and visibility rules, and storage that does
//! not hand tokens out.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::python_gitlab::run_script_as;
use crate::support::{TestApp, assert_json};

both_backends!(
    trigger_tokens_follow_gitlabs_rules,
    trigger_tokens_through_python_gitlab
);

async fn trigger_tokens_follow_gitlabs_rules(app: TestApp) {
    let (alice_id, alice) = app.create_user("alice").await;
    let (bob_id, bob) = app.create_user("bob").await;
    let (dev_id, dev) = app.create_user("dev").await;
    let (_, outsider) = app.create_user("outsider").await;
    let project = app.create_project(&app.root_token, "triggered").await;
    let id = project["id"].as_i64().unwrap();
    app.add_member(id, alice_id, 40).await;
    app.add_member(id, bob_id, 40).await;
    app.add_member(id, dev_id, 30).await;
    let path = format!("/projects/{id}/triggers");

    let res = app
        .post(&path, Some(&alice), json!({"description": "my trigger"}))
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("glptt-") && token.len() == 46, "{token}");
    assert!(
        token[6..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(created["description"], "my trigger");
    assert_eq!(created["last_used"], Value::Null);
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(created["owner"]["username"], "alice");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let trigger_id = created["id"].as_i64().unwrap();

    // The owner and admins see the full token; another Maintainer sees 4 characters.
    let mine: Vec<Value> = app.get(&path, Some(&alice)).await.json().await.unwrap();
    assert_eq!(mine[0]["token"], token);
    let theirs: Vec<Value> = app.get(&path, Some(&bob)).await.json().await.unwrap();
    assert_eq!(theirs[0]["token"], token[6..10]);
    let one: Value = app
        .get(&format!("{path}/{trigger_id}"), Some(&bob))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["token"], token[6..10]);
    let admin: Value = app
        .get(&format!("{path}/{trigger_id}"), Some(&app.root_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(admin["token"], token);

    // Developers may not see or create tokens; outsiders do not see the project.
    assert_json(
        app.get(&path, Some(&dev)).await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;
    assert_json(
        app.post(&path, Some(&dev), json!({"description": "x"}))
            .await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;
    assert_json(
        app.get(&path, Some(&outsider)).await,
        404,
        json!({"message": "404 Project Not Found"}),
    )
    .await;
    // Anonymous callers are asked to authenticate before anything is looked up (GitLab's
    // `before { authenticate! }`), so the answer says nothing about the project either.
    assert_json(
        app.get(&path, None).await,
        401,
        json!({"message": "401 Unauthorized"}),
    )
    .await;

    // Only the owner may edit.
    let forbidden_update = json!({"message": "403 Forbidden - The current user is not authorized to update the pipeline trigger token"});
    assert_json(
        app.request(
            Method::PUT,
            &format!("{path}/{trigger_id}"),
            Some(&bob),
            Some(json!({"description": "mine now"})),
        )
        .await,
        403,
        forbidden_update.clone(),
    )
    .await;
    assert_json(
        app.request(
            Method::PUT,
            &format!("{path}/{trigger_id}"),
            Some(&dev),
            Some(json!({"description": "x"})),
        )
        .await,
        403,
        forbidden_update,
    )
    .await;
    let res = app
        .request(
            Method::PUT,
            &format!("{path}/{trigger_id}"),
            Some(&alice),
            Some(json!({"description": "renamed"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let renamed: Value = res.json().await.unwrap();
    assert_eq!(renamed["description"], "renamed");
    assert_eq!(renamed["token"], token);

    // Parameter errors.
    assert_json(
        app.post(&path, Some(&alice), json!({})).await,
        400,
        json!({"error": "description is missing"}),
    )
    .await;
    for bad in ["abc", "01/01/2050", "25/26/27", "2308"] {
        assert_json(
            app.post(
                &path,
                Some(&alice),
                json!({"description": "x", "expires_at": bad}),
            )
            .await,
            400,
            json!({"error": "expires_at is invalid"}),
        )
        .await;
    }
    let res = app
        .post(
            &path,
            Some(&alice),
            json!({"description": "x", "expires_at": "2999-01-01"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("400 Bad request - {\"expires_at\":[\"must be before "),
        "{body}"
    );
    let in_a_month =
        pipewright_core::Timestamp(pipewright_core::Timestamp::now().millis() + 30 * 86_400_000)
            .to_date_string();
    let res = app
        .post(
            &path,
            Some(&alice),
            json!({"description": "expiring", "expires_at": in_a_month}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let expiring: Value = res.json().await.unwrap();
    assert_eq!(
        expiring["expires_at"],
        format!("{in_a_month}T00:00:00.000Z")
    );

    assert_json(
        app.get(&format!("{path}/999999"), Some(&alice)).await,
        404,
        json!({"message": "404 Not found"}),
    )
    .await;

    // The database holds neither the token nor anything that opens without the server key.
    let stored = app.store.trigger(id, trigger_id).await.unwrap().unwrap();
    assert!(!stored.token_sealed.contains(&token[6..]));
    assert_eq!(stored.short_token, token[6..10]);
    if let Some(db) = app.sqlite_file() {
        let bytes = std::fs::read(&db).unwrap();
        let wal = std::fs::read(format!("{}-wal", db.display())).unwrap_or_default();
        for haystack in [&bytes, &wal] {
            assert!(
                !haystack.windows(40).any(|w| w == &token.as_bytes()[6..]),
                "token found in the database file"
            );
        }
    }

    // Any Maintainer may revoke; revocation is immediate.
    let res = app
        .request(
            Method::DELETE,
            &format!("{path}/{trigger_id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_json(
        app.get(&format!("{path}/{trigger_id}"), Some(&alice)).await,
        404,
        json!({"message": "404 Not found"}),
    )
    .await;
    let left: Vec<Value> = app.get(&path, Some(&alice)).await.json().await.unwrap();
    assert_eq!(left.len(), 1);
}

async fn trigger_tokens_through_python_gitlab(app: TestApp) {
    let (m1_id, m1) = app.create_user("maintainer1").await;
    let (m2_id, m2) = app.create_user("maintainer2").await;
    let (dev_id, dev) = app.create_user("developer1").await;
    let project = app.create_project(&app.root_token, "py-triggers").await;
    let id = project["id"].as_i64().unwrap();
    app.add_member(id, m1_id, 40).await;
    app.add_member(id, m2_id, 40).await;
    app.add_member(id, dev_id, 30).await;
    run_script_as(
        &app,
        "triggers.py",
        &[
            ("PROJECT_ID", id.to_string()),
            ("MAINTAINER1", m1),
            ("MAINTAINER2", m2),
            ("DEVELOPER", dev),
        ],
    )
    .await;
}
