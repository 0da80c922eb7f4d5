//! The suite's harness: a store on a real SQLite file or on a real PostgreSQL database (a
//! server the test process starts itself, see `pipewright-test-postgres`), and the few rows
//! most tests need.

use std::sync::Arc;

use pipewright_core::{PipelineSource, Status, Visibility};
use pipewright_store::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs each named test on both databases: `on_both!(name, …)` expects
/// `async fn name(db: Fresh)` in the same module.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Fresh::new($crate::support::Db::Sqlite).await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Fresh::new($crate::support::Db::Postgres).await).await
                }
            }
        )*
    };
}

/// A new, empty database (nothing applied yet); [`Fresh::open`] migrates it and opens a store.
pub struct Fresh {
    pub url: String,
    pub db: Db,
    /// Holds the SQLite file; removed on drop.
    _dir: Option<tempfile::TempDir>,
}

impl Fresh {
    pub async fn new(db: Db) -> Fresh {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("store.sqlite3").display());
                Fresh {
                    url,
                    db,
                    _dir: Some(dir),
                }
            }
            Db::Postgres => Fresh {
                url: pipewright_test_postgres::postgres().create_database().await,
                db,
                _dir: None,
            },
        }
    }

    /// A store on this database (each call opens another, as a second server would).
    pub async fn open(&self) -> Arc<dyn Store> {
        pipewright_store::connect(&self.url)
            .await
            .expect("open the store")
    }
}

pub async fn user(store: &dyn Store, username: &str) -> User {
    store
        .create_user(&NewUser {
            username: username.into(),
            name: format!("{username} Name"),
            email: format!("{username}@example.com"),
            password_hash: None,
            is_admin: false,
        })
        .await
        .expect("create user")
}

pub async fn project(store: &dyn Store, owner: &User, path: &str) -> Project {
    let namespace = store
        .user_namespace(owner.id)
        .await
        .expect("namespace")
        .expect("the owner's namespace");
    store
        .create_project(&NewProject {
            namespace_id: namespace.id,
            name: path.into(),
            path: path.into(),
            description: None,
            visibility: Visibility::Private,
            default_branch: "main".into(),
            creator_id: owner.id,
        })
        .await
        .expect("create project")
}

/// A pipeline on `main` whose jobs (one per name) start in `status`.
pub fn new_pipeline(project: &Project, jobs: &[&str], status: Status) -> NewPipeline {
    NewPipeline {
        project_id: project.id,
        sha: "a".repeat(40),
        before_sha: "0".repeat(40),
        ref_name: "main".into(),
        tag: false,
        protected_ref: true,
        source: PipelineSource::Push,
        status,
        user_id: project.creator_id,
        trigger_id: None,
        trigger_short_token: None,
        upstream: None,
        name: None,
        yaml_errors: None,
        failure_reason: None,
        committed_at: None,
        variables: Vec::new(),
        jobs: jobs
            .iter()
            .map(|name| NewJob {
                name: name.to_string(),
                stage: "test".into(),
                stage_idx: 0,
                status,
                when: "on_success".into(),
                allow_failure: false,
                spec: "{}".into(),
            })
            .collect(),
    }
}

/// A pipeline with `count` pending jobs, and those jobs.
pub async fn pending_jobs(store: &dyn Store, project: &Project, count: usize) -> Vec<Job> {
    let names: Vec<String> = (0..count).map(|i| format!("job {i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let pipeline = store
        .create_pipeline(&new_pipeline(project, &names, Status::Pending))
        .await
        .expect("create pipeline");
    store.pipeline_all_jobs(pipeline.id).await.expect("jobs")
}

pub async fn runner(store: &dyn Store, digest: &str) -> Runner {
    store
        .create_runner(&NewRunner {
            group_id: None,
            token_digest: digest.into(),
            runner_type: RunnerType::Instance,
            project_id: None,
            creator_id: None,
            description: format!("runner {digest}"),
            tag_list: vec!["docker".into(), "linux".into()],
            run_untagged: true,
            paused: false,
            locked: false,
            access_level: "not_protected".into(),
            maximum_timeout: None,
        })
        .await
        .expect("create runner")
}

pub fn page(page: u32, per_page: u32) -> Page {
    Page { page, per_page }
}

/// Alice and her private project `demo`.
pub async fn alice_and_demo(store: &dyn Store) -> (User, Project) {
    let alice = user(store, "alice").await;
    let demo = project(store, &alice, "demo").await;
    (alice, demo)
}

/// Alice's private project `demo`.
pub async fn demo_project(store: &dyn Store) -> Project {
    alice_and_demo(store).await.1
}
