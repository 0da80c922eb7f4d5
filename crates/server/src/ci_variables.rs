//! Project and instance CI/CD variables as a pipeline sees them: opened from their sealed
//! form, protected ones only on protected refs, only those for every environment (`*`), with
//! GitLab's flags (masked, file, raw) so the runner masks and writes them as it should.

use pipewright_config::{Variable, VariableSource};
use pipewright_store::{CiVariable, VariableType};

use crate::sealing::Purpose;
use crate::state::AppState;

/// The variables of the instance and of a project that a pipeline on this ref receives.
pub struct PipelineVariables {
    pub instance: Vec<Variable>,
    pub project: Vec<Variable>,
}

fn convert(
    state: &AppState,
    vars: Vec<CiVariable>,
    protected_ref: bool,
    source: VariableSource,
) -> anyhow::Result<Vec<Variable>> {
    let mut out = Vec::with_capacity(vars.len());
    for v in vars {
        if (v.protected && !protected_ref) || v.environment_scope != "*" {
            continue;
        }
        let value = state.sealer.open(Purpose::CiVariable, &v.value_sealed)?;
        let mut var = Variable::new(&v.key, value, source);
        var.public = false;
        var.masked = v.masked;
        var.protected = v.protected;
        var.file = v.variable_type == VariableType::File;
        var.raw = v.raw;
        out.push(var);
    }
    Ok(out)
}

pub async fn for_pipeline(
    state: &AppState,
    project_id: i64,
    protected_ref: bool,
) -> anyhow::Result<PipelineVariables> {
    let (project, instance): (Vec<CiVariable>, Vec<CiVariable>) = cached(state, project_id)
        .await?
        .iter()
        .cloned()
        .partition(|v| v.project_id.is_some());
    Ok(PipelineVariables {
        instance: convert(state, instance, protected_ref, VariableSource::Instance)?,
        project: convert(state, project, protected_ref, VariableSource::Project)?,
    })
}

/// Every masked value a job of this project could print, for masking logs on ingest.
pub async fn masked_values(state: &AppState, project_id: i64) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for v in cached(state, project_id).await?.iter() {
        if v.masked {
            out.push(state.sealer.open(Purpose::CiVariable, &v.value_sealed)?);
        }
    }
    Ok(out)
}

async fn cached(
    state: &AppState,
    project_id: i64,
) -> anyhow::Result<std::sync::Arc<Vec<CiVariable>>> {
    Ok(state
        .variables_cache
        .get_or_load(
            project_id,
            state.store.ci_variables_for_pipeline(project_id),
        )
        .await?)
}
