//! A real PostgreSQL server for tests, started from Debian's binaries (`initdb` into a temp
//! dir, as the `postgres` user when run as root; no Docker, no pre-existing server). One
//! cluster serves a whole test process and is stopped by a watchdog when that process exits;
//! every test gets its own database in it. A test that stops and starts its database gets a
//! private cluster ([`PgCluster::private`]) instead. Used by the store's conformance suite and
//! the server's API tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A running PostgreSQL server (trust authentication on 127.0.0.1, fsync off).
pub struct PgCluster {
    port: u16,
    next_db: AtomicU32,
    dir: PathBuf,
    bindir: PathBuf,
    /// `pg_ctl`'s `-o` options, to start the cluster again the same way.
    options: String,
    /// Stop and remove the cluster on drop (private clusters; the shared one lives as long
    /// as the process, and its watchdog cleans up).
    private: bool,
}

static POSTGRES: OnceLock<PgCluster> = OnceLock::new();

/// This process's cluster, started on first use.
pub fn postgres() -> &'static PgCluster {
    POSTGRES.get_or_init(PgCluster::start)
}

fn pg_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PIPEWRIGHT_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|p| p.join("initdb").exists())
        .expect("PostgreSQL server binaries not found: install Debian's `postgresql` (bash .ci/run does)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb refuses root).
fn pg_command(bin: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.arg("-u").arg("postgres").arg("--").arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

static PRIVATE_CLUSTERS: AtomicU32 = AtomicU32::new(0);

impl PgCluster {
    fn start() -> PgCluster {
        Self::start_in(format!("pipewright-pg-{}", std::process::id()), false)
    }

    /// A cluster of the calling test's own, for a test that stops and starts its database
    /// (never the shared one other tests use). Stopped and removed when dropped.
    pub fn private() -> PgCluster {
        let n = PRIVATE_CLUSTERS.fetch_add(1, Ordering::Relaxed);
        Self::start_in(format!("pipewright-pg-{}-{n}", std::process::id()), true)
    }

    fn start_in(name: String, private: bool) -> PgCluster {
        let bindir = pg_bindir();
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pg dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
            assert!(status.is_ok_and(|s| s.success()), "chown pg dir");
        }
        let data = dir.join("data");
        let data_s = data.to_string_lossy().to_string();
        let out = pg_command(
            &bindir.join("initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .output()
        .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
            l.local_addr().expect("addr").port()
        };
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        let cluster = PgCluster {
            port,
            next_db: AtomicU32::new(0),
            dir: dir.clone(),
            bindir: bindir.clone(),
            options: opts,
            private,
        };
        cluster.start_again();
        // Stop the cluster when this test process exits, whatever way it exits.
        let pg_ctl = bindir.join("pg_ctl");
        let runas = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas}{pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = data.display(),
            dir = dir.display(),
        );
        // Detached on purpose: it outlives this process to clean up after it.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(watchdog)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn pg watchdog");
        cluster
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").to_string_lossy().to_string()
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.join("server.log").to_string_lossy().to_string();
        let data = self.data_dir();
        let out = pg_command(
            &self.bindir.join("pg_ctl"),
            &["-D", &data, "-o", &self.options, "-l", &log, "-w", "start"],
        )
        .output()
        .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the cluster as an administrator would (`-m fast`: sessions are terminated).
    pub fn stop(&self) {
        let data = self.data_dir();
        let out = pg_command(
            &self.bindir.join("pg_ctl"),
            &["-D", &data, "-m", "fast", "-w", "stop"],
        )
        .output()
        .expect("run pg_ctl");
        assert!(out.status.success(), "pg_ctl stop failed");
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh database and returns its URL.
    pub async fn create_database(&self) -> String {
        use sqlx::Connection;
        let name = format!("test_{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        conn.close().await.ok();
        self.url(&name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if !self.private {
            return;
        }
        let data = self.data_dir();
        let _ = pg_command(
            &self.bindir.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "stop"],
        )
        .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
