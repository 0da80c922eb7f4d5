//! Job isolation: what keeps a job away from everything that is not its own.
//!
//! A job is untrusted code. It must not read or write the server's files (key, database,
//! repositories, artifacts, logs, the embedded runner's token), other jobs' directories or the
//! server's environment, nor signal or trace the server. The kernel enforces it, in layers:
//!
//! - **Landlock** confines every process of a job to its own directory (read-write), read-only
//!   system paths (`/usr`, `/etc`, `/proc`, …) and a few devices. Its scopes (ABI 6) stop the
//!   job signalling processes outside its domain (the server, other jobs) or reaching their
//!   abstract UNIX sockets; its ptrace rule stops it reading `/proc/<server pid>/environ` or
//!   `mem`. Every step of every job gets a domain of its own.
//! - **Another user**: when the runner runs as root, jobs run as an unprivileged user
//!   (`--job-user`, default `nobody`), so file modes (the data directory is 0700) apply too.
//!   Never root: a root job's capabilities pass file modes, and on Linux 6.18 a root process
//!   under Landlock could still read other processes' `/proc/<pid>/environ` (tested).
//! - `PR_SET_NO_NEW_PRIVS` (no setuid or file-capability gain), their own process group, and
//!   hard limits on open files and processes (`ulimit` in the script's prologue, before any of
//!   the job's commands: a limit set on the child from outside would race with it).
//! - This process is made non-dumpable: even a process with the server's uid cannot trace it or
//!   read its memory and environment through `/proc`.
//!
//! `unsafe` is forbidden, so nothing can run between `fork` and `exec`. Landlock and
//! `no_new_privs` are per-thread and inherited by children, so each job process is spawned from
//! a short-lived OS thread that restricts itself first, spawns, and exits (the user switch is
//! std's `Command::uid`/`gid`, done in the child). The runner's own work inside a job's
//! directory (unpacking dependencies, collecting artifacts) runs the same way, on a thread
//! confined to that directory alone, so a symlink the job planted leads nowhere.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use landlock::{
    ABI, Access, AccessFs, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};

/// The Landlock ABI these rules were written and tested against. Newer kernels get exactly
/// this; older ones the part they support (Landlock's best-effort mode), which is reported.
const TESTED_ABI: ABI = ABI::V7;

/// The first ABI with scopes (signals, abstract UNIX sockets).
const SCOPES_ABI: i32 = 6;

/// Where programs, libraries and system configuration live: jobs may read and execute them.
const SYSTEM_PATHS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// The kernel's views: readable, not executable. Other processes' secrets in `/proc` stay
/// behind Landlock's ptrace rule and the server's non-dumpable flag.
const KERNEL_PATHS: &[&str] = &["/proc", "/sys"];

/// Devices a job may read and write.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Hard limits for a job's processes (lowered to the runner's own hard limit when that is less).
const MAX_OPEN_FILES: u64 = 16_384;
const MAX_PROCESSES: u64 = 4_096;

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct IsolationOptions {
    /// Run jobs as this user: a name from `/etc/passwd`, a uid, or `uid:gid`. Only a runner
    /// running as root can switch users; it defaults to `nobody` then.
    pub job_user: Option<String>,
    /// Run jobs even where Landlock is unavailable (`--allow-jobs-to-read-server-secrets`).
    pub allow_unconfined: bool,
}

/// The isolation in force, decided once at start-up.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// The kernel's Landlock ABI; `None` when the operator accepted running without it.
    landlock: Option<i32>,
    user: Option<JobUser>,
    limits: Limits,
}

/// The unprivileged user jobs run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Hard resource limits for a job's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub open_files: u64,
    pub processes: u64,
}

impl Isolation {
    /// Finds what this machine offers and what the operator asked for. Fails when jobs could
    /// not be isolated (no Landlock, unless the operator accepted that; a job user that cannot
    /// be used).
    pub fn detect(options: &IsolationOptions) -> anyhow::Result<Isolation> {
        Isolation::decide(landlock_abi(), options)
    }

    /// `detect`, given what the kernel offers.
    fn decide(landlock: Option<i32>, options: &IsolationOptions) -> anyhow::Result<Isolation> {
        if landlock.is_none() && !options.allow_unconfined {
            bail!(
                "this kernel does not offer Landlock, so jobs could read and change the server's \
                 key, database, tokens and other jobs' files; refusing to run jobs \
                 (--allow-jobs-to-read-server-secrets runs them anyway)"
            );
        }
        Ok(Isolation {
            landlock,
            user: job_user(options.job_user.as_deref())?,
            limits: limits(),
        })
    }

    /// Whether Landlock confines jobs.
    pub fn confined(&self) -> bool {
        self.landlock.is_some()
    }

    /// The Landlock ABI in force, if any.
    pub fn landlock_abi(&self) -> Option<i32> {
        self.landlock
    }

    /// The user jobs run as; `None`: the runner's own.
    pub fn job_user(&self) -> Option<&JobUser> {
        self.user.as_ref()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Fails when a job could read `path` (the data directory, a configuration file): it lies
    /// under a path jobs may read (`/etc`, `/opt`, …) and file permissions would not stop the
    /// job's user. Landlock allows whole trees; what inside them must stay private is checked
    /// here.
    pub fn ensure_private(&self, path: &Path) -> anyhow::Result<()> {
        if !self.confined() {
            return Ok(());
        }
        let path =
            std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
        let Some(granted) = SYSTEM_PATHS
            .iter()
            .chain(KERNEL_PATHS)
            .find(|p| path.starts_with(p))
        else {
            return Ok(());
        };
        if let Some(user) = &self.user {
            let meta = std::fs::metadata(&path)?;
            let kept_out = if meta.is_dir() {
                first_barrier(&path.join("x"), user)?.is_some()
            } else {
                first_barrier(&path, user)?.is_some() || !allows(&meta, user, 0o4)
            };
            if kept_out {
                return Ok(());
            }
        }
        bail!(
            "jobs could read {}: it is inside {granted}, which jobs may read{}; move it out of \
             {granted}",
            path.display(),
            match &self.user {
                Some(user) => format!(", and its permissions let {} in", user.name),
                None => String::new(),
            }
        )
    }
}

/// The first directory above `path` that `user` may not pass (no search permission), with
/// its mode; `None` when every one lets them through.
pub(crate) fn first_barrier(path: &Path, user: &JobUser) -> anyhow::Result<Option<(PathBuf, u32)>> {
    use std::os::unix::fs::MetadataExt;
    for parent in path.ancestors().skip(1) {
        let meta =
            std::fs::metadata(parent).with_context(|| format!("reading {}", parent.display()))?;
        if !allows(&meta, user, 0o1) {
            return Ok(Some((parent.to_path_buf(), meta.mode())));
        }
    }
    Ok(None)
}

/// Whether a file's mode grants `user` the `bits` (4 read, 2 write, 1 search/execute), by its
/// owner, group or other class (jobs have no supplementary groups).
fn allows(meta: &std::fs::Metadata, user: &JobUser, bits: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    let class = if meta.uid() == user.uid {
        mode >> 6
    } else if meta.gid() == user.gid {
        mode >> 3
    } else {
        mode
    };
    class & bits == bits
}

/// One sentence for the log and the admin page.
impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.landlock {
            Some(abi) if abi >= SCOPES_ABI => write!(
                f,
                "Landlock ABI {abi}: each job is confined to its own directory and cannot \
                 signal the server or other jobs"
            )?,
            Some(abi) => write!(
                f,
                "Landlock ABI {abi} (partial: this kernel cannot stop jobs signalling \
                 processes of their own user): each job is confined to its own directory"
            )?,
            None => write!(
                f,
                "NO ISOLATION (this kernel has no Landlock; \
                 --allow-jobs-to-read-server-secrets): jobs can read the server's secrets"
            )?,
        }
        match &self.user {
            Some(user) => write!(
                f,
                "; jobs run as {} (uid {}, gid {})",
                user.name, user.uid, user.gid
            )?,
            None => write!(
                f,
                "; jobs run under the same user as the runner (uid {})",
                rustix::process::geteuid().as_raw()
            )?,
        }
        write!(
            f,
            "; no_new_privs, own process group, at most {} open files and {} processes",
            self.limits.open_files, self.limits.processes
        )
    }
}

/// The kernel's Landlock ABI, found by restricting a throwaway thread (the same call a job's
/// thread makes), or `None` when Landlock is missing or disabled.
pub fn landlock_abi() -> Option<i32> {
    std::thread::spawn(|| {
        let status = Ruleset::default()
            .handle_access(AccessFs::from_all(TESTED_ABI))
            .ok()?
            .create()
            .ok()?
            .restrict_self()
            .ok()?;
        if status.ruleset == RulesetStatus::NotEnforced {
            return None;
        }
        match status.landlock {
            LandlockStatus::Available {
                kernel_abi: Some(abi),
                ..
            } => Some(abi),
            LandlockStatus::Available { effective_abi, .. } => Some(abi_number(effective_abi)),
            _ => None,
        }
    })
    .join()
    .ok()
    .flatten()
}

fn abi_number(abi: ABI) -> i32 {
    (1..=10).find(|n| ABI::from(*n) == abi).map_or(0, |n| n)
}

/// Makes this process non-dumpable: its `/proc` files become root's and nobody without
/// `CAP_SYS_PTRACE` may trace it, so a job running with the server's uid (or a confined
/// thread's) cannot read its memory or environment.
pub fn protect_this_process() -> anyhow::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("making the process non-dumpable (PR_SET_DUMPABLE)")
}

/// Resolves `--job-user`. As root: the named user (default `nobody`), never root itself. Not
/// as root: only the runner's own user is possible.
fn job_user(wanted: Option<&str>) -> anyhow::Result<Option<JobUser>> {
    let me = rustix::process::geteuid().as_raw();
    if me != 0 {
        if let Some(name) = wanted {
            let user = lookup_user(name)?;
            if user.uid != me {
                bail!(
                    "--job-user {name}: only a runner running as root can run jobs as another \
                     user (this one runs as uid {me})"
                );
            }
        }
        return Ok(None);
    }
    let user = lookup_user(wanted.unwrap_or("nobody"))?;
    if user.uid == 0 || user.gid == 0 {
        bail!(
            "--job-user {}: jobs must not run as root (uid or gid 0)",
            user.name
        );
    }
    Ok(Some(user))
}

/// `name` in `/etc/passwd`, or `uid` / `uid:gid` given as numbers.
fn lookup_user(name: &str) -> anyhow::Result<JobUser> {
    if let Some((uid, gid)) = parse_ids(name) {
        return Ok(JobUser {
            name: name.to_string(),
            uid,
            gid,
        });
    }
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    find_in_passwd(&passwd, name).with_context(|| {
        format!("--job-user {name}: no such user in /etc/passwd (a uid or uid:gid works too)")
    })
}

fn parse_ids(text: &str) -> Option<(u32, u32)> {
    match text.split_once(':') {
        Some((uid, gid)) => Some((uid.parse().ok()?, gid.parse().ok()?)),
        None => {
            let uid = text.parse().ok()?;
            Some((uid, uid))
        }
    }
}

fn find_in_passwd(passwd: &str, name: &str) -> Option<JobUser> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        Some(JobUser {
            name: name.to_string(),
            uid: fields.next()?.parse().ok()?,
            gid: fields.next()?.parse().ok()?,
        })
    })
}

/// The job limits, never above the runner's own hard limits (which a non-root process cannot
/// raise; `ulimit` would fail).
fn limits() -> Limits {
    use rustix::process::{Resource, getrlimit};
    let cap = |resource, wanted: u64| {
        getrlimit(resource)
            .maximum
            .map_or(wanted, |m| m.min(wanted))
    };
    Limits {
        open_files: cap(Resource::Nofile, MAX_OPEN_FILES),
        processes: cap(Resource::Nproc, MAX_PROCESSES),
    }
}

/// One job's confinement: its directory and how its processes are started.
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    isolation: Isolation,
    dir: PathBuf,
}

/// Which rules a confined thread takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// A job's processes: its directory, system paths read-only, devices; scoped.
    Job,
    /// The runner's own work in a job's directory: that directory and nothing else.
    DirectoryOnly,
}

impl Sandbox {
    pub(crate) fn new(isolation: &Isolation, dir: PathBuf) -> Sandbox {
        Sandbox {
            isolation: isolation.clone(),
            dir,
        }
    }

    pub(crate) fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// Spawns `cmd` as one of the job's processes: from a thread that confines itself first,
    /// as the job user, in a process group of its own.
    pub(crate) async fn spawn(
        &self,
        mut cmd: tokio::process::Command,
    ) -> anyhow::Result<tokio::process::Child> {
        if let Some(user) = &self.isolation.user {
            // std drops supplementary groups when it switches from root.
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd.process_group(0);
        let runtime = tokio::runtime::Handle::current();
        self.on_confined_thread(Rules::Job, move || {
            // The child is registered with this runtime's process reaper.
            let _entered = runtime.enter();
            cmd.spawn().context("starting a process")
        })
        .await
    }

    /// Runs the runner's own work on the job's files, on a thread that can reach the job's
    /// directory and nothing else.
    pub(crate) async fn in_directory<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.on_confined_thread(Rules::DirectoryOnly, work).await
    }

    async fn on_confined_thread<T: Send + 'static>(
        &self,
        rules: Rules,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (landlock, dir) = (self.isolation.confined(), self.dir.clone());
        std::thread::Builder::new()
            .name("pipewright-job".into())
            .spawn(move || {
                let result = restrict_this_thread(landlock, rules, &dir).and_then(|()| work());
                let _ = tx.send(result);
            })
            .context("starting a thread for the job")?;
        rx.await
            .context("the job's thread ended without an answer")?
    }
}

/// Applies `rules` to the calling thread (and so to every process it starts). Irreversible:
/// call it only on a thread made for the purpose.
fn restrict_this_thread(landlock: bool, rules: Rules, dir: &Path) -> anyhow::Result<()> {
    if !landlock {
        return rustix::thread::set_no_new_privs(true).context("setting no_new_privs");
    }
    let abi = TESTED_ABI;
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(abi))?;
    if rules == Rules::Job {
        ruleset = ruleset.scope(Scope::from_all(abi))?;
    }
    let job_dir = PathFd::new(dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut created = ruleset
        .create()?
        .add_rule(PathBeneath::new(job_dir, AccessFs::from_all(abi)))?;
    if rules == Rules::Job {
        let read = AccessFs::from_read(abi);
        let view = AccessFs::ReadFile | AccessFs::ReadDir;
        let device = AccessFs::from_file(abi) & !AccessFs::Execute;
        for (path, access) in job_paths(read, view, device) {
            // A path this machine lacks is simply not granted.
            if let Ok(fd) = PathFd::new(&path) {
                created = created.add_rule(PathBeneath::new(fd, access))?;
            }
        }
    }
    let status = created.restrict_self().context("applying Landlock")?;
    if status.ruleset == RulesetStatus::NotEnforced || !status.no_new_privs {
        bail!("Landlock could not be applied to the job ({status:?})");
    }
    Ok(())
}

/// The paths a job may use besides its own directory, with their rights.
fn job_paths<A: Copy>(read: A, view: A, device: A) -> Vec<(PathBuf, A)> {
    let mut paths: Vec<(PathBuf, A)> = SYSTEM_PATHS
        .iter()
        .map(|p| (PathBuf::from(p), read))
        .chain(KERNEL_PATHS.iter().map(|p| (PathBuf::from(p), view)))
        .chain(DEVICES.iter().map(|p| (PathBuf::from(p), device)))
        .collect();
    // Name resolution: /etc/resolv.conf is often a link into /run (systemd-resolved).
    if let Ok(target) = std::fs::canonicalize("/etc/resolv.conf")
        && !target.starts_with("/etc")
    {
        paths.push((target, view));
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_come_from_passwd_or_numbers() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            find_in_passwd(passwd, "nobody"),
            Some(JobUser {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534
            })
        );
        assert_eq!(find_in_passwd(passwd, "nobod"), None);
        assert_eq!(parse_ids("1000:100"), Some((1000, 100)));
        assert_eq!(parse_ids("1000"), Some((1000, 1000)));
        assert_eq!(parse_ids("builder"), None);
    }

    #[test]
    fn without_landlock_jobs_run_only_when_the_operator_accepts_the_risk() {
        let refused = Isolation::decide(None, &IsolationOptions::default())
            .expect_err("no Landlock, no jobs");
        assert!(
            refused
                .to_string()
                .contains("--allow-jobs-to-read-server-secrets"),
            "{refused}"
        );
        let accepted = Isolation::decide(
            None,
            &IsolationOptions {
                job_user: None,
                allow_unconfined: true,
            },
        )
        .expect("accepted");
        assert!(!accepted.confined());
        assert!(accepted.to_string().starts_with("NO ISOLATION"));
        let partial = Isolation::decide(Some(5), &IsolationOptions::default()).expect("ABI 5");
        assert!(partial.to_string().contains("partial"), "{partial}");
    }

    #[test]
    fn jobs_never_run_as_root() {
        if rustix::process::geteuid().is_root() {
            let options = IsolationOptions {
                job_user: Some("0:0".into()),
                allow_unconfined: false,
            };
            assert!(Isolation::decide(Some(7), &options).is_err());
            let default = Isolation::decide(Some(7), &IsolationOptions::default()).expect("nobody");
            assert_ne!(default.job_user().map(|u| u.uid), Some(0));
        } else {
            let options = IsolationOptions {
                job_user: Some("0:0".into()),
                allow_unconfined: false,
            };
            assert!(
                Isolation::decide(Some(7), &options).is_err(),
                "only root can switch users"
            );
        }
    }

    /// Landlock lets jobs read whole trees such as `/opt`; a data directory there is refused
    /// unless file permissions keep the job's user out.
    #[test]
    fn private_paths_under_readable_trees_are_refused() {
        let same_user = Isolation {
            landlock: Some(7),
            user: None,
            limits: limits(),
        };
        assert!(same_user.ensure_private(Path::new("/etc/passwd")).is_err());
        assert!(same_user.ensure_private(&std::env::temp_dir()).is_ok());
        let other_user = Isolation {
            user: Some(JobUser {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534,
            }),
            ..same_user.clone()
        };
        // /etc/passwd is world-readable: a job user could read it too.
        assert!(other_user.ensure_private(Path::new("/etc/passwd")).is_err());
        let unconfined = Isolation {
            landlock: None,
            ..same_user
        };
        assert!(unconfined.ensure_private(Path::new("/etc/passwd")).is_ok());
    }

    #[test]
    fn limits_never_exceed_the_runners_own() {
        let l = limits();
        assert!(l.open_files <= MAX_OPEN_FILES && l.open_files > 0);
        assert!(l.processes <= MAX_PROCESSES && l.processes > 0);
    }
}

#[cfg(test)]
mod confinement {
    use super::*;
    use std::process::Stdio;

    /// A confined process reads and writes its own directory and system files, and nothing
    /// next to its directory; the runner's confined work reaches only the directory.
    #[tokio::test]
    async fn a_job_process_reaches_its_own_directory_only() {
        let Some(abi) = landlock_abi() else {
            eprintln!("SKIPPED: this kernel has no Landlock; job isolation is not tested here");
            return;
        };
        let isolation = Isolation::detect(&IsolationOptions::default()).expect("detect");
        assert_eq!(isolation.landlock_abi(), Some(abi));
        let base = std::env::temp_dir().join(format!("pipewright-confine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let builds = crate::prepare_builds_dir(&base.join("builds"), &isolation).expect("builds");
        let job = builds.join("1");
        std::fs::create_dir(&job).expect("mkdir");
        crate::artifacts::give(&job, isolation.job_user()).expect("chown");
        std::fs::write(base.join("secret"), "server secret").expect("write");
        let sandbox = Sandbox::new(&isolation, job.clone());

        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(format!(
                "cat {secret} && echo READ-SECRET; echo mine > {job}/file && cat {job}/file; \
                 test -r /etc/passwd && echo SYSTEM-OK; ls {builds} && echo LISTED; id -u",
                secret = base.join("secret").display(),
                job = job.display(),
                builds = builds.display(),
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let out = sandbox
            .spawn(cmd)
            .await
            .expect("spawn")
            .wait_with_output()
            .await
            .expect("wait");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("READ-SECRET"), "{text}");
        assert!(!text.contains("LISTED"), "{text}");
        assert!(
            text.contains("mine\n") && text.contains("SYSTEM-OK"),
            "{text}"
        );
        if rustix::process::geteuid().is_root() {
            assert!(!text.ends_with("\n0\n"), "jobs do not run as root: {text}");
        }

        let secret = base.join("secret");
        let read = sandbox
            .in_directory(move || Ok(std::fs::read_to_string(&secret).is_ok()))
            .await
            .expect("confined work");
        assert!(
            !read,
            "the runner's confined work cannot leave the job's directory"
        );
        std::fs::remove_dir_all(&base).ok();
    }
}
