//! The web UI in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! Selenium (from PyPI, in the test virtualenv) with Debian's chromedriver, as a new user
//! would use it. `.ci/run` installs all three; without them the test is skipped locally and
//! fails in CI. With `PIPEWRIGHT_SCREENSHOTS=<dir>` it saves the README's screenshots there.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::git::{git_ok, local_repo, remote};
use crate::running::{MAKEFILE, start_runner};
use crate::support::{Backend, TestApp};
use crate::triggering::UPLOAD_CONFIG;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub fn tools() -> Option<PathBuf> {
    let python = std::env::var_os("PIPEWRIGHT_PYTHON").map(PathBuf::from);
    let ready =
        python.is_some() && Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if ready {
        return python;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the browser test needs PIPEWRIGHT_PYTHON (with selenium), {CHROMIUM} and {CHROMEDRIVER}: run `bash .ci/run`"
        );
    }
    eprintln!(
        "skipping the browser test: run `bash scripts/setup` to install Chromium and Selenium"
    );
    None
}

/// The story, end to end: a Maintainer adds a trigger token in Settings > CI/CD, fires
/// the seeds' pipeline with `curl` and `variables[UPLOAD_TO_S3]=true`, sees it `triggered`,
/// watches the upload job's log finish live, sees the trigger token's 4 characters and reveals
/// the variable; a second Maintainer sees only 4 characters of the first one's token; a
/// Developer cannot open the settings; a revoked token's next trigger gets 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintainer_triggers_and_watches_a_pipeline_in_chromium_on_sqlite() {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintainer_triggers_and_watches_a_pipeline_in_chromium_on_postgres() {
    story(Backend::Postgres).await
}

/// Runs a browser script of `tests/python` against `app` in headless Chromium, with `env`
/// besides the URL, the browser's paths, a profile in `tmp` and the screenshots directory
/// (`PIPEWRIGHT_SCREENSHOTS` for the SQLite run, so the README's come from one backend);
/// returns its output and that directory.
pub async fn run_script(
    python: &Path,
    script: &str,
    app: &TestApp,
    backend: Backend,
    tmp: &Path,
    env: &[(&str, String)],
) -> (std::process::Output, PathBuf) {
    let screenshots = std::env::var("PIPEWRIGHT_SCREENSHOTS")
        .ok()
        .filter(|_| backend == Backend::Sqlite)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.join("screenshots"));
    std::fs::create_dir_all(&screenshots).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = tokio::process::Command::new(python)
        .arg(&path)
        .env("PIPEWRIGHT_URL", &app.url)
        .env("PIPEWRIGHT_CHROMIUM", CHROMIUM)
        .env("PIPEWRIGHT_CHROMEDRIVER", CHROMEDRIVER)
        .env("PIPEWRIGHT_SCREENSHOTS", &screenshots)
        .env("PIPEWRIGHT_BROWSER_PROFILE", tmp.join("chromium-profile"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .expect("run the browser script");
    (out, screenshots)
}

async fn story(backend: Backend) {
    let Some(python) = tools() else { return };
    let app = TestApp::start(backend).await;
    let tmp = tempfile::tempdir().unwrap();
    let project = app.create_project(&app.root_token, "demo").await;
    let id = project["id"].as_i64().unwrap();
    let work = local_repo(tmp.path(), UPLOAD_CONFIG);
    std::fs::write(work.join("Makefile"), MAKEFILE).unwrap();
    git_ok(&work, tmp.path(), &["add", "."]);
    git_ok(&work, tmp.path(), &["commit", "-q", "-m", "Makefile"]);
    let url = remote(&app, "root", &app.root_token, "root/demo");
    git_ok(
        &work,
        tmp.path(),
        &["push", "-q", "-o", "ci.skip", &url, "main"],
    );
    let res = app
        .request(
            reqwest::Method::PUT,
            &format!("/projects/{id}"),
            Some(&app.root_token),
            Some(json!({"description": "The seeds' three-stage pipeline: test, build, upload to S3 when asked."})),
        )
        .await;
    assert_eq!(res.status(), 200);
    for (name, level) in [("alice", 40), ("bob", 40), ("dave", 30)] {
        let (user, _) = app.create_user(name).await;
        app.add_member(id, user, level).await;
    }
    let builds = tempfile::tempdir().unwrap();
    let runner = start_runner(&app, builds.path()).await;

    let env = [
        ("PIPEWRIGHT_PROJECT", "root/demo".to_string()),
        ("PIPEWRIGHT_PROJECT_ID", id.to_string()),
        ("PIPEWRIGHT_PASSWORD", "a-long-password".to_string()),
    ];
    let (out, screenshots) =
        run_script(&python, "browser.py", &app, backend, tmp.path(), &env).await;
    runner.abort();
    assert!(
        out.status.success(),
        "browser.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for shot in [
        "settings-ci-cd.png",
        "pipeline.png",
        "job.png",
        "repository-commits.png",
    ] {
        let meta = std::fs::metadata(screenshots.join(shot)).expect(shot);
        assert!(meta.len() > 10_000, "{shot} is a real screenshot");
    }
}
