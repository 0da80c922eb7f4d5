//! Job isolation with the real binary: a hostile job run by `pipewright serve`'s embedded
//! runner tries to read the server's key, database and runner token, to write into its data
//! directory and repositories, to read and kill another running job, to signal the server and
//! to read its environment and memory. Every attempt fails, the job can still do its own work
//! and reach the API with its job token, and the server keeps serving. The log and the admin
//! page say which isolation is in force.

// Scenarios read like the docs, step after step, even when that takes more than the
// 120 lines product code keeps to.
#![allow(clippy::too_many_lines)]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "glpat-isolation-test-token-0123456789";
const PASSWORD: &str = "a-long-isolation-test-password";

/// Attacks that must all be refused, by the name the job prints them under.
const REFUSED: &[&str] = &[
    "read-key",
    "read-database",
    "read-runner-token",
    "list-data-dir",
    "write-data-dir",
    "write-repositories",
    "list-builds",
    "read-other-job",
    "write-other-job",
    "kill-other-job",
    "signal-server",
    "read-server-environ",
    "read-server-thread-environ",
    "open-server-memory",
    "inherited-server-files",
    "raise-open-files-limit",
];

/// What a job must still be able to do.
const ALLOWED: &[&str] = &["own-directory", "private-tmp", "api-with-job-token"];

/// `victim` holds a secret in its directory and sleeps; `hostile` waits until that file exists
/// (a path's existence is all Landlock lets it learn), then attacks. `attempt NAME CMD…`
/// prints whether CMD succeeded.
fn config(data: &Path, server_pid: u32) -> String {
    format!(
        r#"variables:
  DATA: "{data}"
  SERVER_PID: "{server_pid}"
stages: [attack]
victim:
  stage: attack
  script:
    - echo "victim secret" > secret.txt
    - echo "victim ready"
    - sleep 61.25
hostile:
  stage: attack
  script:
    - |
      attempt() {{ local name=$1; shift; if "$@" >/dev/null 2>&1; then echo "ATTEMPT $name: SUCCEEDED"; else echo "ATTEMPT $name: refused"; fi; }}
      builds=$(dirname "$CI_BUILDS_DIR")
      victim=""
      for i in $(seq 300); do
        for id in $((CI_JOB_ID - 1)) $((CI_JOB_ID + 1)); do
          if [ -e "$builds/$id/project/secret.txt" ]; then victim="$builds/$id/project/secret.txt"; fi
        done
        if [ -n "$victim" ]; then break; fi
        sleep 0.1
      done
      echo "victim file: ${{victim:-none}}"
      sleeper=""
      for p in /proc/[0-9]*; do
        if [ "$(tr '\0' ' ' 2>/dev/null < "$p/cmdline")" = "sleep 61.25 " ]; then sleeper=${{p#/proc/}}; fi
      done
      echo "victim process: ${{sleeper:-none}}"
      echo "job uid: $(id -u)"
      echo "hard limits: $(ulimit -Hn) files, $(ulimit -Hu) processes"
      grep NoNewPrivs /proc/self/status
      attempt read-key cat "$DATA/pipewright.key"
      attempt read-database cat "$DATA/pipewright.sqlite3"
      attempt read-runner-token cat "$DATA/embedded-runner.token"
      attempt list-data-dir ls "$DATA"
      attempt write-data-dir touch "$DATA/planted"
      attempt write-repositories touch "$DATA/repositories/planted"
      attempt list-builds ls "$builds"
      attempt read-other-job cat "$victim"
      attempt write-other-job touch "$(dirname "$victim")/planted"
      attempt kill-other-job kill -KILL "$sleeper"
      attempt signal-server kill -TERM "$SERVER_PID"
      attempt read-server-environ cat "/proc/$SERVER_PID/environ"
      attempt read-server-thread-environ bash -c 'for f in /proc/'"$SERVER_PID"'/task/*/environ; do cat "$f" && exit 0; done; exit 1'
      attempt open-server-memory bash -c "exec 3< /proc/$SERVER_PID/mem"
      ls -l /proc/$$/fd/ | sed -n 's/.* -> /open file: /p'
      attempt inherited-server-files bash -c "ls -l /proc/$$/fd/ | grep -q -e '$DATA/' -e sqlite -e socket"
      attempt raise-open-files-limit bash -c 'ulimit -Hn 1048576'
      attempt own-directory bash -c 'echo mine > own.txt && grep -q mine own.txt'
      attempt private-tmp bash -c 'echo t > "$TMPDIR/t" && [ "$TMPDIR" != /tmp ] && [ "$HOME" = "$TMPDIR" ]'
      attempt api-with-job-token curl -sf -H "JOB-TOKEN: $CI_JOB_TOKEN" "$CI_API_V4_URL/job"
"#,
        data = data.display()
    )
}

/// How the test starts the server: as the test's own user (root on CI: jobs then run as
/// `nobody`), or as `nobody` itself through setpriv (jobs then share the server's user and only
/// Landlock and the non-dumpable flag keep them apart).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ServerUser {
    TestUser,
    Nobody,
}

fn serve(tmp: &Path, dir: &Path, addr: &str, log: &Path, user: ServerUser) -> Child {
    let mut cmd = match user {
        ServerUser::TestUser => Command::new(env!("CARGO_BIN_EXE_pipewright")),
        ServerUser::Nobody => {
            // A copy nobody can reach (the build directory may not be).
            let bin = tmp.join("pipewright");
            std::fs::copy(env!("CARGO_BIN_EXE_pipewright"), &bin).unwrap();
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(bin)
                .env("HOME", tmp);
            cmd
        }
    };
    cmd.args(["serve", "--listen", addr, "--runner-concurrency", "2"])
        .arg("--data-dir")
        .arg(dir)
        .env("PIPEWRIGHT_ROOT_TOKEN", TOKEN)
        .env("PIPEWRIGHT_ROOT_PASSWORD", PASSWORD)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawn")
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = self
                .client
                .get(format!("{}/-/readiness", self.base))
                .send()
                .await
                && res.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/v4{path}", self.base))
            .header("PRIVATE-TOKEN", TOKEN)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v4{path}", self.base))
            .header("PRIVATE-TOKEN", TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn jobs(&self, project: i64, pipeline: i64) -> HashMap<String, Value> {
        let jobs: Vec<Value> = self
            .get(&format!("/projects/{project}/pipelines/{pipeline}/jobs"))
            .await
            .json()
            .await
            .unwrap();
        jobs.into_iter()
            .map(|j| (j["name"].as_str().unwrap().to_string(), j))
            .collect()
    }

    async fn log(&self, project: i64, job: &Value) -> String {
        self.get(&format!("/projects/{project}/jobs/{}/trace", job["id"]))
            .await
            .text()
            .await
            .unwrap()
    }

    /// The admin page as root sees it (signed in through the sign-in form).
    async fn admin_page(&self) -> String {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = client
            .get(format!("{}/users/sign_in", self.base))
            .send()
            .await
            .unwrap();
        let mut cookies = cookies(&form);
        let body = form.text().await.unwrap();
        let marker = "name=\"authenticity_token\" value=\"";
        let start = body.find(marker).unwrap() + marker.len();
        let csrf = &body[start..start + body[start..].find('"').unwrap()];
        let signed_in = client
            .post(format!("{}/users/sign_in", self.base))
            .header("Cookie", cookies.join("; "))
            .form(&[
                ("authenticity_token", csrf),
                ("user[login]", "root"),
                ("user[password]", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 303, "signing in as root");
        cookies.extend(self::cookies(&signed_in));
        client
            .get(format!("{}/admin", self.base))
            .header("Cookie", cookies.join("; "))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

fn landlock_or_skip() -> bool {
    if pipewright_runner::landlock_abi().is_some() {
        return true;
    }
    eprintln!(
        "\n\n*** SKIPPED: this kernel has no Landlock, so job isolation cannot be tested \
         (and `pipewright serve` would not start its embedded runner) ***\n"
    );
    false
}

/// A server run by root, as operators should: jobs run as `nobody`, under Landlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_job_cannot_reach_the_server_or_another_job() {
    if landlock_or_skip() {
        hostile_job_scenario("root", ServerUser::TestUser).await;
    }
}

/// A server run by an ordinary user: its jobs share that user, so only Landlock (and the
/// server's non-dumpable flag) stands between them and the server; every attack still fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_job_sharing_the_servers_user_cannot_reach_it_either() {
    if !landlock_or_skip() {
        return;
    }
    if !running_as_root() {
        eprintln!("*** SKIPPED: starting the server as nobody needs root ***");
        return;
    }
    hostile_job_scenario("nobody", ServerUser::Nobody).await;
}

async fn hostile_job_scenario(name: &str, user: ServerUser) {
    let tmp = std::env::temp_dir().join(format!(
        "pipewright-isolation-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let (server_dir, work, log) = (tmp.join("server"), tmp.join("work"), tmp.join("server.log"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&server_dir).unwrap();
    if user == ServerUser::Nobody {
        let ok = Command::new("chown")
            .args(["nobody:nogroup"])
            .arg(&server_dir)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let data = server_dir.join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{addr}"),
    };
    let mut server = serve(&tmp, &data, &addr, &log, user);
    api.ready().await;

    let res = api.post("/projects", json!({"name": "attack"})).await;
    assert_eq!(res.status(), 201);
    let project = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let data = std::fs::canonicalize(&data).unwrap();
    std::fs::write(work.join(".gitlab-ci.yml"), config(&data, server.id())).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "CI"]);
    let remote = format!("http://root:{TOKEN}@{addr}/root/attack.git");
    git(&work, &["push", "-q", "-o", "ci.skip", &remote, "main"]);
    let res = api
        .post(
            &format!("/projects/{project}/pipeline"),
            json!({"ref": "main"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let pipeline = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    // The hostile job finishes while the victim still runs.
    let deadline = Instant::now() + Duration::from_secs(90);
    let jobs = loop {
        let jobs = api.jobs(project, pipeline).await;
        if matches!(
            jobs["hostile"]["status"].as_str(),
            Some("success" | "failed")
        ) {
            break jobs;
        }
        assert!(
            Instant::now() < deadline,
            "the hostile job never finished: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let hostile = api.log(project, &jobs["hostile"]).await;
    assert_eq!(jobs["hostile"]["status"], "success", "{hostile}");
    assert_eq!(jobs["victim"]["status"], "running", "the victim survived");

    // The attacks were aimed at real targets.
    assert!(
        hostile.contains("victim file: /") && hostile.contains("/project/secret.txt"),
        "the victim's file existed while the hostile job ran:\n{hostile}"
    );
    // The last occurrence: the first is the script's own text, echoed.
    let victim_pid = hostile
        .rsplit("victim process: ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    assert!(
        victim_pid.parse::<u32>().is_ok(),
        "the hostile job found the victim's process:\n{hostile}"
    );
    for name in REFUSED {
        assert!(
            hostile.contains(&format!("ATTEMPT {name}: refused")),
            "{name} must be refused:\n{hostile}"
        );
    }
    for name in ALLOWED {
        assert!(
            hostile.contains(&format!("ATTEMPT {name}: SUCCEEDED")),
            "{name} must work:\n{hostile}"
        );
    }
    if running_as_root() && user == ServerUser::TestUser {
        assert!(
            !hostile.contains("job uid: 0\n"),
            "a root server runs jobs as another user:\n{hostile}"
        );
    }
    assert!(
        hostile.contains("NoNewPrivs:\t1"),
        "no_new_privs:\n{hostile}"
    );
    let limits = hostile
        .rsplit("hard limits: ")
        .next()
        .and_then(|rest| rest.lines().next())
        .unwrap_or("");
    let numbers: Vec<u64> = limits
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        numbers.len() == 2 && numbers[0] <= 16_384 && numbers[1] <= 4_096,
        "open files and processes are limited: {limits}"
    );
    assert!(!data.join("planted").exists());
    assert!(!data.join("repositories/planted").exists());

    // The server keeps serving: alive, answering, and it still runs and cancels jobs.
    assert!(server.try_wait().unwrap().is_none(), "the server is alive");
    api.ready().await;
    let victim_log = api.log(project, &jobs["victim"]).await;
    assert!(victim_log.contains("victim ready"), "{victim_log}");
    let res = api
        .post(
            &format!("/projects/{project}/pipelines/{pipeline}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(
        res.status(),
        201,
        "GitLab answers a pipeline cancel with 201"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.jobs(project, pipeline).await["victim"]["status"] != "canceled" {
        assert!(Instant::now() < deadline, "the victim was not canceled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The log and the admin page say which isolation is in force.
    let server_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        server_log.contains("embedded runner: job isolation")
            && server_log.contains("Landlock ABI"),
        "{server_log}"
    );
    let admin = api.admin_page().await;
    assert!(
        admin.contains("The embedded runner runs jobs in") && admin.contains("Landlock ABI"),
        "{admin}"
    );
    if user == ServerUser::Nobody {
        assert!(
            admin.contains("jobs run under the same user as the runner"),
            "{admin}"
        );
    } else if running_as_root() {
        assert!(admin.contains("jobs run as nobody"), "{admin}");
    }

    server.kill().unwrap();
    let _ = server.wait();
    std::fs::remove_dir_all(&tmp).ok();
}
