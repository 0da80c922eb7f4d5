//! Refusing force pushes to some refs of a push, for protected branches without
//! `allow_force_push`.
//!
//! Whether an update is a force push (the old commit is not an ancestor of the new one) can
//! only be known once the pushed objects are there, after git has received the pack and
//! before it moves any ref: that is a `pre-receive` hook, as in GitLab (whose hook asks Rails,
//! `lib/gitlab/checks/force_push.rb`). The server passes the refs to guard in an environment
//! variable; the hook, a small shell script in a directory of ours, runs
//! `git merge-base --is-ancestor` for each and refuses the whole push with GitLab's message.
//!
//! A hook that cannot run (a data directory mounted `noexec`) would be skipped by git, which
//! would let force pushes through; so the hook is tried once, and when it does not run the
//! server falls back to git's `receive.denyNonFastForwards` for such pushes, which refuses
//! every force push in them (with git's message instead of GitLab's).

use std::path::{Path, PathBuf};

use crate::Repositories;

/// The environment variable that lists the refs to guard, one per line.
const GUARDED_REFS_ENV: &str = "PIPEWRIGHT_FAST_FORWARD_ONLY";

/// GitLab's message (`lib/gitlab/checks/branch_check.rb`, `force_push_protected_branch`),
/// with the `GitLab: ` prefix its hooks print.
pub const FORCE_PUSH_MESSAGE: &str =
    "GitLab: You are not allowed to force push code to a protected branch on this project.";

/// Ref names are checked with `is_valid_ref_name` before they get here (no spaces, newlines
/// or glob characters), and the case pattern quotes them, so they match literally.
fn script() -> String {
    format!(
        r#"#!/bin/sh
# Pipewright's pre-receive hook: refuses non-fast-forward updates of the refs listed in
# {GUARDED_REFS_ENV}, one per line. Written by the server; changes are overwritten.
zero=0000000000000000000000000000000000000000
while read -r old new ref; do
  case "
${GUARDED_REFS_ENV}
" in
    *"
$ref
"*) ;;
    *) continue ;;
  esac
  if [ "$old" = "$zero" ] || [ "$new" = "$zero" ]; then
    continue
  fi
  if ! git merge-base --is-ancestor "$old" "$new"; then
    echo "{FORCE_PUSH_MESSAGE}" >&2
    exit 1
  fi
done
exit 0
"#
    )
}

/// How `git receive-pack` is told to refuse force pushes to some refs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Guard {
    /// `-c` settings for git.
    pub config: Vec<String>,
    /// Environment for git (and so for its hooks).
    pub env: Vec<(String, String)>,
}

impl Repositories {
    /// The settings that make `git receive-pack` refuse force pushes to `refs` (none when
    /// `refs` is empty).
    pub(crate) async fn force_push_guard(&self, refs: &[String]) -> Guard {
        if refs.is_empty() {
            return Guard::default();
        }
        match self.hooks_dir().await {
            Some(dir) => Guard {
                config: vec![format!("core.hooksPath={}", dir.display())],
                env: vec![(GUARDED_REFS_ENV.to_string(), refs.join("\n"))],
            },
            None => Guard {
                config: vec!["receive.denyNonFastForwards=true".to_string()],
                env: Vec::new(),
            },
        }
    }

    /// The hooks directory, written and tried once per process; `None` when the hook cannot
    /// run here.
    async fn hooks_dir(&self) -> Option<PathBuf> {
        let dir = self.root.join(".hooks");
        self.hooks
            .get_or_init(|| async move {
                match install(&dir).await {
                    Ok(()) => Some(dir),
                    Err(err) => {
                        tracing::warn!(
                            error = %err,
                            "the pre-receive hook cannot run; force pushes to protected branches fall back to receive.denyNonFastForwards"
                        );
                        None
                    }
                }
            })
            .await
            .clone()
    }
}

/// Writes the hook (atomically: replicas sharing the data directory may do it at once) and
/// runs it once on an empty push to see that it can run.
async fn install(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(dir).await?;
    let hook = dir.join("pre-receive");
    let temp = dir.join(format!(".pre-receive.{}", std::process::id()));
    tokio::fs::write(&temp, script()).await?;
    tokio::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755)).await?;
    tokio::fs::rename(&temp, &hook).await?;
    // A process forked by another thread while the file was open for writing holds it
    // until it execs ("text file busy"): try again a little later.
    let mut attempt = 0;
    let status = loop {
        let run = tokio::process::Command::new(&hook)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        match run {
            Ok(status) => break status,
            Err(_) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(err) => return Err(err),
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("hook test run: {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_hook_is_installed_once_and_armed_per_push() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repos = Repositories::new(dir.path().join("repositories"));
        assert_eq!(repos.force_push_guard(&[]).await, Guard::default());
        let refs = vec![
            "refs/heads/main".to_string(),
            "refs/heads/release".to_string(),
        ];
        let guard = repos.force_push_guard(&refs).await;
        let hooks = dir.path().join("repositories/.hooks");
        assert_eq!(
            guard.config,
            vec![format!("core.hooksPath={}", hooks.display())]
        );
        assert_eq!(
            guard.env,
            vec![(
                GUARDED_REFS_ENV.to_string(),
                "refs/heads/main\nrefs/heads/release".to_string()
            )]
        );
        let script = std::fs::read_to_string(hooks.join("pre-receive")).expect("hook");
        assert!(script.contains(FORCE_PUSH_MESSAGE));
    }

    #[tokio::test]
    async fn a_hook_that_cannot_run_falls_back_to_refusing_every_force_push() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The repositories "directory" is a file: no hook can be written under it.
        let file = dir.path().join("not-a-directory");
        std::fs::write(&file, "x").expect("write");
        let repos = Repositories::new(&file);
        let guard = repos
            .force_push_guard(&["refs/heads/main".to_string()])
            .await;
        assert_eq!(
            guard.config,
            vec!["receive.denyNonFastForwards=true".to_string()]
        );
        assert!(guard.env.is_empty());
    }
}
