//! `pipewright trigger` as a user runs it, against the real `pipewright serve` whose embedded
//! runner runs the jobs: trigger and wait, a failing job, following logs, manual jobs, a
//! timeout, and the server's refusal of a wrong token. Each test has its own server and data
//! directory; stdout is a pipe here, so the CLI prints plain lines.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{bin, free_port, http_get};

const TOKEN: &str = "glpat-trigger-cli-test-token-0123";

/// A running `pipewright serve`, stopped and removed when dropped.
struct Server {
    child: Child,
    dir: PathBuf,
    base: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one `pipewright trigger` run printed, and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Server {
    fn start(name: &str) -> Server {
        Server::start_with_umask(name, None)
    }

    /// A server started by a shell that first sets `umask` (as a service manager's `UMask=`).
    fn start_with_umask(name: &str, umask: Option<&str>) -> Server {
        let dir =
            std::env::temp_dir().join(format!("pipewright-trigger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = match umask {
            None => bin(),
            Some(mask) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("umask {mask} && exec \"$0\" \"$@\"")])
                    .arg(env!("CARGO_BIN_EXE_pipewright"));
                sh
            }
        };
        let child = cmd
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(dir.join("data"))
            .env("PIPEWRIGHT_ROOT_TOKEN", TOKEN)
            .env(
                "PIPEWRIGHT_ROOT_PASSWORD",
                "a-long-trigger-cli-test-password",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            dir,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&addr, "/-/readiness", None).map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "server did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
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

    /// A project `root/<name>` whose main branch holds `ci` as its .gitlab-ci.yml, and a
    /// trigger token for it.
    async fn project(&self, name: &str, ci: &str) -> String {
        let project = self
            .api(reqwest::Method::POST, "/projects", json!({"name": name}))
            .await;
        let work = self.dir.join(format!("work-{name}"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join(".gitlab-ci.yml"), ci).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "CI"]);
        let host = self.base.trim_start_matches("http://");
        let remote = format!("http://root:{TOKEN}@{host}/root/{name}.git");
        git(&work, &["push", "-q", "-o", "ci.skip", &remote, "main"]);
        let trigger = self
            .api(
                reqwest::Method::POST,
                &format!("/projects/{}/triggers", project["id"]),
                json!({"description": "cli"}),
            )
            .await;
        trigger["token"].as_str().unwrap().to_string()
    }

    /// Runs `pipewright trigger --url … --project root/<project> --ref main <args>`.
    async fn trigger(&self, project: &str, trigger_token: &str, args: &[&str]) -> Run {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipewright"))
            .args(["trigger", "--url", &self.base, "--ref", "main"])
            .args(["--project", &format!("root/{project}")])
            .args(["--token", trigger_token, "--poll-interval", "200ms"])
            .args(args)
            .env_remove("CI_JOB_TOKEN")
            .env_remove("PIPEWRIGHT_TRIGGER_TOKEN")
            .env_remove("PIPEWRIGHT_API_TOKEN")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("pipewright trigger did not end")
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=CLI Test",
            "-c",
            "user.email=cli@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[test]
fn trigger_help_documents_every_flag_and_exit_code() {
    let out = bin().args(["trigger", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--url",
        "--project",
        "--ref",
        "--token",
        "--var",
        "--idempotency-key",
        "--dry-run",
        "--wait",
        "--follow",
        "--on-manual",
        "--timeout",
        "--api-token",
        "PIPEWRIGHT_TRIGGER_TOKEN",
        "CI_JOB_TOKEN",
        "PIPEWRIGHT_API_TOKEN",
    ] {
        assert!(text.contains(flag), "missing {flag} in:\n{text}");
    }
    for code in ["0  ", "1  ", "2  ", "3  ", "4  "] {
        assert!(
            text.contains(&format!("\n  {code}")),
            "exit code {code}in:\n{text}"
        );
    }
}

const TWO_STAGES: &str = r#"stages: [build, test]
build:
  stage: build
  script:
    - echo "hello from build, $GREETING"
test:
  stage: test
  script:
    - echo "tests pass"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_prints_the_pipeline_url_and_wait_exits_0_when_it_succeeds() {
    let server = Server::start("success");
    let token = server.project("app", TWO_STAGES).await;

    let run = server
        .trigger("app", &token, &["--wait", "--api-token", TOKEN])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let first = run.stdout.lines().next().unwrap();
    assert!(
        first.starts_with(&server.base) && first.contains("/root/app/-/pipelines/"),
        "the first line is the pipeline's web URL: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("build (build): success") && run.stdout.contains("success: http"),
        "plain progress lines when stdout is not a terminal: {}",
        run.stdout
    );

    // Without --wait it prints the URL and returns at once.
    let run = server.trigger("app", &token, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
}

/// A service manager's `UMask=0077` must not keep jobs (run as another user) from their own
/// scripts: the runner sets its directories' and files' modes itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_when_the_server_starts_under_a_strict_umask() {
    let server = Server::start_with_umask("umask", Some("0077"));
    let token = server.project("app", TWO_STAGES).await;
    let run = server
        .trigger("app", &token, &["--wait", "--api-token", TOKEN])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_makes_wait_exit_1_and_names_the_job() {
    let server = Server::start("failed");
    let ci = "may_fail:\n  allow_failure: true\n  script: [exit 3]\nbroken:\n  script:\n    - echo about to fail\n    - exit 1\n";
    let token = server.project("app", ci).await;

    let run = server
        .trigger("app", &token, &["--wait", "--api-token", TOKEN])
        .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("failed: broken (script_failure)"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("failed: may_fail"),
        "a job allowed to fail is not blamed: {}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_each_jobs_log_behind_its_name_and_ends_with_a_summary() {
    let server = Server::start("follow");
    let token = server.project("app", TWO_STAGES).await;

    let run = server
        .trigger(
            "app",
            &token,
            &[
                "--follow",
                "--var",
                "GREETING=from the CLI",
                "--api-token",
                TOKEN,
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let build = lines
        .iter()
        .position(|l| *l == "build | hello from build, from the CLI")
        .unwrap_or_else(|| panic!("the build job's own line, prefixed: {}", run.stdout));
    let test = lines
        .iter()
        .position(|l| *l == "test  | tests pass")
        .unwrap_or_else(|| panic!("the test job's own line, prefixed: {}", run.stdout));
    assert!(build < test, "{}", run.stdout);
    assert!(
        !run.stdout.contains('\x1b') && !run.stdout.contains("section_start"),
        "no escape sequences or section markers in a pipe: {}",
        run.stdout
    );
    let header = lines
        .iter()
        .position(|l| l.starts_with("JOB") && l.contains("STAGE") && l.contains("STATUS"))
        .unwrap_or_else(|| panic!("a summary table: {}", run.stdout));
    assert!(header > test);
    let rows = &lines[header + 1..header + 3];
    assert!(
        rows[0].starts_with("build  build  success")
            && rows[1].starts_with("test   test   success"),
        "{rows:?}"
    );
}

const MANUAL: &str = r#"stages: [build, deploy]
build:
  stage: build
  script: [echo built]
deploy:
  stage: deploy
  when: manual
  allow_failure: false
  script: [echo deployed]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_manual_play_plays_the_manual_job_and_fail_and_skip_do_not() {
    let server = Server::start("manual");
    let token = server.project("app", MANUAL).await;

    let run = server
        .trigger(
            "app",
            &token,
            &["--follow", "--on-manual", "play", "--api-token", TOKEN],
        )
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("playing the manual job deploy")
            && run.stdout.contains("deploy | deployed"),
        "{}",
        run.stdout
    );

    // The default is to fail: the pipeline waits for someone.
    let run = server
        .trigger("app", &token, &["--wait", "--api-token", TOKEN])
        .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("waits for manual jobs (deploy)"),
        "{}",
        run.stdout
    );

    let run = server
        .trigger(
            "app",
            &token,
            &["--wait", "--on-manual", "skip", "--api-token", TOKEN],
        )
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(" manual: http"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_still_running_at_the_timeout_exits_3() {
    let server = Server::start("timeout");
    let token = server.project("app", "slow:\n  script: [sleep 15]\n").await;

    let started = Instant::now();
    let run = server
        .trigger(
            "app",
            &token,
            &["--wait", "--timeout", "2s", "--api-token", TOKEN],
        )
        .await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        run.stdout.contains("timed out after 0:02"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_exits_4_with_the_servers_404_message() {
    let server = Server::start("wrong");
    server.project("app", TWO_STAGES).await;

    let run = server
        .trigger(
            "app",
            "glptt-not-a-real-token",
            &["--wait", "--api-token", TOKEN],
        )
        .await;
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("triggering the pipeline: the server answered 404 Not Found: 404 Not Found"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);

    // Usage errors are 4 too (clap's own code, 2, means "canceled" here), and waiting without
    // a way to read the pipeline is refused before anything is triggered.
    let run = server.trigger("app", "x", &["--timeout", "1m"]).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    let run = server.trigger("app", "x", &["--wait"]).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("--api-token"), "{}", run.stderr);
}

/// A wrong API token is found out before the trigger, so no pipeline is left behind that
/// nobody watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_token_is_refused_before_any_pipeline_is_created() {
    let server = Server::start("wrong-api");
    let token = server.project("app", TWO_STAGES).await;

    let run = server
        .trigger("app", &token, &["--wait", "--api-token", "glpat-wrong"])
        .await;
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("reading the project: the server answered 401 Unauthorized"),
        "{}",
        run.stderr
    );
    let pipelines = server
        .api(
            reqwest::Method::GET,
            "/projects/root%2Fapp/pipelines",
            json!({}),
        )
        .await;
    assert_eq!(pipelines, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_lists_what_would_run_and_why_and_creates_nothing() {
    let server = Server::start("dry-run");
    let ci = format!("{TWO_STAGES}docs:\n  stage: test\n  script: [make docs]\n  only: [tags]\n");
    let token = server.project("app", &ci).await;

    let run = server.trigger("app", &token, &["--dry-run"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("dry run: main at ") && lines[0].contains("(source trigger)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        &lines[1..],
        [
            "run   build  build on_success  — only:refs [branches, tags]",
            "run   test  test on_success  — only:refs [branches, tags]",
            "skip  docs  — only:refs [tags] does not match",
        ],
        "{}",
        run.stdout
    );
    let pipelines = server
        .api(
            reqwest::Method::GET,
            "/projects/root%2Fapp/pipelines",
            json!({}),
        )
        .await;
    assert_eq!(pipelines, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_a_retried_trigger_print_the_first_pipeline() {
    let server = Server::start("idempotent");
    let token = server.project("app", TWO_STAGES).await;

    let first = server
        .trigger("app", &token, &["--idempotency-key", "release-1.2"])
        .await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let again = server
        .trigger("app", &token, &["--idempotency-key", "release-1.2"])
        .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, first.stdout);
    assert!(
        again
            .stderr
            .contains("an earlier request with this idempotency key"),
        "{}",
        again.stderr
    );
    let pipelines = server
        .api(
            reqwest::Method::GET,
            "/projects/root%2Fapp/pipelines",
            json!({}),
        )
        .await;
    assert_eq!(pipelines.as_array().unwrap().len(), 1);
}
