//! Pipelines linked across projects — a multi-project pipeline's upstream, a `trigger:` job's
//! downstream — as one caller may see them. A link into a project whose pipelines the caller
//! may not read is left out, so a public project's pages and answers never name a private
//! project (nor tell it from a missing one).
//!
//! GitLab's pipeline graph reads linked pipelines through GraphQL, whose `Pipeline` type is
//! `authorize :read_pipeline` (app/graphql/types/ci/pipeline_type.rb): a pipeline the viewer
//! may not read comes back as nothing. GitLab's REST `Entities::Ci::Bridge` exposes
//! `downstream_pipeline` without that check (lib/api/entities/ci/bridge.rb); Pipewright leaves
//! it out there too (`null`), as it answers 404 for a private project everywhere else.

use std::collections::HashMap;

use pipewright_store::Project;

use crate::auth::Caller;
use crate::domain::projects::project_access;
use crate::error::ApiResult;
use crate::permissions::Action;
use crate::state::AppState;

/// The projects of one answer's linked pipelines, each looked up and checked once.
pub struct LinkedProjects<'a> {
    state: &'a AppState,
    caller: Caller,
    known: HashMap<i64, Option<Project>>,
}

impl<'a> LinkedProjects<'a> {
    /// For an answer about `current`, which the caller already reads (a child pipeline's
    /// links stay in it and need no second look).
    pub fn new(state: &'a AppState, caller: Caller, current: &Project) -> Self {
        let mut known = HashMap::new();
        known.insert(current.id, Some(current.clone()));
        LinkedProjects {
            state,
            caller,
            known,
        }
    }

    /// The project `project_id`, if it exists and the caller may read its pipelines.
    pub async fn readable(&mut self, project_id: i64) -> ApiResult<Option<&Project>> {
        if !self.known.contains_key(&project_id) {
            let found = match self.state.store.project(project_id).await? {
                Some(project) => {
                    let access = project_access(self.state, &self.caller, &project).await?;
                    access.can(Action::ReadPipelines).then_some(project)
                }
                None => None,
            };
            self.known.insert(project_id, found);
        }
        Ok(self.known.get(&project_id).and_then(Option::as_ref))
    }
}
