//! Saving the repositories for a backup: each one copied by git itself, so the copy is whole
//! while pushes (and git's own repacking) go on in the live one.
//!
//! For each `<id>.git` a new bare repository is made and every ref of the live one fetched into
//! it (`+refs/*:refs/*`: branches, tags and anything else, with their objects in one pack);
//! refs are then packed into one file, and the live repository's `HEAD` and `config` copied
//! last (so no setting of the live repository is in force while git works on the copy). git
//! runs with no system or user configuration, as the server runs it.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::layout;

/// What saving the repositories found.
#[derive(Debug, Default)]
pub struct Saved {
    /// The copies, by project id.
    pub copies: Vec<PathBuf>,
    /// Pipelines' commits no ref reaches any more (a branch force-pushed or deleted after the
    /// database was copied), by project id.
    pub missing_commits: BTreeMap<i64, Vec<String>>,
}

/// Copies every repository in `live` into `staging`, and checks that each of `commits` (project
/// id, sha) is in its copy.
pub fn save(live: &Path, staging: &Path, commits: &[(i64, String)]) -> anyhow::Result<Saved> {
    let mut saved = Saved::default();
    let live = &std::path::absolute(live)?;
    let entries = match std::fs::read_dir(live) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(saved),
        Err(e) => return Err(e).with_context(|| format!("reading {}", live.display())),
    };
    std::fs::create_dir(staging)?;
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if layout::repository_dir(&name) && entry.file_type()?.is_dir() {
            names.push(name);
        } else {
            eprintln!(
                "warning: not backed up: {} (not a repository)",
                entry.path().display()
            );
        }
    }
    names.sort();
    for name in names {
        let (source, copy) = (live.join(&name), staging.join(&name));
        copy_repository(&source, &copy)
            .with_context(|| format!("saving the repository {}", source.display()))?;
        let project: i64 = name.trim_end_matches(".git").parse()?;
        let wanted: Vec<&str> = commits
            .iter()
            .filter(|(p, _)| *p == project)
            .map(|(_, sha)| sha.as_str())
            .collect();
        let missing = missing_objects(&copy, &wanted)?;
        if !missing.is_empty() {
            saved.missing_commits.insert(project, missing);
        }
        saved.copies.push(copy);
    }
    Ok(saved)
}

/// `git` with no configuration but the command line's, as the server runs it.
fn git(home: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    cmd
}

/// Runs `git <what> …`; an error carries what git said.
fn run(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        bail!("git {what} failed: {}", said.trim());
    }
    Ok(())
}

fn copy_repository(source: &Path, copy: &Path) -> anyhow::Result<()> {
    let home = copy.parent().unwrap_or(copy);
    run(
        "init",
        git(home)
            .args(["init", "--quiet", "--bare", "--template="])
            .arg(copy),
    )?;
    // The live repository may belong to the server's user while the backup runs as root.
    let safe = format!("safe.directory={}", source.display());
    run(
        "fetch",
        git(home)
            .arg("-C")
            .arg(copy)
            .args(["-c", &safe, "-c", "fetch.unpackLimit=1", "fetch", "--quiet"])
            .args(["--no-write-fetch-head", "--no-auto-gc"])
            .arg(source)
            .arg("+refs/*:refs/*"),
    )?;
    run(
        "pack-refs",
        git(home).arg("-C").arg(copy).args(["pack-refs", "--all"]),
    )?;
    for file in ["HEAD", "config"] {
        std::fs::copy(source.join(file), copy.join(file))
            .with_context(|| format!("copying {}", source.join(file).display()))?;
    }
    Ok(())
}

/// Which of `shas` the repository at `repo` lacks.
fn missing_objects(repo: &Path, shas: &[&str]) -> anyhow::Result<Vec<String>> {
    if shas.is_empty() {
        return Ok(Vec::new());
    }
    let mut child = git(repo)
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch-check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running git cat-file")?;
    let mut stdin = child.stdin.take().context("git's stdin")?;
    let input: String = shas.iter().map(|sha| format!("{sha}\n")).collect();
    // Written from another thread: git answers line by line and both pipes have a limit.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = child.stdout.take().context("git's stdout")?;
    let mut missing = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        if let Some(sha) = line?.strip_suffix(" missing") {
            missing.push(sha.to_string());
        }
    }
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to git cat-file"))?;
    written.context("writing to git cat-file")?;
    if !child.wait()?.success() {
        bail!("git cat-file failed in {}", repo.display());
    }
    Ok(missing)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn git_in(dir: &Path, args: &[&str]) -> String {
        let out = git(dir)
            .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A branch force-pushed after the database was copied leaves a pipeline's commit on no
    /// ref: the copy cannot hold it, and the backup names it instead of passing in silence.
    #[test]
    fn a_copy_holds_every_ref_and_names_pipeline_commits_no_ref_reaches() {
        let dir = std::env::temp_dir().join(format!("pipewright-repos-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (live, work) = (dir.join("live"), dir.join("work"));
        std::fs::create_dir_all(&work).unwrap();
        git_in(
            &dir,
            &["init", "-q", "--bare", live.join("7.git").to_str().unwrap()],
        );
        git_in(&work, &["init", "-q", "-b", "main"]);
        git_in(&work, &["commit", "-q", "--allow-empty", "-m", "first"]);
        let first = git_in(&work, &["rev-parse", "HEAD"]);
        let remote = live.join("7.git");
        git_in(
            &work,
            &["push", "-q", remote.to_str().unwrap(), "main", "--tags"],
        );
        git_in(&work, &["tag", "v1"]);
        git_in(&work, &["push", "-q", remote.to_str().unwrap(), "v1"]);
        git_in(
            &work,
            &[
                "commit",
                "-q",
                "--amend",
                "--allow-empty",
                "-m",
                "rewritten",
            ],
        );
        let rewritten = git_in(&work, &["rev-parse", "HEAD"]);
        git_in(&work, &["tag", "-d", "v1"]);
        git_in(
            &work,
            &["push", "-q", "-f", remote.to_str().unwrap(), "main", ":v1"],
        );
        std::fs::create_dir(live.join("not-a-repository")).unwrap();

        let commits = vec![(7, first.clone()), (7, rewritten.clone())];
        let saved = save(&live, &dir.join("copies"), &commits).unwrap();
        assert_eq!(saved.copies, [dir.join("copies/7.git")]);
        assert_eq!(saved.missing_commits.get(&7), Some(&vec![first]));
        let copy = &saved.copies[0];
        assert_eq!(git_in(copy, &["rev-parse", "main"]), rewritten);
        assert_eq!(
            std::fs::read_to_string(copy.join("HEAD")).unwrap(),
            std::fs::read_to_string(remote.join("HEAD")).unwrap()
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
