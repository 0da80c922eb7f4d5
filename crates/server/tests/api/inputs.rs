//! CI/CD inputs through the API, as GitLab 17.x takes them: `inputs` on
//! `POST /projects/:id/pipeline` (a JSON object or `inputs[NAME]=value` form fields) and on
//! `POST /projects/:id/trigger/pipeline`, for a `.gitlab-ci.yml` whose header declares
//! `spec: inputs:` and which passes inputs on to an included template.
//! GitLab: lib/api/ci/pipelines.rb (`save_on_errors: false`: an invalid input creates nothing,
//! 400), app/services/ci/pipeline_trigger_service.rb (a trigger saves the failed pipeline, 422),
//! docs "CI/CD inputs".

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::idempotent_triggers::pipeline_count;
use crate::support::{TestApp, assert_json};

both_backends!(
    a_user_runs_a_pipeline_with_inputs_as_json_or_as_a_form,
    a_trigger_passes_inputs_and_a_bad_one_fails_its_pipeline
);

/// The root file: two inputs with defaults, one passed on to an included template.
const CONFIG: &str = r#"spec:
  inputs:
    environment:
      options: [staging, production]
      default: staging
    replicas:
      type: number
      default: 1
---
include:
  - local: templates/scan.yml
    inputs:
      target: $[[ inputs.environment ]].example.com

"deploy-$[[ inputs.environment ]]-$[[ inputs.replicas ]]":
  script: echo deploy
"#;

const TEMPLATE: &str = r#"spec:
  inputs:
    target:
---
"scan-$[[ inputs.target ]]":
  script: ./scan $[[ inputs.target | posix_escape ]]
"#;

/// A project `root/<name>` whose `main` holds [`CONFIG`] and [`TEMPLATE`], and a trigger token.
async fn project_with_inputs(app: &TestApp, name: &str, tmp: &std::path::Path) -> (i64, String) {
    let project = app.create_project(&app.root_token, name).await;
    let id = project["id"].as_i64().unwrap();
    let work = local_repo(tmp, CONFIG);
    std::fs::create_dir_all(work.join("templates")).unwrap();
    std::fs::write(work.join("templates/scan.yml"), TEMPLATE).unwrap();
    git_ok(&work, tmp, &["add", "."]);
    git_ok(&work, tmp, &["commit", "-q", "-m", "Scan template"]);
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(&work, tmp, &["push", "-q", "-o", "ci.skip", &url, "main"]);
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "inputs"}),
        )
        .await;
    let trigger: Value = res.json().await.unwrap();
    (id, trigger["token"].as_str().unwrap().to_string())
}

/// The names of a pipeline's jobs, sorted.
async fn job_names(app: &TestApp, project: i64, pipeline: &Value) -> Vec<String> {
    let pipeline = pipeline["id"].as_i64().unwrap();
    let jobs: Vec<Value> = app
        .root_json(&format!("/projects/{project}/pipelines/{pipeline}/jobs"))
        .await;
    let mut names: Vec<String> = jobs
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn base(message: &str) -> Value {
    json!({"message": {"base": [message]}})
}

async fn a_user_runs_a_pipeline_with_inputs_as_json_or_as_a_form(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, _) = project_with_inputs(&app, "inputs-api", tmp.path()).await;
    let path = format!("/projects/{id}/pipeline");
    let create = |body: Value| app.post(&path, Some(&app.root_token), body);

    // No inputs: the defaults.
    let res = create(json!({"ref": "main"})).await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert_eq!(
        job_names(&app, id, &pipeline).await,
        ["deploy-staging-1", "scan-staging.example.com"]
    );

    // JSON: an object of typed values.
    let res =
        create(json!({"ref": "main", "inputs": {"environment": "production", "replicas": 3}}))
            .await;
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert_eq!(
        job_names(&app, id, &pipeline).await,
        ["deploy-production-3", "scan-production.example.com"]
    );

    // A form, as curl's docs example sends it: `inputs[NAME]=value`, a number as text.
    let res = app
        .client
        .post(app.api(&format!("/projects/{id}/pipeline")))
        .header("PRIVATE-TOKEN", &app.root_token)
        .form(&[
            ("ref", "main"),
            ("inputs[environment]", "production"),
            ("inputs[replicas]", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert_eq!(
        job_names(&app, id, &pipeline).await,
        ["deploy-production-2", "scan-production.example.com"]
    );

    // A dry run shows the jobs the inputs make.
    let res = create(json!({"ref": "main", "dry_run": true, "inputs": {"replicas": 5}})).await;
    assert_eq!(res.status(), 200);
    let dry: Value = res.json().await.unwrap();
    let text = dry.to_string();
    assert!(text.contains("deploy-staging-5"), "{dry}");

    // Invalid inputs: GitLab's reason, 400, and no pipeline.
    let before = pipeline_count(&app, id).await;
    let cases = [
        (
            json!({"environment": "qa"}),
            "`environment` input: `qa` cannot be used because it is not in the list of allowed options",
        ),
        (
            json!({"replicas": "many"}),
            "`replicas` input: provided value is not a number",
        ),
        (json!({"colour": "red"}), "unknown input arguments: colour"),
    ];
    for (inputs, message) in cases {
        let res = create(json!({"ref": "main", "inputs": inputs})).await;
        assert_json(res, 400, base(message)).await;
    }
    let res =
        create(json!({"ref": "main", "dry_run": true, "inputs": {"environment": "qa"}})).await;
    assert_eq!(res.status(), 400, "a dry run answers as the real request");
    assert_eq!(pipeline_count(&app, id).await, before);

    // `inputs` must be a hash (Grape's `type: Hash`).
    let res = create(json!({"ref": "main", "inputs": "environment=production"})).await;
    assert_json(res, 400, json!({"error": "inputs is invalid"})).await;
}

async fn a_trigger_passes_inputs_and_a_bad_one_fails_its_pipeline(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token) = project_with_inputs(&app, "inputs-trigger", tmp.path()).await;
    let trigger = |fields: Vec<(&'static str, &'static str)>| {
        let mut form = vec![("token", token.clone()), ("ref", "main".to_string())];
        form.extend(fields.into_iter().map(|(k, v)| (k, v.to_string())));
        app.client
            .post(app.api(&format!("/projects/{id}/trigger/pipeline")))
            .form(&form)
            .send()
    };

    // The same commit with other inputs is another config (the parse cache keys on them).
    for (environment, expected) in [
        (
            "production",
            ["deploy-production-1", "scan-production.example.com"],
        ),
        ("staging", ["deploy-staging-1", "scan-staging.example.com"]),
    ] {
        let res = trigger(vec![("inputs[environment]", environment)])
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let pipeline: Value = res.json().await.unwrap();
        assert_eq!(job_names(&app, id, &pipeline).await, expected);
    }

    // An invalid input is a config error: the trigger saves a failed pipeline and answers 422.
    let res = trigger(vec![("inputs[replicas]", "[1]")]).await.unwrap();
    assert_json(
        res,
        422,
        base("`replicas` input: provided value is not a number"),
    )
    .await;
    let failed: Vec<Value> = app
        .root_json(&format!("/projects/{id}/pipelines?status=failed"))
        .await;
    assert_eq!(failed.len(), 1);

    // JSON works the same; a non-hash `inputs` is a parameter error.
    let res = app
        .client
        .post(app.api(&format!("/projects/{id}/trigger/pipeline")))
        .json(&json!({"token": token, "ref": "main", "inputs": {"replicas": 4}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let pipeline: Value = res.json().await.unwrap();
    assert!(
        job_names(&app, id, &pipeline)
            .await
            .contains(&"deploy-staging-4".to_string())
    );
    let res = app
        .client
        .post(app.api(&format!("/projects/{id}/trigger/pipeline")))
        .json(&json!({"token": token, "ref": "main", "inputs": ["replicas"]}))
        .send()
        .await
        .unwrap();
    assert_json(res, 400, json!({"error": "inputs is invalid"})).await;
}
