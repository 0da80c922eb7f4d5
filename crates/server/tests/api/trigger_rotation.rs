//! Issue 14 §2 and §3: rotating a trigger token (with a grace period for the old one) and
//! tokens restricted to refs and variables, through the API, forms and the trigger endpoint.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{ROOT_PASSWORD, TestApp, assert_json};
use crate::triggering::triggerable_project;
use crate::web::Browser;

both_backends!(
    rotating_a_trigger_token_replaces_it_and_the_old_one_stops,
    a_grace_period_keeps_the_old_token_working_until_it_ends,
    only_the_tokens_owner_rotates_it,
    a_restricted_token_runs_only_its_refs_and_variables,
    restrictions_come_from_forms_and_are_bounded,
    the_settings_page_rotates_and_restricts_a_token,
);

async fn trigger(app: &TestApp, project: i64, token: &str, body: Value) -> (u16, Value) {
    let mut body = body;
    body["token"] = json!(token);
    let res = app
        .post(&format!("/projects/{project}/trigger/pipeline"), None, body)
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

fn not_found() -> Value {
    json!({"message": "404 Not Found"})
}

async fn rotate(app: &TestApp, project: i64, id: i64, as_: &str, body: Value) -> (u16, Value) {
    let res = app
        .post(
            &format!("/projects/{project}/triggers/{id}/rotate"),
            Some(as_),
            body,
        )
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn rotating_a_trigger_token_replaces_it_and_the_old_one_stops(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, _, _) = triggerable_project(&app, "rotated", tmp.path()).await;
    let created: Value = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "deploy", "ref_patterns": ["main"], "allowed_variables": ["DEPLOY"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let old = created["token"].as_str().unwrap().to_string();
    let trigger_id = created["id"].as_i64().unwrap();
    assert_eq!(trigger(&app, id, &old, json!({"ref": "main"})).await.0, 201);

    let (status, rotated) = rotate(&app, id, trigger_id, &app.root_token, json!({})).await;
    assert_eq!(status, 201, "{rotated}");
    let new = rotated["token"].as_str().unwrap().to_string();
    assert!(new.starts_with("glptt-") && new.len() == 46 && new != old);
    assert_eq!(rotated["id"], trigger_id);
    assert_eq!(rotated["description"], "deploy");
    assert_eq!(rotated["ref_patterns"], json!(["main"]));
    assert_eq!(rotated["allowed_variables"], json!(["DEPLOY"]));
    assert!(rotated["last_used"].is_string(), "last_used carries over");

    // No grace period: the old token is any unknown token at once.
    assert_eq!(
        trigger(&app, id, &old, json!({"ref": "main"})).await,
        (404, not_found())
    );
    assert_eq!(trigger(&app, id, &new, json!({"ref": "main"})).await.0, 201);
    let shown: Value = app
        .root_json(&format!("/projects/{id}/triggers/{trigger_id}"))
        .await;
    assert_eq!(shown["token"], new.as_str());

    // The grace period is 0..=604800 seconds, as Grape's `values:` answers.
    for bad in [json!(-1), json!(604_801)] {
        assert_json(
            app.post(
                &format!("/projects/{id}/triggers/{trigger_id}/rotate"),
                Some(&app.root_token),
                json!({"grace_period_seconds": bad}),
            )
            .await,
            400,
            json!({"error": "grace_period_seconds does not have a valid value"}),
        )
        .await;
    }
    assert_json(
        app.post(
            &format!("/projects/{id}/triggers/{trigger_id}/rotate"),
            Some(&app.root_token),
            json!({"grace_period_seconds": "soon"}),
        )
        .await,
        400,
        json!({"error": "grace_period_seconds is invalid"}),
    )
    .await;
    let (status, _) = rotate(&app, id, 999_999, &app.root_token, json!({})).await;
    assert_eq!(status, 404);
}

async fn a_grace_period_keeps_the_old_token_working_until_it_ends(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, old, _) = triggerable_project(&app, "graceful", tmp.path()).await;
    let list: Vec<Value> = app.root_json(&format!("/projects/{id}/triggers")).await;
    let trigger_id = list[0]["id"].as_i64().unwrap();
    let (status, rotated) = rotate(
        &app,
        id,
        trigger_id,
        &app.root_token,
        json!({"grace_period_seconds": 2}),
    )
    .await;
    assert_eq!(status, 201);
    let new = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(trigger(&app, id, &old, json!({"ref": "main"})).await.0, 201);
    assert_eq!(trigger(&app, id, &new, json!({"ref": "main"})).await.0, 201);
    // The old token is kept as a digest only: nothing shows it again.
    let shown: Value = app
        .root_json(&format!("/projects/{id}/triggers/{trigger_id}"))
        .await;
    assert!(!shown.to_string().contains(&old[6..]));

    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(
        trigger(&app, id, &old, json!({"ref": "main"})).await,
        (404, not_found())
    );
    assert_eq!(trigger(&app, id, &new, json!({"ref": "main"})).await.0, 201);
}

async fn only_the_tokens_owner_rotates_it(app: TestApp) {
    let (alice_id, alice) = app.create_user("alice").await;
    let (bob_id, bob) = app.create_user("bob").await;
    let (dev_id, dev) = app.create_user("dev").await;
    let (_, outsider) = app.create_user("outsider").await;
    let project = app.create_project(&app.root_token, "owned").await;
    let id = project["id"].as_i64().unwrap();
    app.add_member(id, alice_id, 40).await;
    app.add_member(id, bob_id, 40).await;
    app.add_member(id, dev_id, 30).await;
    let created: Value = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&alice),
            json!({"description": "alice's"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let trigger_id = created["id"].as_i64().unwrap();

    let refused = json!({"message": "403 Forbidden - The current user is not authorized to rotate the pipeline trigger token"});
    assert_eq!(
        rotate(&app, id, trigger_id, &bob, json!({})).await,
        (403, refused)
    );
    assert_eq!(
        rotate(&app, id, trigger_id, &dev, json!({})).await,
        (403, json!({"message": "403 Forbidden"}))
    );
    assert_eq!(
        rotate(&app, id, trigger_id, &outsider, json!({})).await,
        (404, json!({"message": "404 Project Not Found"}))
    );
    let res = app
        .post(
            &format!("/projects/{id}/triggers/{trigger_id}/rotate"),
            None,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 401);
    let (status, mine) = rotate(&app, id, trigger_id, &alice, json!({})).await;
    assert_eq!(status, 201);
    assert_ne!(mine["token"], created["token"]);
    assert_eq!(
        rotate(&app, id, trigger_id, &app.root_token, json!({}))
            .await
            .0,
        201
    );

    // A legacy owner-less token: any Maintainer may rotate it.
    let legacy = app
        .store
        .create_trigger(&pipewright_store::NewTrigger {
            project_id: id,
            owner_id: None,
            legacy: true,
            description: "legacy".into(),
            token_digest: pipewright_server::secrets::token_digest("legacy-token-0000"),
            token_sealed: "00".into(),
            short_token: "lega".into(),
            expires_at: None,
            restrictions: Default::default(),
        })
        .await
        .unwrap();
    let (status, rotated) = rotate(&app, id, legacy.id, &bob, json!({})).await;
    assert_eq!(status, 201, "{rotated}");
    assert!(rotated["token"].as_str().unwrap().starts_with("glptt-"));
}

async fn a_restricted_token_runs_only_its_refs_and_variables(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, _, _) = triggerable_project(&app, "restricted", tmp.path()).await;
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({
                "description": "release only",
                "ref_patterns": ["main", "release/*", "v*"],
                "allowed_variables": ["DEPLOY"],
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["ref_patterns"], json!(["main", "release/*", "v*"]));
    assert_eq!(created["allowed_variables"], json!(["DEPLOY"]));
    let token = created["token"].as_str().unwrap().to_string();

    let ref_refused =
        json!({"message": {"base": ["Reference not allowed for this trigger token"]}});
    let var_refused =
        json!({"message": {"base": ["Variable not allowed for this trigger token: OTHER"]}});
    let ok = trigger(
        &app,
        id,
        &token,
        json!({"ref": "main", "variables": {"DEPLOY": "1"}}),
    )
    .await;
    assert_eq!(ok.0, 201, "{}", ok.1);
    assert_eq!(
        trigger(&app, id, &token, json!({"ref": "v1.0"})).await.0,
        201
    );
    assert_eq!(
        trigger(&app, id, &token, json!({"ref": "no-ci"})).await,
        (400, ref_refused.clone())
    );
    assert_eq!(
        trigger(
            &app,
            id,
            &token,
            json!({"ref": "main", "variables": {"DEPLOY": "1", "OTHER": "x"}})
        )
        .await,
        (400, var_refused)
    );
    // The webhook form: the ref from the URL is checked too.
    let res = app
        .post(
            &format!("/projects/{id}/ref/no-ci/trigger/pipeline?token={token}"),
            None,
            json!({}),
        )
        .await;
    assert_json(res, 400, ref_refused).await;
    // A token is looked up first: an unknown one is still 404, whatever the ref.
    assert_eq!(
        trigger(&app, id, "glptt-unknown", json!({"ref": "no-ci"})).await,
        (404, not_found())
    );

    // Updating replaces a list; an empty list allows any ref again.
    let trigger_id = created["id"].as_i64().unwrap();
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/projects/{id}/triggers/{trigger_id}"),
            Some(&app.root_token),
            Some(json!({"ref_patterns": []})),
        )
        .await;
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["ref_patterns"], json!([]));
    assert_eq!(updated["allowed_variables"], json!(["DEPLOY"]));
    assert_eq!(updated["description"], "release only");
    let any = trigger(&app, id, &token, json!({"ref": "skip"})).await;
    assert_eq!(any.0, 201, "{}", any.1);
}

async fn restrictions_come_from_forms_and_are_bounded(app: TestApp) {
    let project = app.create_project(&app.root_token, "forms").await;
    let id = project["id"].as_i64().unwrap();
    let res = app
        .client
        .post(app.api(&format!("/projects/{id}/triggers")))
        .header("PRIVATE-TOKEN", &app.root_token)
        .form(&[
            ("description", "form"),
            ("ref_patterns[]", "main"),
            ("ref_patterns[]", "release/*"),
            ("allowed_variables[]", "DEPLOY"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["ref_patterns"], json!(["main", "release/*"]));
    assert_eq!(created["allowed_variables"], json!(["DEPLOY"]));

    let many: Vec<String> = (0..51).map(|i| format!("b{i}")).collect();
    assert_json(
        app.post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "many", "ref_patterns": many}),
        )
        .await,
        400,
        json!({"message": {"ref_patterns": ["is too long (maximum is 50 entries)"]}}),
    )
    .await;
    assert_json(
        app.post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "bad", "allowed_variables": ["NOT-A-KEY"]}),
        )
        .await,
        400,
        json!({"message": {"allowed_variables": ["can contain only letters, digits and '_' (at most 255)"]}}),
    )
    .await;
    assert_json(
        app.post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "long", "ref_patterns": ["x".repeat(256)]}),
        )
        .await,
        400,
        json!({"message": {"ref_patterns": ["must be at most 255 characters without control characters"]}}),
    )
    .await;
    assert_json(
        app.post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "shape", "ref_patterns": {"a": 1}}),
        )
        .await,
        400,
        json!({"error": "ref_patterns is invalid"}),
    )
    .await;
}

async fn the_settings_page_rotates_and_restricts_a_token(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, old, _) = triggerable_project(&app, "paged", tmp.path()).await;
    let list: Vec<Value> = app.root_json(&format!("/projects/{id}/triggers")).await;
    let trigger_id = list[0]["id"].as_i64().unwrap();
    let settings = "/root/paged/-/settings/ci_cd";
    let mut root = Browser::sign_in(&app, "root", ROOT_PASSWORD).await;
    assert!(
        root.get(settings)
            .await
            .body
            .contains("data-testid=\"rotate-trigger\"")
    );

    // Restrictions from the row's form, comma-separated.
    let page = root
        .submit(
            settings,
            &format!("{settings}/triggers/{trigger_id}/update"),
            &[
                ("description", "seed"),
                ("ref_patterns", "main, v*"),
                ("allowed_variables", "DEPLOY"),
            ],
        )
        .await;
    assert_eq!(page.status, 303);
    let page = root.get(page.location.as_deref().unwrap()).await;
    assert!(page.body.contains("<code>main, v*</code>"), "{}", page.body);
    let shown: Value = app
        .root_json(&format!("/projects/{id}/triggers/{trigger_id}"))
        .await;
    assert_eq!(shown["ref_patterns"], json!(["main", "v*"]));
    assert_eq!(shown["allowed_variables"], json!(["DEPLOY"]));

    // Rotate, keeping the old token for an hour.
    let page = root
        .submit(
            settings,
            &format!("{settings}/triggers/{trigger_id}/rotate"),
            &[("grace_period_seconds", "3600")],
        )
        .await;
    assert_eq!(page.status, 303);
    let page = root.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body.contains("Trigger token was rotated."),
        "{}",
        page.body
    );
    let shown: Value = app
        .root_json(&format!("/projects/{id}/triggers/{trigger_id}"))
        .await;
    let new = shown["token"].as_str().unwrap();
    assert_ne!(new, old);
    assert!(page.body.contains(new) && !page.body.contains(&old));
    assert_eq!(trigger(&app, id, &old, json!({"ref": "main"})).await.0, 201);
    assert_eq!(trigger(&app, id, new, json!({"ref": "main"})).await.0, 201);

    // A form without its CSRF token changes nothing.
    let page = root
        .post(
            &format!("{settings}/triggers/{trigger_id}/rotate"),
            &[("grace_period_seconds", "0")],
        )
        .await;
    assert_ne!(page.status, 303);
    let again: Value = app
        .root_json(&format!("/projects/{id}/triggers/{trigger_id}"))
        .await;
    assert_eq!(again["token"], new);
}
