//! CI/CD variables: the API (GitLab's shapes and validation), what pipelines receive
//! (masked values never in a log, file variables as files, protected ones on protected refs
//! only, instance below project below pipeline), who may pass pipeline variables, and the
//! seeds' trigger token kept in a masked variable.

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, remote};
use crate::running::{finished_pipeline, job_log, project_in as project_with, start_runner};
use crate::support::{TestApp, assert_json};

both_backends!(
    the_variables_api_validates_like_gitlab,
    pipelines_receive_masked_file_and_protected_variables,
    a_trigger_token_in_a_masked_variable_triggers_another_project,
    who_may_pass_pipeline_variables
);

async fn the_variables_api_validates_like_gitlab(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "vars", "job:\n  script: [x]\n", tmp.path()).await;
    let path = format!("/projects/{id}/variables");
    let root = Some(app.root_token.as_str());
    let res = app
        .post(
            &path,
            root,
            json!({"key": "SHORT", "value": "abc", "masked": true}),
        )
        .await;
    assert_json(res, 400, json!({"message": {"value": ["is invalid"]}})).await;
    let res = app
        .post(&path, root, json!({"key": "BAD-KEY", "value": "abc"}))
        .await;
    assert_json(
        res,
        400,
        json!({"message": {"key": ["can contain only letters, digits and '_'."]}}),
    )
    .await;
    let res = app.post(&path, root, json!({"key": "NOVALUE"})).await;
    assert_json(res, 400, json!({"error": "value is missing"})).await;
    let res = app
        .post(
            &path,
            root,
            json!({"key": "DEPLOY_TOKEN", "value": "s3cr3t-value-123", "masked": true, "protected": true, "description": "deploys"}),
        )
        .await;
    assert_json(
        res,
        201,
        json!({"variable_type": "env_var", "key": "DEPLOY_TOKEN", "value": "s3cr3t-value-123", "hidden": false,
               "protected": true, "masked": true, "raw": false, "environment_scope": "*", "description": "deploys"}),
    )
    .await;
    let res = app
        .post(
            &path,
            root,
            json!({"key": "DEPLOY_TOKEN", "value": "other-value-99"}),
        )
        .await;
    assert_json(
        res,
        400,
        json!({"message": {"key": ["(DEPLOY_TOKEN) has already been taken"]}}),
    )
    .await;
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("{path}/DEPLOY_TOKEN"),
            root,
            Some(json!({"value": "rotated-value-456", "variable_type": "file"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["value"], "rotated-value-456");
    assert_eq!(updated["variable_type"], "file");
    assert_eq!(updated["masked"], true, "unchanged fields stay");
    let one: Value = app.root_json(&format!("{path}/DEPLOY_TOKEN")).await;
    assert_eq!(one["value"], "rotated-value-456");
    let res = app.get(&format!("{path}/NOPE"), root).await;
    assert_json(res, 404, json!({"message": "404 Variable Not Found"})).await;
    // Developers may not read variables.
    let (dev_id, dev) = app.create_user("vars-dev").await;
    app.add_member(id, dev_id, 30).await;
    assert_eq!(app.get(&path, Some(&dev)).await.status(), 403);
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("{path}/DEPLOY_TOKEN"),
            root,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let list: Vec<Value> = app.root_json(&path).await;
    assert!(list.is_empty());
    // Instance variables: administrators only.
    let res = app
        .post(
            "/admin/ci/variables",
            root,
            json!({"key": "INSTANCE_WIDE", "value": "everywhere"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        app.get("/admin/ci/variables", Some(&dev)).await.status(),
        403
    );
}

const SHOW_VARS: &str = r#"show:
  script:
    - echo "token=$DEPLOY_TOKEN"
    - echo "again ${DEPLOY_TOKEN}!"
    - cat "$SETTINGS"
    - echo "protected=${PROTECTED_ONLY:-absent}"
    - echo "instance=$INSTANCE_WIDE"
    - echo "overridden=$OVERRIDE_ME"
"#;

async fn pipelines_receive_masked_file_and_protected_variables(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "shown", SHOW_VARS, tmp.path()).await;
    let root = Some(app.root_token.as_str());
    let path = format!("/projects/{id}/variables");
    for body in [
        json!({"key": "DEPLOY_TOKEN", "value": "s3cr3t-value-123", "masked": true}),
        json!({"key": "SETTINGS", "value": "region=eu\n", "variable_type": "file"}),
        json!({"key": "PROTECTED_ONLY", "value": "on-protected-refs", "protected": true}),
        json!({"key": "OVERRIDE_ME", "value": "from-project"}),
    ] {
        assert_eq!(app.post(&path, root, body).await.status(), 201);
    }
    for body in [
        json!({"key": "INSTANCE_WIDE", "value": "everywhere"}),
        json!({"key": "OVERRIDE_ME", "value": "from-instance"}),
    ] {
        assert_eq!(
            app.post("/admin/ci/variables", root, body).await.status(),
            201
        );
    }
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    // `main` is protected (the first push protected it); `feature` is not.
    let work = tmp.path().join("shown/work");
    let url = remote(&app, "root", &app.root_token, "root/shown");
    git_ok(
        &work,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "main:feature"],
    );
    for (ref_name, protected) in [("main", "on-protected-refs"), ("feature", "absent")] {
        let res = app
            .post(
                &format!("/projects/{id}/pipeline"),
                root,
                json!({"ref": ref_name}),
            )
            .await;
        let pipeline: Value = res.json().await.unwrap();
        let (done, jobs) = finished_pipeline(&app, id, &pipeline).await;
        assert_eq!(done["status"], "success", "{jobs:#?}");
        let log = job_log(&app, id, &jobs, "show").await;
        assert!(log.contains("token=[MASKED]"), "{log}");
        assert!(log.contains("again [MASKED]!"), "{log}");
        assert!(
            !log.contains("s3cr3t-value-123"),
            "a masked value reached the log: {log}"
        );
        assert!(log.contains("\nregion=eu"), "{log}");
        assert!(
            log.contains(&format!("protected={protected}")),
            "{ref_name}: {log}"
        );
        assert!(log.contains("instance=everywhere"), "{log}");
        assert!(log.contains("overridden=from-project"), "{log}");
    }
    runner.abort();
}

/// The seeds: "store the trigger token as a masked CI/CD variable" and use it from a job.
async fn a_trigger_token_in_a_masked_variable_triggers_another_project(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let b = project_with(
        &app,
        "target",
        "build:\n  script: [echo built]\n",
        tmp.path(),
    )
    .await;
    let res = app
        .post(
            &format!("/projects/{b}/triggers"),
            Some(&app.root_token),
            json!({"description": "from a"}),
        )
        .await;
    let trigger: Value = res.json().await.unwrap();
    let token = trigger["token"].as_str().unwrap().to_string();
    let a_config = format!(
        "fire:\n  script:\n    - echo \"using $TARGET_TRIGGER\"\n    - curl --silent --show-error --fail-with-body --request POST --form \"token=$TARGET_TRIGGER\" --form ref=main \"$CI_API_V4_URL/projects/{b}/trigger/pipeline\"\n"
    );
    let a = project_with(&app, "source", &a_config, tmp.path()).await;
    let res = app
        .post(
            &format!("/projects/{a}/variables"),
            Some(&app.root_token),
            json!({"key": "TARGET_TRIGGER", "value": token, "masked": true}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let res = app
        .post(
            &format!("/projects/{a}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main"}),
        )
        .await;
    let pipeline: Value = res.json().await.unwrap();
    let (done, jobs) = finished_pipeline(&app, a, &pipeline).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let log = job_log(&app, a, &jobs, "fire").await;
    assert!(log.contains("using [MASKED]"), "{log}");
    assert!(
        !log.contains(&token),
        "the trigger token reached the log: {log}"
    );
    // The response body the job printed carries the 4-character short token only.
    let b_pipelines: Vec<Value> = app.root_json(&format!("/projects/{b}/pipelines")).await;
    assert_eq!(b_pipelines.len(), 1);
    assert_eq!(b_pipelines[0]["source"], "trigger");
    runner.abort();
}

async fn who_may_pass_pipeline_variables(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_with(&app, "guarded", "job:\n  script: [x]\n", tmp.path()).await;
    let (dev_id, dev) = app.create_user("pv-dev").await;
    app.add_member(id, dev_id, 30).await;
    let work = tmp.path().join("guarded/work");
    let url = remote(&app, "root", &app.root_token, "root/guarded");
    git_ok(
        &work,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "main:feature"],
    );
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/projects/{id}"),
            Some(&app.root_token),
            Some(json!({"ci_pipeline_variables_minimum_override_role": "maintainer"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let project: Value = res.json().await.unwrap();
    assert_eq!(
        project["ci_pipeline_variables_minimum_override_role"],
        "maintainer"
    );
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/projects/{id}"),
            Some(&app.root_token),
            Some(json!({"ci_pipeline_variables_minimum_override_role": "everyone"})),
        )
        .await;
    assert_eq!(res.status(), 400);

    // A Developer's trigger token: no variables, or only the payload, is fine; variables are not.
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&dev),
            json!({"description": "dev"}),
        )
        .await;
    assert_eq!(res.status(), 403, "Developers cannot manage triggers");
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&dev),
            json!({"ref": "feature", "variables": [{"key": "X", "value": "1"}]}),
        )
        .await;
    assert_json(
        res,
        400,
        json!({"message": {"base": ["Insufficient permissions to set pipeline variables"]}}),
    )
    .await;
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&dev),
            json!({"ref": "feature"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // The Maintainer's trigger token passes variables; with `no_one_allowed` nobody does, but
    // a webhook (only TRIGGER_PAYLOAD) still runs.
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "m"}),
        )
        .await;
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let trigger = |vars: Value| json!({"token": token, "ref": "main", "variables": vars});
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            trigger(json!({"X": "1"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    app.request(
        reqwest::Method::PUT,
        &format!("/projects/{id}"),
        Some(&app.root_token),
        Some(json!({"ci_pipeline_variables_minimum_override_role": "no_one_allowed"})),
    )
    .await;
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            trigger(json!({"X": "1"})),
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            trigger(json!({})),
        )
        .await;
    assert_eq!(
        res.status(),
        201,
        "a trigger without variables (only TRIGGER_PAYLOAD) runs"
    );
}
