// The SQL shared by both backends. This file is `include!`d into `sqlite.rs` and `postgres.rs`,
// where `Db` names the sqlx database type and `StoreImpl` the store struct, so each statement
// is written once and compiled (and type-checked) for each backend. Placeholders are `$N`,
// which both SQLite and PostgreSQL accept; dynamic statements use `QueryBuilder`, which emits
// the right placeholder for each. Dialect-only code lives in the backend modules, never here.

use pipewright_core::{AccessLevel, PipelineSource, Status, Timestamp, Visibility};
use sqlx::{QueryBuilder, Row};

use crate::model::*;
use crate::{Backend, InlineArg, Result, Store, StoreError};

type DbRow = <Db as sqlx::Database>::Row;

macro_rules! user_columns {
    () => {
        "u.id, u.username, u.name, u.email, u.password_hash, u.is_admin, u.state, u.created_at, u.updated_at"
    };
}

/// The projects listing's columns and source, for [`paged`].
const PROJECT_COLUMNS: &str = "p.id, p.name, p.path, p.description, p.visibility, p.default_branch, p.creator_id, \
    p.created_at, p.updated_at, p.last_activity_at, n.id AS ns_id, n.name AS ns_name, n.path AS ns_path, \
    n.kind AS ns_kind, n.owner_id AS ns_owner_id, n.created_at AS ns_created_at";
const PROJECT_FROM: &str = "projects p JOIN namespaces n ON n.id = p.namespace_id";

macro_rules! project_select {
    () => {
        "SELECT p.id, p.name, p.path, p.description, p.visibility, \
    p.default_branch, p.creator_id, p.created_at, p.updated_at, p.last_activity_at, \
    n.id AS ns_id, n.name AS ns_name, n.path AS ns_path, n.kind AS ns_kind, \
    n.owner_id AS ns_owner_id, n.created_at AS ns_created_at \
    FROM projects p JOIN namespaces n ON n.id = p.namespace_id"
    };
}

macro_rules! pat_columns {
    () => {
        "id, user_id, name, scopes, expires_at, revoked, created_at, last_used_at"
    };
}

fn user_from_row(row: &DbRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get("is_admin")?,
        state: UserState::parse(row.try_get::<&str, _>("state")?),
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

fn namespace_from_row(row: &DbRow, prefix: &str) -> Result<Namespace> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Namespace {
        id: row.try_get(col("id").as_str())?,
        name: row.try_get(col("name").as_str())?,
        path: row.try_get(col("path").as_str())?,
        kind: NamespaceKind::parse(row.try_get::<&str, _>(col("kind").as_str())?),
        owner_id: row.try_get(col("owner_id").as_str())?,
        created_at: Timestamp(row.try_get(col("created_at").as_str())?),
    })
}

fn project_from_row(row: &DbRow) -> Result<Project> {
    let visibility: &str = row.try_get("visibility")?;
    Ok(Project {
        id: row.try_get("id")?,
        namespace: namespace_from_row(row, "ns_")?,
        name: row.try_get("name")?,
        path: row.try_get("path")?,
        description: row.try_get("description")?,
        visibility: Visibility::parse(visibility).unwrap_or(Visibility::Private),
        default_branch: row.try_get("default_branch")?,
        creator_id: row.try_get("creator_id")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        last_activity_at: Timestamp(row.try_get("last_activity_at")?),
    })
}

fn pat_from_row(row: &DbRow) -> Result<PersonalAccessToken> {
    let scopes: String = row.try_get("scopes")?;
    Ok(PersonalAccessToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scopes: split_list(&scopes),
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp),
        revoked: row.try_get("revoked")?,
        created_at: Timestamp(row.try_get("created_at")?),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(Timestamp),
    })
}

fn member_from_row(row: &DbRow) -> Result<Member> {
    let level: i64 = row.try_get("access_level")?;
    Ok(Member {
        project_id: row.try_get("project_id")?,
        user: user_from_row(row)?,
        access_level: AccessLevel::from_i64(level).unwrap_or(AccessLevel::Guest),
        expires_at: row.try_get::<Option<i64>, _>("m_expires_at")?.map(Timestamp),
        created_at: Timestamp(row.try_get("m_created_at")?),
    })
}

fn protected_branch_from_row(row: &DbRow) -> Result<ProtectedBranch> {
    let push: i64 = row.try_get("push_access_level")?;
    let merge: i64 = row.try_get("merge_access_level")?;
    Ok(ProtectedBranch {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        push_access_level: ProtectionLevel::from_i64(push).unwrap_or(ProtectionLevel::AtLeast(AccessLevel::Maintainer)),
        merge_access_level: ProtectionLevel::from_i64(merge).unwrap_or(ProtectionLevel::AtLeast(AccessLevel::Maintainer)),
        allow_force_push: row.try_get("allow_force_push")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

macro_rules! trigger_columns {
    () => {
        "id, project_id, owner_id, legacy, description, token_sealed, short_token, created_at, updated_at, expires_at, last_used_at"
    };
}

fn trigger_from_row(row: &DbRow) -> Result<Trigger> {
    Ok(Trigger {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        owner_id: row.try_get("owner_id")?,
        legacy: row.try_get("legacy")?,
        description: row.try_get("description")?,
        token_sealed: row.try_get("token_sealed")?,
        short_token: row.try_get("short_token")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(Timestamp),
    })
}

/// `trigger_run_context`'s row: trigger columns as `t_*`, the project unprefixed (with `ns_*`),
/// the owner as `u_*`, the owner's membership as `m_*`.
fn trigger_context_from_row(row: &DbRow) -> Result<TriggerContext> {
    let trigger = Trigger {
        id: row.try_get("t_id")?,
        project_id: row.try_get("t_project_id")?,
        owner_id: row.try_get("t_owner_id")?,
        legacy: row.try_get("t_legacy")?,
        description: row.try_get("t_description")?,
        token_sealed: row.try_get("t_token_sealed")?,
        short_token: row.try_get("t_short_token")?,
        created_at: Timestamp(row.try_get("t_created_at")?),
        updated_at: Timestamp(row.try_get("t_updated_at")?),
        expires_at: row.try_get::<Option<i64>, _>("t_expires_at")?.map(Timestamp),
        last_used_at: row.try_get::<Option<i64>, _>("t_last_used_at")?.map(Timestamp),
    };
    let owner = match row.try_get::<Option<i64>, _>("u_id")? {
        None => None,
        Some(id) => Some(User {
            id,
            username: row.try_get("u_username")?,
            name: row.try_get("u_name")?,
            email: row.try_get("u_email")?,
            password_hash: None,
            is_admin: row.try_get("u_is_admin")?,
            state: UserState::parse(row.try_get::<&str, _>("u_state")?),
            created_at: Timestamp(row.try_get("u_created_at")?),
            updated_at: Timestamp(row.try_get("u_updated_at")?),
        }),
    };
    let owner_role = match (
        row.try_get::<Option<i64>, _>("m_access_level")?,
        row.try_get::<Option<i64>, _>("m_expires_at")?,
    ) {
        (Some(level), expires) if expires.is_none_or(|t| t > Timestamp::now().millis()) => AccessLevel::from_i64(level),
        _ => None,
    };
    Ok(TriggerContext { trigger, project: project_from_row(row)?, owner, owner_role })
}

macro_rules! runner_columns {
    () => {
        "id, runner_type, project_id, creator_id, description, tag_list, run_untagged, paused, locked, access_level, \
         maximum_timeout, created_at, contacted_at"
    };
}

fn runner_from_row(row: &DbRow) -> Result<Runner> {
    let kind: &str = row.try_get("runner_type")?;
    let tags: String = row.try_get("tag_list")?;
    Ok(Runner {
        id: row.try_get("id")?,
        runner_type: RunnerType::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("unknown runner type {kind}")))?,
        project_id: row.try_get("project_id")?,
        creator_id: row.try_get("creator_id")?,
        description: row.try_get("description")?,
        tag_list: split_list(&tags),
        run_untagged: row.try_get("run_untagged")?,
        paused: row.try_get("paused")?,
        locked: row.try_get("locked")?,
        access_level: row.try_get("access_level")?,
        maximum_timeout: row.try_get("maximum_timeout")?,
        created_at: Timestamp(row.try_get("created_at")?),
        contacted_at: opt_time(row, "contacted_at")?,
    })
}

macro_rules! pipeline_columns {
    () => {
        "id, project_id, iid, sha, before_sha, ref_name, tag, protected_ref, source, status, user_id, trigger_id, \
         trigger_short_token, upstream_job_id, upstream_pipeline_id, upstream_project_id, name, yaml_errors, \
         failure_reason, committed_at, created_at, updated_at, started_at, finished_at"
    };
}

macro_rules! job_columns {
    () => {
        "id, pipeline_id, project_id, name, stage, stage_idx, position, status, when_condition, allow_failure, spec, \
         failure_reason, created_at, queued_at, started_at, finished_at, runner_id, lease_expires_at, exit_code, \
         retried, scheduled_at, erased_at, artifacts_filename, artifacts_size, artifacts_expire_at, trace_size"
    };
}

fn opt_time(row: &DbRow, column: &str) -> Result<Option<Timestamp>> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(Timestamp))
}

fn status_of(row: &DbRow) -> Result<Status> {
    let text: &str = row.try_get("status")?;
    Status::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown status {text}")))
}

fn pipeline_from_row(row: &DbRow) -> Result<Pipeline> {
    let source: &str = row.try_get("source")?;
    let upstream = match (
        row.try_get::<Option<i64>, _>("upstream_job_id")?,
        row.try_get::<Option<i64>, _>("upstream_pipeline_id")?,
        row.try_get::<Option<i64>, _>("upstream_project_id")?,
    ) {
        (Some(job_id), Some(pipeline_id), Some(project_id)) => Some(Upstream { job_id, pipeline_id, project_id }),
        _ => None,
    };
    Ok(Pipeline {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        iid: row.try_get("iid")?,
        sha: row.try_get("sha")?,
        before_sha: row.try_get("before_sha")?,
        ref_name: row.try_get("ref_name")?,
        tag: row.try_get("tag")?,
        protected_ref: row.try_get("protected_ref")?,
        source: PipelineSource::parse(source).ok_or_else(|| StoreError::Corrupt(format!("unknown source {source}")))?,
        status: status_of(row)?,
        user_id: row.try_get("user_id")?,
        trigger_id: row.try_get("trigger_id")?,
        trigger_short_token: row.try_get("trigger_short_token")?,
        upstream,
        name: row.try_get("name")?,
        yaml_errors: row.try_get("yaml_errors")?,
        failure_reason: row.try_get("failure_reason")?,
        committed_at: opt_time(row, "committed_at")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        started_at: opt_time(row, "started_at")?,
        finished_at: opt_time(row, "finished_at")?,
    })
}

macro_rules! ci_variable_columns {
    () => {
        "id, project_id, key, value_sealed, variable_type, protected, masked, raw, description, environment_scope"
    };
}

fn ci_variable_from_row(row: &DbRow) -> Result<CiVariable> {
    let kind: String = row.try_get("variable_type")?;
    Ok(CiVariable {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        key: row.try_get("key")?,
        value_sealed: row.try_get("value_sealed")?,
        variable_type: VariableType::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("variable type {kind}")))?,
        protected: row.try_get("protected")?,
        masked: row.try_get("masked")?,
        raw: row.try_get("raw")?,
        description: row.try_get("description")?,
        environment_scope: row.try_get("environment_scope")?,
    })
}

macro_rules! hook_columns {
    () => {
        "id, project_id, url, token_sealed, push_events, push_events_branch_filter, tag_push_events, \
         pipeline_events, job_events, enable_ssl_verification, created_at"
    };
}

fn hook_from_row(row: &DbRow) -> Result<ProjectHook> {
    Ok(ProjectHook {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        url: row.try_get("url")?,
        token_sealed: row.try_get("token_sealed")?,
        push_events: row.try_get("push_events")?,
        push_events_branch_filter: row.try_get("push_events_branch_filter")?,
        tag_push_events: row.try_get("tag_push_events")?,
        pipeline_events: row.try_get("pipeline_events")?,
        job_events: row.try_get("job_events")?,
        enable_ssl_verification: row.try_get("enable_ssl_verification")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

macro_rules! delivery_columns {
    () => {
        "id, hook_id, event, uuid, payload, state, attempts, next_attempt_at, response_status, response_body, \
         duration_ms, error, created_at, updated_at"
    };
}

fn delivery_from_row(row: &DbRow) -> Result<HookDelivery> {
    Ok(HookDelivery {
        id: row.try_get("id")?,
        hook_id: row.try_get("hook_id")?,
        event: row.try_get("event")?,
        uuid: row.try_get("uuid")?,
        payload: row.try_get("payload")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: Timestamp(row.try_get("next_attempt_at")?),
        response_status: row.try_get("response_status")?,
        response_body: row.try_get("response_body")?,
        duration_ms: row.try_get("duration_ms")?,
        error: row.try_get("error")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}

fn job_from_row(row: &DbRow) -> Result<Job> {
    Ok(Job {
        id: row.try_get("id")?,
        pipeline_id: row.try_get("pipeline_id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        stage: row.try_get("stage")?,
        stage_idx: row.try_get("stage_idx")?,
        position: row.try_get("position")?,
        status: status_of(row)?,
        when: row.try_get("when_condition")?,
        allow_failure: row.try_get("allow_failure")?,
        spec: row.try_get("spec")?,
        failure_reason: row.try_get("failure_reason")?,
        created_at: Timestamp(row.try_get("created_at")?),
        queued_at: opt_time(row, "queued_at")?,
        started_at: opt_time(row, "started_at")?,
        finished_at: opt_time(row, "finished_at")?,
        runner_id: row.try_get("runner_id")?,
        lease_expires_at: opt_time(row, "lease_expires_at")?,
        exit_code: row.try_get("exit_code")?,
        retried: row.try_get("retried")?,
        scheduled_at: opt_time(row, "scheduled_at")?,
        erased_at: opt_time(row, "erased_at")?,
        artifacts: match row.try_get::<Option<String>, _>("artifacts_filename")? {
            Some(filename) => Some(JobArtifacts {
                filename,
                size: row.try_get::<Option<i64>, _>("artifacts_size")?.unwrap_or(0),
                expire_at: opt_time(row, "artifacts_expire_at")?,
            }),
            None => None,
        },
        trace_size: row.try_get("trace_size")?,
    })
}

/// ` AND status IN (…)` when any statuses are given.
fn push_statuses(q: &mut QueryBuilder<Db>, statuses: &[Status]) {
    if !statuses.is_empty() {
        q.push(" AND status IN (");
        let mut sep = q.separated(", ");
        for s in statuses {
            sep.push_bind(s.as_str());
        }
        q.push(")");
    }
}

fn push_pipeline_filter(q: &mut QueryBuilder<Db>, project_id: ProjectId, filter: &PipelineFilter) {
    q.push(" WHERE project_id = ");
    q.push_bind(project_id);
    if !filter.statuses.is_empty() {
        q.push(" AND status IN (");
        let mut sep = q.separated(", ");
        for s in &filter.statuses {
            sep.push_bind(s.as_str());
        }
        q.push(")");
    }
    if let Some(source) = filter.source {
        q.push(" AND source = ");
        q.push_bind(source.as_str());
    }
    if let Some(r) = &filter.ref_name {
        q.push(" AND ref_name = ");
        q.push_bind(r.clone());
    }
    if let Some(sha) = &filter.sha {
        q.push(" AND sha = ");
        q.push_bind(sha.clone());
    }
    if let Some(uid) = filter.user_id {
        q.push(" AND user_id = ");
        q.push_bind(uid);
    }
    if let Some(t) = filter.updated_after {
        q.push(" AND updated_at > ");
        q.push_bind(t.millis());
    }
    if let Some(t) = filter.updated_before {
        q.push(" AND updated_at < ");
        q.push_bind(t.millis());
    }
}

fn push_event_from_row(row: &DbRow) -> Result<PushEvent> {
    let options: String = row.try_get("push_options")?;
    Ok(PushEvent {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        ref_name: row.try_get("ref_name")?,
        before_sha: row.try_get("before_sha")?,
        after_sha: row.try_get("after_sha")?,
        push_options: split_list_newline(&options),
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect()
}

fn split_list_newline(s: &str) -> Vec<String> {
    s.split('\n').filter(|p| !p.is_empty()).map(str::to_string).collect()
}

/// Escapes `%`, `_` and `\` so user text is matched literally inside `LIKE … ESCAPE '\'`.
fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn push_project_filter(q: &mut QueryBuilder<Db>, filter: &ProjectFilter) {
    q.push(" WHERE 1=1");
    match filter.viewer {
        Viewer::Admin => {}
        Viewer::Anonymous => {
            q.push(" AND p.visibility = 'public'");
        }
        Viewer::User(uid) => {
            q.push(" AND (p.visibility IN ('public', 'internal') OR EXISTS (SELECT 1 FROM project_members pm WHERE pm.project_id = p.id AND pm.user_id = ");
            q.push_bind(uid);
            q.push("))");
        }
    }
    if let Some(uid) = filter.membership_of {
        q.push(" AND EXISTS (SELECT 1 FROM project_members mm WHERE mm.project_id = p.id AND mm.user_id = ");
        q.push_bind(uid);
        q.push(")");
    }
    if let Some(uid) = filter.owned_by {
        q.push(" AND n.owner_id = ");
        q.push_bind(uid);
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = like_pattern(search);
        q.push(" AND (LOWER(p.name) LIKE ");
        q.push_bind(pattern.clone());
        q.push(" ESCAPE '\\' OR p.path_lower LIKE ");
        q.push_bind(pattern);
        q.push(" ESCAPE '\\')");
    }
}

/// Records that triggers created pipelines now (`last_used`), once per trigger per commit.
async fn touch_triggers(tx: &mut <Db as sqlx::Database>::Connection, pipelines: &[&NewPipeline]) -> Result<()> {
    let mut ids: Vec<i64> = pipelines.iter().filter_map(|p| p.trigger_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Db>::new("UPDATE triggers SET last_used_at = ");
    q.push_bind(Timestamp::now().millis());
    q.push(" WHERE id IN (");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    q.push(")");
    q.build().execute(&mut *tx).await?;
    Ok(())
}

/// Writes pipelines (iids, rows, variables, jobs) inside the caller's transaction with a fixed
/// number of statements however many there are: one iid reservation per project, then one
/// multi-row insert each for pipelines, variables and jobs. This is what makes SQLite's group
/// commit pay off. Callers then run [`touch_triggers`]. Fails as a whole (for example when a
/// project no longer exists).
async fn insert_pipelines(tx: &mut <Db as sqlx::Database>::Connection, batch: &[&NewPipeline]) -> Result<Vec<Pipeline>> {
    let now = Timestamp::now().millis();
    // 1. Reserve iids: one counter update per project, numbers handed out in request order.
    let mut projects: Vec<(ProjectId, i64)> = Vec::new();
    for p in batch {
        match projects.iter_mut().find(|(id, _)| *id == p.project_id) {
            Some((_, n)) => *n += 1,
            None => projects.push((p.project_id, 1)),
        }
    }
    // Lock project rows in id order, so concurrent batches (PostgreSQL replicas) cannot deadlock.
    projects.sort_unstable_by_key(|(id, _)| *id);
    let mut next_iid: std::collections::HashMap<ProjectId, i64> = std::collections::HashMap::new();
    for (project_id, count) in &projects {
        let last: i64 = sqlx::query(
            "UPDATE projects SET last_pipeline_iid = last_pipeline_iid + $2 WHERE id = $1 RETURNING last_pipeline_iid",
        )
        .bind(project_id)
        .bind(count)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_get("last_pipeline_iid")?;
        next_iid.insert(*project_id, last - count + 1);
    }
    let mut iids = Vec::with_capacity(batch.len());
    for p in batch {
        let slot = next_iid.get_mut(&p.project_id).ok_or(StoreError::NotFound)?;
        iids.push(*slot);
        *slot += 1;
    }
    // 2. The pipeline rows; RETURNING is matched back by (project, iid), which is unique.
    let mut created: Vec<Option<Pipeline>> = vec![None; batch.len()];
    for (chunk_index, chunk) in batch.chunks(100).enumerate() {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO pipelines (project_id, iid, sha, before_sha, ref_name, tag, protected_ref, source, status, user_id, \
             trigger_id, trigger_short_token, upstream_job_id, upstream_pipeline_id, upstream_project_id, name, yaml_errors, \
             failure_reason, committed_at, created_at, updated_at, finished_at) ",
        );
        q.push_values(chunk.iter().enumerate(), |mut row, (i, p)| {
            let finished = if p.status.is_complete() { Some(now) } else { None };
            row.push_bind(p.project_id)
                .push_bind(iids[chunk_index * 100 + i])
                .push_bind(p.sha.clone())
                .push_bind(p.before_sha.clone())
                .push_bind(p.ref_name.clone())
                .push_bind(p.tag)
                .push_bind(p.protected_ref)
                .push_bind(p.source.as_str())
                .push_bind(p.status.as_str())
                .push_bind(p.user_id)
                .push_bind(p.trigger_id)
                .push_bind(p.trigger_short_token.clone())
                .push_bind(p.upstream.map(|u| u.job_id))
                .push_bind(p.upstream.map(|u| u.pipeline_id))
                .push_bind(p.upstream.map(|u| u.project_id))
                .push_bind(p.name.clone())
                .push_bind(p.yaml_errors.clone())
                .push_bind(p.failure_reason.clone())
                .push_bind(p.committed_at.map(Timestamp::millis))
                .push_bind(now)
                .push_bind(now)
                .push_bind(finished);
        });
        q.push(concat!(" RETURNING ", pipeline_columns!()));
        // Row counts vary, so these statements are not kept in the prepared-statement cache.
        for row in q.build().persistent(false).fetch_all(&mut *tx).await? {
            let pipeline = pipeline_from_row(&row)?;
            let at = batch
                .iter()
                .zip(&iids)
                .position(|(p, iid)| p.project_id == pipeline.project_id && *iid == pipeline.iid)
                .ok_or_else(|| StoreError::Corrupt("inserted pipeline not found in its batch".into()))?;
            created[at] = Some(pipeline);
        }
    }
    let created: Vec<Pipeline> = created
        .into_iter()
        .map(|p| p.ok_or_else(|| StoreError::Corrupt("a pipeline of the batch was not inserted".into())))
        .collect::<Result<_>>()?;
    // 3. Variables and jobs of every pipeline, one statement per chunk of rows.
    let variables: Vec<(i64, usize, &StoredVariable)> = batch
        .iter()
        .zip(&created)
        .flat_map(|(p, c)| p.variables.iter().enumerate().map(move |(pos, v)| (c.id, pos, v)))
        .collect();
    for chunk in variables.chunks(200) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO pipeline_variables (pipeline_id, position, key, value_sealed, variable_type) ",
        );
        q.push_values(chunk, |mut row, (pipeline_id, position, v)| {
            row.push_bind(*pipeline_id)
                .push_bind(*position as i64)
                .push_bind(v.key.clone())
                .push_bind(v.value_sealed.clone())
                .push_bind(v.variable_type.as_str());
        });
        q.build().persistent(false).execute(&mut *tx).await?;
    }
    let jobs: Vec<(i64, ProjectId, usize, &NewJob)> = batch
        .iter()
        .zip(&created)
        .flat_map(|(p, c)| p.jobs.iter().enumerate().map(move |(pos, j)| (c.id, p.project_id, pos, j)))
        .collect();
    for chunk in jobs.chunks(100) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, position, status, when_condition, allow_failure, spec, created_at, queued_at) ",
        );
        q.push_values(chunk, |mut row, (pipeline_id, project_id, position, job)| {
            let queued = if job.status == Status::Pending { Some(now) } else { None };
            row.push_bind(*pipeline_id)
                .push_bind(*project_id)
                .push_bind(job.name.clone())
                .push_bind(job.stage.clone())
                .push_bind(job.stage_idx)
                .push_bind(*position as i64)
                .push_bind(job.status.as_str())
                .push_bind(job.when.clone())
                .push_bind(job.allow_failure)
                .push_bind(job.spec.clone())
                .push_bind(now)
                .push_bind(queued);
        });
        q.build().persistent(false).execute(&mut *tx).await?;
    }
    Ok(created)
}

/// [`insert_pipelines`] for one pipeline.
async fn insert_pipeline(tx: &mut <Db as sqlx::Database>::Connection, p: &NewPipeline) -> Result<Pipeline> {
    insert_pipelines(tx, &[p]).await?.pop().ok_or_else(|| StoreError::Corrupt("no pipeline inserted".into()))
}


/// The most pipelines one group commit writes.
const MAX_BATCH: usize = 256;

/// A pipeline waiting for the group-commit writer, and where its answer goes.
type PipelineRequest = (NewPipeline, tokio::sync::oneshot::Sender<Result<Pipeline>>);

/// Waits for a request, then takes every other one already waiting (up to [`MAX_BATCH`]): the
/// batch a group-commit writer writes in one transaction. False once all senders are gone.
async fn next_batch<T>(requests: &mut tokio::sync::mpsc::Receiver<T>, batch: &mut Vec<T>) -> bool {
    let Some(first) = requests.recv().await else {
        return false;
    };
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match requests.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    true
}

/// Starts the group-commit writer: every pipeline creation goes through it, so concurrent
/// creations share one transaction and one durable commit (one fsync on SQLite, one WAL flush
/// on PostgreSQL) instead of paying for one each.
fn spawn_pipeline_writer(pool: sqlx::Pool<Db>) -> tokio::sync::mpsc::Sender<PipelineRequest> {
    let (writer, requests) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(pipeline_writer(pool, requests));
    writer
}

async fn pipeline_writer(pool: sqlx::Pool<Db>, mut requests: tokio::sync::mpsc::Receiver<PipelineRequest>) {
    let mut batch: Vec<PipelineRequest> = Vec::with_capacity(MAX_BATCH);
    while next_batch(&mut requests, &mut batch).await {
        match write_batch(&pool, &batch).await {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                let message = err.to_string();
                let unavailable = err.is_unavailable();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(if unavailable {
                        StoreError::Unavailable(message.clone())
                    } else {
                        StoreError::GroupCommit(message.clone())
                    }));
                }
            }
        }
    }
}

/// Writes a batch in one transaction. If any pipeline fails (its project was just deleted,
/// say), the batch is rolled back and each pipeline is written on its own, so one bad request
/// never costs the others theirs. (A savepoint per pipeline would cost two more statements
/// each on the fast path.)
async fn write_batch(
    pool: &sqlx::Pool<Db>,
    batch: &[PipelineRequest],
) -> Result<Vec<Result<Pipeline>>> {
    let mut tx = begin_write_on(pool).await?;
    let written: Vec<&NewPipeline> = batch.iter().map(|(p, _)| p).collect();
    if let Ok(created) = insert_pipelines(&mut tx, &written).await {
        touch_triggers(&mut tx, &written).await?;
        tx.commit().await?;
        return Ok(created.into_iter().map(Ok).collect());
    }
    tx.rollback().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (pipeline, _) in batch {
        let mut tx = begin_write_on(pool).await?;
        match insert_pipeline(&mut tx, pipeline).await {
            Ok(p) => {
                touch_triggers(&mut tx, &[pipeline]).await?;
                tx.commit().await?;
                results.push(Ok(p));
            }
            Err(err) => {
                tx.rollback().await?;
                results.push(Err(err));
            }
        }
    }
    Ok(results)
}

/// A job state change for the job writer: claiming (the first of several candidates that is
/// still pending) and finishing. Runners' claims and reports arrive concurrently and each must
/// be durable before it is acknowledged; writing them one transaction each would cost one
/// fsync per change, so they are group-committed like pipelines. Within a batch they run in
/// arrival order, so two claims of one job still resolve to one winner.
enum JobOp {
    Claim {
        candidates: Vec<i64>,
        runner_id: i64,
        token_digest: String,
        lease_until: i64,
    },
    Finish {
        job_id: i64,
        status: Status,
        failure_reason: Option<String>,
        exit_code: Option<i64>,
    },
    PipelineStatus {
        pipeline_id: i64,
        status: Status,
    },
    AppendTrace {
        job_id: i64,
        start: u64,
        data: Vec<u8>,
        limit: u64,
        /// Appended once, when a chunk is cut at the limit.
        note: Vec<u8>,
    },
}

/// A job change waiting for the job writer, and where its answer goes.
type JobRequest = (JobOp, tokio::sync::oneshot::Sender<Result<JobOpResult>>);

enum JobOpResult {
    Claimed(Option<Box<Job>>),
    Finished(bool),
    Traced(TraceAppend),
}

fn spawn_job_writer(pool: sqlx::Pool<Db>) -> tokio::sync::mpsc::Sender<JobRequest> {
    let (writer, requests) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(job_writer(pool, requests));
    writer
}

async fn job_writer(pool: sqlx::Pool<Db>, mut requests: tokio::sync::mpsc::Receiver<JobRequest>) {
    let mut batch: Vec<JobRequest> = Vec::with_capacity(MAX_BATCH);
    while next_batch(&mut requests, &mut batch).await {
        let ops: Vec<&JobOp> = batch.iter().map(|(op, _)| op).collect();
        let results = match apply_job_ops(&pool, &ops).await {
            Ok(results) => results.into_iter().map(Ok).collect::<Vec<_>>(),
            // The database is gone: retrying each change would only wait for it again.
            Err(err) if err.is_unavailable() => ops
                .iter()
                .map(|_| Err(StoreError::Unavailable(err.to_string())))
                .collect(),
            // Something failed: each change on its own, so one bad change costs only itself.
            Err(_) => {
                let mut results = Vec::with_capacity(ops.len());
                for op in &ops {
                    results.push(
                        apply_job_ops(&pool, std::slice::from_ref(op))
                            .await
                            .and_then(|mut r| r.pop().ok_or_else(|| StoreError::Corrupt("no result".into()))),
                    );
                }
                results
            }
        };
        for ((_, reply), result) in batch.drain(..).zip(results) {
            let _ = reply.send(result);
        }
    }
}

impl StoreImpl {
    /// Hands a change to the job writer and waits for it to be committed.
    async fn job_op(&self, op: JobOp) -> Result<JobOpResult> {
        let stopped = || StoreError::GroupCommit("the job writer has stopped".into());
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.job_writer.send((op, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn mismatched() -> StoreError {
    StoreError::Corrupt("the job writer answered another kind of change".into())
}

// The job writer's statements, shared by `apply_job_ops` and the SQLite backend's writer
// thread (`sqlite.rs`), which runs the same changes on its own connection.
const CLAIM_JOB_SQL: &str = concat!(
    "UPDATE jobs SET status = 'running', runner_id = $2, token_digest = $3, lease_expires_at = $4, started_at = $5 \
     WHERE id = $1 AND status = 'pending' RETURNING ",
    job_columns!()
);
const FINISH_JOB_SQL: &str = "UPDATE jobs SET status = $2, failure_reason = $3, exit_code = $4, finished_at = $5, \
     lease_expires_at = NULL WHERE id = $1 AND status = 'running'";
const PIPELINE_STATUS_SQL: &str = "UPDATE pipelines SET status = $2, updated_at = $3, started_at = COALESCE(started_at, $4), \
     finished_at = CASE WHEN $5 IS NULL THEN NULL ELSE COALESCE(finished_at, $5) END WHERE id = $1 AND status <> $2";
const TRACE_MOVE_SQL: &str = "UPDATE jobs SET trace_size = $3 WHERE id = $1 AND trace_size = $2";
const TRACE_SIZE_SQL: &str = "SELECT trace_size FROM jobs WHERE id = $1";
const TRACE_INSERT_SQL: &str = "INSERT INTO job_trace_chunks (job_id, start_offset, data) VALUES ($1, $2, $3)";

/// A pipeline status change's `started_at` and `finished_at` candidates.
fn pipeline_status_times(status: Status, now: i64) -> (Option<i64>, Option<i64>) {
    let started = if matches!(status, Status::Running) || status.is_complete() { Some(now) } else { None };
    let finished = if status.is_complete() { Some(now) } else { None };
    (started, finished)
}

/// What of a log chunk starting at `start` is stored under the size limit (cut, with `note`
/// once, where it crosses it), and the log's length after it.
fn trace_chunk(start: u64, data: &[u8], limit: u64, note: &[u8]) -> (Vec<u8>, u64) {
    let room = limit.saturating_sub(start) as usize;
    let mut stored = data[..data.len().min(room)].to_vec();
    if data.len() > room && room > 0 {
        stored.extend_from_slice(note);
    }
    let new_size = start + stored.len() as u64;
    (stored, new_size)
}

/// Applies job changes in one transaction, in order.
async fn apply_job_ops(pool: &sqlx::Pool<Db>, ops: &[&JobOp]) -> Result<Vec<JobOpResult>> {
    let now = Timestamp::now().millis();
    let mut tx = begin_write_on(pool).await?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            JobOp::Claim { candidates, runner_id, token_digest, lease_until } => {
                let mut claimed = None;
                for id in candidates {
                    let row = sqlx::query(CLAIM_JOB_SQL)
                        .bind(id)
                        .bind(runner_id)
                        .bind(token_digest)
                        .bind(lease_until)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(row) = row {
                        claimed = Some(Box::new(job_from_row(&row)?));
                        break;
                    }
                }
                results.push(JobOpResult::Claimed(claimed));
            }
            JobOp::Finish { job_id, status, failure_reason, exit_code } => {
                let result = sqlx::query(FINISH_JOB_SQL)
                    .bind(job_id)
                    .bind(status.as_str())
                    .bind(failure_reason.as_deref())
                    .bind(exit_code)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                results.push(JobOpResult::Finished(result.rows_affected() > 0));
            }
            JobOp::PipelineStatus { pipeline_id, status } => {
                let (started, finished) = pipeline_status_times(*status, now);
                let result = sqlx::query(PIPELINE_STATUS_SQL)
                    .bind(pipeline_id)
                    .bind(status.as_str())
                    .bind(now)
                    .bind(started)
                    .bind(finished)
                    .execute(&mut *tx)
                    .await?;
                results.push(JobOpResult::Finished(result.rows_affected() > 0));
            }
            JobOp::AppendTrace { job_id, start, data, limit, note } => {
                // The fast path is two statements: move the length on if the chunk starts where
                // the log ends, then store the chunk. Anything else needs the current length.
                let (stored, new_size) = trace_chunk(*start, data, *limit, note);
                let moved = if stored.is_empty() {
                    0
                } else {
                    sqlx::query(TRACE_MOVE_SQL)
                        .bind(job_id)
                        .bind(*start as i64)
                        .bind(new_size as i64)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                };
                if moved == 0 {
                    let size: i64 = sqlx::query(TRACE_SIZE_SQL)
                        .bind(job_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.try_get("trace_size"))
                        .transpose()?
                        .unwrap_or(0);
                    let size = size.max(0) as u64;
                    results.push(JobOpResult::Traced(if size == *start {
                        // Nothing to store (an empty chunk, or the log is full).
                        TraceAppend::Appended { size }
                    } else {
                        TraceAppend::Mismatch { size }
                    }));
                    continue;
                }
                sqlx::query(TRACE_INSERT_SQL)
                    .bind(job_id)
                    .bind(*start as i64)
                    .bind(stored)
                    .execute(&mut *tx)
                    .await?;
                results.push(JobOpResult::Traced(TraceAppend::Appended { size: new_size }));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// One page of a filtered listing: a `COUNT(*)` for the total, then the page's rows. `filter`
/// appends the `WHERE …` clause to both statements; `order` is the `ORDER BY` list.
async fn paged<T>(
    pool: &sqlx::Pool<Db>,
    from: &str,
    columns: &str,
    filter: &(dyn Fn(&mut QueryBuilder<Db>) + Sync),
    order: &str,
    page: Page,
    from_row: fn(&DbRow) -> Result<T>,
) -> Result<Paged<T>> {
    let mut count = QueryBuilder::<Db>::new(format!("SELECT COUNT(*) AS n FROM {from}"));
    filter(&mut count);
    let total: i64 = count.build().fetch_one(pool).await?.try_get("n")?;
    let mut q = QueryBuilder::<Db>::new(format!("SELECT {columns} FROM {from}"));
    filter(&mut q);
    q.push(format!(" ORDER BY {order} LIMIT "));
    q.push_bind(page.limit());
    q.push(" OFFSET ");
    q.push_bind(page.offset());
    let rows = q.build().fetch_all(pool).await?;
    let items = rows.iter().map(from_row).collect::<Result<_>>()?;
    Ok(Paged { items, total })
}

#[async_trait::async_trait]
impl Store for StoreImpl {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn announce_jobs(&self) -> Result<()> {
        self.announce_jobs_impl().await
    }

    fn watch_jobs(&self, wake: std::sync::Arc<tokio::sync::Notify>) -> Option<tokio::task::JoinHandle<()>> {
        self.watch_jobs_impl(wake)
    }

    async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("version")?)).collect()
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    // ---- users -------------------------------------------------------------------------

    async fn create_user(&self, user: &NewUser) -> Result<User> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO users (username, username_lower, name, email, email_lower, password_hash, is_admin, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8) RETURNING id",
        )
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(&user.name)
        .bind(&user.email)
        .bind(user.email.to_lowercase())
        .bind(&user.password_hash)
        .bind(user.is_admin)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        sqlx::query(
            "INSERT INTO namespaces (name, path, path_lower, kind, owner_id, created_at) VALUES ($1, $2, $3, 'user', $4, $5)",
        )
        .bind(&user.name)
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn user(&self, id: UserId) -> Result<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = $1");
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.username_lower = $1");
        let row = sqlx::query(sql)
            .bind(username.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, page: Page, search: Option<&str>) -> Result<Paged<User>> {
        let filter = |q: &mut QueryBuilder<Db>| {
            if let Some(s) = search.filter(|s| !s.is_empty()) {
                let pattern = like_pattern(s);
                q.push(" WHERE u.username_lower LIKE ");
                q.push_bind(pattern.clone());
                q.push(" ESCAPE '\\' OR LOWER(u.name) LIKE ");
                q.push_bind(pattern.clone());
                q.push(" ESCAPE '\\' OR u.email_lower LIKE ");
                q.push_bind(pattern);
                q.push(" ESCAPE '\\'");
            }
        };
        paged(&self.pool, "users u", user_columns!(), &filter, "u.id", page, user_from_row).await
    }

    async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    async fn update_user(&self, id: UserId, update: &UserUpdate) -> Result<User> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE users SET \
               username = COALESCE($2, username), username_lower = COALESCE($3, username_lower), \
               name = COALESCE($4, name), email = COALESCE($5, email), email_lower = COALESCE($6, email_lower), \
               password_hash = COALESCE($7, password_hash), is_admin = COALESCE($8, is_admin), updated_at = $9 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(&update.username)
        .bind(update.username.as_ref().map(|u| u.to_lowercase()))
        .bind(&update.name)
        .bind(&update.email)
        .bind(update.email.as_ref().map(|e| e.to_lowercase()))
        .bind(&update.password_hash)
        .bind(update.is_admin)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some(username) = &update.username {
            sqlx::query("UPDATE namespaces SET path = $2, path_lower = $3 WHERE owner_id = $1 AND kind = 'user'")
                .bind(id)
                .bind(username)
                .bind(username.to_lowercase())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn set_user_state(&self, id: UserId, state: UserState) -> Result<()> {
        let result = sqlx::query("UPDATE users SET state = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(state.as_str())
            .bind(Timestamp::now().millis())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_user(&self, id: UserId) -> Result<()> {
        let result = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&self.pool).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---- personal access tokens ------------------------------------------------------

    async fn create_personal_access_token(
        &self,
        token: &NewPersonalAccessToken,
    ) -> Result<PersonalAccessToken> {
        let row = sqlx::query(
            "INSERT INTO personal_access_tokens (user_id, name, token_digest, scopes, expires_at, revoked, created_at) \
             VALUES ($1, $2, $3, $4, $5, FALSE, $6) RETURNING id",
        )
        .bind(token.user_id)
        .bind(&token.name)
        .bind(&token.token_digest)
        .bind(token.scopes.join(","))
        .bind(token.expires_at.map(Timestamp::millis))
        .bind(Timestamp::now().millis())
        .fetch_one(&self.pool)
        .await?;
        let id: i64 = row.try_get("id")?;
        self.personal_access_token(id).await?.ok_or(StoreError::NotFound)
    }

    async fn personal_access_token_by_digest(
        &self,
        digest: &str,
    ) -> Result<Option<PersonalAccessToken>> {
        let sql = concat!("SELECT ", pat_columns!(), " FROM personal_access_tokens WHERE token_digest = $1");
        let row = sqlx::query(sql).bind(digest).fetch_optional(&self.pool).await?;
        row.as_ref().map(pat_from_row).transpose()
    }

    async fn personal_access_token(&self, id: i64) -> Result<Option<PersonalAccessToken>> {
        let sql = concat!("SELECT ", pat_columns!(), " FROM personal_access_tokens WHERE id = $1");
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(pat_from_row).transpose()
    }

    async fn personal_access_tokens(
        &self,
        user_id: Option<UserId>,
        page: Page,
    ) -> Result<Paged<PersonalAccessToken>> {
        let filter = |q: &mut QueryBuilder<Db>| {
            if let Some(uid) = user_id {
                q.push(" WHERE user_id = ");
                q.push_bind(uid);
            }
        };
        paged(&self.pool, "personal_access_tokens", pat_columns!(), &filter, "id", page, pat_from_row).await
    }

    async fn revoke_personal_access_token(&self, id: i64) -> Result<()> {
        let result = sqlx::query("UPDATE personal_access_tokens SET revoked = TRUE WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn touch_personal_access_token(&self, id: i64, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE personal_access_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at.millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- namespaces ------------------------------------------------------------------

    async fn namespace(&self, id: NamespaceId) -> Result<Option<Namespace>> {
        let row = sqlx::query("SELECT id, name, path, kind, owner_id, created_at FROM namespaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| namespace_from_row(r, "")).transpose()
    }

    async fn namespace_by_path(&self, path: &str) -> Result<Option<Namespace>> {
        let row = sqlx::query("SELECT id, name, path, kind, owner_id, created_at FROM namespaces WHERE path_lower = $1")
            .bind(path.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| namespace_from_row(r, "")).transpose()
    }

    async fn user_namespace(&self, user_id: UserId) -> Result<Option<Namespace>> {
        let row = sqlx::query("SELECT id, name, path, kind, owner_id, created_at FROM namespaces WHERE owner_id = $1 AND kind = 'user'")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| namespace_from_row(r, "")).transpose()
    }

    // ---- projects --------------------------------------------------------------------

    async fn create_project(&self, project: &NewProject) -> Result<Project> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "INSERT INTO projects (namespace_id, name, path, path_lower, description, visibility, default_branch, creator_id, created_at, updated_at, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $9) RETURNING id",
        )
        .bind(project.namespace_id)
        .bind(&project.name)
        .bind(&project.path)
        .bind(project.path.to_lowercase())
        .bind(&project.description)
        .bind(project.visibility.as_str())
        .bind(&project.default_branch)
        .bind(project.creator_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        sqlx::query("INSERT INTO project_members (project_id, user_id, access_level, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(project.creator_id)
            .bind(AccessLevel::Owner.as_i64())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.project(id).await?.ok_or(StoreError::NotFound)
    }

    async fn project(&self, id: ProjectId) -> Result<Option<Project>> {
        let sql = concat!(project_select!(), " WHERE p.id = $1");
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(project_from_row).transpose()
    }

    async fn project_by_full_path(&self, namespace: &str, path: &str) -> Result<Option<Project>> {
        let sql = concat!(project_select!(), " WHERE n.path_lower = $1 AND p.path_lower = $2");
        let row = sqlx::query(sql)
            .bind(namespace.to_lowercase())
            .bind(path.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    async fn projects(&self, filter: &ProjectFilter, page: Page) -> Result<Paged<Project>> {
        let column = match filter.order_by {
            ProjectOrder::Id => "p.id",
            ProjectOrder::Name => "LOWER(p.name)",
            ProjectOrder::Path => "p.path_lower",
            ProjectOrder::CreatedAt => "p.created_at",
            ProjectOrder::UpdatedAt => "p.updated_at",
            ProjectOrder::LastActivityAt => "p.last_activity_at",
        };
        let dir = if filter.ascending { "ASC" } else { "DESC" };
        let apply = |q: &mut QueryBuilder<Db>| push_project_filter(q, filter);
        paged(
            &self.pool,
            PROJECT_FROM,
            PROJECT_COLUMNS,
            &apply,
            &format!("{column} {dir}, p.id {dir}"),
            page,
            project_from_row,
        )
        .await
    }

    async fn update_project(&self, id: ProjectId, update: &ProjectUpdate) -> Result<Project> {
        let (set_description, description) = match &update.description {
            Some(d) => (true, d.clone()),
            None => (false, None),
        };
        let result = sqlx::query(
            "UPDATE projects SET name = COALESCE($2, name), path = COALESCE($3, path), \
               path_lower = COALESCE($4, path_lower), \
               description = CASE WHEN $5 THEN $6 ELSE description END, \
               visibility = COALESCE($7, visibility), default_branch = COALESCE($8, default_branch), \
               updated_at = $9 WHERE id = $1",
        )
        .bind(id)
        .bind(&update.name)
        .bind(&update.path)
        .bind(update.path.as_ref().map(|p| p.to_lowercase()))
        .bind(set_description)
        .bind(description)
        .bind(update.visibility.map(Visibility::as_str))
        .bind(&update.default_branch)
        .bind(Timestamp::now().millis())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.project(id).await?.ok_or(StoreError::NotFound)
    }

    async fn delete_project(&self, id: ProjectId) -> Result<()> {
        let result = sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(&self.pool).await;
        self.invalidate_protected_branches(id);
        let result = result?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---- members ---------------------------------------------------------------------

    async fn member(&self, project_id: ProjectId, user_id: UserId) -> Result<Option<Member>> {
        let sql = concat!("SELECT ", user_columns!(), ", m.project_id, m.access_level, m.expires_at AS m_expires_at, m.created_at AS m_created_at \
             FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 AND m.user_id = $2");
        let row = sqlx::query(sql).bind(project_id).bind(user_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(member_from_row).transpose()
    }

    async fn members(&self, project_id: ProjectId, page: Page) -> Result<Paged<Member>> {
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM project_members WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let sql = concat!("SELECT ", user_columns!(), ", m.project_id, m.access_level, m.expires_at AS m_expires_at, m.created_at AS m_created_at \
             FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 \
             ORDER BY u.id LIMIT $2 OFFSET $3");
        let rows = sqlx::query(sql)
            .bind(project_id)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(member_from_row).collect::<Result<_>>()?;
        Ok(Paged { items, total })
    }

    async fn add_member(
        &self,
        project_id: ProjectId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<Member> {
        sqlx::query("INSERT INTO project_members (project_id, user_id, access_level, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(project_id)
            .bind(user_id)
            .bind(level.as_i64())
            .bind(expires_at.map(Timestamp::millis))
            .bind(Timestamp::now().millis())
            .execute(&self.pool)
            .await?;
        self.member(project_id, user_id).await?.ok_or(StoreError::NotFound)
    }

    async fn update_member(
        &self,
        project_id: ProjectId,
        user_id: UserId,
        level: AccessLevel,
        expires_at: Option<Timestamp>,
    ) -> Result<Member> {
        let result = sqlx::query("UPDATE project_members SET access_level = $3, expires_at = $4 WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .bind(level.as_i64())
            .bind(expires_at.map(Timestamp::millis))
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.member(project_id, user_id).await?.ok_or(StoreError::NotFound)
    }

    async fn remove_member(&self, project_id: ProjectId, user_id: UserId) -> Result<()> {
        let result = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---- protected branches ----------------------------------------------------------

    async fn protected_branches(&self, project_id: ProjectId) -> Result<Vec<ProtectedBranch>> {
        let (cached, generation) = self.cached_protected_branches(project_id);
        if let Some(rules) = cached {
            return Ok(rules);
        }
        let rows = sqlx::query(
            "SELECT id, project_id, name, push_access_level, merge_access_level, allow_force_push, created_at \
             FROM protected_branches WHERE project_id = $1 ORDER BY name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        let rules = rows.iter().map(protected_branch_from_row).collect::<Result<Vec<_>>>()?;
        self.cache_protected_branches(project_id, &rules, generation);
        Ok(rules)
    }

    async fn create_protected_branch(&self, branch: &NewProtectedBranch) -> Result<ProtectedBranch> {
        let row = sqlx::query(
            "INSERT INTO protected_branches (project_id, name, push_access_level, merge_access_level, allow_force_push, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, project_id, name, push_access_level, merge_access_level, allow_force_push, created_at",
        )
        .bind(branch.project_id)
        .bind(&branch.name)
        .bind(branch.push_access_level.as_i64())
        .bind(branch.merge_access_level.as_i64())
        .bind(branch.allow_force_push)
        .bind(Timestamp::now().millis())
        .fetch_one(&self.pool)
        .await;
        self.invalidate_protected_branches(branch.project_id);
        protected_branch_from_row(&row?)
    }

    async fn delete_protected_branch(&self, project_id: ProjectId, name: &str) -> Result<()> {
        let result = sqlx::query("DELETE FROM protected_branches WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(name)
            .execute(&self.pool)
            .await;
        self.invalidate_protected_branches(project_id);
        let result = result?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---- pipeline trigger tokens -----------------------------------------------------

    async fn create_trigger(&self, trigger: &NewTrigger) -> Result<Trigger> {
        let now = Timestamp::now().millis();
        let sql = concat!(
            "INSERT INTO triggers (project_id, owner_id, legacy, description, token_digest, token_sealed, short_token, created_at, updated_at, expires_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING ",
            trigger_columns!()
        );
        let row = sqlx::query(sql)
            .bind(trigger.project_id)
            .bind(trigger.owner_id)
            .bind(trigger.legacy)
            .bind(&trigger.description)
            .bind(&trigger.token_digest)
            .bind(&trigger.token_sealed)
            .bind(&trigger.short_token)
            .bind(now)
            .bind(trigger.expires_at.map(Timestamp::millis))
            .fetch_one(&self.pool)
            .await?;
        trigger_from_row(&row)
    }

    async fn trigger(&self, project_id: ProjectId, id: i64) -> Result<Option<Trigger>> {
        let sql = concat!("SELECT ", trigger_columns!(), " FROM triggers WHERE project_id = $1 AND id = $2");
        let row = sqlx::query(sql).bind(project_id).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(trigger_from_row).transpose()
    }

    async fn trigger_by_digest(&self, digest: &str) -> Result<Option<Trigger>> {
        let sql = concat!("SELECT ", trigger_columns!(), " FROM triggers WHERE token_digest = $1");
        let row = sqlx::query(sql).bind(digest).fetch_optional(&self.pool).await?;
        row.as_ref().map(trigger_from_row).transpose()
    }

    async fn trigger_run_context(&self, digest: &str) -> Result<Option<TriggerContext>> {
        let sql = concat!(
            "SELECT t.id AS t_id, t.project_id AS t_project_id, t.owner_id AS t_owner_id, t.legacy AS t_legacy, ",
            "t.description AS t_description, t.token_sealed AS t_token_sealed, t.short_token AS t_short_token, ",
            "t.created_at AS t_created_at, t.updated_at AS t_updated_at, t.expires_at AS t_expires_at, ",
            "t.last_used_at AS t_last_used_at, ",
            "p.id, p.name, p.path, p.description, p.visibility, p.default_branch, p.creator_id, p.created_at, ",
            "p.updated_at, p.last_activity_at, n.id AS ns_id, n.name AS ns_name, n.path AS ns_path, n.kind AS ns_kind, ",
            "n.owner_id AS ns_owner_id, n.created_at AS ns_created_at, ",
            "u.id AS u_id, u.username AS u_username, u.name AS u_name, u.email AS u_email, u.is_admin AS u_is_admin, ",
            "u.state AS u_state, u.created_at AS u_created_at, u.updated_at AS u_updated_at, ",
            "m.access_level AS m_access_level, m.expires_at AS m_expires_at ",
            "FROM triggers t JOIN projects p ON p.id = t.project_id JOIN namespaces n ON n.id = p.namespace_id ",
            "LEFT JOIN users u ON u.id = t.owner_id ",
            "LEFT JOIN project_members m ON m.project_id = t.project_id AND m.user_id = t.owner_id ",
            "WHERE t.token_digest = $1"
        );
        let row = sqlx::query(sql).bind(digest).fetch_optional(&self.pool).await?;
        row.as_ref().map(trigger_context_from_row).transpose()
    }

    async fn triggers(&self, project_id: ProjectId, page: Page) -> Result<Paged<Trigger>> {
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM triggers WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let sql = concat!(
            "SELECT ", trigger_columns!(), " FROM triggers WHERE project_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(sql)
            .bind(project_id)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(trigger_from_row).collect::<Result<_>>()?;
        Ok(Paged { items, total })
    }

    async fn update_trigger_description(&self, id: i64, description: &str) -> Result<Trigger> {
        let sql = concat!(
            "UPDATE triggers SET description = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            trigger_columns!()
        );
        let row = sqlx::query(sql)
            .bind(id)
            .bind(description)
            .bind(Timestamp::now().millis())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        trigger_from_row(&row)
    }

    async fn delete_trigger(&self, id: i64) -> Result<()> {
        let result = sqlx::query("DELETE FROM triggers WHERE id = $1").bind(id).execute(&self.pool).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // ---- pipelines -------------------------------------------------------------------

    async fn create_pipeline(&self, p: &NewPipeline) -> Result<Pipeline> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .send((p.clone(), reply))
            .await
            .map_err(|_| StoreError::GroupCommit("the pipeline writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::GroupCommit("the pipeline writer has stopped".into()))?
    }

    async fn pipeline(&self, project_id: ProjectId, id: i64) -> Result<Option<Pipeline>> {
        let sql = concat!("SELECT ", pipeline_columns!(), " FROM pipelines WHERE project_id = $1 AND id = $2");
        let row = sqlx::query(sql).bind(project_id).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(pipeline_from_row).transpose()
    }

    async fn pipelines(&self, project_id: ProjectId, filter: &PipelineFilter, page: Page) -> Result<Paged<Pipeline>> {
        let column = match filter.order_by {
            PipelineOrder::Id => "id",
            PipelineOrder::Status => "status",
            PipelineOrder::Ref => "ref_name",
            PipelineOrder::UpdatedAt => "updated_at",
            PipelineOrder::UserId => "user_id",
        };
        let dir = if filter.ascending { "ASC" } else { "DESC" };
        let apply = |q: &mut QueryBuilder<Db>| push_pipeline_filter(q, project_id, filter);
        paged(&self.pool, "pipelines", pipeline_columns!(), &apply, &format!("{column} {dir}, id {dir}"), page, pipeline_from_row)
            .await
    }

    async fn pipeline_variables(&self, pipeline_id: i64) -> Result<Vec<StoredVariable>> {
        let rows = sqlx::query(
            "SELECT key, value_sealed, variable_type FROM pipeline_variables WHERE pipeline_id = $1 ORDER BY position",
        )
        .bind(pipeline_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: &str = r.try_get("variable_type")?;
                Ok(StoredVariable {
                    key: r.try_get("key")?,
                    value_sealed: r.try_get("value_sealed")?,
                    variable_type: VariableType::parse(kind).unwrap_or(VariableType::EnvVar),
                })
            })
            .collect()
    }

    async fn delete_pipeline(&self, id: i64) -> Result<()> {
        let result = sqlx::query("DELETE FROM pipelines WHERE id = $1").bind(id).execute(&self.pool).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn pipeline_jobs(&self, pipeline_id: i64, statuses: &[Status], page: Page) -> Result<Paged<Job>> {
        let filter = |q: &mut QueryBuilder<Db>| {
            q.push(" WHERE retried = FALSE AND pipeline_id = ");
            q.push_bind(pipeline_id);
            push_statuses(q, statuses);
        };
        paged(&self.pool, "jobs", job_columns!(), &filter, "position", page, job_from_row).await
    }

    async fn job(&self, project_id: ProjectId, id: i64) -> Result<Option<Job>> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE project_id = $1 AND id = $2");
        let row = sqlx::query(sql).bind(project_id).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    // ---- running jobs ----------------------------------------------------------------

    async fn pending_jobs(&self, limit: i64) -> Result<Vec<Job>> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE status = 'pending' ORDER BY id LIMIT $1");
        if let Some(jobs) = self.inline_jobs(sql, InlineArg::Int(limit)) {
            return jobs;
        }
        let rows = sqlx::query(sql).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn pending_protected_jobs(&self, limit: i64) -> Result<Vec<Job>> {
        // A job is protected when its pipeline's ref was protected at creation (GitLab copies
        // `protected_ref?` into `ci_builds.protected`; retries keep it), so the pipeline's flag
        // is the job's.
        let sql = concat!(
            "SELECT ", job_columns!(), " FROM jobs WHERE status = 'pending' AND EXISTS \
             (SELECT 1 FROM pipelines p WHERE p.id = jobs.pipeline_id AND p.protected_ref = TRUE) \
             ORDER BY id LIMIT $1"
        );
        if let Some(jobs) = self.inline_jobs(sql, InlineArg::Int(limit)) {
            return jobs;
        }
        let rows = sqlx::query(sql).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn claim_job(&self, candidates: &[i64], runner_id: i64, token_digest: &str, lease_until: Timestamp) -> Result<Option<Job>> {
        let op = JobOp::Claim {
            candidates: candidates.to_vec(),
            runner_id,
            token_digest: token_digest.to_string(),
            lease_until: lease_until.millis(),
        };
        match self.job_op(op).await? {
            JobOpResult::Claimed(job) => Ok(job.map(|j| *j)),
            _ => Err(mismatched()),
        }
    }
    async fn append_trace(&self, job_id: i64, start: u64, data: &[u8], limit: u64, note: &[u8]) -> Result<TraceAppend> {
        let op = JobOp::AppendTrace { job_id, start, data: data.to_vec(), limit, note: note.to_vec() };
        match self.job_op(op).await? {
            JobOpResult::Traced(done) => Ok(done),
            _ => Err(mismatched()),
        }
    }
    async fn job_trace(&self, job_id: i64) -> Result<Vec<u8>> {
        let rows = sqlx::query("SELECT data FROM job_trace_chunks WHERE job_id = $1 ORDER BY start_offset")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let chunk: Vec<u8> = row.try_get("data")?;
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
    async fn job_trace_from(&self, job_id: i64, offset: i64) -> Result<Vec<u8>> {
        // From the chunk that holds `offset` on: a live log's poll reads only what is new.
        let rows = sqlx::query(
            "SELECT start_offset, data FROM job_trace_chunks WHERE job_id = $1 AND start_offset >= \
             (SELECT COALESCE(MAX(start_offset), 0) FROM job_trace_chunks WHERE job_id = $1 AND start_offset <= $2) \
             ORDER BY start_offset",
        )
        .bind(job_id)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        let mut first: Option<i64> = None;
        for row in &rows {
            let start: i64 = row.try_get("start_offset")?;
            first.get_or_insert(start);
            let chunk: Vec<u8> = row.try_get("data")?;
            out.extend_from_slice(&chunk);
        }
        let skip = usize::try_from(offset - first.unwrap_or(offset)).unwrap_or(0).min(out.len());
        out.drain(..skip);
        Ok(out)
    }
    async fn erase_trace(&self, job_id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM job_trace_chunks WHERE job_id = $1").bind(job_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE jobs SET trace_size = 0 WHERE id = $1").bind(job_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
    async fn job_by_id(&self, id: i64) -> Result<Option<Job>> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_by_token(&self, token_digest: &str) -> Result<Option<Job>> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE token_digest = $1");
        if let Some(jobs) = self.inline_jobs(sql, InlineArg::Text(token_digest)) {
            return jobs.map(|jobs| jobs.into_iter().next());
        }
        let row = sqlx::query(sql).bind(token_digest).fetch_optional(&self.pool).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn renew_job_lease(&self, job_id: i64, until: Timestamp) -> Result<()> {
        sqlx::query("UPDATE jobs SET lease_expires_at = $2 WHERE id = $1 AND status = 'running'")
            .bind(job_id)
            .bind(until.millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn finish_job(&self, job_id: i64, status: Status, failure_reason: Option<&str>, exit_code: Option<i64>) -> Result<bool> {
        let op = JobOp::Finish { job_id, status, failure_reason: failure_reason.map(str::to_string), exit_code };
        match self.job_op(op).await? {
            JobOpResult::Finished(done) => Ok(done),
            _ => Err(mismatched()),
        }
    }

    async fn pipeline_all_jobs(&self, pipeline_id: i64) -> Result<Vec<Job>> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE pipeline_id = $1 AND retried = FALSE ORDER BY position");
        if let Some(jobs) = self.inline_jobs(sql, InlineArg::Int(pipeline_id)) {
            return jobs;
        }
        let rows = sqlx::query(sql).bind(pipeline_id).fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn set_job_statuses(&self, changes: &[(i64, Status)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        for (id, status) in changes {
            let finished = if status.is_complete() { Some(now) } else { None };
            let queued = if *status == Status::Pending { Some(now) } else { None };
            sqlx::query(
                "UPDATE jobs SET status = $2, queued_at = COALESCE($3, queued_at), finished_at = COALESCE($4, finished_at) \
                 WHERE id = $1 AND status IN ('created', 'manual', 'scheduled', 'pending')",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(queued)
            .bind(finished)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn project_jobs(&self, project_id: ProjectId, statuses: &[Status], page: Page) -> Result<Paged<Job>> {
        let filter = |q: &mut QueryBuilder<Db>| {
            q.push(" WHERE project_id = ");
            q.push_bind(project_id);
            push_statuses(q, statuses);
        };
        paged(&self.pool, "jobs", job_columns!(), &filter, "id DESC", page, job_from_row).await
    }
    async fn transition_job(&self, job_id: i64, from: &[Status], to: Status) -> Result<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let now = Timestamp::now().millis();
        let queued = (to == Status::Pending).then_some(now);
        let finished = to.is_complete().then_some(now);
        // Statuses are our own enum's names, so listing them inline is safe and keeps the
        // statement cacheable per set.
        let from_list = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE jobs SET status = $2, queued_at = COALESCE($3, queued_at), \
             finished_at = CASE WHEN $5 THEN NULL ELSE COALESCE($4, finished_at) END, \
             started_at = CASE WHEN $5 THEN NULL WHEN $7 THEN COALESCE(started_at, $8) ELSE started_at END, \
             lease_expires_at = CASE WHEN $6 THEN NULL ELSE lease_expires_at END \
             WHERE id = $1 AND status IN ({from_list})"
        );
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .bind(to.as_str())
            .bind(queued)
            .bind(finished)
            .bind(to == Status::Created)
            .bind(to.is_complete())
            .bind(to == Status::Running)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }
    async fn schedule_job(&self, job_id: i64, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE jobs SET scheduled_at = $2 WHERE id = $1")
            .bind(job_id)
            .bind(at.millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
    async fn due_scheduled_jobs(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>> {
        let sql = concat!(
            "SELECT ", job_columns!(),
            " FROM jobs WHERE status = 'scheduled' AND scheduled_at <= $1 ORDER BY scheduled_at LIMIT $2"
        );
        let rows = sqlx::query(sql).bind(now.millis()).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }
    async fn expired_leases(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>> {
        let sql = concat!(
            "SELECT ", job_columns!(),
            " FROM jobs WHERE status = 'running' AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT $2"
        );
        let rows = sqlx::query(sql).bind(now.millis()).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }
    async fn expire_runner_leases(&self, runner_id: i64) -> Result<u64> {
        let result = sqlx::query(
            "UPDATE jobs SET lease_expires_at = 0 WHERE runner_id = $1 AND status = 'running'",
        )
        .bind(runner_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }
    async fn retry_job(&self, job_id: i64, status: Status) -> Result<Option<Job>> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "UPDATE jobs SET retried = TRUE WHERE id = $1 AND retried = FALSE \
             AND status IN ('success', 'failed', 'canceled', 'skipped')",
        )
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            return Ok(None);
        }
        let sql = concat!(
            "INSERT INTO jobs (pipeline_id, project_id, name, stage, stage_idx, position, status, when_condition, \
             allow_failure, spec, created_at, queued_at) \
             SELECT pipeline_id, project_id, name, stage, stage_idx, position, $2, when_condition, allow_failure, spec, $3, $4 \
             FROM jobs WHERE id = $1 RETURNING ",
            job_columns!()
        );
        let row = sqlx::query(sql)
            .bind(job_id)
            .bind(status.as_str())
            .bind(now)
            .bind((status == Status::Pending).then_some(now))
            .fetch_one(&mut *tx)
            .await?;
        let job = job_from_row(&row)?;
        tx.commit().await?;
        Ok(Some(job))
    }
    async fn downstream_pipeline(&self, job_id: i64) -> Result<Option<Pipeline>> {
        let sql = concat!("SELECT ", pipeline_columns!(), " FROM pipelines WHERE upstream_job_id = $1 ORDER BY id DESC LIMIT 1");
        let row = sqlx::query(sql).bind(job_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(pipeline_from_row).transpose()
    }
    async fn job_attempts(&self, pipeline_id: i64, name: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE pipeline_id = $1 AND name = $2")
            .bind(pipeline_id)
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
    async fn set_job_artifacts(&self, job_id: i64, artifacts: Option<&JobArtifacts>) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET artifacts_filename = $2, artifacts_size = $3, artifacts_expire_at = $4 WHERE id = $1",
        )
        .bind(job_id)
        .bind(artifacts.map(|a| a.filename.clone()))
        .bind(artifacts.map(|a| a.size))
        .bind(artifacts.and_then(|a| a.expire_at).map(|t| t.millis()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn erase_job(&self, job_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET erased_at = $2, artifacts_filename = NULL, artifacts_size = NULL, \
             artifacts_expire_at = NULL WHERE id = $1",
        )
        .bind(job_id)
        .bind(Timestamp::now().millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn expired_artifacts(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>> {
        let sql = concat!(
            "SELECT ", job_columns!(),
            " FROM jobs WHERE artifacts_expire_at < $1 ORDER BY artifacts_expire_at LIMIT $2"
        );
        let rows = sqlx::query(sql).bind(now.millis()).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }
    async fn latest_successful_job_for_ref(&self, project_id: ProjectId, ref_name: &str, job_name: &str) -> Result<Option<Job>> {
        let sql = concat!(
            "SELECT ", job_columns!(),
            " FROM jobs WHERE pipeline_id = (SELECT id FROM pipelines WHERE project_id = $1 AND ref_name = $2 \
             AND status = 'success' ORDER BY id DESC LIMIT 1) AND name = $3 AND status = 'success' \
             AND retried = FALSE ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(sql)
            .bind(project_id)
            .bind(ref_name)
            .bind(job_name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }
    async fn set_pipeline_status(&self, pipeline_id: i64, status: Status) -> Result<bool> {
        // Through the job writer: job changes and the pipeline status they imply share its
        // transactions instead of contending for SQLite's write lock.
        match self.job_op(JobOp::PipelineStatus { pipeline_id, status }).await? {
            JobOpResult::Finished(changed) => Ok(changed),
            _ => Err(mismatched()),
        }
    }

    async fn pipeline_by_id(&self, id: i64) -> Result<Option<Pipeline>> {
        let sql = concat!("SELECT ", pipeline_columns!(), " FROM pipelines WHERE id = $1");
        if let Some(pipeline) = self.inline_pipeline(sql, InlineArg::Int(id)) {
            return pipeline;
        }
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(pipeline_from_row).transpose()
    }

    // ---- runners ---------------------------------------------------------------------

    async fn ci_variables(&self, project_id: Option<ProjectId>) -> Result<Vec<CiVariable>> {
        let rows = match project_id {
            Some(id) => {
                sqlx::query(concat!("SELECT ", ci_variable_columns!(), " FROM ci_variables WHERE project_id = $1 ORDER BY key, environment_scope"))
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(concat!("SELECT ", ci_variable_columns!(), " FROM ci_variables WHERE project_id IS NULL ORDER BY key"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(ci_variable_from_row).collect()
    }
    async fn ci_variables_for_pipeline(&self, project_id: ProjectId) -> Result<Vec<CiVariable>> {
        let rows = sqlx::query(concat!(
            "SELECT ", ci_variable_columns!(),
            " FROM ci_variables WHERE project_id = $1 OR project_id IS NULL ORDER BY key"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ci_variable_from_row).collect()
    }
    async fn create_ci_variable(&self, v: &CiVariable) -> Result<Option<CiVariable>> {
        let sql = concat!(
            "INSERT INTO ci_variables (project_id, key, value_sealed, variable_type, protected, masked, raw, description, \
             environment_scope, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
            ci_variable_columns!()
        );
        let result = sqlx::query(sql)
            .bind(v.project_id)
            .bind(&v.key)
            .bind(&v.value_sealed)
            .bind(v.variable_type.as_str())
            .bind(v.protected)
            .bind(v.masked)
            .bind(v.raw)
            .bind(&v.description)
            .bind(&v.environment_scope)
            .bind(Timestamp::now().millis())
            .fetch_one(&self.pool)
            .await;
        match result {
            Ok(row) => Ok(Some(ci_variable_from_row(&row)?)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn update_ci_variable(&self, v: &CiVariable) -> Result<CiVariable> {
        let sql = concat!(
            "UPDATE ci_variables SET value_sealed = $2, variable_type = $3, protected = $4, masked = $5, raw = $6, \
             description = $7, environment_scope = $8 WHERE id = $1 RETURNING ",
            ci_variable_columns!()
        );
        let row = sqlx::query(sql)
            .bind(v.id)
            .bind(&v.value_sealed)
            .bind(v.variable_type.as_str())
            .bind(v.protected)
            .bind(v.masked)
            .bind(v.raw)
            .bind(&v.description)
            .bind(&v.environment_scope)
            .fetch_one(&self.pool)
            .await?;
        ci_variable_from_row(&row)
    }
    async fn delete_ci_variable(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM ci_variables WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }
    async fn pipeline_variables_minimum_role(&self, project_id: ProjectId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT pipeline_variables_minimum_override_role AS role FROM project_ci_settings WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("role")?),
            None => None,
        })
    }
    async fn project_build_timeout(&self, project_id: ProjectId) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT build_timeout FROM project_ci_settings WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("build_timeout")?,
            None => None,
        })
    }
    async fn set_project_build_timeout(&self, project_id: ProjectId, seconds: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO project_ci_settings (project_id, pipeline_variables_minimum_override_role, build_timeout) \
             VALUES ($1, 'developer', $2) ON CONFLICT (project_id) DO UPDATE SET build_timeout = excluded.build_timeout",
        )
        .bind(project_id)
        .bind(seconds)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn set_pipeline_variables_minimum_role(&self, project_id: ProjectId, role: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO project_ci_settings (project_id, pipeline_variables_minimum_override_role) VALUES ($1, $2) \
             ON CONFLICT (project_id) DO UPDATE SET pipeline_variables_minimum_override_role = excluded.pipeline_variables_minimum_override_role",
        )
        .bind(project_id)
        .bind(role)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn project_hooks(&self, project_id: ProjectId) -> Result<Vec<ProjectHook>> {
        let rows = sqlx::query(concat!("SELECT ", hook_columns!(), " FROM project_hooks WHERE project_id = $1 ORDER BY id"))
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(hook_from_row).collect()
    }
    async fn project_hook(&self, project_id: ProjectId, id: i64) -> Result<Option<ProjectHook>> {
        let row = sqlx::query(concat!("SELECT ", hook_columns!(), " FROM project_hooks WHERE project_id = $1 AND id = $2"))
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(hook_from_row).transpose()
    }
    async fn project_hook_by_id(&self, id: i64) -> Result<Option<ProjectHook>> {
        let row = sqlx::query(concat!("SELECT ", hook_columns!(), " FROM project_hooks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(hook_from_row).transpose()
    }
    async fn create_project_hook(&self, h: &ProjectHook) -> Result<ProjectHook> {
        let row = sqlx::query(concat!(
            "INSERT INTO project_hooks (project_id, url, token_sealed, push_events, push_events_branch_filter, \
             tag_push_events, pipeline_events, job_events, enable_ssl_verification, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
            hook_columns!()
        ))
        .bind(h.project_id)
        .bind(&h.url)
        .bind(&h.token_sealed)
        .bind(h.push_events)
        .bind(&h.push_events_branch_filter)
        .bind(h.tag_push_events)
        .bind(h.pipeline_events)
        .bind(h.job_events)
        .bind(h.enable_ssl_verification)
        .bind(Timestamp::now().millis())
        .fetch_one(&self.pool)
        .await?;
        hook_from_row(&row)
    }
    async fn update_project_hook(&self, h: &ProjectHook) -> Result<ProjectHook> {
        let row = sqlx::query(concat!(
            "UPDATE project_hooks SET url = $2, token_sealed = $3, push_events = $4, push_events_branch_filter = $5, \
             tag_push_events = $6, pipeline_events = $7, job_events = $8, enable_ssl_verification = $9 \
             WHERE id = $1 RETURNING ",
            hook_columns!()
        ))
        .bind(h.id)
        .bind(&h.url)
        .bind(&h.token_sealed)
        .bind(h.push_events)
        .bind(&h.push_events_branch_filter)
        .bind(h.tag_push_events)
        .bind(h.pipeline_events)
        .bind(h.job_events)
        .bind(h.enable_ssl_verification)
        .fetch_one(&self.pool)
        .await?;
        hook_from_row(&row)
    }
    async fn delete_project_hook(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM project_hooks WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }
    async fn enqueue_hook_deliveries(&self, deliveries: &[NewHookDelivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        for d in deliveries {
            sqlx::query(
                "INSERT INTO hook_deliveries (hook_id, event, uuid, payload, state, attempts, next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5)",
            )
            .bind(d.hook_id)
            .bind(&d.event)
            .bind(&d.uuid)
            .bind(&d.payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
    async fn claim_hook_deliveries(&self, now: Timestamp, claim_until: Timestamp, limit: i64) -> Result<Vec<HookDelivery>> {
        let ids: Vec<i64> = sqlx::query(
            "SELECT id FROM hook_deliveries WHERE state IN ('pending', 'sending') AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now.millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
        let mut claimed = Vec::new();
        for id in ids {
            let row = sqlx::query(concat!(
                "UPDATE hook_deliveries SET state = 'sending', next_attempt_at = $2, attempts = attempts + 1, updated_at = $3 \
                 WHERE id = $1 AND state IN ('pending', 'sending') AND next_attempt_at <= $3 RETURNING ",
                delivery_columns!()
            ))
            .bind(id)
            .bind(claim_until.millis())
            .bind(now.millis())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                claimed.push(delivery_from_row(&row)?);
            }
        }
        Ok(claimed)
    }
    async fn record_hook_attempt(&self, id: i64, a: &DeliveryAttempt) -> Result<()> {
        sqlx::query(
            "UPDATE hook_deliveries SET state = $2, next_attempt_at = $3, response_status = $4, response_body = $5, \
             duration_ms = $6, error = $7, updated_at = $8 WHERE id = $1",
        )
        .bind(id)
        .bind(&a.state)
        .bind(a.next_attempt_at.millis())
        .bind(a.response_status)
        .bind(&a.response_body)
        .bind(a.duration_ms)
        .bind(&a.error)
        .bind(Timestamp::now().millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn hook_deliveries(&self, hook_id: i64, limit: i64) -> Result<Vec<HookDelivery>> {
        let rows = sqlx::query(concat!("SELECT ", delivery_columns!(), " FROM hook_deliveries WHERE hook_id = $1 ORDER BY id DESC LIMIT $2"))
            .bind(hook_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }
    async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM application_settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("value")?),
            None => None,
        })
    }
    async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO application_settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn job_token_scope_enabled(&self, project_id: ProjectId) -> Result<bool> {
        let row = sqlx::query("SELECT enabled FROM job_token_scopes WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("enabled")?,
            None => true,
        })
    }
    async fn set_job_token_scope_enabled(&self, project_id: ProjectId, enabled: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO job_token_scopes (project_id, enabled) VALUES ($1, $2) \
             ON CONFLICT (project_id) DO UPDATE SET enabled = excluded.enabled",
        )
        .bind(project_id)
        .bind(enabled)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
    async fn job_token_allowlist(&self, project_id: ProjectId, page: Page) -> Result<Paged<Project>> {
        let filter = |q: &mut QueryBuilder<Db>| {
            q.push(" WHERE p.id IN (SELECT target_project_id FROM job_token_allowlist WHERE project_id = ");
            q.push_bind(project_id);
            q.push(")");
        };
        paged(&self.pool, PROJECT_FROM, PROJECT_COLUMNS, &filter, "p.id", page, project_from_row).await
    }
    async fn add_to_job_token_allowlist(&self, project_id: ProjectId, target_project_id: ProjectId) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO job_token_allowlist (project_id, target_project_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, target_project_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(target_project_id)
        .bind(Timestamp::now().millis())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }
    async fn remove_from_job_token_allowlist(&self, project_id: ProjectId, target_project_id: ProjectId) -> Result<bool> {
        let result = sqlx::query("DELETE FROM job_token_allowlist WHERE project_id = $1 AND target_project_id = $2")
            .bind(project_id)
            .bind(target_project_id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }
    async fn job_token_allowed(&self, target: ProjectId, source: ProjectId) -> Result<bool> {
        if target == source {
            return Ok(true);
        }
        let row = sqlx::query(
            "SELECT COALESCE((SELECT enabled FROM job_token_scopes WHERE project_id = $1), TRUE) AS enabled, \
             EXISTS (SELECT 1 FROM job_token_allowlist WHERE project_id = $1 AND target_project_id = $2) AS listed",
        )
        .bind(target)
        .bind(source)
        .fetch_one(&self.pool)
        .await?;
        let enabled: bool = row.try_get("enabled")?;
        let listed: bool = row.try_get("listed")?;
        Ok(!enabled || listed)
    }
    async fn create_runner(&self, r: &NewRunner) -> Result<Runner> {
        let sql = concat!(
            "INSERT INTO runners (token_digest, runner_type, project_id, creator_id, description, tag_list, run_untagged, \
             paused, locked, access_level, maximum_timeout, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
            runner_columns!()
        );
        let row = sqlx::query(sql)
            .bind(&r.token_digest)
            .bind(r.runner_type.as_str())
            .bind(r.project_id)
            .bind(r.creator_id)
            .bind(&r.description)
            .bind(r.tag_list.join(","))
            .bind(r.run_untagged)
            .bind(r.paused)
            .bind(r.locked)
            .bind(&r.access_level)
            .bind(r.maximum_timeout)
            .bind(Timestamp::now().millis())
            .fetch_one(&self.pool)
            .await?;
        runner_from_row(&row)
    }

    async fn runner(&self, id: i64) -> Result<Option<Runner>> {
        let sql = concat!("SELECT ", runner_columns!(), " FROM runners WHERE id = $1");
        let row = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(runner_from_row).transpose()
    }

    async fn runner_by_digest(&self, digest: &str) -> Result<Option<Runner>> {
        let sql = concat!("SELECT ", runner_columns!(), " FROM runners WHERE token_digest = $1");
        if let Some(runner) = self.inline_runner(sql, InlineArg::Text(digest)) {
            return runner;
        }
        let row = sqlx::query(sql).bind(digest).fetch_optional(&self.pool).await?;
        row.as_ref().map(runner_from_row).transpose()
    }

    async fn runners(&self, scope: RunnerScope, page: Page) -> Result<Paged<Runner>> {
        let filter = |q: &mut QueryBuilder<Db>| {
            if let RunnerScope::ManagedBy(user_id) = scope {
                q.push(" WHERE project_id IN (SELECT project_id FROM project_members WHERE user_id = ");
                q.push_bind(user_id);
                q.push(" AND access_level >= 40)");
            }
        };
        paged(&self.pool, "runners", runner_columns!(), &filter, "id", page, runner_from_row).await
    }

    async fn update_runner(&self, id: i64, u: &RunnerUpdate) -> Result<Runner> {
        let (set_timeout, timeout) = match u.maximum_timeout {
            Some(t) => (true, t),
            None => (false, None),
        };
        let sql = concat!(
            "UPDATE runners SET description = COALESCE($2, description), tag_list = COALESCE($3, tag_list), \
             run_untagged = COALESCE($4, run_untagged), paused = COALESCE($5, paused), locked = COALESCE($6, locked), \
             access_level = COALESCE($7, access_level), \
             maximum_timeout = CASE WHEN $8 THEN $9 ELSE maximum_timeout END WHERE id = $1 RETURNING ",
            runner_columns!()
        );
        let row = sqlx::query(sql)
            .bind(id)
            .bind(&u.description)
            .bind(u.tag_list.as_ref().map(|t| t.join(",")))
            .bind(u.run_untagged)
            .bind(u.paused)
            .bind(u.locked)
            .bind(&u.access_level)
            .bind(set_timeout)
            .bind(timeout)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        runner_from_row(&row)
    }

    async fn delete_runner(&self, id: i64) -> Result<()> {
        let result = sqlx::query("DELETE FROM runners WHERE id = $1").bind(id).execute(&self.pool).await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn touch_runner(&self, id: i64, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE runners SET contacted_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at.millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- push events -----------------------------------------------------------------

    async fn record_push_events(&self, events: &[NewPushEvent]) -> Result<Vec<PushEvent>> {
        let now = Timestamp::now().millis();
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let row = sqlx::query(
                "INSERT INTO push_events (project_id, user_id, ref_name, before_sha, after_sha, push_options, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 RETURNING id, project_id, user_id, ref_name, before_sha, after_sha, push_options, created_at",
            )
            .bind(e.project_id)
            .bind(e.user_id)
            .bind(&e.ref_name)
            .bind(&e.before_sha)
            .bind(&e.after_sha)
            .bind(e.push_options.join("\n"))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            out.push(push_event_from_row(&row)?);
        }
        sqlx::query("UPDATE projects SET last_activity_at = $2 WHERE id = $1")
            .bind(events.first().map(|e| e.project_id).unwrap_or_default())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn pending_push_events(&self, limit: i64) -> Result<Vec<PushEvent>> {
        let rows = sqlx::query(
            "SELECT id, project_id, user_id, ref_name, before_sha, after_sha, push_options, created_at \
             FROM push_events WHERE processed_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(push_event_from_row).collect()
    }

    async fn mark_push_event_processed(&self, id: i64) -> Result<bool> {
        let result = sqlx::query("UPDATE push_events SET processed_at = $2 WHERE id = $1 AND processed_at IS NULL")
            .bind(id)
            .bind(Timestamp::now().millis())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    // ---- web UI ------------------------------------------------------------------------

    async fn pipelines_window(&self, project_id: ProjectId, filter: &PipelineFilter, limit: i64, offset: i64) -> Result<Vec<Pipeline>> {
        let mut q = QueryBuilder::<Db>::new(concat!("SELECT ", pipeline_columns!(), " FROM pipelines"));
        push_pipeline_filter(&mut q, project_id, filter);
        q.push(" ORDER BY id DESC LIMIT ");
        q.push_bind(limit);
        q.push(" OFFSET ");
        q.push_bind(offset);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(pipeline_from_row).collect()
    }

    async fn project_jobs_window(&self, project_id: ProjectId, statuses: &[Status], limit: i64, offset: i64) -> Result<Vec<Job>> {
        let mut q = QueryBuilder::<Db>::new(concat!("SELECT ", job_columns!(), " FROM jobs WHERE project_id = "));
        q.push_bind(project_id);
        push_statuses(&mut q, statuses);
        q.push(" ORDER BY id DESC LIMIT ");
        q.push_bind(limit);
        q.push(" OFFSET ");
        q.push_bind(offset);
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn pipelines_by_ids(&self, ids: &[i64]) -> Result<Vec<Pipeline>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(concat!("SELECT ", pipeline_columns!(), " FROM pipelines WHERE id IN ("));
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        q.push(")");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(pipeline_from_row).collect()
    }

    async fn create_web_session(&self, session: &WebSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_sessions (id_digest, user_id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id_digest)
        .bind(session.user_id)
        .bind(session.created_at.millis())
        .bind(session.last_seen_at.millis())
        .bind(session.expires_at.millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn web_session(&self, id_digest: &str) -> Result<Option<WebSession>> {
        let row = sqlx::query(
            "SELECT id_digest, user_id, created_at, last_seen_at, expires_at FROM web_sessions WHERE id_digest = $1",
        )
        .bind(id_digest)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(WebSession {
                id_digest: r.try_get("id_digest")?,
                user_id: r.try_get("user_id")?,
                created_at: Timestamp(r.try_get("created_at")?),
                last_seen_at: Timestamp(r.try_get("last_seen_at")?),
                expires_at: Timestamp(r.try_get("expires_at")?),
            })
        })
        .transpose()
    }

    async fn touch_web_session(&self, id_digest: &str, now: Timestamp, expires_at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $2, expires_at = $3 WHERE id_digest = $1")
            .bind(id_digest)
            .bind(now.millis())
            .bind(expires_at.millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_web_session(&self, id_digest: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE id_digest = $1").bind(id_digest).execute(&self.pool).await?;
        Ok(())
    }

    async fn record_sign_in_failure(&self, key: &str, now: Timestamp, window_after: Timestamp) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO sign_in_failures (key, failures, window_start) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.window_start < $3 THEN 1 ELSE sign_in_failures.failures + 1 END, \
             window_start = CASE WHEN sign_in_failures.window_start < $3 THEN $2 ELSE sign_in_failures.window_start END \
             RETURNING failures",
        )
        .bind(key)
        .bind(now.millis())
        .bind(window_after.millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("failures")?)
    }

    async fn sign_in_failures(&self, keys: &[String]) -> Result<Vec<(String, i64, Timestamp)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new("SELECT key, failures, window_start FROM sign_in_failures WHERE key IN (");
        let mut sep = q.separated(", ");
        for key in keys {
            sep.push_bind(key.as_str());
        }
        q.push(")");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("failures")?, Timestamp(r.try_get("window_start")?))))
            .collect()
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE key = $1").bind(key).execute(&self.pool).await?;
        Ok(())
    }

    async fn delete_old_sign_in_failures(&self, before: Timestamp) -> Result<u64> {
        let result =
            sqlx::query("DELETE FROM sign_in_failures WHERE window_start < $1").bind(before.millis()).execute(&self.pool).await?;
        Ok(result.rows_affected())
    }

    async fn delete_expired_web_sessions(&self, now: Timestamp) -> Result<u64> {
        let result = sqlx::query("DELETE FROM web_sessions WHERE expires_at < $1").bind(now.millis()).execute(&self.pool).await?;
        Ok(result.rows_affected())
    }
}
