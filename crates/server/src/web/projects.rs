//! The dashboard (`/`: your projects with their latest pipeline) and a project's overview
//! (`/<namespace>/<project>`: clone URL, default branch, latest pipelines).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use pipewright_store::{Page, PipelineFilter, ProjectFilter, ProjectOrder};

use super::access::project_for;
use super::error::{WebError, WebResult};
use super::pipelines::PipelineRow;
use super::session::Viewer;
use super::view::{self, Layout, ProjectNav, StatusView};
use crate::permissions::Action;
use crate::state::AppState;

pub struct ProjectCard {
    pub full_path: String,
    pub name: String,
    pub description: String,
    pub visibility: &'static str,
    pub latest: Option<StatusView>,
    pub latest_id: i64,
    pub activity: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    layout: Layout,
    projects: Vec<ProjectCard>,
    page: u32,
    next: bool,
}

pub async fn dashboard(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
) -> WebResult<Response> {
    let user = viewer.required()?;
    let page = query.page();
    let filter = ProjectFilter {
        viewer: if user.is_admin {
            pipewright_store::Viewer::Admin
        } else {
            pipewright_store::Viewer::User(user.id)
        },
        membership_of: if user.is_admin { None } else { Some(user.id) },
        owned_by: None,
        search: None,
        namespace: None,
        order_by: ProjectOrder::LastActivityAt,
        ascending: false,
    };
    let per_page = 20;
    let found = state
        .store
        .projects(&filter, Page { page, per_page })
        .await?;
    let mut projects = Vec::with_capacity(found.items.len());
    for project in &found.items {
        let latest = state
            .store
            .pipelines_window(project.id, &PipelineFilter::default(), 1, 0)
            .await?
            .into_iter()
            .next();
        projects.push(ProjectCard {
            full_path: project.full_path(),
            name: project.name.clone(),
            description: project.description.clone().unwrap_or_default(),
            visibility: project.visibility.as_str(),
            latest_id: latest.as_ref().map_or(0, |p| p.id),
            latest: latest.map(|p| StatusView::of(p.status)),
            activity: view::time_ago(project.last_activity_at),
        });
    }
    let next = i64::from(page) * i64::from(per_page) < found.total;
    let layout = Layout::new(&viewer, &headers, "Projects");
    let page_view = Dashboard {
        layout,
        projects,
        page,
        next,
    };
    view::render(&state, &page_view.layout, &page_view)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    pub page: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> u32 {
        super::view::page_number(self.page.as_deref())
    }
}

#[derive(Template)]
#[template(path = "project.html")]
struct Overview {
    layout: Layout,
    name: String,
    full_path: String,
    description: String,
    visibility: &'static str,
    default_branch: String,
    clone_url: String,
    can_read_pipelines: bool,
    pipelines: Vec<PipelineRow>,
}

pub async fn overview(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, path)): Path<(String, String)>,
) -> WebResult<Response> {
    if let Some(bare) = path.strip_suffix(".git") {
        // `/ns/project.git` in a browser: the project's page, as GitLab redirects. Only to a
        // name that can be a project's: anything else (`x%0d%0aY.git`: a CR/LF that would
        // break the Location header) has no page.
        let namespace_valid = namespace.split('/').all(crate::validate::path_is_valid);
        if !namespace_valid || !crate::validate::path_is_valid(bare) {
            return Err(WebError::NotFound);
        }
        return Ok(axum::response::Redirect::to(&format!("/{namespace}/{bare}")).into_response());
    }
    let (project, access) =
        project_for(&state, &viewer, &namespace, &path, Action::ReadProject).await?;
    let can_read_pipelines = access.can(Action::ReadPipelines);
    let pipelines = if can_read_pipelines {
        let found = state
            .store
            .pipelines_window(project.id, &PipelineFilter::default(), 5, 0)
            .await?;
        super::pipelines::rows(&state, &viewer, &project, &found).await?
    } else {
        Vec::new()
    };
    let layout = Layout::new(&viewer, &headers, project.name.clone())
        .with_project(ProjectNav::new(&project, &access, "overview"));
    let page = Overview {
        layout,
        name: project.name.clone(),
        full_path: project.full_path(),
        description: project.description.clone().unwrap_or_default(),
        visibility: project.visibility.as_str(),
        default_branch: project.default_branch.clone(),
        clone_url: format!("{}/{}.git", state.config.external_url, project.full_path()),
        can_read_pipelines,
        pipelines,
    };
    view::render(&state, &page.layout, &page)
}
