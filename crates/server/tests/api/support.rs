//! The test harness: a real server on an ephemeral port, backed by a real SQLite file or a
//! real PostgreSQL server that the harness starts itself from Debian's binaries (initdb into a
//! temp dir; no Docker, no pre-existing server; see `pipewright-test-postgres`). One PostgreSQL
//! cluster serves the whole test process; every test gets its own database in it. A test that
//! stops its database starts a private cluster ([`PgCluster::private`]) instead.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use pipewright_server::ServerConfig;
pub use pipewright_test_postgres::{PgCluster, postgres};
use reqwest::{Client, Method, Response};
use serde_json::Value;
use tokio::net::TcpListener;

pub const ROOT_PASSWORD: &str = "pipewright-root-password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named scenario on both databases: `both_backends!(name, …)` expects
/// `async fn name(app: TestApp)` in the same module.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::TestApp::start($crate::support::Backend::Sqlite).await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::TestApp::start($crate::support::Backend::Postgres).await).await
                }
            }
        )*
    };
}

pub struct TestApp {
    pub url: String,
    /// The database this server uses (a second replica can share it).
    pub database_url: String,
    pub root_token: String,
    pub client: Client,
    /// Kept alive for the test's duration; removed on drop.
    _data_dir: std::sync::Arc<tempfile::TempDir>,
    /// The server's store, for asserting on what the API does not expose.
    pub store: std::sync::Arc<dyn pipewright_store::Store>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

static ROOT_TOKEN_COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts with a configuration adjusted by `configure`.
    pub async fn start_with(
        backend: Backend,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}",
                data_dir.path().join("pipewright.sqlite3").display()
            ),
            Backend::Postgres => postgres().create_database().await,
        };
        Self::start_on(std::sync::Arc::new(data_dir), &database_url, configure).await
    }

    /// A server of its own (own data directory) on an existing database: a private cluster's,
    /// or one another test process created.
    pub async fn start_on_database(database_url: &str) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Self::start_on(std::sync::Arc::new(data_dir), database_url, |_| {}).await
    }

    /// A second replica of this server: the same database and data directory (a replica set
    /// shares PostgreSQL and a data volume), its own listener.
    pub async fn start_replica(&self) -> TestApp {
        self.start_replica_with(|_| {}).await
    }

    pub async fn start_replica_with(&self, configure: impl FnOnce(&mut ServerConfig)) -> TestApp {
        Self::start_on(self._data_dir.clone(), &self.database_url, configure).await
    }

    async fn start_on(
        data_dir: std::sync::Arc<tempfile::TempDir>,
        database_url: &str,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestApp {
        let database_url = database_url.to_string();
        let store = pipewright_store::connect(&database_url)
            .await
            .expect("open database");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = ServerConfig::new(&url, data_dir.path());
        // Runners' long polls would make every "no job for you" check take seconds.
        config.job_request_long_poll = std::time::Duration::from_millis(200);
        config.maintenance_interval = std::time::Duration::from_millis(100);
        config.webhook_retry_base = std::time::Duration::from_millis(200);
        configure(&mut config);
        let state = pipewright_server::app_state(config, store.clone()).expect("app state");
        let root_token = format!(
            "glpat-test-root-token-{:08}",
            ROOT_TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        pipewright_server::bootstrap::ensure_root(&state, Some(ROOT_PASSWORD), Some(&root_token))
            .await
            .expect("bootstrap root");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(err) = pipewright_server::serve(listener, state, shutdown).await {
                eprintln!("server error: {err}");
            }
        });
        TestApp {
            url,
            database_url,
            root_token,
            client: Client::new(),
            _data_dir: data_dir,
            store,
            shutdown: Some(tx),
        }
    }

    /// Stops this server (listener and maintenance loop, as a shutdown does) and keeps its
    /// database and data directory, so a replica started from it is the server restarting.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// The server's data directory (repositories, artifacts, the server key).
    pub fn data_dir(&self) -> &Path {
        self._data_dir.path()
    }

    /// The SQLite database file, when this app runs on SQLite.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        let path = self._data_dir.path().join("pipewright.sqlite3");
        path.exists().then_some(path)
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v4{}", self.url, path)
    }

    /// An API request as `token` (or anonymous with `None`), JSON body if given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.api(path));
        if let Some(t) = token {
            req = req.header("PRIVATE-TOKEN", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    /// `GET` as root, parsed as JSON.
    pub async fn root_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.get(path, Some(&self.root_token))
            .await
            .json()
            .await
            .expect("a JSON body")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Creates a user and a personal access token for them (scope `api`); returns (id, token).
    pub async fn create_user(&self, username: &str) -> (i64, String) {
        let res = self
            .post(
                "/users",
                Some(&self.root_token),
                serde_json::json!({
                    "username": username,
                    "name": format!("User {username}"),
                    "email": format!("{username}@example.com"),
                    "password": "a-long-password",
                }),
            )
            .await;
        assert_eq!(res.status(), 201, "create user {username}");
        let user: Value = res.json().await.expect("json");
        let id = user["id"].as_i64().expect("id");
        let res = self
            .post(
                &format!("/users/{id}/personal_access_tokens"),
                Some(&self.root_token),
                serde_json::json!({"name": "test", "scopes": ["api"]}),
            )
            .await;
        assert_eq!(res.status(), 201, "create token for {username}");
        let token: Value = res.json().await.expect("json");
        (id, token["token"].as_str().expect("token").to_string())
    }

    /// Creates a project as `token`; returns its JSON.
    pub async fn create_project(&self, token: &str, name: &str) -> Value {
        let res = self
            .post("/projects", Some(token), serde_json::json!({"name": name}))
            .await;
        assert_eq!(res.status(), 201, "create project {name}");
        res.json().await.expect("json")
    }

    pub async fn add_member(&self, project_id: i64, user_id: i64, level: i64) {
        let res = self
            .post(
                &format!("/projects/{project_id}/members"),
                Some(&self.root_token),
                serde_json::json!({"user_id": user_id, "access_level": level}),
            )
            .await;
        assert_eq!(res.status(), 201, "add member");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts status and exact JSON body.
pub async fn assert_json(res: Response, status: u16, body: Value) {
    let actual_status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let actual: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    assert_eq!((actual_status, actual), (status, body));
}
