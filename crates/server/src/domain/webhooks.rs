//! Project webhooks' events: which events of a project become deliveries (push, tag push,
//! pipeline and job events, each hook's filters), and GitLab's payloads for them. An event is
//! queued in the request that caused it, as rows of the durable delivery queue
//! (`hook_deliveries`); [`crate::webhook_delivery`] sends them.

use pipewright_store::{Job, NewHookDelivery, Pipeline, Project, ProjectHook, PushEvent, User};
use serde_json::{Value, json};

use crate::state::AppState;
use crate::webhook_delivery::new_uuid;

/// A project's hooks (cached briefly; the hooks API drops the entry on every change).
async fn hooks_of(
    state: &AppState,
    project_id: i64,
) -> anyhow::Result<std::sync::Arc<Vec<ProjectHook>>> {
    Ok(state
        .hooks_cache
        .get_or_load(project_id, state.store.project_hooks(project_id))
        .await?)
}

fn project_json(state: &AppState, p: &Project) -> Value {
    let web_url = format!("{}/{}", state.config.external_url, p.full_path());
    json!({
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "web_url": web_url,
        "git_http_url": format!("{web_url}.git"),
        "namespace": p.namespace.name,
        "visibility_level": match p.visibility.as_str() { "public" => 20, "internal" => 10, _ => 0 },
        "path_with_namespace": p.full_path(),
        "default_branch": p.default_branch,
        "homepage": web_url,
        "url": format!("{web_url}.git"),
        "http_url": format!("{web_url}.git"),
    })
}

/// What a hook receives for a user's email: a hook's URL is set by a Maintainer, and an
/// account's email is for admins only (GitLab: app/models/user.rb `webhook_email`).
const REDACTED_EMAIL: &str = "[REDACTED]";

fn user_json(state: &AppState, u: &User) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "username": u.username,
        // GitLab's `User#webhook_email`: the public email, which Pipewright users do not have.
        "email": REDACTED_EMAIL,
        "avatar_url": format!("{}/uploads/-/system/user/avatar/{}/avatar.png", state.config.external_url, u.id),
    })
}

fn commit_json(state: &AppState, project: &Project, c: &pipewright_git::CommitInfo) -> Value {
    json!({
        "id": c.id,
        "message": c.message,
        "title": c.title,
        "timestamp": c.committed_date.to_gitlab(),
        "url": format!("{}/{}/-/commit/{}", state.config.external_url, project.full_path(), c.id),
        "author": {"name": c.author_name, "email": c.author_email},
        "added": [], "modified": [], "removed": [],
    })
}

/// GitLab's Push Hook / Tag Push Hook body for a recorded push.
async fn push_payload(
    state: &AppState,
    project: &Project,
    user: Option<&User>,
    event: &PushEvent,
) -> anyhow::Result<(String, Value)> {
    let tag = event.ref_name.starts_with("refs/tags/");
    let deleted = event.after_sha.bytes().all(|b| b == b'0');
    let commit = if deleted {
        None
    } else {
        state
            .repos
            .commit_async(project.id, &event.after_sha)
            .await
            .ok()
            .flatten()
    };
    let commits: Vec<Value> = commit
        .iter()
        .map(|c| commit_json(state, project, c))
        .collect();
    let (kind, name) = if tag {
        ("tag_push", "Tag Push Hook")
    } else {
        ("push", "Push Hook")
    };
    Ok((
        name.to_string(),
        json!({
            "object_kind": kind,
            "event_name": kind,
            "before": event.before_sha,
            "after": event.after_sha,
            "ref": event.ref_name,
            "ref_protected": false,
            "checkout_sha": if deleted { Value::Null } else { json!(event.after_sha) },
            "message": Value::Null,
            "user_id": user.map(|u| u.id),
            "user_name": user.map(|u| u.name.clone()),
            "user_username": user.map(|u| u.username.clone()),
            "user_email": user.map(|_| REDACTED_EMAIL),
            "user_avatar": Value::Null,
            "project_id": project.id,
            "project": project_json(state, project),
            "commits": commits,
            "total_commits_count": commits.len(),
            "push_options": {},
            "repository": {
                "name": project.name,
                "url": format!("{}/{}.git", state.config.external_url, project.full_path()),
                "description": project.description,
                "homepage": format!("{}/{}", state.config.external_url, project.full_path()),
            },
        }),
    ))
}

/// A push event's payload for `POST …/hooks/:id/test/push_events`.
pub async fn sample_push(
    state: &AppState,
    project: &Project,
    event: &PushEvent,
) -> anyhow::Result<(String, Value)> {
    let user = match event.user_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    };
    push_payload(state, project, user.as_ref(), event).await
}

/// A pipeline (or its latest job's) payload for `POST …/hooks/:id/test/pipeline_events`.
pub async fn sample_pipeline_or_job(
    state: &AppState,
    project: &Project,
    pipeline: &Pipeline,
    job: bool,
) -> anyhow::Result<(String, Value)> {
    if job && let Some(last) = state.store.pipeline_all_jobs(pipeline.id).await?.last() {
        return Ok((
            "Job Hook".into(),
            job_payload(state, project, pipeline, last),
        ));
    }
    Ok((
        "Pipeline Hook".into(),
        pipeline_payload(state, project, pipeline).await?,
    ))
}

/// Whether a branch matches a hook's `push_events_branch_filter` (wildcards with `*`).
fn branch_matches(filter: Option<&str>, branch: &str) -> bool {
    let Some(filter) = filter.filter(|f| !f.is_empty()) else {
        return true;
    };
    let pattern = format!("^{}$", regex_lite_escape(filter));
    regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(branch))
}

fn regex_lite_escape(glob: &str) -> String {
    glob.split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".*")
}

async fn enqueue(
    state: &AppState,
    hooks: impl Iterator<Item = &ProjectHook>,
    event: &str,
    payload: &Value,
) -> anyhow::Result<()> {
    let body = payload.to_string();
    let deliveries: Vec<NewHookDelivery> = hooks
        .map(|h| NewHookDelivery {
            hook_id: h.id,
            event: event.to_string(),
            uuid: new_uuid(),
            payload: body.clone(),
        })
        .collect();
    state.store.enqueue_hook_deliveries(&deliveries).await?;
    Ok(())
}

/// Queues Push Hook / Tag Push Hook deliveries for a recorded push.
pub async fn on_push(state: &AppState, event: &PushEvent) -> anyhow::Result<()> {
    let hooks = hooks_of(state, event.project_id).await?;
    let tag = event.ref_name.starts_with("refs/tags/");
    let branch = event.ref_name.trim_start_matches("refs/heads/");
    let wanted: Vec<&ProjectHook> = hooks
        .iter()
        .filter(|h| {
            if tag {
                h.tag_push_events
            } else {
                h.push_events && branch_matches(h.push_events_branch_filter.as_deref(), branch)
            }
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let Some(project) = state.store.project(event.project_id).await? else {
        return Ok(());
    };
    let user = match event.user_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    };
    let (name, payload) = push_payload(state, &project, user.as_ref(), event).await?;
    enqueue(state, wanted.into_iter(), &name, &payload).await
}

async fn pipeline_payload(
    state: &AppState,
    project: &Project,
    pipeline: &Pipeline,
) -> anyhow::Result<Value> {
    let user = match pipeline.user_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    };
    let jobs = state.store.pipeline_all_jobs(pipeline.id).await?;
    let mut stages: Vec<String> = Vec::new();
    for j in &jobs {
        if !stages.contains(&j.stage) {
            stages.push(j.stage.clone());
        }
    }
    let duration = match (pipeline.started_at, pipeline.finished_at) {
        (Some(s), Some(f)) => json!((f.millis() - s.millis()) / 1000),
        _ => Value::Null,
    };
    Ok(json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "name": pipeline.name,
            "ref": pipeline.ref_name,
            "tag": pipeline.tag,
            "sha": pipeline.sha,
            "before_sha": pipeline.before_sha,
            "source": pipeline.source.as_str(),
            "status": pipeline.status.as_str(),
            "detailed_status": pipeline.status.as_str(),
            "stages": stages,
            "created_at": pipeline.created_at.to_gitlab(),
            "finished_at": pipeline.finished_at.map(|t| t.to_gitlab()),
            "duration": duration,
            "variables": [],
            "url": format!("{}/{}/-/pipelines/{}", state.config.external_url, project.full_path(), pipeline.id),
        },
        "user": user.as_ref().map(|u| user_json(state, u)),
        "project": project_json(state, project),
        "builds": jobs.iter().map(|j| json!({
            "id": j.id, "stage": j.stage, "name": j.name, "status": j.status.as_str(),
            "created_at": j.created_at.to_gitlab(),
            "started_at": j.started_at.map(|t| t.to_gitlab()),
            "finished_at": j.finished_at.map(|t| t.to_gitlab()),
            "when": j.when, "manual": j.when == "manual", "allow_failure": j.allow_failure,
            "failure_reason": j.failure_reason,
        })).collect::<Vec<_>>(),
    }))
}

/// Queues Pipeline Hook deliveries after a pipeline's status changed.
pub async fn on_pipeline(state: &AppState, pipeline_id: i64) -> anyhow::Result<()> {
    let Some(pipeline) = state.store.pipeline_by_id(pipeline_id).await? else {
        return Ok(());
    };
    let hooks = hooks_of(state, pipeline.project_id).await?;
    if !hooks.iter().any(|h| h.pipeline_events) {
        return Ok(());
    }
    let Some(project) = state.store.project(pipeline.project_id).await? else {
        return Ok(());
    };
    let payload = pipeline_payload(state, &project, &pipeline).await?;
    enqueue(
        state,
        hooks.iter().filter(|h| h.pipeline_events),
        "Pipeline Hook",
        &payload,
    )
    .await
}

/// Queues Job Hook deliveries after a job's status changed.
pub async fn on_job(state: &AppState, project_id: i64, job_id: i64) -> anyhow::Result<()> {
    let hooks = hooks_of(state, project_id).await?;
    if !hooks.iter().any(|h| h.job_events) {
        return Ok(());
    }
    let Some(job) = state.store.job_by_id(job_id).await? else {
        return Ok(());
    };
    let (Some(project), Some(pipeline)) = (
        state.store.project(job.project_id).await?,
        state.store.pipeline_by_id(job.pipeline_id).await?,
    ) else {
        return Ok(());
    };
    let payload = job_payload(state, &project, &pipeline, &job);
    enqueue(
        state,
        hooks.iter().filter(|h| h.job_events),
        "Job Hook",
        &payload,
    )
    .await
}

fn job_payload(state: &AppState, project: &Project, pipeline: &Pipeline, job: &Job) -> Value {
    let duration = match (job.started_at, job.finished_at) {
        (Some(s), Some(f)) => json!((f.millis() - s.millis()) as f64 / 1000.0),
        _ => Value::Null,
    };
    json!({
        "object_kind": "build",
        "ref": pipeline.ref_name,
        "tag": pipeline.tag,
        "before_sha": pipeline.before_sha,
        "sha": pipeline.sha,
        "build_id": job.id,
        "build_name": job.name,
        "build_stage": job.stage,
        "build_status": job.status.as_str(),
        "build_created_at": job.created_at.to_gitlab(),
        "build_started_at": job.started_at.map(|t| t.to_gitlab()),
        "build_finished_at": job.finished_at.map(|t| t.to_gitlab()),
        "build_duration": duration,
        "build_allow_failure": job.allow_failure,
        "build_failure_reason": job.failure_reason.clone().unwrap_or_else(|| "unknown_failure".into()),
        "pipeline_id": pipeline.id,
        "project_id": project.id,
        "project_name": format!("{} / {}", project.namespace.name, project.name),
        "runner": job.runner_id.map(|id| json!({"id": id})),
        "project": project_json(state, project),
        "repository": {"name": project.name, "homepage": format!("{}/{}", state.config.external_url, project.full_path())},
    })
}

/// Spawns Pipeline Hook production off the caller's path.
pub fn pipeline_changed(state: &AppState, pipeline_id: i64) {
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(err) = on_pipeline(&state, pipeline_id).await {
            tracing::warn!(error = %format!("{err:#}"), "queueing pipeline hooks failed");
        }
    });
}

/// Spawns Job Hook production off the caller's path.
pub fn job_changed(state: &AppState, job: &Job) {
    // The common case, known without a task: the project's (cached) hooks want no job events.
    if state
        .hooks_cache
        .get(job.project_id)
        .is_some_and(|hooks| !hooks.iter().any(|h| h.job_events))
    {
        return;
    }
    let (state, project_id, job_id) = (state.clone(), job.project_id, job.id);
    tokio::spawn(async move {
        if let Err(err) = on_job(&state, project_id, job_id).await {
            tracing::warn!(error = %format!("{err:#}"), "queueing job hooks failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_filters_use_wildcards() {
        assert!(branch_matches(None, "main"));
        assert!(branch_matches(Some("main"), "main"));
        assert!(!branch_matches(Some("main"), "mainline"));
        assert!(branch_matches(Some("release/*"), "release/1.0"));
        assert!(!branch_matches(Some("release/*"), "feature/x"));
    }
}
