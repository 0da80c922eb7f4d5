//! Users and personal access tokens, as an admin and a regular user see them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{TestApp, assert_json};

both_backends!(
    admin_creates_a_user_who_authenticates_with_a_token,
    token_scopes_expiry_revocation_and_blocking,
    duplicate_and_invalid_users_are_rejected,
);

async fn admin_creates_a_user_who_authenticates_with_a_token(app: TestApp) {
    let res = app.get("/user", Some(&app.root_token)).await;
    assert_eq!(res.status(), 200);
    let root: Value = res.json().await.unwrap();
    assert_eq!(root["username"], "root");
    assert_eq!(root["is_admin"], true);

    let (alice_id, alice_token) = app.create_user("alice").await;
    let me: Value = app
        .get("/user", Some(&alice_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], alice_id);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["web_url"], format!("{}/alice", app.url));

    // Bearer and query-string forms work too.
    let res = app
        .client
        .get(app.api("/user"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(format!("{}?private_token={alice_token}", app.api("/user")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A regular user sees basic fields of others; admins see everything.
    let other: Value = app
        .get("/users/1", Some(&alice_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["username"], "root");
    assert!(other.get("email").is_none());
    let full: Value = app
        .get(&format!("/users/{alice_id}"), Some(&app.root_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(full["email"], "alice@example.com");

    // Non-admins may not create users.
    assert_json(
        app.post(
            "/users",
            Some(&alice_token),
            json!({"username": "x", "name": "x", "email": "x@x.io", "password": "12345678"}),
        )
        .await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;

    // Anonymous callers get 401.
    assert_json(
        app.get("/user", None).await,
        401,
        json!({"message": "401 Unauthorized"}),
    )
    .await;
    assert_json(
        app.get("/user", Some("glpat-not-a-real-token-xxxx")).await,
        401,
        json!({"message": "401 Unauthorized"}),
    )
    .await;
}

async fn token_scopes_expiry_revocation_and_blocking(app: TestApp) {
    let (bob_id, bob_token) = app.create_user("bob").await;
    let root = Some(app.root_token.as_str());

    // A read_api token may read but not write.
    let res = app
        .post(
            &format!("/users/{bob_id}/personal_access_tokens"),
            root,
            json!({"name": "ro", "scopes": ["read_api"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let ro: Value = res.json().await.unwrap();
    let ro_token = ro["token"].as_str().unwrap().to_string();
    assert!(ro_token.starts_with("glpat-") && ro_token.len() >= 26);
    assert_eq!(ro["scopes"], json!(["read_api"]));
    assert_eq!(app.get("/user", Some(&ro_token)).await.status(), 200);
    let res = app
        .post("/projects", Some(&ro_token), json!({"name": "nope"}))
        .await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    // A read_repository token cannot use the API at all.
    let res = app
        .post(
            &format!("/users/{bob_id}/personal_access_tokens"),
            root,
            json!({"name": "repo", "scopes": ["read_repository"]}),
        )
        .await;
    let repo_token: Value = res.json().await.unwrap();
    assert_eq!(
        app.get("/projects", Some(repo_token["token"].as_str().unwrap()))
            .await
            .status(),
        403
    );

    // Revoking: the token stops working at once.
    let tokens: Value = app
        .get("/personal_access_tokens", Some(&bob_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tokens.as_array().unwrap().len(), 3);
    let ro_id = ro["id"].as_i64().unwrap();
    let res = app
        .request(
            Method::DELETE,
            &format!("/personal_access_tokens/{ro_id}"),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_json(
        app.get("/user", Some(&ro_token)).await,
        401,
        json!({"error": "invalid_token", "error_description": "Token has been revoked."}),
    )
    .await;

    // Self inspection and self revocation.
    let me: Value = app
        .get("/personal_access_tokens/self", Some(&bob_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], bob_id);
    assert_eq!(me["active"], true);

    // Expiry: a token created with a past date is refused; a bad date is invalid.
    assert_json(
        app.post(
            &format!("/users/{bob_id}/personal_access_tokens"),
            root,
            json!({"name": "x", "scopes": ["api"], "expires_at": "not a date"}),
        )
        .await,
        400,
        json!({"error": "expires_at is invalid"}),
    )
    .await;
    assert_json(
        app.post(
            &format!("/users/{bob_id}/personal_access_tokens"),
            root,
            json!({"name": "x", "scopes": ["nope"]}),
        )
        .await,
        400,
        json!({"error": "scopes is invalid"}),
    )
    .await;
    assert_json(
        app.post(
            &format!("/users/{bob_id}/personal_access_tokens"),
            root,
            json!({"scopes": ["api"]}),
        )
        .await,
        400,
        json!({"error": "name is missing"}),
    )
    .await;

    // An expired token (expiry can only be in the future at creation, so age one in the store).
    let expired = "glpat-expired-token-for-bob-0001";
    app.store
        .create_personal_access_token(&pipewright_store::NewPersonalAccessToken {
            user_id: bob_id,
            name: "old".into(),
            token_digest: pipewright_server::secrets::token_digest(expired),
            scopes: vec!["api".into()],
            expires_at: Some(pipewright_core::Timestamp(
                pipewright_core::Timestamp::now().millis() - 1000,
            )),
        })
        .await
        .unwrap();
    assert_json(
        app.get("/user", Some(expired)).await,
        401,
        json!({"error": "invalid_token", "error_description": "Token has expired."}),
    )
    .await;

    // Blocking: the user's tokens stop working at once, with GitLab's 403 (lib/api/api_guard.rb);
    // unblocking restores them.
    let res = app
        .post(&format!("/users/{bob_id}/block"), root, json!({}))
        .await;
    assert_eq!(res.status(), 201);
    assert_json(
        app.get("/user", Some(&bob_token)).await,
        403,
        json!({"message": "403 Forbidden - Your account has been blocked."}),
    )
    .await;
    let blocked: Value = app
        .get(&format!("/users/{bob_id}"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(blocked["state"], "blocked");
    assert_eq!(
        app.post(&format!("/users/{bob_id}/unblock"), root, json!({}))
            .await
            .status(),
        201
    );
    assert_eq!(app.get("/user", Some(&bob_token)).await.status(), 200);

    // Revoke self, then the token is dead.
    let res = app
        .request(
            Method::DELETE,
            "/personal_access_tokens/self",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get("/user", Some(&bob_token)).await.status(), 401);

    // Deleting a user.
    let res = app
        .request(Method::DELETE, &format!("/users/{bob_id}"), root, None)
        .await;
    assert_eq!(res.status(), 204);
    assert_json(
        app.get(&format!("/users/{bob_id}"), root).await,
        404,
        json!({"message": "404 User Not Found"}),
    )
    .await;
}

async fn duplicate_and_invalid_users_are_rejected(app: TestApp) {
    let root = Some(app.root_token.as_str());
    app.create_user("carol").await;
    assert_json(
        app.post("/users", root, json!({"username": "carol2", "name": "C", "email": "CAROL@example.com", "password": "12345678"})).await,
        409,
        json!({"message": "Email has already been taken"}),
    )
    .await;
    assert_json(
        app.post("/users", root, json!({"username": "Carol", "name": "C", "email": "c2@example.com", "password": "12345678"})).await,
        409,
        json!({"message": "Username has already been taken"}),
    )
    .await;
    assert_json(
        app.post("/users", root, json!({"name": "C", "password": "12345678"}))
            .await,
        400,
        json!({"error": "email is missing, username is missing"}),
    )
    .await;
    assert_json(
        app.post(
            "/users",
            root,
            json!({"username": "dave", "name": "D", "email": "d@example.com", "password": "short"}),
        )
        .await,
        400,
        json!({"message": {"password": ["is too short (minimum is 8 characters)"]}}),
    )
    .await;
    assert_json(
        app.post("/users", root, json!({"username": "../etc", "name": "D", "email": "not-an-email", "password": "12345678"})).await,
        400,
        json!({"message": {
            "email": ["is invalid"],
            "username": [crate::path_formats::OCI_MESSAGE, "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-' or end in '.', '.git' or '.atom'."],
        }}),
    )
    .await;
    assert_json(
        app.get("/users/999999", root).await,
        404,
        json!({"message": "404 User Not Found"}),
    )
    .await;
    assert_json(
        app.get("/users/abc", root).await,
        404,
        json!({"message": "404 User Not Found"}),
    )
    .await;
}
