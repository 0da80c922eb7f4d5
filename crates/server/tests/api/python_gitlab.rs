//! Drives python-gitlab, the real client from PyPI, against the real server. `.ci/run` installs
//! it into a virtualenv and sets `PIPEWRIGHT_PYTHON`; without it the test is skipped locally and
//! fails in CI (where `CI` is set), so a missing client never passes silently.

use std::path::PathBuf;

use crate::support::{Backend, TestApp};

fn python() -> Option<PathBuf> {
    match std::env::var_os("PIPEWRIGHT_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("PIPEWRIGHT_PYTHON is not set: run the suite through `bash .ci/run`")
        }
        None => {
            eprintln!(
                "skipping python-gitlab test: PIPEWRIGHT_PYTHON is not set (bash .ci/run sets it)"
            );
            None
        }
    }
}

pub async fn run_script(app: &TestApp, script: &str) {
    run_script_as(app, script, &[]).await;
}

/// Runs a script with `PIPEWRIGHT_URL`, `PIPEWRIGHT_TOKEN` (root's) and extra variables.
pub async fn run_script_as(app: &TestApp, script: &str, env: &[(&str, String)]) {
    let Some(python) = python() else { return };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = tokio::process::Command::new(python)
        .arg(&path)
        .env("PIPEWRIGHT_URL", &app.url)
        .env("PIPEWRIGHT_TOKEN", &app.root_token)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn foundation(app: TestApp) {
    run_script(&app, "foundation.py").await;
}

mod foundation {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::foundation(TestApp::start(Backend::Sqlite).await).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::foundation(TestApp::start(Backend::Postgres).await).await
    }
}

async fn groups(app: TestApp) {
    run_script(&app, "groups.py").await;
}

mod groups {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::groups(TestApp::start(Backend::Sqlite).await).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::groups(TestApp::start(Backend::Postgres).await).await
    }
}
