//! A group's CI/CD settings (`/groups/<full path>/-/settings/ci_cd`): its CI/CD variables
//! (list, add, change, remove, through the API's own `/groups/:id/variables` operations) and
//! the runners its projects can use. Group Owners only, as GitLab
//! (app/controllers/groups/settings/ci_cd_controller.rb: `before_action :authorize_admin_group!`);
//! everyone else gets 404 (a sign-in redirect for a visitor), so the page hides the group.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use pipewright_store::{Namespace, Page, RunnerScope, RunnerType};

use super::error::{WebError, WebResult};
use super::session::Viewer;
use super::settings::{RunnerRow, VariableRow, outcome};
use super::view::{self, Crumb, Layout, group_crumbs};
use crate::api;
use crate::domain::groups::find_group;
use crate::error::ApiError;
use crate::params::{Params, Segments};
use crate::permissions::GroupAction;
use crate::sealing::Purpose;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "group_settings_ci_cd.html")]
struct GroupSettingsPage {
    layout: Layout,
    /// Where the variables' forms post (`ci_variables.html`).
    variables_url: String,
    crumbs: Vec<Crumb>,
    variables: Vec<VariableRow>,
    runners: Vec<RunnerRow>,
}

/// What the page lists of each kind.
const FIRST_100: Page = Page {
    page: 1,
    per_page: 100,
};

/// The group, if the viewer owns it (directly or through an ancestor) or is an admin; a 404
/// otherwise, whether the group exists or not.
async fn owned_group(state: &AppState, viewer: &Viewer, id: &str) -> WebResult<Namespace> {
    viewer.required()?;
    match find_group(state, &viewer.caller(), id).await {
        Ok((group, access)) if access.can(GroupAction::AdminGroup) => Ok(group),
        Err(ApiError::Internal(e)) => Err(WebError::Internal(e)),
        _ => Err(WebError::NotFound),
    }
}

/// `GET /groups/:full_path/-/settings/ci_cd`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let group = owned_group(&state, &viewer, &id).await?;
    let page = GroupSettingsPage {
        layout: Layout::new(
            &viewer,
            &headers,
            format!("CI/CD Settings · {}", group.full_name),
        ),
        crumbs: group_crumbs(&group.full_path),
        variables: variable_rows(&state, &group).await?,
        runners: runner_rows(&state, &group).await?,
        variables_url: format!("/groups/{}/-/settings/ci_cd/variables", group.full_path),
    };
    view::render(&state, &page.layout, &page)
}

/// The group's own CI/CD variables, opened (only Owners see this page).
async fn variable_rows(state: &AppState, group: &Namespace) -> WebResult<Vec<VariableRow>> {
    let mut variables = Vec::new();
    for v in state.store.group_ci_variables(group.id).await? {
        variables.push(VariableRow {
            value: state.sealer.open(Purpose::CiVariable, &v.value_sealed)?,
            key: v.key,
            variable_type: v.variable_type.as_str(),
            protected: v.protected,
            masked: v.masked,
        });
    }
    Ok(variables)
}

/// The runners the group's projects can use (of the first 100 runners): the instance's,
/// and the group runners of this group and its ancestors (a group runner takes the jobs of
/// every project below its group).
async fn runner_rows(state: &AppState, group: &Namespace) -> WebResult<Vec<RunnerRow>> {
    let mut lineage = vec![group.id];
    let segments: Vec<&str> = group.full_path.split('/').collect();
    for end in 1..segments.len() {
        if let Some(ancestor) = state
            .store
            .namespace_by_full_path(&segments[..end].join("/"))
            .await?
        {
            lineage.push(ancestor.id);
        }
    }
    Ok(state
        .store
        .runners(RunnerScope::All, FIRST_100)
        .await?
        .items
        .into_iter()
        .filter(|r| {
            r.runner_type == RunnerType::Instance
                || r.group_id.is_some_and(|g| lineage.contains(&g))
        })
        .map(|r| RunnerRow {
            id: r.id,
            kind: if r.runner_type == RunnerType::Instance {
                "instance"
            } else {
                "group"
            },
            status: api::runners::status(&r).0,
            tags: r.tag_list.join(", "),
            paused: r.paused,
            can_remove: false,
            description: r.description,
        })
        .collect())
}

/// `POST /groups/:full_path/-/settings/ci_cd/variables`: add, or with `_method=put` change,
/// or with `_method=delete` remove a variable, through the API's group variable operations.
pub async fn variable(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    params: Params,
) -> WebResult<Response> {
    viewer.required()?;
    viewer.verify_form(&params)?;
    let group = owned_group(&state, &viewer, &id).await?;
    let to = format!(
        "/groups/{}/-/settings/ci_cd#js-cicd-variables-settings",
        group.full_path
    );
    let method = params.str("_method").ok().flatten().unwrap_or_default();
    let key = params.str("key").ok().flatten().unwrap_or_default();
    let gid = group.id.to_string();
    let st = State(state.clone());
    match method.as_str() {
        "delete" => {
            let seg = Segments::from_pairs(&[("id", gid), ("key", key)]);
            let result =
                api::variables::delete_group(st, viewer.caller(), seg, Params::default()).await;
            outcome(&state, &to, "Variable was removed.", result)
        }
        "put" => {
            let seg = Segments::from_pairs(&[("id", gid), ("key", key)]);
            let result = api::variables::update_group(st, viewer.caller(), seg, params).await;
            outcome(&state, &to, "Variable was updated.", result)
        }
        _ => {
            let seg = Segments::from_pairs(&[("id", gid)]);
            let result = api::variables::create_group(st, viewer.caller(), seg, params).await;
            outcome(&state, &to, "Variable was added.", result)
        }
    }
}
