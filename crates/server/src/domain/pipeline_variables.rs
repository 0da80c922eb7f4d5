//! A pipeline's own variables: those given by a trigger, the API, a push option or an upstream
//! bridge, the highest-precedence variables its jobs receive. The pipeline's row keeps them
//! sealed (`sealing.rs`, purpose `PipelineVariable`); this module is the one place they are
//! sealed and opened again.

use pipewright_config::{Variable, VariableSource};
use pipewright_store::{StoredVariable, VariableType};

use crate::sealing::{Purpose, Sealer};
use crate::state::AppState;

/// The variable a trigger's request becomes: every parameter but the token, as JSON.
pub const TRIGGER_PAYLOAD: &str = "TRIGGER_PAYLOAD";

/// `TRIGGER_PAYLOAD`'s default size limit (GitLab proposes 1–3 MiB for file variables).
pub const MAX_TRIGGER_PAYLOAD_BYTES: usize = 1024 * 1024;

/// A variable given for one pipeline, in clear.
#[derive(Debug, Clone)]
pub struct PipelineVariable {
    pub key: String,
    pub value: String,
    pub variable_type: VariableType,
}

impl PipelineVariable {
    /// The variable as the pipeline's row stores it.
    pub fn seal(&self, sealer: &Sealer) -> anyhow::Result<StoredVariable> {
        Ok(StoredVariable {
            key: self.key.clone(),
            value_sealed: sealer.seal(Purpose::PipelineVariable, &self.value)?,
            variable_type: self.variable_type,
        })
    }

    /// The variable as the config engine and the runner see it.
    pub fn to_config(&self) -> Variable {
        let mut var = Variable::new(&self.key, self.value.clone(), VariableSource::Pipeline);
        var.file = self.variable_type == VariableType::File;
        var
    }
}

/// A stored pipeline's variables, opened; fails if one does not open with this server's key.
pub async fn opened(state: &AppState, pipeline_id: i64) -> anyhow::Result<Vec<PipelineVariable>> {
    let rows = state.store.pipeline_variables(pipeline_id).await?;
    rows.into_iter()
        .map(|row| {
            Ok(PipelineVariable {
                value: state
                    .sealer
                    .open(Purpose::PipelineVariable, &row.value_sealed)?,
                key: row.key,
                variable_type: row.variable_type,
            })
        })
        .collect()
}
