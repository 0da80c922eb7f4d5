//! Project, group and instance CI/CD variables as a pipeline sees them: opened from their
//! sealed form, protected ones only on protected refs, only those for every environment (`*`),
//! with GitLab's flags (masked, file, raw) so the runner masks and writes them as it should.
//! Precedence is GitLab's (doc/ci/variables, "CI/CD variable precedence"): the project's own
//! over its groups', a subgroup's over its parent's, any group's over the instance's.

use pipewright_config::{Variable, VariableSource};
use pipewright_store::VariableType;

use crate::project_cache::OpenedVariables;
use crate::sealing::Purpose;
use crate::state::AppState;

/// The variables of the instance and of a project that a pipeline on this ref receives;
/// `project` holds the project's own and, for keys it does not set, its groups' (the
/// nearest group's value of each key).
pub struct PipelineVariables {
    pub instance: Vec<Variable>,
    pub project: Vec<Variable>,
}

async fn load(state: &AppState, project_id: i64) -> anyhow::Result<OpenedVariables> {
    let mut all = Vec::new();
    let mut masked = Vec::new();
    for v in state.store.ci_variables_for_pipeline(project_id).await? {
        let value = state.sealer.open(Purpose::CiVariable, &v.value_sealed)?;
        let source = if v.project_id.is_some() {
            VariableSource::Project
        } else if v.group_id.is_some() {
            VariableSource::Group
        } else {
            VariableSource::Instance
        };
        if v.masked {
            masked.push(value.clone());
        }
        let mut var = Variable::new(&v.key, value, source);
        var.public = false;
        var.masked = v.masked;
        var.protected = v.protected;
        var.file = v.variable_type == VariableType::File;
        var.raw = v.raw;
        all.push((v, var));
    }
    Ok(OpenedVariables { all, masked })
}

/// The project's and the instance's variables (cached briefly; the variables API drops the
/// entry on every change).
pub async fn opened(
    state: &AppState,
    project_id: i64,
) -> anyhow::Result<std::sync::Arc<OpenedVariables>> {
    state
        .variables_cache
        .get_or_load(project_id, load(state, project_id))
        .await
}

pub async fn for_pipeline(
    state: &AppState,
    project_id: i64,
    protected_ref: bool,
) -> anyhow::Result<PipelineVariables> {
    let opened = opened(state, project_id).await?;
    let mut out = PipelineVariables {
        instance: Vec::new(),
        project: Vec::new(),
    };
    // The store lists them in rising precedence (instance, groups top down, project): the
    // last value of a key among the project's and its groups' is the one that counts.
    let mut scoped: Vec<&Variable> = Vec::new();
    for (row, var) in &opened.all {
        if (row.protected && !protected_ref) || row.environment_scope != "*" {
            continue;
        }
        if row.project_id.is_some() || row.group_id.is_some() {
            scoped.retain(|v| v.key != var.key);
            scoped.push(var);
        } else {
            out.instance.push(var.clone());
        }
    }
    out.project = scoped.into_iter().cloned().collect();
    Ok(out)
}
