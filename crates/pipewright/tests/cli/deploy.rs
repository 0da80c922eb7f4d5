//! The deployment recipes run what the tests run. The `Dockerfile`'s ENTRYPOINT, CMD, ENV and
//! HEALTHCHECK and the systemd unit's ExecStart and Environment are read from the files, and
//! the real binary is started with exactly those until it is ready, with only the data
//! directory and the listen address changed (as `docker run -e` or a unit drop-in would). Docker
//! is not needed: what could drift is the command line and its environment, not the image.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http_get};

fn repository_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The last stage's instructions (the image), as (INSTRUCTION, arguments), continuation lines
/// joined and comments dropped.
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (word, rest) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                instructions.push((word.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    let from = instructions.iter().rposition(|(i, _)| i == "FROM").unwrap();
    instructions.split_off(from)
}

fn one<'a>(stage: &'a [(String, String)], instruction: &str) -> &'a str {
    let found: Vec<&str> = stage
        .iter()
        .filter(|(i, _)| i == instruction)
        .map(|(_, args)| args.as_str())
        .collect();
    assert_eq!(found.len(), 1, "one {instruction} in the image's stage");
    found[0]
}

/// An exec-form (JSON array) argument list: the only form that passes signals to the server.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{args} is not exec form: {e}"))
}

/// `K=V` pairs separated by whitespace (the recipes quote nothing).
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split_whitespace()
        .map(|pair| {
            assert!(!pair.contains('"'), "unquoted values only: {pair}");
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `command` (its first word `pipewright`, replaced by the binary under test) with exactly
/// `env` as its `PIPEWRIGHT_*` environment.
fn command(words: &[String], env: &BTreeMap<String, String>) -> Command {
    assert!(
        words[0] == "pipewright" || words[0].ends_with("/pipewright"),
        "{words:?}"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipewright"));
    cmd.args(&words[1..]);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PIPEWRIGHT_")) {
        cmd.env_remove(key);
    }
    cmd.envs(env);
    cmd
}

/// The recipe's environment with the data directory and listen address of this test.
fn with_test_locations(
    env: Vec<(String, String)>,
    data: &Path,
    listen: &str,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = env.into_iter().collect();
    for key in ["PIPEWRIGHT_DATA_DIR", "PIPEWRIGHT_LISTEN"] {
        assert!(env.contains_key(key), "the recipe sets {key}");
    }
    env.insert("PIPEWRIGHT_DATA_DIR".into(), data.display().to_string());
    env.insert("PIPEWRIGHT_LISTEN".into(), listen.into());
    env
}

struct Running(Child, PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pipewright-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_ready(listen: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(listen, "/-/readiness", None).map(|r| r.0) != Some(200) {
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_images_entrypoint_and_command_start_a_server_its_health_check_finds_ready() {
    let dockerfile = repository_file("Dockerfile");
    let stage = final_stage(&dockerfile);
    let user = one(&stage, "USER");
    assert!(
        !["root", "0"].contains(&user.split(':').next().unwrap()),
        "the image runs as an unprivileged user, not {user}"
    );
    let image_env = pairs(one(&stage, "ENV"));
    let image: BTreeMap<_, _> = image_env.iter().cloned().collect();
    let data_dir = &image["PIPEWRIGHT_DATA_DIR"];
    let volume = exec_form(one(&stage, "VOLUME"));
    assert!(
        volume.iter().any(|v| Path::new(data_dir).starts_with(v)),
        "the data directory {data_dir} is in a volume ({volume:?})"
    );
    let port = image["PIPEWRIGHT_LISTEN"].rsplit(':').next().unwrap();
    assert_eq!(one(&stage, "EXPOSE"), port);
    let healthcheck = one(&stage, "HEALTHCHECK");
    let healthcheck = exec_form(healthcheck.split_once("CMD").unwrap().1.trim());
    let mut entrypoint = exec_form(one(&stage, "ENTRYPOINT"));
    entrypoint.extend(exec_form(one(&stage, "CMD")));

    let dir = scratch("image");
    let listen = format!("127.0.0.1:{}", free_port());
    let env = with_test_locations(image_env, &dir.join("data"), &listen);
    let child = command(&entrypoint, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running(child, dir.clone());
    wait_ready(&listen, &mut server.0);
    assert!(
        dir.join("data/pipewright.key").is_file(),
        "it used the data directory"
    );

    let health = |env: &BTreeMap<String, String>| command(&healthcheck, env).output().unwrap();
    let out = health(&env);
    assert!(out.status.success(), "HEALTHCHECK: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("/-/readiness: ready"));
    let _ = server.0.kill();
    let _ = server.0.wait();
    assert!(
        !health(&env).status.success(),
        "a stopped server is not healthy"
    );
}

/// The unit's `[Service]` settings, in order (`Environment=` appears several times).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut settings = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').unwrap();
            settings.push((key.to_string(), value.to_string()));
        }
    }
    settings
}

#[test]
fn the_systemd_unit_starts_the_server_it_describes_and_keeps_landlock_working() {
    let unit = repository_file("deploy/pipewright.service");
    let settings = service_settings(&unit);
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // What would stop the embedded runner from confining jobs, or break ordinary jobs.
    let filters = get("SystemCallFilter");
    assert!(
        filters
            .iter()
            .all(|f| f.contains("@sandbox") || f.contains("landlock")),
        "a system call filter must allow Landlock: {filters:?}"
    );
    assert!(!get("MemoryDenyWriteExecute").contains(&"yes"));
    assert_eq!(get("NoNewPrivileges"), ["yes"]);
    let capabilities = get("CapabilityBoundingSet").join(" ");
    for needed in ["CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL"] {
        assert!(capabilities.contains(needed), "{needed} in {capabilities}");
    }
    assert!(!capabilities.contains("CAP_SYS_ADMIN"));

    let exec: Vec<String> = get("ExecStart")[0]
        .split_whitespace()
        .map(String::from)
        .collect();
    let env = get("Environment").iter().flat_map(|e| pairs(e)).collect();
    let dir = scratch("unit");
    let listen = format!("127.0.0.1:{}", free_port());
    let env = with_test_locations(env, &dir.join("data"), &listen);
    let child = command(&exec, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running(child, dir.clone());
    wait_ready(&listen, &mut server.0);
    assert!(
        dir.join("data/pipewright.key").is_file(),
        "it used the data directory"
    );

    // systemd's own check of every directive, where systemd is installed.
    let copy = dir.join("pipewright.service");
    let binary = env!("CARGO_BIN_EXE_pipewright");
    std::fs::write(&copy, unit.replace("/usr/local/bin/pipewright", binary)).unwrap();
    if let Ok(out) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
    {
        let said = String::from_utf8_lossy(&out.stderr);
        let about_unit: Vec<&str> = said
            .lines()
            .filter(|l| l.contains("pipewright.service"))
            .collect();
        assert!(about_unit.is_empty(), "systemd-analyze verify: {said}");
    }
}
