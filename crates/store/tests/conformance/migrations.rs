//! Upgrading a database that holds rows written by older versions: rows inserted at the oldest
//! schema (and more at an intermediate one) survive every later migration and read correctly
//! through the store, which then keeps writing where they left off. And what keeps replicas
//! and versions apart: a database a newer version migrated is refused, and servers starting
//! together on a fresh database migrate it once between them.

use pipewright_core::{AccessLevel, PipelineSource, Status, Visibility};
use pipewright_store::*;

use crate::on_both;
use crate::support::{Db, Fresh, new_pipeline, page};

on_both!(
    rows_written_at_the_oldest_schema_survive_every_migration,
    a_database_a_newer_version_migrated_is_refused_with_a_clear_message,
    servers_starting_together_on_a_fresh_database_migrate_it_once,
);

/// What version 1 (`0001_foundation.sql`) could hold: users, namespaces, a token, a project
/// with members and a protected branch, a push event.
const AT_VERSION_1: &str = "
INSERT INTO users (username, username_lower, name, email, email_lower, password_hash, is_admin,
    state, created_at, updated_at)
VALUES ('Root', 'root', 'Administrator', 'root@example.com', 'root@example.com',
    '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', TRUE, 'active', 1700000000000, 1700000000000),
    ('dev', 'dev', 'Developer', 'dev@example.com', 'dev@example.com', NULL, FALSE, 'blocked',
    1700000000001, 1700000000001);
INSERT INTO namespaces (name, path, path_lower, kind, owner_id, created_at)
SELECT name, username, username_lower, 'user', id, created_at FROM users;
INSERT INTO personal_access_tokens (user_id, name, token_digest, scopes, expires_at, revoked,
    created_at, last_used_at)
SELECT id, 'ci', 'token-digest', 'api,read_repository', NULL, FALSE, 1700000000002, NULL
FROM users WHERE username_lower = 'root';
INSERT INTO projects (namespace_id, name, path, path_lower, description, visibility,
    default_branch, creator_id, created_at, updated_at, last_activity_at)
SELECT n.id, 'Demo', 'demo', 'demo', 'An old project', 'internal', 'main', n.owner_id,
    1700000000003, 1700000000003, 1700000000003
FROM namespaces n WHERE n.path_lower = 'root';
INSERT INTO project_members (project_id, user_id, access_level, expires_at, created_at)
SELECT p.id, u.id, CASE WHEN u.is_admin THEN 50 ELSE 30 END,
    CASE WHEN u.is_admin THEN NULL ELSE 1900000000000 END, 1700000000004
FROM projects p, users u;
INSERT INTO protected_branches (project_id, name, push_access_level, merge_access_level,
    allow_force_push, created_at)
SELECT id, 'main', 40, 40, FALSE, 1700000000005 FROM projects;
INSERT INTO push_events (project_id, user_id, ref_name, before_sha, after_sha, push_options,
    created_at, processed_at)
SELECT p.id, p.creator_id, 'refs/heads/main', '0000000000000000000000000000000000000000',
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'ci.skip', 1700000000006, NULL
FROM projects p;
";

/// What version 3 (`0003_pipelines.sql`) added: a trigger and a finished pipeline made by it.
const AT_VERSION_3: &str = "
INSERT INTO triggers (project_id, owner_id, legacy, description, token_digest, token_sealed,
    short_token, created_at, updated_at, expires_at, last_used_at)
SELECT id, creator_id, FALSE, 'deploy', 'trigger-digest', 'sealed', 'abcd', 1700000000007,
    1700000000007, NULL, NULL FROM projects;
UPDATE projects SET last_pipeline_iid = 1;
INSERT INTO pipelines (project_id, iid, sha, before_sha, ref_name, tag, protected_ref, source,
    status, user_id, trigger_id, trigger_short_token, created_at, updated_at, started_at,
    finished_at)
SELECT t.project_id, 1, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    '0000000000000000000000000000000000000000', 'main', FALSE, TRUE, 'trigger', 'failed',
    t.owner_id, t.id, 'abcd', 1700000000008, 1700000000009, 1700000000008, 1700000000009
FROM triggers t;
INSERT INTO pipeline_variables (pipeline_id, position, key, value_sealed, variable_type)
SELECT id, 0, 'DEPLOY_ENV', 'sealed-value', 'env_var' FROM pipelines;
INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, position, status,
    when_condition, allow_failure, spec, failure_reason, created_at, queued_at, started_at,
    finished_at)
SELECT id, project_id, 'build', 'build', 0, 0, 'success', 'on_success', FALSE,
    '{\"script\":[\"make\"]}', NULL, 1700000000008, 1700000000008, 1700000000008, 1700000000009
FROM pipelines;
INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, position, status,
    when_condition, allow_failure, spec, failure_reason, created_at, queued_at, started_at,
    finished_at)
SELECT id, project_id, 'deploy', 'deploy', 1, 1, 'failed', 'manual', TRUE, '{}',
    'script_failure', 1700000000008, NULL, NULL, 1700000000009
FROM pipelines;
";

/// Runs a script of statements on the database, outside the store.
async fn execute(db: &Fresh, script: &'static str) {
    match db.db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
            sqlx::raw_sql(script)
                .execute(&pool)
                .await
                .expect("sample rows");
            pool.close().await;
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
            sqlx::raw_sql(script)
                .execute(&pool)
                .await
                .expect("sample rows");
            pool.close().await;
        }
    }
}

async fn rows_written_at_the_oldest_schema_survive_every_migration(db: Fresh) {
    let oldest = MIGRATIONS_SQLITE[0].version;
    pipewright_store::migrate_to(&db.url, oldest).await.unwrap();
    execute(&db, AT_VERSION_1).await;
    pipewright_store::migrate_to(&db.url, 3).await.unwrap();
    execute(&db, AT_VERSION_3).await;
    let store = db.open().await;
    check_users_and_projects(&*store).await;
    check_pipelines(&*store).await;
    check_new_writes(&*store).await;
}

async fn check_users_and_projects(store: &dyn Store) {
    let root = store.user_by_username("ROOT").await.unwrap().unwrap();
    assert_eq!((root.username.as_str(), root.is_admin), ("Root", true));
    assert!(root.password_hash.is_some() && root.is_active());
    let dev = store.user_by_username("dev").await.unwrap().unwrap();
    assert_eq!((dev.state, dev.password_hash), (UserState::Blocked, None));
    let token = store.personal_access_token_by_digest("token-digest").await;
    let token = token.unwrap().unwrap();
    assert_eq!(
        (token.user_id, token.scopes.len(), token.revoked),
        (root.id, 2, false)
    );

    let demo = store
        .project_by_full_path("root", "demo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (demo.visibility, demo.creator_id),
        (Visibility::Internal, Some(root.id))
    );
    assert_eq!(demo.description.as_deref(), Some("An old project"));
    let member = store.member(demo.id, dev.id).await.unwrap().unwrap();
    assert_eq!(member.access_level, AccessLevel::Developer);
    assert!(member.expires_at.is_some());
    assert_eq!(store.members(demo.id, page(1, 20)).await.unwrap().total, 2);
    let rules = store.protected_branches(demo.id).await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].push_access_level,
        ProtectionLevel::AtLeast(AccessLevel::Maintainer)
    );
    let pushes = store.pending_push_events(10).await.unwrap();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].push_options, ["ci.skip"]);
    // Tables later migrations added start empty, with their defaults.
    assert!(store.job_token_scope_enabled(demo.id).await.unwrap());
    assert_eq!(store.project_build_timeout(demo.id).await.unwrap(), None);
    assert!(store.project_hooks(demo.id).await.unwrap().is_empty());
    let schedules = store.pipeline_schedules(demo.id, None, page(1, 20)).await;
    assert_eq!(schedules.unwrap().total, 0);
}

async fn check_pipelines(store: &dyn Store) {
    let context = store
        .trigger_run_context("trigger-digest")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(context.owner_role, Some(AccessLevel::Owner));
    let demo = context.project;
    let listed = store
        .pipelines(demo.id, &PipelineFilter::default(), page(1, 20))
        .await
        .unwrap();
    assert_eq!(listed.total, 1);
    let pipeline = &listed.items[0];
    assert_eq!((pipeline.iid, pipeline.status), (1, Status::Failed));
    assert_eq!(pipeline.source, PipelineSource::Trigger);
    assert_eq!(pipeline.trigger_id, Some(context.trigger.id));
    let variables = store.pipeline_variables(pipeline.id).await.unwrap();
    assert_eq!(variables[0].key, "DEPLOY_ENV");
    // Columns later migrations added read as their defaults on old rows.
    let jobs = store.pipeline_all_jobs(pipeline.id).await.unwrap();
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        assert!(!job.retried && job.artifacts.is_none() && job.runner_id.is_none());
        assert_eq!((job.trace_size, job.lease_expires_at), (0, None));
        assert!(store.job_trace(job.id).await.unwrap().is_empty());
    }
    assert_eq!(jobs[1].failure_reason.as_deref(), Some("script_failure"));
    assert!(jobs[1].allow_failure);
    let retry = store.retry_job(jobs[1].id, Status::Manual).await.unwrap();
    assert_eq!(retry.unwrap().status, Status::Manual);
}

async fn check_new_writes(store: &dyn Store) {
    let context = store
        .trigger_run_context("trigger-digest")
        .await
        .unwrap()
        .unwrap();
    let next = new_pipeline(&context.project, &["build"], Status::Pending);
    let pipeline = store.create_pipeline(&next).await.unwrap();
    assert_eq!(pipeline.iid, 2, "iids continue after the old pipeline's");
    let fresh = crate::support::user(store, "newcomer").await;
    assert_eq!(store.count_users().await.unwrap(), 3);
    assert!(store.user_namespace(fresh.id).await.unwrap().is_some());
}

/// As after a newer Pipewright ran its migration 1000: this one must not run on that schema.
async fn a_database_a_newer_version_migrated_is_refused_with_a_clear_message(db: Fresh) {
    db.open().await.close().await;
    let future = 1000;
    assert!(future > latest_version());
    execute(
        &db,
        "INSERT INTO schema_migrations (version, name, applied_at) \
         VALUES (1000, '1000_from_the_future.sql', 1700000000000)",
    )
    .await;
    let refused = pipewright_store::connect(&db.url).await.err();
    let Some(
        err @ StoreError::SchemaTooNew {
            database,
            supported,
        },
    ) = refused
    else {
        panic!("a newer schema must be refused, got {refused:?}");
    };
    assert_eq!((database, supported), (future, latest_version()));
    let message = err.to_string();
    assert!(
        message.contains(&format!("schema is at version {future}"))
            && message.contains(&format!("up to {}", latest_version()))
            && message.contains("a newer version of Pipewright has upgraded it"),
        "{message}"
    );
}

/// Replicas started at once on an empty database: both come up (neither trips over the
/// other's half-made tables), and every migration is recorded exactly once.
async fn servers_starting_together_on_a_fresh_database_migrate_it_once(db: Fresh) {
    let (first, second) = tokio::join!(
        pipewright_store::connect(&db.url),
        pipewright_store::connect(&db.url)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let owner = crate::support::user(&*first, "owner").await;
    assert_eq!(
        second
            .user_by_username("owner")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(owner.id)
    );
    first.close().await;
    second.close().await;
    let recorded = applied_versions(&db).await;
    let expected: Vec<i64> = MIGRATIONS_SQLITE.iter().map(|m| m.version).collect();
    assert_eq!(recorded, expected, "each migration recorded once");
}

/// `schema_migrations`' versions, in order (duplicates included, were there any).
async fn applied_versions(db: &Fresh) -> Vec<i64> {
    let sql = "SELECT version FROM schema_migrations ORDER BY version";
    match db.db {
        Db::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
            let rows: Vec<(i64,)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.into_iter().map(|r| r.0).collect()
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
            let rows: Vec<(i64,)> = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.into_iter().map(|r| r.0).collect()
        }
    }
}
