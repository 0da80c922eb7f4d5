//! Projects, membership, visibility and permissions.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{TestApp, assert_json};

both_backends!(
    projects_are_created_listed_and_paginated,
    private_projects_are_404_to_non_members,
    members_and_roles,
    a_project_in_a_namespace_one_may_not_use_is_not_valid_whether_or_not_it_exists,
);

async fn projects_are_created_listed_and_paginated(app: TestApp) {
    let root = Some(app.root_token.as_str());
    let p = app.create_project(&app.root_token, "Demo Project").await;
    assert_eq!(p["path"], "demo-project");
    assert_eq!(p["path_with_namespace"], "root/demo-project");
    assert_eq!(p["default_branch"], "main");
    assert_eq!(p["visibility"], "private");
    assert_eq!(
        p["http_url_to_repo"],
        format!("{}/root/demo-project.git", app.url)
    );
    assert_eq!(p["web_url"], format!("{}/root/demo-project", app.url));
    assert_eq!(p["namespace"]["path"], "root");
    assert_eq!(p["permissions"]["project_access"]["access_level"], 50);
    assert_eq!(p["empty_repo"], true);
    let id = p["id"].as_i64().unwrap();

    // By id and by URL-encoded path.
    let by_path: Value = app
        .get("/projects/root%2Fdemo-project", root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_path["id"], id);

    // Pagination headers and Link.
    for i in 0..4 {
        app.create_project(&app.root_token, &format!("p{i}")).await;
    }
    let res = app
        .get("/projects?per_page=2&order_by=id&sort=asc", root)
        .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-total"], "5");
    assert_eq!(h["x-total-pages"], "3");
    assert_eq!(h["x-page"], "1");
    assert_eq!(h["x-per-page"], "2");
    assert_eq!(h["x-next-page"], "2");
    assert_eq!(h["x-prev-page"], "");
    let link = h["link"].to_str().unwrap();
    assert!(
        link.contains(&format!(
            "<{}/api/v4/projects?order_by=id&sort=asc&page=2&per_page=2>; rel=\"next\"",
            app.url
        )),
        "{link}"
    );
    assert!(link.contains("rel=\"first\"") && link.contains("rel=\"last\""));
    let page1: Vec<Value> = res.json().await.unwrap();
    assert_eq!(page1[0]["id"], id);

    // Search and update.
    let found: Vec<Value> = app
        .get("/projects?search=DEMO", root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let res = app
        .request(
            Method::PUT,
            &format!("/projects/{id}"),
            root,
            Some(json!({"description": "hello", "visibility": "internal"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["description"], "hello");
    assert_eq!(updated["visibility"], "internal");

    // Duplicate path, missing params.
    assert_json(
        app.post("/projects", root, json!({"name": "Demo Project"})).await,
        400,
        json!({"message": {"name": ["has already been taken"], "path": ["has already been taken"]}}),
    )
    .await;
    assert_json(
        app.post("/projects", root, json!({"description": "x"}))
            .await,
        400,
        json!({"error": "name, path are missing, at least one parameter must be provided"}),
    )
    .await;

    // Delete: 202, then 404.
    let res = app
        .request(Method::DELETE, &format!("/projects/{id}"), root, None)
        .await;
    assert_eq!(res.status(), 202);
    assert_json(
        app.get(&format!("/projects/{id}"), root).await,
        404,
        json!({"message": "404 Project Not Found"}),
    )
    .await;
}

async fn private_projects_are_404_to_non_members(app: TestApp) {
    let (_, outsider) = app.create_user("outsider").await;
    let p = app.create_project(&app.root_token, "secret").await;
    let id = p["id"].as_i64().unwrap();
    let not_found = json!({"message": "404 Project Not Found"});
    assert_json(
        app.get(&format!("/projects/{id}"), Some(&outsider)).await,
        404,
        not_found.clone(),
    )
    .await;
    assert_json(
        app.get("/projects/root%2Fsecret", Some(&outsider)).await,
        404,
        not_found.clone(),
    )
    .await;
    assert_json(
        app.get(&format!("/projects/{id}"), None).await,
        404,
        not_found.clone(),
    )
    .await;
    assert_json(
        app.request(
            Method::DELETE,
            &format!("/projects/{id}"),
            Some(&outsider),
            None,
        )
        .await,
        404,
        not_found.clone(),
    )
    .await;
    let listed: Vec<Value> = app
        .get("/projects", Some(&outsider))
        .await
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty());
    // Path traversal in the id is just an unknown project.
    assert_json(
        app.get("/projects/..%2F..%2Fetc", Some(&outsider)).await,
        404,
        not_found.clone(),
    )
    .await;
    assert_json(
        app.get("/projects/root%2F..%2Fsecret", Some(&app.root_token))
            .await,
        404,
        not_found,
    )
    .await;

    // Public projects are readable by anyone.
    let res = app
        .request(
            Method::PUT,
            &format!("/projects/{id}"),
            Some(&app.root_token),
            Some(json!({"visibility": "public"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get(&format!("/projects/{id}"), None).await.status(),
        200
    );
    assert_eq!(
        app.get(&format!("/projects/{id}"), Some(&outsider))
            .await
            .status(),
        200
    );
    // …but not writable.
    assert_json(
        app.request(
            Method::PUT,
            &format!("/projects/{id}"),
            Some(&outsider),
            Some(json!({"name": "x"})),
        )
        .await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;
}

async fn members_and_roles(app: TestApp) {
    let (dev_id, dev) = app.create_user("dev").await;
    let (maint_id, maint) = app.create_user("maint").await;
    let p = app.create_project(&app.root_token, "team").await;
    let id = p["id"].as_i64().unwrap();
    app.add_member(id, dev_id, 30).await;
    let res = app
        .post(
            &format!("/projects/{id}/members"),
            Some(&app.root_token),
            json!({"user_id": maint_id, "access_level": 40}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["access_level"], 40);
    assert_eq!(m["username"], "maint");

    // Duplicate membership, bad level.
    assert_json(
        app.post(
            &format!("/projects/{id}/members"),
            Some(&app.root_token),
            json!({"user_id": dev_id, "access_level": 30}),
        )
        .await,
        409,
        json!({"message": "Member already exists"}),
    )
    .await;
    assert_json(
        app.post(
            &format!("/projects/{id}/members"),
            Some(&app.root_token),
            json!({"user_id": dev_id, "access_level": 35}),
        )
        .await,
        400,
        json!({"error": "access_level does not have a valid value"}),
    )
    .await;

    // A Developer can read but not manage members; a Maintainer can, but not grant Owner.
    let members: Vec<Value> = app
        .get(&format!("/projects/{id}/members"), Some(&dev))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members.len(), 3);
    let (guest_id, _) = app.create_user("guest").await;
    assert_json(
        app.post(
            &format!("/projects/{id}/members"),
            Some(&dev),
            json!({"user_id": guest_id, "access_level": 10}),
        )
        .await,
        403,
        json!({"message": "403 Forbidden"}),
    )
    .await;
    assert_eq!(
        app.post(
            &format!("/projects/{id}/members"),
            Some(&maint),
            json!({"user_id": guest_id, "access_level": 10})
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        app.request(
            Method::PUT,
            &format!("/projects/{id}/members/{guest_id}"),
            Some(&maint),
            Some(json!({"access_level": 50}))
        )
        .await
        .status(),
        403
    );
    let res = app
        .request(
            Method::PUT,
            &format!("/projects/{id}/members/{guest_id}"),
            Some(&maint),
            Some(json!({"access_level": 20})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["access_level"], 20);
    assert_eq!(
        app.request(
            Method::DELETE,
            &format!("/projects/{id}/members/{guest_id}"),
            Some(&maint),
            None
        )
        .await
        .status(),
        204
    );
    assert_json(
        app.get(&format!("/projects/{id}/members/{guest_id}"), Some(&maint))
            .await,
        404,
        json!({"message": "404 Member Not Found"}),
    )
    .await;
    // The Developer sees the project in `membership=true`.
    let mine: Vec<Value> = app
        .get("/projects?membership=true", Some(&dev))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["permissions"]["project_access"]["access_level"], 30);
}

/// GitLab's app/services/projects/create_service.rb `validate_create_permissions`: a
/// namespace the caller may not create projects in is a 400 `namespace is not valid`, be it a
/// private group they cannot see, another user's namespace or an id that does not exist; so
/// the answer does not tell a private group from a missing one.
async fn a_project_in_a_namespace_one_may_not_use_is_not_valid_whether_or_not_it_exists(
    app: TestApp,
) {
    let root = Some(app.root_token.as_str());
    let (_, alice) = app.create_user("alice").await;
    let (_, bob) = app.create_user("bob").await;
    let res = app
        .post(
            "/groups",
            root,
            json!({"name": "Secret", "path": "secret", "visibility": "private"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let secret: Value = res.json().await.unwrap();
    let alice_namespace = app.create_project(&alice, "first").await["namespace"].clone();
    assert_eq!(alice_namespace["path"], "alice");

    let not_valid = json!({"message": {"namespace": ["is not valid"]}});
    for target in [
        json!({"namespace_id": secret["id"]}),
        json!({"namespace_id": 999_999}),
        json!({"namespace_path": "secret"}),
        json!({"namespace_path": "no-such-group"}),
        json!({"namespace_id": alice_namespace["id"]}),
    ] {
        let mut body = json!({"name": "sneaky"});
        body.as_object_mut()
            .unwrap()
            .extend(target.as_object().unwrap().clone());
        let res = app.post("/projects", Some(&bob), body).await;
        assert_json(res, 400, not_valid.clone()).await;
    }
    let listed: Value = app.get("/projects", root).await.json().await.unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["path"] != "sneaky"),
        "nothing was created: {listed}"
    );
    // Its owner and an admin still may.
    let res = app
        .post(
            "/projects",
            Some(&alice),
            json!({"name": "mine", "namespace_id": alice_namespace["id"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .post(
            "/projects",
            root,
            json!({"name": "ours", "namespace_id": secret["id"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
}
