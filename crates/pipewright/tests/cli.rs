//! The binary as an operator runs it: `--help`, first start, health, graceful shutdown; backup,
//! restore and upgrades (`cli/operations.rs`); the container image and systemd unit as they
//! start it (`cli/deploy.rs`); and `pipewright trigger` as a user runs it (`cli/trigger.rs`).

#[path = "cli/deploy.rs"]
mod deploy;
#[path = "cli/operations.rs"]
mod operations;
#[path = "cli/trigger.rs"]
mod trigger;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pipewright"))
}

#[test]
fn help_documents_every_serve_option() {
    let out = bin().args(["serve", "--help"]).output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--external-url",
        "--log-format",
        "--max-body-size",
        "--config",
        "--builds-dir",
        "--job-user",
        "--allow-jobs-to-read-server-secrets",
        "--trusted-proxies",
    ] {
        assert!(text.contains(flag), "missing {flag} in:\n{text}");
    }
    for env in [
        "PIPEWRIGHT_LISTEN",
        "PIPEWRIGHT_DATA_DIR",
        "PIPEWRIGHT_DATABASE_URL",
        "PIPEWRIGHT_EXTERNAL_URL",
        "PIPEWRIGHT_JOB_USER",
        "PIPEWRIGHT_ALLOW_JOBS_TO_READ_SERVER_SECRETS",
        "PIPEWRIGHT_TRUSTED_PROXIES",
    ] {
        assert!(text.contains(env), "missing {env} in:\n{text}");
    }
    let out = bin().args(["runner", "--help"]).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--builds-dir",
        "--job-user",
        "--allow-jobs-to-read-server-secrets",
    ] {
        assert!(text.contains(flag), "missing {flag} in:\n{text}");
    }
}

/// Reads `child`'s stderr until a line contains `wanted` (or 20 s pass); everything read.
fn stderr_until(child: &mut std::process::Child, wanted: &str) -> String {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(wanted) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    seen
}

/// `pipewright runner` says at start-up which isolation its jobs get, and never runs jobs as
/// root.
#[test]
fn the_runner_states_its_job_isolation_and_never_runs_jobs_as_root() {
    let dir = std::env::temp_dir().join(format!("pipewright-cli-runner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runner = |extra: &[&str]| {
        let mut cmd = bin();
        cmd.args(["runner", "--url", "http://127.0.0.1:9", "--token", "glrt-x"])
            .arg("--builds-dir")
            .arg(dir.join("builds"))
            .args(extra)
            .env_remove("PIPEWRIGHT_JOB_USER")
            .env_remove("PIPEWRIGHT_ALLOW_JOBS_TO_READ_SERVER_SECRETS");
        cmd
    };
    let out = runner(&["--job-user", "0:0"]).output().expect("run");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("must not run as root") || text.contains("only a runner running as root"),
        "{text}"
    );

    let mut child = runner(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let log = stderr_until(&mut child, "job isolation");
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).ok();
    if pipewright_runner::landlock_abi().is_some() {
        assert!(
            log.contains("runner: job isolation") && log.contains("Landlock ABI"),
            "{log}"
        );
    } else {
        assert!(log.contains("does not offer Landlock"), "{log}");
    }
}

/// Builds inside the data directory are refused: the server serves, the embedded runner does
/// not start, and the log says why.
#[test]
fn builds_inside_the_data_directory_keep_the_embedded_runner_from_starting() {
    let dir = std::env::temp_dir().join(format!("pipewright-cli-builds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = bin()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(&dir)
        .arg("--builds-dir")
        .arg(dir.join("builds"))
        .env("PIPEWRIGHT_ROOT_PASSWORD", "a-long-cli-test-password")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let log = stderr_until(&mut child, "embedded runner did not start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&addr, "/-/readiness", None).map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.contains("must not be inside the data directory"),
        "{log}"
    );
    assert!(!dir.join("builds").exists(), "nothing was created there");
    std::fs::remove_dir_all(&dir).ok();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn http_get(addr: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token
        .map(|t| format!("PRIVATE-TOKEN: {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

#[test]
fn first_start_creates_root_serves_and_shuts_down_gracefully() {
    let dir = std::env::temp_dir().join(format!("pipewright-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let addr = format!("127.0.0.1:{}", free_port());
    let token = "glpat-cli-test-token-0123456789";
    let mut child = bin()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(&dir)
        .env("PIPEWRIGHT_ROOT_TOKEN", token)
        .env("PIPEWRIGHT_LOG_FORMAT", "json")
        .env_remove("PIPEWRIGHT_ROOT_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = http_get(&addr, "/-/readiness", None) {
            break;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = http_get(&addr, "/api/v4/user", Some(token)).expect("user");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"username\":\"root\""), "{body}");
    assert_eq!(http_get(&addr, "/-/health", None).map(|r| r.0), Some(200));
    assert_eq!(http_get(&addr, "/-/liveness", None).map(|r| r.0), Some(200));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert!(
        stdout.contains("Created the administrator account `root`."),
        "{stdout}"
    );
    assert!(
        stdout.contains("generated password"),
        "a password is generated and printed once: {stdout}"
    );
    assert!(!stderr.contains(token), "the token must never be logged");
    assert!(
        stderr.contains("\"message\":\"pipewright is serving\"")
            || stderr.contains("pipewright is serving"),
        "{stderr}"
    );

    // Second start: root exists, nothing is printed about it.
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .arg("--external-url")
        .arg("not-a-url")
        .output()
        .expect("run");
    assert!(!out.status.success(), "an invalid external URL is refused");
    std::fs::remove_dir_all(&dir).ok();
}

fn lint(args: &[&str], yaml: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!(
        "pipewright-lint-{}-{}",
        std::process::id(),
        yaml.len()
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join(".gitlab-ci.yml");
    std::fs::write(&file, yaml).expect("write");
    let out = bin()
        .args(["ci", "lint"])
        .arg(&file)
        .args(args)
        .output()
        .expect("run");
    std::fs::remove_dir_all(&dir).ok();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const UPLOAD: &str = "stages: [test, build, package]\nrun_tests:\n  stage: test\n  script: make test\nbuild_package:\n  stage: build\n  script: make build\nupload_package:\n  stage: package\n  script: make upload\n  rules:\n    - if: $UPLOAD_TO_S3\n";

#[test]
fn ci_lint_shows_what_a_trigger_would_run() {
    let (code, out) = lint(
        &[
            "--source",
            "trigger",
            "--var",
            "UPLOAD_TO_S3=true",
            "--json",
        ],
        UPLOAD,
    );
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["valid"], true);
    assert_eq!(
        report["stages"],
        serde_json::json!(["test", "build", "package"])
    );
    assert_eq!(report["jobs"][2]["name"], "upload_package");
    let (code, out) = lint(&[], UPLOAD);
    assert_eq!(code, 0);
    assert!(
        out.contains("stage build:") && !out.contains("upload_package"),
        "{out}"
    );
    let (code, out) = lint(&["--tag", "v1"], "job:\n  scrpt: x\n");
    assert_eq!(code, 1);
    assert!(
        out.contains("jobs:job config contains unknown keys: scrpt"),
        "{out}"
    );
}

/// A `.gitlab-ci.yml` with a `spec:inputs` header (GitLab docs, "CI/CD inputs").
const WITH_INPUTS: &str = "spec:\n  inputs:\n    environment:\n      options: [staging, production]\n      default: staging\n    replicas:\n      type: number\n      default: 1\n---\n\"deploy-$[[ inputs.environment ]]-$[[ inputs.replicas ]]\":\n  script: deploy\n";

#[test]
fn ci_lint_shows_what_inputs_make_of_a_config() {
    let (code, out) = lint(&["--json"], WITH_INPUTS);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["jobs"][0]["name"], "deploy-staging-1");
    let given = [
        "--input",
        "environment=production",
        "--input",
        "replicas=3",
        "--json",
    ];
    let (code, out) = lint(&given, WITH_INPUTS);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["jobs"][0]["name"], "deploy-production-3");
    assert_eq!(
        report["warnings"],
        serde_json::json!([]),
        "inputs are not ignored"
    );
    let (code, out) = lint(&["--input", "environment=qa"], WITH_INPUTS);
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "`environment` input: `qa` cannot be used because it is not in the list of allowed options"
        ),
        "{out}"
    );
}

#[test]
fn ci_lint_refuses_alias_bombs_and_huge_files() {
    let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "a".to_string()
        } else {
            format!("a{}", i - 1)
        };
        bomb.push_str(&format!("a{i}: &a{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    bomb.push_str("job:\n  script: *a9\n");
    let (code, out) = lint(&["--json"], &bomb);
    assert_eq!(code, 1);
    assert!(out.contains("too many nodes"), "{out}");
    let huge = "job:\n  script: x\n".to_string() + &"#".repeat(10 * 1024 * 1024);
    let (code, out) = lint(&[], &huge);
    assert_eq!(code, 1);
    assert!(out.contains("larger than 1048576 bytes"), "{out}");
}

/// A data directory holds the server's key, its database and its repositories: one committed
/// by accident hands out every secret sealed under that key (it happened once). This fails when
/// git tracks anything that looks like one.
#[test]
fn the_repository_tracks_no_data_directory_key_or_database() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Ok(out) = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
    else {
        eprintln!("skipped: git is not installed");
        return;
    };
    if !out.status.success() {
        eprintln!("skipped: not a git checkout");
        return;
    }
    let secret_like = |path: &str| {
        let name = path.rsplit('/').next().unwrap_or(path);
        let in_data_dir = path
            .split('/')
            .any(|part| part.starts_with("pipewright-data") || part.starts_with("pipewright-demo"));
        let key_or_database = [".key", ".pem", ".sqlite", ".sqlite3", ".db"]
            .iter()
            .any(|ext| name.ends_with(ext))
            || name.ends_with("-wal")
            || name.ends_with("-shm")
            || name == "embedded-runner.token";
        in_data_dir || key_or_database
    };
    let tracked: Vec<&str> = out
        .stdout
        .split(|b| *b == 0)
        .filter_map(|p| std::str::from_utf8(p).ok())
        .filter(|p| !p.is_empty() && secret_like(p))
        .collect();
    assert!(
        tracked.is_empty(),
        "data directories, keys or databases are tracked by git (git rm --cached them): {tracked:?}"
    );
}

/// `include:` wildcards read the config's directory, and include rules see `--var`
/// (GitLab's reference: "Use `include:local` with wildcard file paths", `include:rules:if`).
#[test]
fn ci_lint_expands_include_wildcards_and_rules() {
    let dir = std::env::temp_dir().join(format!("pipewright-lint-includes-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("ci")).expect("mkdir");
    for (path, text) in [
        ("ci/a.yml", "a:\n  script: a\n"),
        ("ci/b.yml", "b:\n  script: b\n"),
        ("deploy.yml", "deploy:\n  script: deploy\n"),
        (
            ".gitlab-ci.yml",
            "include:\n  - local: 'ci/*.yml'\n  - local: deploy.yml\n    rules:\n      - if: $DEPLOY == \"yes\"\n",
        ),
    ] {
        std::fs::write(dir.join(path), text).expect("write");
    }
    let run = |args: &[&str]| {
        let out = bin()
            .args(["ci", "lint", "--json"])
            .arg(dir.join(".gitlab-ci.yml"))
            .args(args)
            .output()
            .expect("run");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let mut names: Vec<String> = report["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(run(&[]), ["a", "b"]);
    assert_eq!(run(&["--var", "DEPLOY=yes"]), ["a", "b", "deploy"]);
    // The report lists what was included (GitLab's lint `includes`: type, location).
    let out = bin()
        .args(["ci", "lint", "--json"])
        .arg(dir.join(".gitlab-ci.yml"))
        .output()
        .expect("run");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed: Vec<(&str, &str)> = report["includes"]
        .as_array()
        .expect("includes")
        .iter()
        .map(|f| (f["type"].as_str().unwrap(), f["location"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("local", "ci/a.yml"), ("local", "ci/b.yml")]);
    let out = bin()
        .args(["ci", "lint"])
        .arg(dir.join(".gitlab-ci.yml"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("included ci/a.yml (local)"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
