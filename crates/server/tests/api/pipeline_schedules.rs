//! Pipeline schedules, as GitLab's API answers them: CRUD and its errors, who may edit, play
//! and take over, a played schedule running its `schedule` jobs with its variables, the
//! scheduler running each due tick once (with two replicas on one PostgreSQL, and after a
//! restart that missed ticks), owners who lost access, CI/CD `inputs` (GitLab 17.11), and
//! python-gitlab's `project.pipelineschedules` unmodified.

use pipewright_core::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::git::{git_ok, remote};
use crate::python_gitlab::run_script_as;
use crate::running::{finished_pipeline, job_log, project_in, start_runner, wait_for};
use crate::support::{Backend, TestApp, assert_json};
use crate::web::Browser;

both_backends!(
    schedules_are_created_read_edited_and_deleted_as_gitlab_answers,
    gitlab_permissions_decide_who_edits_plays_and_takes_over,
    a_played_schedule_runs_its_schedule_jobs_with_its_variables,
    a_schedule_on_a_broken_config_creates_no_pipeline,
    a_schedule_with_inputs_runs_its_pipeline_with_them,
    a_tick_missed_while_the_server_was_down_runs_once_at_start,
    a_schedule_whose_owner_lost_access_is_deactivated_not_run,
    pipeline_schedules_through_python_gitlab,
    the_schedules_page_creates_edits_plays_takes_over_and_deletes,
);

/// Jobs for schedules only, one for everything else, and what a scheduled job sees.
const CONFIG: &str = r#"
scheduled:
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
  script:
    - echo "source=$CI_PIPELINE_SOURCE greeting=$GREETING user=$GITLAB_USER_LOGIN"
    - cat "$SETTINGS"
nightly:
  only: [schedules]
  script: echo only-schedules
pushed:
  except: [schedules]
  script: echo not-for-schedules
"#;

/// A yearly pattern: a schedule with it never comes due during a test unless told to.
const YEARLY: &str = "0 4 1 1 *";

fn schedules(id: i64) -> String {
    format!("/projects/{id}/pipeline_schedules")
}

async fn create(app: &TestApp, token: &str, project: i64, body: Value) -> Value {
    let res = app.post(&schedules(project), Some(token), body).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> (u16, Value) {
    let res = app.request(method, path, Some(token), Some(body)).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Makes the schedule's next run come due `ago_ms` in the past, through the store's own claim
/// (what a server that was down would find).
async fn make_due(app: &TestApp, project: i64, schedule: i64, ago_ms: i64) {
    let current = app
        .store
        .pipeline_schedule(project, schedule)
        .await
        .unwrap()
        .unwrap();
    let due = Timestamp(Timestamp::now().millis() - ago_ms);
    let moved = app
        .store
        .claim_pipeline_schedule_run(schedule, current.next_run_at.unwrap(), Some(due))
        .await
        .unwrap();
    assert!(
        moved,
        "the schedule is active and was not claimed meanwhile"
    );
}

fn id_of(schedule: &Value) -> i64 {
    schedule["id"].as_i64().unwrap()
}

async fn status_of(app: &TestApp, token: &str, method: Method, path: &str, body: Value) -> u16 {
    call(app, method, path, token, body).await.0
}

/// Waits (a minute at most) until `server` lists a pipeline of the schedule; asks with
/// `token` (a replica's own root token is not root's: root existed before it started).
async fn wait_for_a_pipeline(server: &TestApp, token: &str, project: i64, schedule: i64) {
    let path = format!("{}/{schedule}/pipelines", schedules(project));
    for _ in 0..600 {
        let listed: Value = server.get(&path, Some(token)).await.json().await.unwrap();
        if listed.as_array().is_some_and(|l| !l.is_empty()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no pipeline for schedule {schedule}");
}

async fn schedule_pipelines(app: &TestApp, project: i64, schedule: i64) -> Vec<Value> {
    app.root_json(&format!("{}/{schedule}/pipelines", schedules(project)))
        .await
}

async fn schedules_are_created_read_edited_and_deleted_as_gitlab_answers(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "crud", CONFIG, tmp.path()).await;
    let root = app.root_token.clone();
    let work = tmp.path().join("crud/work");
    git_ok(&work, tmp.path(), &["tag", "v1"]);
    let url = remote(&app, "root", &root, "root/crud");
    git_ok(
        &work,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "v1"],
    );

    // A short ref is stored as the full ref it names; a full one as given.
    let nightly = create(
        &app,
        &root,
        id,
        json!({"description": "nightly", "ref": "main", "cron": " 0 1 * * * "}),
    )
    .await;
    assert_eq!(nightly["ref"], "refs/heads/main");
    assert_eq!(
        nightly["cron"], "0 1 * * *",
        "stripped, as GitLab strips it"
    );
    assert_eq!(nightly["cron_timezone"], "UTC");
    assert_eq!(nightly["active"], true);
    assert_eq!(nightly["owner"]["username"], "root");
    assert_eq!(nightly["last_pipeline"], Value::Null);
    assert_eq!(nightly["inputs"], json!([]));
    assert!(
        nightly.get("variables").is_none(),
        "GitLab presents it without the caller"
    );
    let next = Timestamp::parse(nightly["next_run_at"].as_str().unwrap()).unwrap();
    let in_a_day = Timestamp::now().millis() + 24 * 3600 * 1000;
    assert!(
        next > Timestamp::now() && next.millis() <= in_a_day,
        "{next:?}"
    );
    assert!(
        nightly["next_run_at"]
            .as_str()
            .unwrap()
            .ends_with("T01:00:00.000Z")
    );
    let tagged = create(
        &app,
        &root,
        id,
        json!({"description": "release", "ref": "v1", "cron": "0 9 * * 1",
               "cron_timezone": "Tokyo", "active": false}),
    )
    .await;
    assert_eq!(tagged["ref"], "refs/tags/v1");
    assert_eq!(
        tagged["cron_timezone"], "Tokyo",
        "Rails' names are kept as given"
    );
    // 09:00 in Tokyo is 00:00 UTC.
    assert!(
        tagged["next_run_at"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00.000Z")
    );
    let full = create(
        &app,
        &root,
        id,
        json!({"description": "full", "ref": "refs/heads/main", "cron": "@daily",
               "cron_timezone": "America/New_York"}),
    )
    .await;
    assert_eq!(full["ref"], "refs/heads/main");

    // GitLab's errors: Grape's for parameters, the model's for values.
    let path = schedules(id);
    let post = |body: Value| app.post(&path, Some(&root), body);
    let cases = [
        (
            json!({"ref": "main", "cron": "* * * * *"}),
            json!({"error": "description is missing"}),
        ),
        (
            json!({"description": "d", "ref": "", "cron": "* * * * *"}),
            json!({"error": "ref is empty"}),
        ),
        (
            json!({"description": "d", "ref": "main"}),
            json!({"error": "cron is missing"}),
        ),
        (
            json!({"description": "d", "ref": "main", "cron": "not a cron"}),
            json!({"message": {"cron": ["syntax is invalid"]}}),
        ),
        (
            json!({"description": "d", "ref": "main", "cron": "* * * * *", "cron_timezone": "Mars/Olympus"}),
            json!({"message": {"cron_timezone": ["syntax is invalid"]}}),
        ),
        (
            json!({"description": "d", "ref": "main", "cron": "0 0 30 2 *", "cron_timezone": "nowhere"}),
            json!({"message": {"cron": ["syntax is invalid"], "cron_timezone": ["syntax is invalid"]}}),
        ),
        (
            json!({"description": " ", "ref": "main", "cron": "* * * * *"}),
            json!({"message": {"description": ["can't be blank"]}}),
        ),
        (
            json!({"description": "d", "ref": "no-such-branch", "cron": "* * * * *"}),
            json!({"message": {"ref": ["is ambiguous"]}}),
        ),
        (
            json!({"description": "d", "ref": "main", "cron": "* * * * *", "active": "maybe"}),
            json!({"error": "active is invalid"}),
        ),
    ];
    for (body, expected) in cases {
        assert_json(post(body).await, 400, expected).await;
    }

    // Listing, by scope.
    let ids =
        |list: Vec<Value>| -> Vec<i64> { list.iter().map(|s| s["id"].as_i64().unwrap()).collect() };
    let all: Vec<Value> = app.root_json(&path).await;
    assert_eq!(
        ids(all.clone()),
        [id_of(&nightly), id_of(&tagged), id_of(&full)]
    );
    assert!(
        all[0].get("last_pipeline").is_none(),
        "the list shows the short entity"
    );
    let active: Vec<Value> = app.root_json(&format!("{path}?scope=active")).await;
    assert_eq!(ids(active), [id_of(&nightly), id_of(&full)]);
    let inactive: Vec<Value> = app.root_json(&format!("{path}?scope=inactive")).await;
    assert_eq!(ids(inactive), [tagged["id"].as_i64().unwrap()]);
    assert_json(
        app.get(&format!("{path}?scope=paused"), Some(&root)).await,
        400,
        json!({"error": "scope does not have a valid value"}),
    )
    .await;

    // One schedule, with its variables for its owner.
    let one = format!("{path}/{}", nightly["id"]);
    let shown: Value = app.root_json(&one).await;
    assert_eq!(shown["variables"], json!([]));
    assert_eq!(shown["description"], "nightly");
    assert_json(
        app.get(&format!("{path}/nope"), Some(&root)).await,
        400,
        json!({"error": "pipeline_schedule_id is invalid"}),
    )
    .await;
    assert_json(
        app.get(&format!("{path}/99999"), Some(&root)).await,
        404,
        json!({"message": "404 Pipeline Schedule Not Found"}),
    )
    .await;

    // Editing reschedules when the pattern changes, and validates as creating does.
    let (status, edited) = call(
        &app,
        Method::PUT,
        &one,
        &root,
        json!({"cron": "30 2 * * *"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        edited["next_run_at"]
            .as_str()
            .unwrap()
            .ends_with("T02:30:00.000Z")
    );
    assert_eq!(edited["description"], "nightly");
    let (status, body) = call(
        &app,
        Method::PUT,
        &one,
        &root,
        json!({"cron_timezone": "Atlantis"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": {"cron_timezone": ["syntax is invalid"]}})
        )
    );
    let (status, edited) = call(
        &app,
        Method::PUT,
        &one,
        &root,
        json!({"active": false, "ref": "v1"}),
    )
    .await;
    assert_eq!(
        (status, edited["active"].clone(), edited["ref"].clone()),
        (200, json!(false), json!("refs/tags/v1"))
    );

    // Deleting.
    let res = app.request(Method::DELETE, &one, Some(&root), None).await;
    assert_eq!(res.status(), 204);
    assert_json(
        app.get(&one, Some(&root)).await,
        404,
        json!({"message": "404 Pipeline Schedule Not Found"}),
    )
    .await;
    assert_json(
        app.get(&path, None).await,
        401,
        json!({"message": "401 Unauthorized"}),
    )
    .await;
}

async fn gitlab_permissions_decide_who_edits_plays_and_takes_over(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "perms", CONFIG, tmp.path()).await;
    let mut tokens = std::collections::HashMap::new();
    for (name, level) in [
        ("dev", 30),
        ("dev2", 30),
        ("maint", 40),
        ("reporter", 20),
        ("guest", 10),
    ] {
        let (user, token) = app.create_user(name).await;
        app.add_member(id, user, level).await;
        tokens.insert(name, token);
    }
    let (_, stranger) = app.create_user("stranger").await;
    let t = |name: &str| tokens[name].clone();
    let schedule = create(
        &app,
        &t("dev"),
        id,
        json!({"description": "dev's", "ref": "main", "cron": YEARLY}),
    )
    .await;
    let one = format!("{}/{}", schedules(id), schedule["id"]);

    // Reading: Reporters and up; a Guest of the private project does not find it.
    assert_eq!(
        status_of(&app, &t("reporter"), Method::GET, &schedules(id), json!({})).await,
        200
    );
    let (status, seen) = call(&app, Method::GET, &one, &t("reporter"), json!({})).await;
    assert_eq!(status, 200);
    assert!(
        seen.get("variables").is_none(),
        "a Reporter may not read variables"
    );
    assert_eq!(
        status_of(&app, &t("guest"), Method::GET, &schedules(id), json!({})).await,
        403
    );
    assert_json(
        app.get(&one, Some(&t("guest"))).await,
        404,
        json!({"message": "404 Pipeline Schedule Not Found"}),
    )
    .await;
    assert_json(
        app.get(&one, Some(&stranger)).await,
        404,
        json!({"message": "404 Project Not Found"}),
    )
    .await;
    let body = json!({"description": "x", "ref": "main", "cron": YEARLY});
    assert_eq!(
        status_of(
            &app,
            &t("reporter"),
            Method::POST,
            &schedules(id),
            body.clone()
        )
        .await,
        403
    );

    // Only the owner edits; Maintainers and the owner delete and take over; Developers play.
    let rename = json!({"description": "renamed"});
    assert_eq!(
        status_of(&app, &t("dev2"), Method::PUT, &one, rename.clone()).await,
        403
    );
    assert_eq!(
        status_of(&app, &t("maint"), Method::PUT, &one, rename.clone()).await,
        403
    );
    assert_eq!(
        status_of(&app, &t("dev"), Method::PUT, &one, rename.clone()).await,
        200
    );
    let take = format!("{one}/take_ownership");
    assert_eq!(
        status_of(&app, &t("dev2"), Method::POST, &take, json!({})).await,
        403
    );
    assert_eq!(
        status_of(&app, &t("dev2"), Method::DELETE, &one, json!({})).await,
        403
    );
    assert_eq!(
        status_of(&app, &t("dev"), Method::POST, &take, json!({})).await,
        200,
        "already owned"
    );
    let (status, taken) = call(&app, Method::POST, &take, &t("maint"), json!({})).await;
    assert_eq!(
        (status, taken["owner"]["username"].clone()),
        (201, json!("maint"))
    );
    assert_eq!(
        status_of(&app, &t("dev"), Method::PUT, &one, rename.clone()).await,
        403,
        "no longer the owner"
    );
    assert_eq!(
        status_of(&app, &t("maint"), Method::PUT, &one, rename.clone()).await,
        200
    );
    // Playing needs the right to run pipelines on the ref: `main` is protected (the first
    // push protected it), so a Developer may not, a Maintainer may.
    let play = format!("{one}/play");
    assert_eq!(
        status_of(&app, &t("dev2"), Method::POST, &play, json!({})).await,
        403
    );
    assert_eq!(
        status_of(&app, &t("reporter"), Method::POST, &play, json!({})).await,
        403
    );
    assert_json(
        app.post(&play, Some(&t("maint")), json!({})).await,
        201,
        json!({"message": "201 Created"}),
    )
    .await;

    // Variables: only the owner sets them; Maintainers read and delete them.
    let vars = format!("{one}/variables");
    let var = json!({"key": "TARGET", "value": "prod"});
    assert_eq!(
        status_of(&app, &t("dev"), Method::POST, &vars, var.clone()).await,
        403
    );
    assert_eq!(
        status_of(&app, &t("guest"), Method::POST, &vars, var.clone()).await,
        403
    );
    let (status, created) = call(&app, Method::POST, &vars, &t("maint"), var.clone()).await;
    assert_eq!(
        (status, created),
        (
            201,
            json!({"variable_type": "env_var", "key": "TARGET", "value": "prod", "raw": false})
        )
    );
    assert_json(
        app.post(&vars, Some(&t("maint")), var).await,
        400,
        json!({"message": {"key": ["has already been taken"]}}),
    )
    .await;
    assert_json(
        app.post(
            &vars,
            Some(&t("maint")),
            json!({"key": "BAD-KEY", "value": "v"}),
        )
        .await,
        400,
        json!({"message": {"key": ["can contain only letters, digits and '_'."]}}),
    )
    .await;
    assert_json(
        app.post(
            &vars,
            Some(&t("maint")),
            json!({"key": "K", "value": "v", "variable_type": "secret"}),
        )
        .await,
        400,
        json!({"error": "variable_type does not have a valid value"}),
    )
    .await;
    let target = format!("{vars}/TARGET");
    assert_eq!(
        status_of(&app, &t("reporter"), Method::GET, &target, json!({})).await,
        403
    );
    assert_eq!(
        status_of(&app, &t("maint"), Method::GET, &target, json!({})).await,
        200
    );
    let (status, changed) = call(
        &app,
        Method::PUT,
        &target,
        &t("maint"),
        json!({"value": "staging", "variable_type": "file"}),
    )
    .await;
    assert_eq!(
        (
            status,
            changed["value"].clone(),
            changed["variable_type"].clone()
        ),
        (200, json!("staging"), json!("file"))
    );
    assert_json(
        app.get(&format!("{vars}/NONE"), Some(&t("maint"))).await,
        404,
        json!({"message": "404 Pipeline Schedule Variable Not Found"}),
    )
    .await;
    let (_, shown) = call(&app, Method::GET, &one, &t("maint"), json!({})).await;
    assert_eq!(shown["variables"][0]["value"], "staging");
    let (status, gone) = call(&app, Method::DELETE, &target, &t("maint"), json!({})).await;
    assert_eq!((status, gone["key"].clone()), (202, json!("TARGET")));

    // A Maintainer deletes anyone's schedule.
    assert_eq!(
        status_of(&app, &t("maint"), Method::DELETE, &one, json!({})).await,
        204
    );
}

async fn a_played_schedule_runs_its_schedule_jobs_with_its_variables(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "played", CONFIG, tmp.path()).await;
    let root = app.root_token.clone();
    let (player_id, player) = app.create_user("player").await;
    app.add_member(id, player_id, 40).await;
    let schedule = create(
        &app,
        &root,
        id,
        json!({"description": "nightly", "ref": "main", "cron": YEARLY}),
    )
    .await;
    let sid = schedule["id"].as_i64().unwrap();
    let vars = format!("{}/{sid}/variables", schedules(id));
    for var in [
        json!({"key": "GREETING", "value": "hello from the schedule"}),
        json!({"key": "SETTINGS", "value": "region=eu\n", "variable_type": "file"}),
    ] {
        assert_eq!(app.post(&vars, Some(&root), var).await.status(), 201);
    }
    let before: Value = app.root_json(&format!("{}/{sid}", schedules(id))).await;

    // Played by a Maintainer: the pipeline runs as them (GitLab's play service), now.
    assert_json(
        app.post(
            &format!("{}/{sid}/play", schedules(id)),
            Some(&player),
            json!({}),
        )
        .await,
        201,
        json!({"message": "201 Created"}),
    )
    .await;
    let pipelines = schedule_pipelines(&app, id, sid).await;
    assert_eq!(pipelines.len(), 1);
    assert_eq!(pipelines[0]["source"], "schedule");
    assert_eq!(pipelines[0]["ref"], "main");
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let (done, jobs) = finished_pipeline(&app, id, &pipelines[0]).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let mut names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["nightly", "scheduled"], "only the schedule's jobs");
    let log = job_log(&app, id, &jobs, "scheduled").await;
    assert!(
        log.contains("source=schedule greeting=hello from the schedule user=player"),
        "{log}"
    );
    assert!(
        log.contains("\nregion=eu"),
        "a file variable is a file: {log}"
    );
    runner.abort();

    // The schedule shows it as its last pipeline; its next run is untouched.
    let after: Value = app.root_json(&format!("{}/{sid}", schedules(id))).await;
    assert_eq!(after["last_pipeline"]["id"], pipelines[0]["id"]);
    assert_eq!(after["last_pipeline"]["status"], "success");
    assert_eq!(after["next_run_at"], before["next_run_at"]);
    let listed: Vec<Value> = app
        .root_json(&format!("/projects/{id}/pipelines?source=schedule"))
        .await;
    assert_eq!(listed.len(), 1);
}

/// GitLab: app/workers/run_pipeline_schedule_worker.rb runs the schedule with
/// `save_on_errors: false`: a config that does not parse leaves no failed pipeline behind (a
/// trigger's would), and the schedule keeps its next run.
async fn a_schedule_on_a_broken_config_creates_no_pipeline(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "broken", "build:\n  script: [\n", tmp.path()).await;
    let root = app.root_token.clone();
    let schedule = create(
        &app,
        &root,
        id,
        json!({"description": "nightly", "ref": "main", "cron": YEARLY}),
    )
    .await;
    let sid = schedule["id"].as_i64().unwrap();
    // (The push that made the project may have saved its own failed pipeline: pushes do.)
    let before: Vec<Value> = app.root_json(&format!("/projects/{id}/pipelines")).await;
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{}/{sid}/play", schedules(id)),
        &root,
        json!({}),
    )
    .await;
    assert_eq!(
        status, 201,
        "queued, as GitLab answers whatever becomes of it"
    );
    // The pipeline is created (or not) before play answers.
    let all: Vec<Value> = app.root_json(&format!("/projects/{id}/pipelines")).await;
    assert_eq!(all, before, "no failed pipeline is saved");
    assert!(schedule_pipelines(&app, id, sid).await.is_empty());
    let after: Value = app.root_json(&format!("{}/{sid}", schedules(id))).await;
    assert_eq!(after["last_pipeline"], Value::Null);
}

/// A config with GitLab's `spec:inputs` header; the job echoes what it was given.
const INPUTS_CONFIG: &str = r#"spec:
  inputs:
    environment:
      options: [staging, production]
      default: staging
    replicas:
      type: number
      default: 1
---
deploy:
  script: echo "environment=$[[ inputs.environment ]] replicas=$[[ inputs.replicas ]]"
"#;

/// GitLab 17.11's schedule `inputs` (docs: "Pipeline schedules API", `inputs[][name]`,
/// `inputs[][value]`, `inputs[][destroy]`): kept with the schedule, shown to who may read its
/// variables, passed to its pipelines and checked there against `spec:inputs` as the pipeline
/// API checks them; malformed ones are refused with the model's messages.
async fn a_schedule_with_inputs_runs_its_pipeline_with_them(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "inputs", INPUTS_CONFIG, tmp.path()).await;
    let root = app.root_token.clone();
    // The documented form request.
    let res = app
        .client
        .post(app.api(&schedules(id)))
        .header("PRIVATE-TOKEN", &root)
        .form(&[
            ("description", "deploy"),
            ("ref", "main"),
            ("cron", YEARLY),
            ("inputs[][name]", "environment"),
            ("inputs[][value]", "production"),
            ("inputs[][name]", "replicas"),
            ("inputs[][value]", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let schedule: Value = res.json().await.unwrap();
    let expected = json!([
        {"name": "environment", "value": "production"},
        {"name": "replicas", "value": "2"},
    ]);
    assert_eq!(schedule["inputs"], expected);
    let sid = id_of(&schedule);
    let one = format!("{}/{sid}", schedules(id));
    let shown: Value = app.root_json(&one).await;
    assert_eq!(shown["inputs"], expected);
    // A Reporter reads the schedule but not its inputs (GitLab's docs: Maintainers, Owners
    // and the schedule's owner only).
    let (reporter_id, reporter) = app.create_user("reporter").await;
    app.add_member(id, reporter_id, 20).await;
    let res = app.get(&one, Some(&reporter)).await;
    assert_eq!(res.status(), 200);
    let seen: Value = res.json().await.unwrap();
    assert!(seen.get("inputs").is_none(), "{seen}");

    // Played, the pipeline's job sees the schedule's values.
    let play = format!("{one}/play");
    assert_eq!(app.post(&play, Some(&root), json!({})).await.status(), 201);
    let pipelines = schedule_pipelines(&app, id, sid).await;
    assert_eq!(pipelines.len(), 1);
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;
    let (done, jobs) = finished_pipeline(&app, id, &pipelines[0]).await;
    assert_eq!(done["status"], "success", "{jobs:#?}");
    let log = job_log(&app, id, &jobs, "deploy").await;
    assert!(log.contains("environment=production replicas=2"), "{log}");
    runner.abort();

    // Edited as JSON: one value replaced, one input removed (its default applies again).
    let (status, edited) = call(
        &app,
        Method::PUT,
        &one,
        &root,
        json!({"inputs": [
            {"name": "environment", "value": "staging"},
            {"name": "replicas", "destroy": true},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        edited["inputs"],
        json!([{"name": "environment", "value": "staging"}])
    );

    // Malformed inputs are refused, and nothing changes.
    for (inputs, field, message) in [
        (json!([{"value": "x"}]), "inputs.name", "can't be blank"),
        (
            json!([{"name": "environment"}]),
            "inputs.value",
            "can't be blank",
        ),
        (
            json!([{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]),
            "inputs.name",
            "has already been taken",
        ),
        (
            json!([{"name": "environment", "value": "x".repeat(1100)}]),
            "inputs.value",
            "exceeds max serialized size: 1024 characters",
        ),
    ] {
        let (status, body) = call(&app, Method::PUT, &one, &root, json!({"inputs": inputs})).await;
        assert_eq!(
            (status, body),
            (400, json!({"message": {field: [message]}}))
        );
    }
    let (status, body) = call(
        &app,
        Method::PUT,
        &one,
        &root,
        json!({"inputs": "environment"}),
    )
    .await;
    assert_eq!((status, body), (400, json!({"error": "inputs is invalid"})));
    let shown: Value = app.root_json(&one).await;
    assert_eq!(
        shown["inputs"],
        json!([{"name": "environment", "value": "staging"}])
    );

    // A value the config's `spec:inputs` does not allow fails where the pipeline API's would:
    // the scheduled pipeline is not created (`save_on_errors: false`).
    let (status, _) = call(
        &app,
        Method::PUT,
        &one,
        &root,
        json!({"inputs": [{"name": "environment", "value": "qa"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.post(&play, Some(&root), json!({})).await.status(), 201);
    assert_eq!(
        schedule_pipelines(&app, id, sid).await.len(),
        1,
        "no new pipeline"
    );
}

async fn a_tick_missed_while_the_server_was_down_runs_once_at_start(mut app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "restart", CONFIG, tmp.path()).await;
    let root = app.root_token.clone();
    let schedule = create(
        &app,
        &root,
        id,
        json!({"description": "yearly", "ref": "main", "cron": YEARLY}),
    )
    .await;
    let sid = schedule["id"].as_i64().unwrap();
    app.stop();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Down for three years: three yearly ticks missed.
    make_due(&app, id, sid, 3 * 366 * 24 * 3600 * 1000).await;

    let restarted = app.start_replica().await;
    let path = format!("{}/{sid}/pipelines", schedules(id));
    wait_for_a_pipeline(&restarted, &root, id, sid).await;
    let token = root;
    // A few more scheduler passes (every 100 ms here) change nothing.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let pipelines: Vec<Value> = restarted
        .get(&path, Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        pipelines.len(),
        1,
        "one run for all the missed ticks: {pipelines:#?}"
    );
    assert_eq!(pipelines[0]["source"], "schedule");
    let now: Value = restarted
        .get(&format!("{}/{sid}", schedules(id)), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let next = Timestamp::parse(now["next_run_at"].as_str().unwrap()).unwrap();
    assert!(
        next > Timestamp::now(),
        "the next run is the next future tick"
    );
    assert!(
        now["next_run_at"]
            .as_str()
            .unwrap()
            .ends_with("-01-01T04:00:00.000Z")
    );
    // It ran as the owner.
    let pipeline: Value = restarted
        .get(
            &format!("/projects/{id}/pipelines/{}", pipelines[0]["id"]),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pipeline["user"]["username"], "root");
}

async fn a_schedule_whose_owner_lost_access_is_deactivated_not_run(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "orphan", CONFIG, tmp.path()).await;
    let (dev_id, dev) = app.create_user("leaver").await;
    app.add_member(id, dev_id, 30).await;
    let schedule = create(
        &app,
        &dev,
        id,
        json!({"description": "leaver's", "ref": "main", "cron": YEARLY}),
    )
    .await;
    let sid = schedule["id"].as_i64().unwrap();
    let res = app
        .request(
            Method::DELETE,
            &format!("/projects/{id}/members/{dev_id}"),
            Some(&app.root_token),
            None,
        )
        .await;
    assert!(res.status().is_success());
    make_due(&app, id, sid, 1000).await;
    let one = format!("{}/{sid}", schedules(id));
    wait_for(&app, &one, |s| s["active"] == false).await;
    assert!(schedule_pipelines(&app, id, sid).await.is_empty());
}

async fn pipeline_schedules_through_python_gitlab(app: TestApp) {
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "py-schedules", CONFIG, tmp.path()).await;
    let (dev_id, dev) = app.create_user("developer1").await;
    let (maint_id, maint) = app.create_user("maintainer1").await;
    app.add_member(id, dev_id, 30).await;
    app.add_member(id, maint_id, 40).await;
    run_script_as(
        &app,
        "pipeline_schedules.py",
        &[
            ("PROJECT_ID", id.to_string()),
            ("DEVELOPER", dev),
            ("MAINTAINER", maint),
        ],
    )
    .await;
}

/// Two `serve` replicas on one PostgreSQL, each running the scheduler every 100 ms, and
/// schedules coming due together: each tick becomes exactly one pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_postgresql_run_each_due_tick_once() {
    let app = TestApp::start(Backend::Postgres).await;
    let replica = app.start_replica().await;
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "replicas", CONFIG, tmp.path()).await;
    let root = app.root_token.clone();
    let mut ids = Vec::new();
    for n in 0..6 {
        let s = create(
            &app,
            &root,
            id,
            json!({"description": format!("s{n}"), "ref": "main", "cron": YEARLY}),
        )
        .await;
        ids.push(s["id"].as_i64().unwrap());
    }
    for sid in &ids {
        make_due(&app, id, *sid, 60_000).await;
    }
    for sid in &ids {
        wait_for_a_pipeline(&replica, &root, id, *sid).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for sid in &ids {
        let pipelines = schedule_pipelines(&app, id, *sid).await;
        assert_eq!(pipelines.len(), 1, "schedule {sid}: {pipelines:#?}");
    }
    let all: Vec<Value> = app
        .root_json(&format!(
            "/projects/{id}/pipelines?source=schedule&per_page=100"
        ))
        .await;
    assert_eq!(all.len(), ids.len());
}

/// The page, through a browser's forms: a Developer creates and edits a schedule with its
/// variables, a Reporter only looks, a Maintainer plays, takes over and deletes it.
async fn the_schedules_page_creates_edits_plays_takes_over_and_deletes(app: TestApp) {
    const PASSWORD: &str = "a-long-password";
    let tmp = tempfile::tempdir().unwrap();
    let id = project_in(&app, "pages", CONFIG, tmp.path()).await;
    for (name, level) in [("dave", 30), ("rita", 20), ("mara", 40)] {
        let (user, _) = app.create_user(name).await;
        app.add_member(id, user, level).await;
    }
    let list = "/root/pages/-/pipeline_schedules";
    let new = format!("{list}/new");

    let mut dave = Browser::sign_in(&app, "dave", PASSWORD).await;
    let page = dave.get(list).await;
    assert!(
        page.body.contains("No pipeline schedules here."),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-testid=\"new-schedule\""));
    let form = [
        ("description", "Nightly build"),
        ("cron", "0 4 * * *"),
        ("cron_timezone", "Europe/Berlin"),
        ("ref", "main"),
        ("variables[0][key]", "GREETING"),
        ("variables[0][value]", "hello"),
        ("variables[0][variable_type]", "env_var"),
        ("variables[1][key]", ""),
        ("variables[1][value]", ""),
        ("active", "false"),
        ("active", "true"),
    ];
    let page = dave.submit(&new, list, &form).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some(list)));
    let page = dave.get(list).await;
    assert!(
        page.body.contains("Pipeline schedule was created."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Nightly build") && page.body.contains("data-testid=\"next-run\""));
    let listed: Vec<Value> = app.root_json(&schedules(id)).await;
    let sid = id_of(&listed[0]);
    let shown: Value = app.root_json(&format!("{}/{sid}", schedules(id))).await;
    assert_eq!(shown["owner"]["username"], "dave");
    assert_eq!(shown["ref"], "refs/heads/main");
    assert_eq!(shown["variables"][0]["key"], "GREETING");

    // The API's validation, as the flash message.
    let bad = [("description", "x"), ("cron", "whenever"), ("ref", "main")];
    let page = dave.submit(&new, list, &bad).await;
    let page = dave.get(page.location.as_deref().unwrap()).await;
    assert!(
        page.body.contains("cron syntax is invalid"),
        "{}",
        page.body
    );

    // Editing: a new description, the variable removed, another added, deactivated.
    let edit = format!("{list}/{sid}/edit");
    let page = dave.get(&edit).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("value=\"hello\""),
        "the owner sees its values"
    );
    let changes = [
        ("description", "Nightly build (paused)"),
        ("cron", "0 4 * * *"),
        ("cron_timezone", "Europe/Berlin"),
        ("ref", "main"),
        ("variables[0][key]", "GREETING"),
        ("variables[0][value]", "hello"),
        ("variables[0][destroy]", "1"),
        ("variables[1][key]", "TARGET"),
        ("variables[1][value]", "staging"),
        ("variables[1][variable_type]", "file"),
        ("active", "false"),
    ];
    let page = dave.submit(&edit, &format!("{list}/{sid}"), &changes).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some(list)));
    let shown: Value = app.root_json(&format!("{}/{sid}", schedules(id))).await;
    assert_eq!(shown["description"], "Nightly build (paused)");
    assert_eq!(shown["active"], false);
    assert_eq!(
        shown["variables"],
        json!([{"variable_type": "file", "key": "TARGET", "value": "staging", "raw": false}])
    );
    let page = dave.get(&format!("{list}?scope=inactive")).await;
    assert!(page.body.contains("Nightly build (paused)") && page.body.contains("inactive"));

    // A Reporter sees the list, and nothing to press.
    let mut rita = Browser::sign_in(&app, "rita", PASSWORD).await;
    let page = rita.get(list).await;
    assert!(page.body.contains("Nightly build (paused)"));
    for button in [
        "play-schedule",
        "edit-schedule",
        "delete-schedule",
        "take-ownership",
        "new-schedule",
    ] {
        assert!(!page.body.contains(button), "{button} shown to a Reporter");
    }
    assert_eq!(rita.get(&edit).await.status, 404);
    let page = rita.submit(list, &format!("{list}/{sid}/play"), &[]).await;
    assert_eq!(page.status, 404);

    // A Maintainer plays it (main is protected), takes it over and deletes it.
    let mut mara = Browser::sign_in(&app, "mara", PASSWORD).await;
    let page = mara.get(list).await;
    for button in ["play-schedule", "take-ownership", "delete-schedule"] {
        assert!(
            page.body.contains(button),
            "{button} not shown to a Maintainer"
        );
    }
    assert!(!page.body.contains("edit-schedule"), "only the owner edits");
    let page = mara.submit(list, &format!("{list}/{sid}/play"), &[]).await;
    assert_eq!(page.status, 303);
    let page = mara.get(list).await;
    assert!(
        page.body
            .contains("Successfully scheduled a pipeline to run."),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-testid=\"last-pipeline\""));
    assert_eq!(schedule_pipelines(&app, id, sid).await.len(), 1);
    mara.submit(list, &format!("{list}/{sid}/take_ownership"), &[])
        .await;
    let shown: Value = app.root_json(&format!("{}/{sid}", schedules(id))).await;
    assert_eq!(shown["owner"]["username"], "mara");
    assert_eq!(
        dave.get(&edit).await.status,
        404,
        "no longer dave's to edit"
    );
    mara.submit(list, &format!("{list}/{sid}/delete"), &[])
        .await;
    let left: Vec<Value> = app.root_json(&schedules(id)).await;
    assert!(left.is_empty());
}
