//! GitLab's API conventions: parameters from every source, error shapes, limits, bad input.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{TestApp, assert_json};

both_backends!(
    parameters_arrive_from_query_form_multipart_and_json,
    bad_input_is_a_clear_4xx,
);

async fn parameters_arrive_from_query_form_multipart_and_json(app: TestApp) {
    let token = app.root_token.clone();
    // Query string.
    let res = app
        .client
        .post(app.api("/projects?name=from-query"))
        .header("PRIVATE-TOKEN", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // urlencoded form.
    let res = app
        .client
        .post(app.api("/projects"))
        .header("PRIVATE-TOKEN", &token)
        .form(&[("name", "from-form"), ("visibility", "public")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["visibility"], "public");
    // multipart (curl --form).
    let form = reqwest::multipart::Form::new().text("name", "from-multipart");
    let res = app
        .client
        .post(app.api("/projects"))
        .header("PRIVATE-TOKEN", &token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // JSON, with a number where a string is expected.
    let res = app
        .post(
            "/projects",
            Some(&token),
            json!({"name": "from-json", "namespace_id": 1}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // python-gitlab: GET with a JSON content type and no body.
    let res = app
        .client
        .get(app.api("/projects"))
        .header("PRIVATE-TOKEN", &token)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // gitbeaker: DELETE with `{}`.
    let id = p["id"].as_i64().unwrap();
    let res = app
        .client
        .delete(app.api(&format!("/projects/{id}")))
        .header("PRIVATE-TOKEN", &token)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

async fn bad_input_is_a_clear_4xx(app: TestApp) {
    let token = app.root_token.clone();
    let post_raw = |body: &'static [u8], ctype: &'static str| {
        app.client
            .post(app.api("/projects"))
            .header("PRIVATE-TOKEN", &token)
            .header("Content-Type", ctype)
            .body(body)
            .send()
    };
    assert_json(
        post_raw(b"{\"name\": ", "application/json").await.unwrap(),
        400,
        json!({"message": "400 Bad request - the request body is not valid JSON"}),
    )
    .await;
    assert_json(
        post_raw(b"[1,2]", "application/json").await.unwrap(),
        400,
        json!({"message": "400 Bad request - the JSON body must be an object"}),
    )
    .await;
    assert_json(
        post_raw(b"name=%ff%fe", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        400,
        // GitLab's malformed-strings middleware: plain text.
        json!("Bad Request"),
    )
    .await;
    // Wrong types.
    assert_json(
        app.post("/projects", Some(&token), json!({"name": ["a"]}))
            .await,
        400,
        json!({"error": "name is invalid"}),
    )
    .await;
    assert_json(
        app.post(
            "/projects",
            Some(&token),
            json!({"name": "x", "namespace_id": "abc"}),
        )
        .await,
        400,
        json!({"error": "namespace_id is invalid"}),
    )
    .await;
    assert_json(
        app.post(
            "/projects",
            Some(&token),
            json!({"name": "x", "visibility": "secret"}),
        )
        .await,
        400,
        json!({"error": "visibility is invalid"}),
    )
    .await;
    assert_json(
        app.get("/projects?per_page=abc", Some(&token)).await,
        400,
        json!({"error": "per_page is invalid"}),
    )
    .await;
    // Unknown ids and routes.
    assert_json(
        app.get("/projects/424242", Some(&token)).await,
        404,
        json!({"message": "404 Project Not Found"}),
    )
    .await;
    assert_json(
        app.get("/no/such/route", Some(&token)).await,
        404,
        json!({"error": "404 Not Found"}),
    )
    .await;
    // Invalid UTF-8 in the path.
    assert_json(
        app.get("/projects/%ff%fe", Some(&token)).await,
        400,
        json!("Bad Request"),
    )
    .await;
    // Oversize body.
    let big = vec![b'a'; 11 * 1024 * 1024];
    // A fresh client: the server closes a connection whose body it did not read.
    let res = reqwest::Client::new()
        .post(app.api("/projects"))
        .header("PRIVATE-TOKEN", &token)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"message": "413 Request Entity Too Large"}));
    // Health and version.
    let res = app
        .client
        .get(format!("{}/-/readiness", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = app
        .get("/version", Some(&app.root_token))
        .await
        .json()
        .await
        .unwrap();
    assert!(v["version"].is_string() && v["revision"].is_string());
    // As in GitLab, a stranger does not learn which release runs here.
    assert_json(
        app.get("/version", None).await,
        401,
        json!({"message": "401 Unauthorized"}),
    )
    .await;
    let _ = Method::GET;
}
