//! Triggering pipelines exactly as the specification's `curl` commands and real clients do,
//! and every error GitLab answers with, status and body.

use std::path::Path;

use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, local_repo, remote};
use crate::python_gitlab::run_script_as;
use crate::support::{TestApp, assert_json};

both_backends!(
    the_seeds_curl_commands_work_verbatim,
    every_trigger_error_is_gitlabs,
    clients_and_legacy_triggers
);

pub const UPLOAD_CONFIG: &str = r#"stages:
  - test
  - build
  - package

run_tests:
  stage: test
  script:
    - make test

build_package:
  stage: build
  script:
    - make build

upload_package:
  stage: package
  script:
    - if [ -n "${UPLOAD_TO_S3}" ]; then make upload; fi
"#;

/// A project `root/<name>` whose `main` holds the seeds' three-stage config, with extra
/// branches for the error cases. Returns (project id, trigger token, main's sha).
pub async fn triggerable_project(app: &TestApp, name: &str, tmp: &Path) -> (i64, String, String) {
    let project = app.create_project(&app.root_token, name).await;
    let id = project["id"].as_i64().unwrap();
    let work = local_repo(tmp, UPLOAD_CONFIG);
    let home = tmp;
    let branch = |name: &str, file: Option<&str>, message: &str| {
        git_ok(&work, home, &["checkout", "-q", "-B", name, "main"]);
        match file {
            Some(content) => std::fs::write(work.join(".gitlab-ci.yml"), content).unwrap(),
            None => {
                git_ok(&work, home, &["rm", "-q", ".gitlab-ci.yml"]);
            }
        }
        git_ok(
            &work,
            home,
            &["commit", "-q", "-a", "--allow-empty", "-m", message],
        );
    };
    branch("no-ci", None, "Remove CI");
    branch(
        "filtered",
        Some("job:\n  script: x\n  rules:\n    - if: $NOPE\n"),
        "Filtered",
    );
    branch(
        "workflow",
        Some(
            "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"trigger\"\n      when: never\n    - when: always\njob:\n  script: x\n",
        ),
        "Workflow",
    );
    branch("broken", Some("job:\n  scrpt: x\n"), "Broken");
    branch("skip", Some(UPLOAD_CONFIG), "Do not build [skip ci]");
    branch("twin", Some(UPLOAD_CONFIG), "Twin");
    branch(
        "exists",
        Some(
            "docker:\n  script: x\n  rules:\n    - exists: [Dockerfile]\nmake:\n  script: y\n  rules:\n    - exists: [\"*.gitlab-ci.yml\", \".gitlab-ci.yml\"]\n",
        ),
        "Exists",
    );
    git_ok(&work, home, &["checkout", "-q", "main"]);
    git_ok(&work, home, &["tag", "twin"]);
    git_ok(&work, home, &["tag", "v1.0"]);
    let url = remote(app, "root", &app.root_token, &format!("root/{name}"));
    git_ok(&work, home, &["push", "-q", "-o", "ci.skip", &url, "--all"]);
    git_ok(
        &work,
        home,
        &["push", "-q", "-o", "ci.skip", &url, "--tags"],
    );
    let sha = git_ok(&work, home, &["rev-parse", "main"])
        .trim()
        .to_string();
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&app.root_token),
            json!({"description": "seed"}),
        )
        .await;
    let trigger: Value = res.json().await.unwrap();
    (id, trigger["token"].as_str().unwrap().to_string(), sha)
}

/// Runs curl with the given arguments; returns (status, body).
pub fn curl(args: &[&str]) -> (u16, Value) {
    let out = std::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--globoff",
            "--write-out",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
}

async fn variables_of(app: &TestApp, project: i64, pipeline: &Value) -> Vec<Value> {
    let id = pipeline["id"].as_i64().unwrap();
    app.get(
        &format!("/projects/{project}/pipelines/{id}/variables"),
        Some(&app.root_token),
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn the_seeds_curl_commands_work_verbatim(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, sha) = triggerable_project(&app, "seeded", tmp.path()).await;
    let base = format!("{}/api/v4/projects/{id}/trigger/pipeline", app.url);

    // 1. --form token=TOKEN --form ref=main
    let (status, p) = curl(&[
        "--request",
        "POST",
        "--form",
        &format!("token={token}"),
        "--form",
        "ref=main",
        &base,
    ]);
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["source"], "trigger");
    assert_eq!(p["ref"], "main");
    assert_eq!(p["sha"], sha);
    assert_eq!(p["status"], "created");
    assert_eq!(p["tag"], false);
    assert_eq!(p["before_sha"], "0000000000000000000000000000000000000000");
    assert_eq!(p["project_id"], id);
    assert_eq!(p["iid"], 1);
    assert_eq!(p["user"]["username"], "root");
    assert_eq!(p["yaml_errors"], Value::Null);
    assert_eq!(
        p["web_url"],
        format!("{}/root/seeded/-/pipelines/{}", app.url, p["id"])
    );
    assert_eq!(p["detailed_status"]["group"], "created");
    // The response is the pipeline before processing, as GitLab answers; processed, it waits
    // for a runner: `pending`.
    let stored: Value = app
        .root_json(&format!("/projects/{id}/pipelines/{}", p["id"]))
        .await;
    assert_eq!(stored["status"], "pending");
    assert_eq!(
        p["detailed_status"]["details_path"],
        format!("/root/seeded/-/pipelines/{}", p["id"])
    );
    for key in [
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "committed_at",
        "duration",
        "queued_duration",
        "coverage",
    ] {
        assert!(p.get(key).is_some(), "pipeline JSON lacks {key}");
    }
    let jobs: Vec<Value> = app
        .get(
            &format!("/projects/{id}/pipelines/{}/jobs", p["id"]),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["run_tests", "build_package", "upload_package"]);
    assert_eq!(jobs[0]["status"], "pending");
    assert_eq!(jobs[1]["status"], "created");
    assert_eq!(jobs[0]["pipeline"]["id"], p["id"]);
    assert_eq!(jobs[0]["stage"], "test");
    let job: Value = app
        .get(
            &format!("/projects/{id}/jobs/{}", jobs[2]["id"]),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["name"], "upload_package");
    assert_eq!(job["commit"]["id"], sha);
    // TRIGGER_PAYLOAD is always there, as a file variable of the parameters without the token.
    let vars = variables_of(&app, id, &p).await;
    let payload = vars.iter().find(|v| v["key"] == "TRIGGER_PAYLOAD").unwrap();
    assert_eq!(payload["variable_type"], "file");
    let payload: Value = serde_json::from_str(payload["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({"ref": "main", "id": id.to_string(), "variables": {}})
    );

    // 2. token and ref in the query string.
    let (status, p2) = curl(&[
        "--request",
        "POST",
        &format!("{base}?token={token}&ref=main"),
    ]);
    assert_eq!(status, 201, "{p2}");
    assert_eq!(p2["iid"], 2);

    // 3. variables[UPLOAD_TO_S3]=true as a form field.
    let (status, p3) = curl(&[
        "--request",
        "POST",
        "--form",
        &format!("token={token}"),
        "--form",
        "ref=main",
        "--form",
        "variables[UPLOAD_TO_S3]=true",
        &base,
    ]);
    assert_eq!(status, 201, "{p3}");
    let vars = variables_of(&app, id, &p3).await;
    assert!(vars.iter().any(|v| v["key"] == "UPLOAD_TO_S3"
        && v["value"] == "true"
        && v["variable_type"] == "env_var"));

    // 4. The webhook URL with variables in the query; the URL's ref wins over the body's.
    let hook = format!(
        "{}/api/v4/projects/{id}/ref/main/trigger/pipeline?token={token}&variables[UPLOAD_TO_S3]=true",
        app.url
    );
    let body = r#"{"object_kind":"push","ref":"refs/heads/other","checkout_sha":"abc","project":{"path_with_namespace":"group/a"}}"#;
    let (status, p4) = curl(&[
        "--request",
        "POST",
        "--header",
        "Content-Type: application/json",
        "--header",
        "X-Gitlab-Event: Push Hook",
        "--data",
        body,
        &hook,
    ]);
    assert_eq!(status, 201, "{p4}");
    assert_eq!(p4["ref"], "main");
    let vars = variables_of(&app, id, &p4).await;
    assert!(
        vars.iter()
            .any(|v| v["key"] == "UPLOAD_TO_S3" && v["value"] == "true")
    );
    let payload: Value = serde_json::from_str(
        vars.iter().find(|v| v["key"] == "TRIGGER_PAYLOAD").unwrap()["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["object_kind"], "push");
    assert_eq!(payload["ref"], "main");
    assert_eq!(payload["checkout_sha"], "abc");
    assert!(payload.get("token").is_none());
    // Refs with slashes, encoded or raw, and tags.
    let (status, p5) = curl(&[
        "--request",
        "POST",
        &format!(
            "{}/api/v4/projects/{id}/ref/v1.0/trigger/pipeline?token={token}",
            app.url
        ),
    ]);
    assert_eq!((status, p5["tag"].clone()), (201, json!(true)), "{p5}");

    // 5. Seed 002: variables as form fields, token and ref in the query.
    let (status, p6) = curl(&[
        "--request",
        "POST",
        "--form",
        "variables[VAR1]=value1",
        "--form",
        "variables[VAR2]=value2",
        &format!("{base}?token={token}&ref=main"),
    ]);
    assert_eq!(status, 201, "{p6}");
    let vars = variables_of(&app, id, &p6).await;
    let keys: Vec<&str> = vars.iter().map(|v| v["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["VAR1", "VAR2", "TRIGGER_PAYLOAD"]);

    // 6. `--fail` with the token from a (masked) variable, and the project path instead of id.
    let by_path = format!("{}/api/v4/projects/root%2Fseeded/trigger/pipeline", app.url);
    let (status, _) = curl(&[
        "--fail",
        "--request",
        "POST",
        "--form",
        &format!("token={token}"),
        "--form",
        "ref=main",
        &by_path,
    ]);
    assert_eq!(status, 201);

    // The trigger-token CRUD curls from seed 002.
    let auth = format!("PRIVATE-TOKEN: {}", app.root_token);
    let triggers = format!("{}/api/v4/projects/{id}/triggers", app.url);
    let (status, created) = curl(&[
        "--request",
        "POST",
        "--header",
        &auth,
        "--form",
        "description=my description",
        &triggers,
    ]);
    assert_eq!(
        (status, created["description"].clone()),
        (201, json!("my description"))
    );
    let tid = created["id"].as_i64().unwrap();
    let (status, list) = curl(&["--header", &auth, &triggers]);
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(2)));
    // `last_used` is the time the token last created a pipeline.
    assert!(list[0]["last_used"].is_string(), "{list}");
    assert_eq!(list[1]["last_used"], Value::Null);
    let (status, _) = curl(&["--header", &auth, &format!("{triggers}/{tid}")]);
    assert_eq!(status, 200);
    let (status, updated) = curl(&[
        "--request",
        "PUT",
        "--header",
        &auth,
        "--form",
        "description=my description 2",
        &format!("{triggers}/{tid}"),
    ]);
    assert_eq!(
        (status, updated["description"].clone()),
        (200, json!("my description 2"))
    );
    let (status, _) = curl(&[
        "--request",
        "DELETE",
        "--header",
        &auth,
        &format!("{triggers}/{tid}"),
    ]);
    assert_eq!(status, 204);

    // Reading them back: list filters and latest.
    let list: Vec<Value> = app
        .get(
            &format!("/projects/{id}/pipelines?source=trigger&ref=main"),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 6);
    let latest: Value = app
        .get(
            &format!("/projects/{id}/pipelines/latest?ref=main"),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(latest["id"], list[0]["id"]);
}

async fn every_trigger_error_is_gitlabs(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, sha) = triggerable_project(&app, "errors", tmp.path()).await;
    let post = |query: String, body: Value| {
        let client = app.client.clone();
        let url = format!("{}/api/v4/projects/{query}", app.url);
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let path = format!("{id}/trigger/pipeline");
    let not_found = json!({"message": "404 Not Found"});
    let base = |msg: &str| json!({"message": {"base": [msg]}});

    assert_json(
        post(path.clone(), json!({"ref": "main"})).await,
        400,
        json!({"error": "token is missing"}),
    )
    .await;
    assert_json(
        post(path.clone(), json!({"token": token})).await,
        400,
        json!({"error": "ref is missing"}),
    )
    .await;
    assert_json(
        post(path.clone(), json!({})).await,
        400,
        json!({"error": "ref is missing, token is missing"}),
    )
    .await;
    assert_json(
        post(path.clone(), json!({"token": token, "ref": ""})).await,
        400,
        json!({"error": "ref is empty"}),
    )
    .await;
    assert_json(
        post(
            path.clone(),
            json!({"token": token, "ref": "main", "variables": "value"}),
        )
        .await,
        400,
        json!({"error": "variables is invalid"}),
    )
    .await;
    assert_json(
        post(
            path.clone(),
            json!({"token": token, "ref": "main", "variables": {"A": 1}}),
        )
        .await,
        400,
        json!({"message": "variables needs to be a map of key-valued strings"}),
    )
    .await;
    let hooked = app
        .client
        .post(format!("{}/api/v4/projects/{path}", app.url))
        .header("X-Gitlab-Event", "Pipeline Hook")
        .json(&json!({"token": token, "ref": "main"}))
        .send()
        .await
        .unwrap();
    assert_json(hooked, 403, json!({"message": "403 Forbidden"})).await;
    assert_json(
        post(
            "424242/trigger/pipeline".into(),
            json!({"token": token, "ref": "main"}),
        )
        .await,
        404,
        not_found.clone(),
    )
    .await;
    assert_json(
        post(
            path.clone(),
            json!({"token": "glptt-0000000000000000000000000000000000000000", "ref": "main"}),
        )
        .await,
        404,
        not_found.clone(),
    )
    .await;
    assert_json(
        post(
            path.clone(),
            json!({"token": app.root_token, "ref": "main"}),
        )
        .await,
        404,
        not_found.clone(),
    )
    .await;
    // Another project's token.
    let other = app.create_project(&app.root_token, "other").await;
    let res = app
        .post(
            &format!("/projects/{}/triggers", other["id"]),
            Some(&app.root_token),
            json!({"description": "x"}),
        )
        .await;
    let other_token: Value = res.json().await.unwrap();
    assert_json(
        post(
            path.clone(),
            json!({"token": other_token["token"], "ref": "main"}),
        )
        .await,
        404,
        not_found.clone(),
    )
    .await;

    // Refs.
    assert_json(
        post(path.clone(), json!({"token": token, "ref": sha})).await,
        400,
        base("Reference not found"),
    )
    .await;
    assert_json(
        post(path.clone(), json!({"token": token, "ref": "nope"})).await,
        400,
        base("Reference not found"),
    )
    .await;
    assert_json(
        post(path.clone(), json!({"token": token, "ref": "twin"})).await,
        400,
        base("Ref is ambiguous"),
    )
    .await;
    let res = post(
        path.clone(),
        json!({"token": token, "ref": "refs/heads/twin"}),
    )
    .await;
    assert_eq!(res.status(), 201, "a full ref disambiguates");
    // Config outcomes.
    assert_json(
        post(path.clone(), json!({"token": token, "ref": "no-ci"})).await,
        400,
        base("Missing CI config file"),
    )
    .await;
    assert_json(
        post(path.clone(), json!({"token": token, "ref": "filtered"})).await,
        400,
        base("No stages / jobs for this pipeline."),
    )
    .await;
    assert_json(
        post(path.clone(), json!({"token": token, "ref": "workflow"})).await,
        400,
        base("Pipeline filtered out by workflow rules."),
    )
    .await;
    assert_json(
        post(path.clone(), json!({"token": token, "ref": "broken"})).await,
        422,
        base("jobs:job config contains unknown keys: scrpt"),
    )
    .await;
    let failed: Vec<Value> = app
        .get(
            &format!("/projects/{id}/pipelines?status=failed"),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        failed.len(),
        1,
        "a config error is saved as a failed pipeline"
    );
    let failed: Value = app
        .get(
            &format!("/projects/{id}/pipelines/{}", failed[0]["id"]),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        failed["yaml_errors"],
        "jobs:job config contains unknown keys: scrpt"
    );
    // TRIGGER_PAYLOAD has a size limit.
    let big = json!({"token": token, "ref": "main", "padding": "x".repeat(1024 * 1024)});
    assert_json(
        post(path.clone(), big).await,
        400,
        json!({"message": "400 Bad request - TRIGGER_PAYLOAD is larger than 1048576 bytes"}),
    )
    .await;
    // `rules:exists` looks at the commit's files.
    let res = post(path.clone(), json!({"token": token, "ref": "exists"})).await;
    assert_eq!(res.status(), 201);
    let p: Value = res.json().await.unwrap();
    let jobs: Vec<Value> = app
        .get(
            &format!("/projects/{id}/pipelines/{}/jobs", p["id"]),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        jobs.iter()
            .map(|j| j["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["make"]
    );
    // [skip ci] does not stop a triggered pipeline.
    assert_eq!(
        post(path.clone(), json!({"token": token, "ref": "skip"}))
            .await
            .status(),
        201
    );
    // TRIGGER_PAYLOAD is reserved.
    assert_json(
        post(
            path.clone(),
            json!({"token": token, "ref": "main", "variables": {"TRIGGER_PAYLOAD": "x"}}),
        )
        .await,
        400,
        base("Duplicate variable name: TRIGGER_PAYLOAD"),
    )
    .await;

    // The owner's permissions: a Maintainer's token stops when they are demoted, blocked or
    // removed; on the protected default branch a Developer may not run pipelines.
    let (maint_id, maint) = app.create_user("maint").await;
    app.add_member(id, maint_id, 40).await;
    let res = app
        .post(
            &format!("/projects/{id}/triggers"),
            Some(&maint),
            json!({"description": "m"}),
        )
        .await;
    let mtoken = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        post(path.clone(), json!({"token": mtoken, "ref": "main"}))
            .await
            .status(),
        201
    );
    let member_path = format!("/projects/{id}/members/{maint_id}");
    let set_level = |level: i64| {
        app.request(
            reqwest::Method::PUT,
            &member_path,
            Some(&app.root_token),
            Some(json!({"access_level": level})),
        )
    };
    assert_eq!(set_level(30).await.status(), 200);
    assert_json(
        post(path.clone(), json!({"token": mtoken, "ref": "main"})).await,
        400,
        base("You do not have sufficient permission to run a pipeline on 'main'. Please select a different branch or contact your administrator for assistance."),
    )
    .await;
    assert_eq!(
        post(path.clone(), json!({"token": mtoken, "ref": "twin"}))
            .await
            .status(),
        400,
        "ambiguous still"
    );
    assert_eq!(
        post(path.clone(), json!({"token": mtoken, "ref": "filtered"}))
            .await
            .status(),
        400
    );
    assert_eq!(
        post(path.clone(), json!({"token": mtoken, "ref": "v1.0"}))
            .await
            .status(),
        201,
        "unprotected refs are fine"
    );
    assert_eq!(set_level(20).await.status(), 200);
    assert_json(
        post(path.clone(), json!({"token": mtoken, "ref": "v1.0"})).await,
        400,
        base("Insufficient permissions to create a new pipeline"),
    )
    .await;
    assert_eq!(set_level(40).await.status(), 200);
    assert_eq!(
        app.post(
            &format!("/users/{maint_id}/block"),
            Some(&app.root_token),
            json!({})
        )
        .await
        .status(),
        201
    );
    assert_json(
        post(path.clone(), json!({"token": mtoken, "ref": "main"})).await,
        400,
        base("Insufficient permissions to create a new pipeline"),
    )
    .await;
    assert_eq!(
        app.post(
            &format!("/users/{maint_id}/unblock"),
            Some(&app.root_token),
            json!({})
        )
        .await
        .status(),
        201
    );
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("/projects/{id}/members/{maint_id}"),
            Some(&app.root_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_json(
        post(path.clone(), json!({"token": mtoken, "ref": "main"})).await,
        400,
        base("Insufficient permissions to create a new pipeline"),
    )
    .await;

    // Revoked and expired tokens are unknown tokens.
    let list: Vec<Value> = app
        .get(&format!("/projects/{id}/triggers"), Some(&app.root_token))
        .await
        .json()
        .await
        .unwrap();
    let seed = list.iter().find(|t| t["token"] == token).unwrap();
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("/projects/{id}/triggers/{}", seed["id"]),
            Some(&app.root_token),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_json(
        post(path.clone(), json!({"token": token, "ref": "main"})).await,
        404,
        not_found.clone(),
    )
    .await;
    let expired = "glptt-expiredexpiredexpiredexpiredexpired00";
    app.store
        .create_trigger(&pipewright_store::NewTrigger {
            project_id: id,
            owner_id: Some(1),
            legacy: false,
            description: "old".into(),
            token_digest: pipewright_server::secrets::token_digest(expired),
            token_sealed: "00".into(),
            short_token: "expi".into(),
            expires_at: Some(pipewright_core::Timestamp(
                pipewright_core::Timestamp::now().millis() - 1,
            )),
            restrictions: Default::default(),
        })
        .await
        .unwrap();
    assert_json(
        post(path, json!({"token": expired, "ref": "main"})).await,
        404,
        not_found,
    )
    .await;
}

async fn clients_and_legacy_triggers(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, token, _) = triggerable_project(&app, "clients", tmp.path()).await;
    // gitbeaker: token and ref in the query, variables as multipart parts, a stray field.
    let form = reqwest::multipart::Form::new()
        .text("variables[CI_FOO]", "bar")
        .text("variables[Y Z]", "a")
        .text("b", "c")
        .percent_encode_noop();
    let res = app
        .client
        .post(format!(
            "{}/api/v4/projects/root%2Fclients/trigger/pipeline?token={token}&ref=main",
            app.url
        ))
        .multipart(form)
        .send()
        .await
        .unwrap();
    // `Y Z` is not a valid variable name.
    assert_eq!(res.status(), 400);
    let form = reqwest::multipart::Form::new()
        .text("variables[CI_FOO]", "bar")
        .text("b", "c");
    let res = app
        .client
        .post(format!(
            "{}/api/v4/projects/root%2Fclients/trigger/pipeline?token={token}&ref=main",
            app.url
        ))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // Perl's GitLab::API::v4 sends literal `variables[K]` keys in JSON.
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": token, "ref": "main", "variables[UPLOAD_TO_S3]": "true"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let p: Value = res.json().await.unwrap();
    let vars: Vec<Value> = app
        .get(
            &format!("/projects/{id}/pipelines/{}/variables", p["id"]),
            Some(&app.root_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(vars.iter().any(|v| v["key"] == "UPLOAD_TO_S3"));
    // Only Maintainers see variable values.
    let (dev_id, dev) = app.create_user("dev").await;
    app.add_member(id, dev_id, 30).await;
    let res = app
        .get(
            &format!("/projects/{id}/pipelines/{}/variables", p["id"]),
            Some(&dev),
        )
        .await;
    assert_eq!(res.status(), 403);
    // POST /projects/:id/pipeline (source api) shares the creation chain.
    let res = app
        .post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "main", "variables": [{"key": "UPLOAD_TO_S3", "value": "true"}]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let api: Value = res.json().await.unwrap();
    assert_eq!(api["source"], "api");
    assert_json(
        app.post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({}),
        )
        .await,
        400,
        json!({"error": "ref is missing"}),
    )
    .await;
    assert_json(
        app.post(
            &format!("/projects/{id}/pipeline"),
            Some(&app.root_token),
            json!({"ref": "no-ci"}),
        )
        .await,
        400,
        json!({"message": {"base": ["Missing CI config file"]}}),
    )
    .await;

    // Deleting a pipeline: Owners only; afterwards it is gone.
    let path = format!("/projects/{id}/pipelines/{}", api["id"]);
    assert_eq!(
        app.request(reqwest::Method::DELETE, &path, Some(&dev), None)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.request(reqwest::Method::DELETE, &path, Some(&app.root_token), None)
            .await
            .status(),
        204
    );
    assert_json(
        app.get(&path, Some(&app.root_token)).await,
        404,
        json!({"message": "404 Not Found"}),
    )
    .await;

    // A legacy trigger (no owner) runs with no user on unprotected refs only.
    let legacy = "6d056f63e50fe6f8c5f8f4aa10edb7";
    app.store
        .create_trigger(&pipewright_store::NewTrigger {
            project_id: id,
            owner_id: None,
            legacy: true,
            description: "legacy".into(),
            token_digest: pipewright_server::secrets::token_digest(legacy),
            token_sealed: "00".into(),
            short_token: "6d05".into(),
            expires_at: None,
            restrictions: Default::default(),
        })
        .await
        .unwrap();
    let res = app
        .post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": legacy, "ref": "v1.0"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["user"], Value::Null);
    assert_json(
        app.post(
            &format!("/projects/{id}/trigger/pipeline"),
            None,
            json!({"token": legacy, "ref": "main"}),
        )
        .await,
        400,
        json!({"message": {"base": ["Insufficient permissions to create a new pipeline"]}}),
    )
    .await;

    // python-gitlab's trigger_pipeline (JSON with variables and inputs).
    run_script_as(
        &app,
        "trigger_pipeline.py",
        &[("PROJECT_ID", id.to_string()), ("TRIGGER_TOKEN", token)],
    )
    .await;
}

both_backends!(the_ci_lint_api);

async fn the_ci_lint_api(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let (id, _, _) = triggerable_project(&app, "linted", tmp.path()).await;
    let root = Some(app.root_token.as_str());
    let res = app
        .post(
            &format!("/projects/{id}/ci/lint"),
            root,
            json!({"content": UPLOAD_CONFIG, "include_jobs": true}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["valid"], true);
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(3));
    // Each job as GitLab's lint lists it (lib/gitlab/ci/lint.rb): scripts, tags, environment.
    assert_eq!(
        body["jobs"][0],
        json!({"name": "run_tests", "stage": "test", "before_script": [],
            "script": ["make test"], "after_script": [], "tag_list": [], "environment": null,
            "when": "on_success", "allow_failure": false, "needs": []})
    );
    // Linting given content is for who may create pipelines (GitLab: `authorize!
    // :create_pipeline`): a Reporter is refused.
    let (reporter_id, reporter) = app.create_user("reporter").await;
    app.add_member(id, reporter_id, 20).await;
    let res = app
        .post(
            &format!("/projects/{id}/ci/lint"),
            Some(&reporter),
            json!({"content": UPLOAD_CONFIG}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .get(&format!("/projects/{id}/ci/lint"), Some(&reporter))
        .await;
    assert_eq!(
        res.status(),
        200,
        "reading the project's own config is reading code"
    );
    // What Pipewright accepts but ignores is named in `warnings` (docs/gitlab-compatibility.md).
    let ignored = "job:\n  script: x\n  cache: {paths: [vendor/]}\n";
    let body: Value = app
        .post(
            &format!("/projects/{id}/ci/lint"),
            root,
            json!({"content": ignored}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["valid"], true);
    assert_eq!(
        body["warnings"],
        json!(["`cache` is ignored (Pipewright sends no caches to runners): jobs:job"])
    );
    let res = app
        .post(
            &format!("/projects/{id}/ci/lint"),
            root,
            json!({"content": "job:\n  scrpt: x\n"}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["valid"], false);
    assert_eq!(
        body["errors"][0],
        "jobs:job config contains unknown keys: scrpt (in .gitlab-ci.yml at line 2, column 3)"
    );
    assert_json(
        app.post(&format!("/projects/{id}/ci/lint"), root, json!({}))
            .await,
        400,
        json!({"error": "content is missing"}),
    )
    .await;
    let at_main: Value = app
        .get(&format!("/projects/{id}/ci/lint?ref=main"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(at_main["valid"], true);
    // The config comes from `content_ref` (or the deprecated `sha`); `ref` and `dry_run_ref`
    // only say which ref it is planned for (GitLab: lib/api/lint.rb).
    let broken: Value = app
        .get(&format!("/projects/{id}/ci/lint?content_ref=broken"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(broken["valid"], false);
    let planned: Value = app
        .get(&format!("/projects/{id}/ci/lint?ref=broken"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        planned["valid"], true,
        "main's config, planned for `broken`"
    );
    for (query, message) in [
        (
            "sha=main&content_ref=main",
            "sha, content_ref are mutually exclusive",
        ),
        (
            "ref=main&dry_run_ref=main",
            "ref, dry_run_ref are mutually exclusive",
        ),
    ] {
        assert_json(
            app.get(&format!("/projects/{id}/ci/lint?{query}"), root)
                .await,
            400,
            json!({"error": message}),
        )
        .await;
    }
    assert_json(
        app.get(&format!("/projects/{id}/ci/lint?content_ref=nope"), root)
            .await,
        404,
        json!({"message": "404 Commit Not Found"}),
    )
    .await;
    let empty = app.create_project(&app.root_token, "empty").await;
    assert_json(
        app.get(&format!("/projects/{}/ci/lint", empty["id"]), root)
            .await,
        404,
        json!({"message": "404 Repository Not Found"}),
    )
    .await;
    let none: Value = app
        .get(&format!("/projects/{id}/ci/lint?sha=no-ci"), root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        none["errors"][0],
        "Please provide content of .gitlab-ci.yml"
    );
}

mod rate_limit {
    use super::*;
    use crate::support::Backend;

    async fn scenario(backend: Backend) {
        let app = TestApp::start_with(backend, |c| c.pipeline_limit_per_project_user_sha = 2).await;
        let tmp = tempfile::tempdir().unwrap();
        let (id, token, _) = triggerable_project(&app, "limited", tmp.path()).await;
        let path = format!("/projects/{id}/trigger/pipeline");
        for _ in 0..2 {
            assert_eq!(
                app.post(&path, None, json!({"token": token, "ref": "main"}))
                    .await
                    .status(),
                201
            );
        }
        assert_json(
            app.post(&path, None, json!({"token": token, "ref": "main"})).await,
            400,
            json!({"message": {"base": ["Too many pipelines created in the last minute. Try again later."]}}),
        )
        .await;
        // Another commit is another bucket.
        assert_eq!(
            app.post(&path, None, json!({"token": token, "ref": "filtered"}))
                .await
                .status(),
            400
        );
        assert_eq!(
            app.post(&path, None, json!({"token": token, "ref": "skip"}))
                .await
                .status(),
            201
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        scenario(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        scenario(Backend::Postgres).await
    }
}

both_backends!(concurrent_pipeline_creation_is_atomic_per_pipeline);

/// Many pipelines created at once (the SQLite writer commits them in batches): each gets its
/// own iid, and one that cannot be written (its project is gone) fails alone.
async fn concurrent_pipeline_creation_is_atomic_per_pipeline(app: TestApp) {
    let project = app.create_project(&app.root_token, "busy").await;
    let id = project["id"].as_i64().unwrap();
    let new = |project_id: i64| pipewright_store::NewPipeline {
        project_id,
        sha: "a".repeat(40),
        before_sha: "0".repeat(40),
        ref_name: "main".into(),
        tag: false,
        protected_ref: false,
        source: pipewright_core::PipelineSource::Api,
        status: pipewright_core::Status::Created,
        user_id: None,
        trigger_id: None,
        trigger_short_token: None,
        upstream: None,
        name: None,
        yaml_errors: None,
        failure_reason: None,
        committed_at: None,
        variables: Vec::new(),
        jobs: vec![pipewright_store::NewJob {
            name: "job".into(),
            stage: "test".into(),
            stage_idx: 1,
            status: pipewright_core::Status::Pending,
            when: "on_success".into(),
            allow_failure: false,
            spec: "{}".into(),
        }],
    };
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = app.store.clone();
        let pipeline = new(if i == 17 { 999_999 } else { id });
        tasks.push(tokio::spawn(async move {
            store.create_pipeline(&pipeline).await
        }));
    }
    let mut iids = Vec::new();
    let mut failures = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => iids.push(p.iid),
            Err(_) => failures += 1,
        }
    }
    iids.sort_unstable();
    assert_eq!(failures, 1);
    assert_eq!(iids, (1..=39).collect::<Vec<i64>>());
}
