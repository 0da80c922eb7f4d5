//! Pipelines on push: every ref a push creates or moves gets a pipeline with source `push`,
//! through the same creation chain as triggers (so `[skip ci]` / `[ci skip]` in the commit
//! message and rules with `$CI_PIPELINE_SOURCE == "push"` behave as on GitLab). Pushes are
//! recorded in an outbox by the git endpoint; this module drains it. An event is claimed with a
//! conditional update before its pipeline is created, so two servers never both create it.

use pipewright_core::PipelineSource;
use pipewright_store::{PushEvent, VariableType};

use crate::domain::dispatch::create_pipeline;
use crate::domain::pipeline_creation::{CreateError, CreatePipeline, PipelineUser};
use crate::domain::pipeline_variables::PipelineVariable;
use crate::state::AppState;

/// Creates pipelines for every push waiting in the outbox.
pub async fn process(state: &AppState) -> anyhow::Result<()> {
    // One drain at a time per process; the claim below handles other processes.
    let _guard = state.push_processing.lock().await;
    loop {
        let events = state.store.pending_push_events(50).await?;
        if events.is_empty() {
            return Ok(());
        }
        for event in events {
            if !state.store.mark_push_event_processed(event.id).await? {
                continue;
            }
            if let Err(err) = crate::domain::webhooks::on_push(state, &event).await {
                tracing::warn!(
                    project_id = event.project_id,
                    error = %format!("{err:#}"),
                    "queueing push hooks failed"
                );
            }
            if let Err(err) = pipeline_for(state, &event).await {
                tracing::warn!(
                    project_id = event.project_id,
                    error = %format!("{err:#}"),
                    "creating a push pipeline failed"
                );
            }
        }
    }
}

/// What `git push -o …` asked for: `ci.skip`, and `ci.variable="KEY=value"` pipeline variables.
#[derive(Debug, Default, PartialEq)]
struct PushOptions {
    skip: bool,
    variables: Vec<(String, String)>,
}

fn push_options(options: &[String]) -> PushOptions {
    let mut parsed = PushOptions::default();
    for option in options {
        if option == "ci.skip" {
            parsed.skip = true;
        } else if let Some(var) = option.strip_prefix("ci.variable=") {
            let var = var.trim_matches('"');
            if let Some((key, value)) = var.split_once('=')
                && !key.is_empty()
            {
                parsed.variables.push((key.to_string(), value.to_string()));
            }
        }
    }
    parsed
}

async fn pipeline_for(state: &AppState, event: &PushEvent) -> anyhow::Result<()> {
    let options = push_options(&event.push_options);
    // Deleted refs get no pipeline, and `ci.skip` asks for none.
    if event.after_sha.bytes().all(|b| b == b'0') || options.skip {
        return Ok(());
    }
    let ref_name = match (
        event.ref_name.strip_prefix("refs/heads/"),
        event.ref_name.strip_prefix("refs/tags/"),
    ) {
        (Some(branch), _) => branch,
        (_, Some(tag)) => tag,
        _ => return Ok(()),
    };
    let Some(project) = state.store.project(event.project_id).await? else {
        return Ok(());
    };
    let Some(user) = (match event.user_id {
        Some(id) => state.store.user(id).await?,
        None => None,
    }) else {
        return Ok(());
    };
    let role = state.store.project_role(project.id, user.id).await?;
    let request = CreatePipeline {
        project,
        ref_name: ref_name.to_string(),
        source: PipelineSource::Push,
        run_as: PipelineUser::User { user, role },
        trigger: None,
        variables: options
            .variables
            .into_iter()
            .map(|(key, value)| PipelineVariable {
                key,
                value,
                variable_type: VariableType::EnvVar,
            })
            .collect(),
        upstream: None,
        ignore_skip_ci: false,
        before_sha: Some(event.before_sha.clone()),
        config_path: None,
        at_sha: None,
        inputs: pipewright_config::Inputs::new(),
        save_on_errors: true,
    };
    match create_pipeline(state, request).await {
        Ok(_) | Err(CreateError::ConfigError(..)) | Err(CreateError::Rejected(_)) => Ok(()),
        Err(CreateError::Internal(err)) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_options_skip_and_set_variables() {
        let parsed = push_options(&[
            "ci.skip".into(),
            "ci.variable=\"DEPLOY=staging\"".into(),
            "ci.variable=LEVEL=a=b".into(),
            "merge_request.create".into(),
        ]);
        assert!(parsed.skip);
        assert_eq!(
            parsed.variables,
            vec![
                ("DEPLOY".to_string(), "staging".to_string()),
                ("LEVEL".to_string(), "a=b".to_string())
            ]
        );
    }
}
