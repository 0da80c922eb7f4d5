//! What a backup archive holds and where each entry goes: the one description `backup` writes
//! by and `restore` checks against. An entry name that is not one of these shapes is refused,
//! which is what keeps a hostile archive's names from reaching outside the data directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The archive's description of itself.
pub const MANIFEST: &str = "pipewright-backup.json";
/// Where the data directory's files are in the archive.
pub const DATA: &str = "data/";
/// The SQLite database's name in the data directory (`serve`'s default).
pub const DATABASE: &str = "pipewright.sqlite3";
/// The server key that seals trigger tokens and variables.
pub const KEY: &str = "pipewright.key";
/// The embedded runner's token (its runner is in the database).
pub const RUNNER_TOKEN: &str = "embedded-runner.token";
pub const REPOSITORIES: &str = "repositories";
pub const ARTIFACTS: &str = "artifacts";
pub const ARTIFACTS_FILE: &str = "artifacts.zip";

/// The manifest's format; a restore refuses another.
pub const FORMAT: u32 = 1;

/// `pipewright-backup.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The Pipewright that wrote it.
    pub pipewright_version: String,
    /// When the database was copied, in seconds since the epoch.
    pub created_at: u64,
    /// `sqlite` (in the archive) or `postgres` (dumped separately with `pg_dump`).
    pub database: String,
    /// The newest migration the database had applied.
    pub schema_version: Option<i64>,
    pub repositories: u64,
    pub artifacts: u64,
    /// Entries that are secrets.
    pub secrets: Vec<String>,
    pub warning: String,
}

pub const SECRET_WARNING: &str = "This archive holds the server key (data/pipewright.key), which \
opens every secret sealed in the database (trigger tokens, CI/CD variables), and the embedded \
runner's token. Keep it as secret as the server itself.";

impl Manifest {
    /// What the archive holds, in words: "the database (schema version 13), 2 repositories,
    /// 1 artifacts archive".
    pub fn contents(&self) -> String {
        let database = match (self.database.as_str(), self.schema_version) {
            ("sqlite", Some(v)) => format!("the database (schema version {v})"),
            ("sqlite", None) => "the database (empty)".to_string(),
            _ => "no database (PostgreSQL: it is dumped with pg_dump)".to_string(),
        };
        let plural = |n: u64, one: &str, many: &str| match n {
            1 => format!("1 {one}"),
            n => format!("{n} {many}"),
        };
        format!(
            "{database}, {}, {}",
            plural(self.repositories, "repository", "repositories"),
            plural(self.artifacts, "artifacts archive", "artifacts archives")
        )
    }
}

pub const KEYLESS_NOTE: &str = "This archive does not hold the server key: keep a copy of \
pipewright.key apart from it. A restore needs both: without the key the sealed trigger tokens \
and CI/CD variables cannot be opened.";

/// Where an entry goes, relative to the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Manifest,
    Dir(PathBuf),
    File(PathBuf),
}

/// The longest entry name a backup writes is a repository's ref or pack path.
const MAX_NAME: usize = 4096;
const MAX_DEPTH: usize = 64;

/// Where the entry `name` goes, or why it cannot be part of a backup.
pub fn target(name: &str) -> Result<Target, String> {
    if name == MANIFEST {
        return Ok(Target::Manifest);
    }
    let refuse = || format!("unexpected entry {name:?}: not something a backup holds");
    let rel = name.strip_prefix(DATA).ok_or_else(refuse)?;
    let (rel, is_dir) = match rel.strip_suffix('/') {
        Some(rel) => (rel, true),
        None => (rel, false),
    };
    if name.len() > MAX_NAME || rel.is_empty() {
        return Err(refuse());
    }
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() > MAX_DEPTH || !parts.iter().all(|p| plain_component(p)) {
        return Err(refuse());
    }
    let allowed = match (parts.as_slice(), is_dir) {
        ([DATABASE | KEY | RUNNER_TOKEN], false) => true,
        ([REPOSITORIES], true) => true,
        ([REPOSITORIES, repo], true) => repository_dir(repo),
        ([REPOSITORIES, repo, _, ..], _) => repository_dir(repo),
        ([ARTIFACTS], true) => true,
        ([ARTIFACTS, job], true) => number(job),
        ([ARTIFACTS, job, ARTIFACTS_FILE], false) => number(job),
        _ => false,
    };
    if !allowed {
        return Err(refuse());
    }
    let path: PathBuf = parts.iter().collect();
    Ok(if is_dir {
        Target::Dir(path)
    } else {
        Target::File(path)
    })
}

/// A file or directory name that means only itself: not empty, `.` or `..`, and no separator,
/// backslash or NUL.
fn plain_component(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part.len() <= 255
        && !part.contains(['\\', '\0'])
}

/// A database id as a directory name.
pub fn number(part: &str) -> bool {
    (1..=19).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
}

/// `<project id>.git`, a repository's directory (the git crate's naming).
pub fn repository_dir(part: &str) -> bool {
    part.strip_suffix(".git").is_some_and(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_backup_writes_is_accepted() {
        for (name, want) in [
            ("pipewright-backup.json", Target::Manifest),
            (
                "data/pipewright.sqlite3",
                Target::File("pipewright.sqlite3".into()),
            ),
            ("data/pipewright.key", Target::File("pipewright.key".into())),
            ("data/repositories/", Target::Dir("repositories".into())),
            (
                "data/repositories/7.git/",
                Target::Dir("repositories/7.git".into()),
            ),
            (
                "data/repositories/7.git/refs/heads/",
                Target::Dir("repositories/7.git/refs/heads".into()),
            ),
            (
                "data/repositories/7.git/objects/pack/pack-1.pack",
                Target::File("repositories/7.git/objects/pack/pack-1.pack".into()),
            ),
            (
                "data/artifacts/12/artifacts.zip",
                Target::File("artifacts/12/artifacts.zip".into()),
            ),
        ] {
            assert_eq!(target(name), Ok(want), "{name}");
        }
    }

    #[test]
    fn names_that_could_reach_elsewhere_or_are_not_a_backups_are_refused() {
        for name in [
            "/etc/passwd",
            "data//etc/passwd",
            "data/../pipewright.key",
            "data/repositories/7.git/../../../x",
            "data/repositories/7.git/./config",
            "data/repositories/7.git//config",
            "data/repositories/x.git/config",
            "data/repositories/7/config",
            "data/repositories/7.git/refs\\..\\x",
            "data/artifacts/12/other.zip",
            "data/artifacts/12/artifacts.zip/",
            "data/artifacts/-1/artifacts.zip",
            "data/pipewright.sqlite3-wal",
            "data/pipewright.key/",
            "data/repositories/7.git",
            "data/",
            "other/pipewright.key",
            "pipewright.key",
            "",
        ] {
            assert!(target(name).is_err(), "{name:?} must be refused");
        }
        let deep = format!("data/repositories/7.git/{}x", "a/".repeat(70));
        assert!(target(&deep).is_err());
    }
}
