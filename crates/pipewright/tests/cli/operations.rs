//! Operating a server over time with the real binary: `pipewright backup` while triggers keep
//! arriving, `pipewright restore` into a new directory and a server started on it that has
//! everything acknowledged before the backup began; the same on PostgreSQL with `pg_dump` and
//! `pg_restore`; and an upgrade's other side, a server refusing a database that a newer version
//! has migrated.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{bin, free_port, http_get};

const TOKEN: &str = "glpat-operations-test-token-0123";

/// A directory of the test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("pipewright-ops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `pipewright serve` on a data directory, killed when dropped.
struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server on `data` whose embedded runner runs jobs in `builds`.
    fn start(data: &Path, builds: &Path) -> Server {
        Server::start_with(data, builds, &[])
    }

    fn start_with(data: &Path, builds: &Path, flags: &[&str]) -> Server {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = bin()
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(data)
            .arg("--builds-dir")
            .arg(builds)
            .args(["--runner-concurrency", "1"])
            .args(flags)
            .env("PIPEWRIGHT_ROOT_TOKEN", TOKEN)
            .env(
                "PIPEWRIGHT_ROOT_PASSWORD",
                "a-long-operations-test-password",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&addr, "/-/readiness", None).map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "server did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let res = self
            .http
            .request(method, format!("{}/api/v4{path}", self.base))
            .header("PRIVATE-TOKEN", TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// `POST /projects/:id/trigger/pipeline`: the created pipeline's id on 201.
    async fn trigger(&self, project: i64, token: &str, variables: &[(&str, &str)]) -> Option<i64> {
        let mut form = vec![("token".to_string(), token.to_string())];
        form.push(("ref".into(), "main".into()));
        for (key, value) in variables {
            form.push((format!("variables[{key}]"), value.to_string()));
        }
        let url = format!("{}/api/v4/projects/{project}/trigger/pipeline", self.base);
        let res = self.http.post(url).form(&form).send().await.ok()?;
        if res.status() != 201 {
            return None;
        }
        res.json::<Value>().await.ok()?["id"].as_i64()
    }

    /// Every pipeline id of a project, page by page.
    async fn pipeline_ids(&self, project: i64) -> Vec<i64> {
        let mut ids = Vec::new();
        for page in 1.. {
            let path = format!("/projects/{project}/pipelines?per_page=100&page={page}");
            let items = self.api(reqwest::Method::GET, &path, json!({})).await;
            let items = items.as_array().unwrap();
            if items.is_empty() {
                break;
            }
            ids.extend(items.iter().map(|p| p["id"].as_i64().unwrap()));
        }
        ids
    }
}

/// Jobs that run only when asked to (the one building artifacts); every other pipeline holds
/// just a manual job, so the trigger load creates pipelines without running jobs.
const CI: &str = r#"package:
  rules:
    - if: '$MAKE_ARTIFACTS == "yes"'
  script:
    - echo "built before the backup" > out.txt
  artifacts:
    paths: [out.txt]
deploy:
  rules:
    - if: '$MAKE_ARTIFACTS != "yes"'
      when: manual
  script: [echo deploy]
"#;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Ops Test",
            "-c",
            "user.email=ops@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `root/app` with [`CI`] on main, a trigger token, and the commit's sha.
async fn project(server: &Server, work: &Path) -> (i64, String, String) {
    let project = server
        .api(reqwest::Method::POST, "/projects", json!({"name": "app"}))
        .await;
    std::fs::create_dir_all(work).unwrap();
    std::fs::write(work.join(".gitlab-ci.yml"), CI).unwrap();
    git(work, &["init", "-q", "-b", "main"]);
    git(work, &["add", "."]);
    git(work, &["commit", "-q", "-m", "CI"]);
    let host = server.base.trim_start_matches("http://");
    let remote = format!("http://root:{TOKEN}@{host}/root/app.git");
    git(work, &["push", "-q", "-o", "ci.skip", &remote, "main"]);
    let id = project["id"].as_i64().unwrap();
    let trigger = server
        .api(
            reqwest::Method::POST,
            &format!("/projects/{id}/triggers"),
            json!({"description": "load"}),
        )
        .await;
    let token = trigger["token"].as_str().unwrap().to_string();
    (id, token, git(work, &["rev-parse", "HEAD"]))
}

/// Waits for a pipeline to succeed; its first job's id.
async fn succeeded(server: &Server, project: i64, pipeline: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let path = format!("/projects/{project}/pipelines/{pipeline}");
        let status = server.api(reqwest::Method::GET, &path, json!({})).await["status"].clone();
        if status == "success" {
            let jobs = format!("/projects/{project}/pipelines/{pipeline}/jobs");
            let jobs = server.api(reqwest::Method::GET, &jobs, json!({})).await;
            return jobs[0]["id"].as_i64().unwrap();
        }
        assert!(
            !matches!(status.as_str(), Some("failed" | "canceled")),
            "the artifacts pipeline ended {status}"
        );
        assert!(
            Instant::now() < deadline,
            "the artifacts pipeline is {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pipelines triggered until `stop`, each with the instant its 201 arrived.
fn trigger_load(
    server: &Arc<Server>,
    project: i64,
    token: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<(i64, Instant)>>> {
    (0..4)
        .map(|_| {
            let (server, token, stop) = (server.clone(), token.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(id) = server.trigger(project, &token, &[]).await {
                        acknowledged.push((id, Instant::now()));
                    }
                }
                acknowledged
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_trigger_load_restores_every_acknowledged_pipeline_repositories_and_tokens()
{
    let scratch = Scratch::new("backup");
    let (data, restored) = (scratch.0.join("data"), scratch.0.join("restored"));
    let source = Arc::new(Server::start(&data, &scratch.0.join("builds")));
    let (project, trigger_token, sha) = project(&source, &scratch.0.join("work")).await;
    let with_artifacts = source
        .trigger(project, &trigger_token, &[("MAKE_ARTIFACTS", "yes")])
        .await
        .unwrap();
    let artifacts_job = succeeded(&source, project, with_artifacts).await;

    // Triggers keep arriving before, during and after the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let load = trigger_load(&source, project, &trigger_token, &stop);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let archive = scratch.0.join("backup.zip");
    let began = Instant::now();
    let backup = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipewright"))
        .args(["backup", "--to"])
        .arg(&archive)
        .env("PIPEWRIGHT_DATA_DIR", &data)
        .env_remove("PIPEWRIGHT_DATABASE_URL")
        .env_remove("PIPEWRIGHT_CONFIG")
        .output()
        .await
        .unwrap();
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for task in load {
        acknowledged.extend(task.await.unwrap());
    }
    let stderr = String::from_utf8_lossy(&backup.stderr);
    assert!(backup.status.success(), "backup failed: {stderr}");
    assert!(
        stderr.contains("WARNING: This archive holds the server key"),
        "{stderr}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the archive holds the key: owner only");
    let before: Vec<i64> = acknowledged
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(id, _)| *id)
        .collect();
    let during = acknowledged
        .iter()
        .filter(|(_, at)| *at > began && *at < ended)
        .count();
    assert!(
        before.len() >= 10,
        "load before the backup: {}",
        before.len()
    );
    assert!(
        during > 0,
        "the server kept acknowledging triggers during the backup"
    );
    drop(source);

    let out = bin()
        .args(["restore", "--from"])
        .arg(&archive)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let restored = Server::start(&restored, &scratch.0.join("restored-builds"));

    let present: std::collections::HashSet<i64> =
        restored.pipeline_ids(project).await.into_iter().collect();
    let lost: Vec<&i64> = before.iter().filter(|id| !present.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} pipelines acknowledged before the backup are missing: {lost:?}",
        lost.len(),
        before.len()
    );
    assert!(present.contains(&with_artifacts));

    let host = restored.base.trim_start_matches("http://");
    let clone = scratch.0.join("clone");
    let remote = format!("http://root:{TOKEN}@{host}/root/app.git");
    git(
        &scratch.0,
        &["clone", "-q", &remote, clone.to_str().unwrap()],
    );
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), sha);
    assert_eq!(
        std::fs::read_to_string(clone.join(".gitlab-ci.yml")).unwrap(),
        CI
    );

    let again = restored.trigger(project, &trigger_token, &[]).await;
    assert!(
        again.is_some(),
        "the trigger token still works after a restore"
    );
    let download = restored
        .http
        .get(format!(
            "{}/api/v4/projects/{project}/jobs/{artifacts_job}/artifacts",
            restored.base
        ))
        .header("PRIVATE-TOKEN", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200, "the job's artifacts came back too");
    assert!(download.bytes().await.unwrap().starts_with(b"PK"));
}

/// On PostgreSQL the database is the operator's to dump, first; `backup` saves the rest, and
/// both together restore a server: README's procedure, step by step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_server_comes_back_from_its_pg_dump_and_a_backup_of_the_rest() {
    let scratch = Scratch::new("postgres");
    let cluster = pipewright_test_postgres::postgres();
    let (database, restored_database) = (
        cluster.create_database().await,
        cluster.create_database().await,
    );
    let data = scratch.0.join("data");
    let flags = ["--database-url", &database, "--no-embedded-runner"];
    let source = Server::start_with(&data, &scratch.0.join("builds"), &flags);
    let (project, trigger_token, sha) = project(&source, &scratch.0.join("work")).await;
    let pipeline = source.trigger(project, &trigger_token, &[]).await.unwrap();

    let dump = scratch.0.join("pipewright.pgdump");
    let out = Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(&database)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_dump: {out:?}");
    let archive = scratch.0.join("backup.zip");
    let out = bin()
        .args(["backup", "--to"])
        .arg(&archive)
        .arg("--data-dir")
        .arg(&data)
        .args(["--database-url", &database])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the database is PostgreSQL, so it is not in this archive")
            && stderr.contains("pg_dump --format=custom"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&database),
        "the database URL (it may hold a password) is never printed"
    );
    drop(source);

    let out = Command::new("pg_restore")
        .args(["--no-owner", "--dbname", &restored_database])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_restore: {out:?}");
    let restored = scratch.0.join("restored");
    let out = bin()
        .args(["restore", "--from"])
        .arg(&archive)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pg_restore"));
    let flags = ["--database-url", &restored_database, "--no-embedded-runner"];
    let server = Server::start_with(&restored, &scratch.0.join("restored-builds"), &flags);
    assert!(server.pipeline_ids(project).await.contains(&pipeline));
    assert!(server.trigger(project, &trigger_token, &[]).await.is_some());
    let host = server.base.trim_start_matches("http://");
    let clone = scratch.0.join("clone");
    let remote = format!("http://root:{TOKEN}@{host}/root/app.git");
    git(
        &scratch.0,
        &["clone", "-q", &remote, clone.to_str().unwrap()],
    );
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), sha);
}

/// As after running a newer Pipewright on this data directory and going back to this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_database_a_newer_version_migrated_and_says_why() {
    let scratch = Scratch::new("newer");
    let data = scratch.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("pipewright.sqlite3");
    let store = pipewright_store::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    store.close().await;
    let newer = pipewright_store::latest_version() + 1;
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, 0)",
            rusqlite::params![newer, "from_a_newer_pipewright.sql"],
        )
        .unwrap();
    let mut serve = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--no-embedded-runner")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = serve.kill();
            panic!("serve started on a database newer than itself");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = serve.wait_with_output().unwrap();
    assert!(!out.status.success(), "it must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the database's schema is at version {newer}, newer than this Pipewright knows (up to {})",
            newer - 1
        )) && stderr.contains("restore a backup taken before the upgrade"),
        "{stderr}"
    );
}

#[test]
fn backup_restore_and_health_check_document_their_options() {
    for (command, flags) in [
        (
            "backup",
            &[
                "--to",
                "--data-dir",
                "--database-url",
                "--config",
                "PIPEWRIGHT_DATA_DIR",
            ][..],
        ),
        ("restore", &["--from", "--data-dir", "--max-size"][..]),
        (
            "health-check",
            &["--listen", "--url", "PIPEWRIGHT_LISTEN"][..],
        ),
    ] {
        let out = bin().args([command, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            assert!(text.contains(flag), "{command}: missing {flag} in:\n{text}");
        }
    }
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("backup") && text.contains("restore"),
        "{text}"
    );
}
