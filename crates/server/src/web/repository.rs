//! The repository pages, read-only, at GitLab's URLs: files and folders at a ref
//! (`/-/tree/:ref/*path`), a file with line numbers (`/-/blob/:ref/*path`), its bytes
//! (`/-/raw/:ref/*path`), a ref's history, of a file or folder too (`/-/commits/:ref/*path`,
//! each commit with its latest pipeline) and the branches and tags with the latest pipeline of each (`/-/branches`,
//! `/-/tags`).
//!
//! `:ref/*path` is one string split by GitLab's longest-matching-ref rule (`split_ref_path` in
//! the git crate), so `feature/x/README.md` finds branch `feature/x`. Everything the pages read
//! is bounded: a folder lists at most [`MAX_ENTRIES`], a file is shown up to
//! [`MAX_DISPLAYED_BYTES`] (larger and binary files get a notice and the raw link), raw bytes
//! up to the server's raw-file limit. Raw text is always `text/plain` with `nosniff`, never the
//! file's own type: an `.html` file in a repository must not run as this site's page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pipewright_git::{CommitInfo, EntryKind};
use pipewright_store::{PipelineFilter, Project};

use super::access::project_for;
use super::error::{WebError, WebResult};
use super::projects::PageQuery;
use super::session::Viewer;
use super::view::{self, Layout, ProjectNav, StatusView, Window, encode_path};
use crate::permissions::{Action, ProjectAccess};
use crate::state::AppState;

/// Entries a folder page lists at most.
const MAX_ENTRIES: usize = 1_000;
/// A file larger than this is not shown on its page (GitLab's blob viewer has such a limit
/// too; its number is not verified here), only linked.
const MAX_DISPLAYED_BYTES: u64 = 1024 * 1024;
/// A file with more lines than this is not shown either: each line is a table row, and a
/// megabyte of newlines would otherwise be a page a hundred times its size.
const MAX_DISPLAYED_LINES: usize = 20_000;
/// The history page reads at most this far back (page × 20 commits walked per request).
const MAX_COMMITS_PAGE: u32 = 500;
/// A path's history looks at most this many commits per request: a path changed once in a
/// long history costs a bounded walk (GitLab has no such limit; `git log -- path` walks all).
const MAX_COMMITS_WALKED: usize = 20_000;

fn git_error(err: pipewright_git::Error) -> WebError {
    use pipewright_git::Error as E;
    match err {
        E::RepositoryNotFound | E::InvalidRef(_) | E::InvalidPath(_) | E::Ambiguous(_) => {
            WebError::NotFound
        }
        other => WebError::Internal(anyhow::Error::new(other)),
    }
}

/// A project page about its repository: the project, if the viewer may read its code.
async fn repository_project(
    state: &AppState,
    viewer: &Viewer,
    namespace: &str,
    path: &str,
) -> WebResult<(Project, ProjectAccess)> {
    project_for(state, viewer, namespace, path, Action::ReadRepository).await
}

/// A `ref/path` string resolved: the ref as written, its commit and the path.
struct At {
    ref_name: String,
    commit: CommitInfo,
    path: String,
}

async fn resolve(state: &AppState, project: &Project, id: &str) -> WebResult<At> {
    let names = state
        .repos
        .ref_names_async(project.id)
        .await
        .map_err(git_error)?;
    let (ref_name, path) = pipewright_git::split_ref_path(id, names.iter().map(String::as_str));
    let commit = state
        .repos
        .commit_async(project.id, &ref_name)
        .await
        .map_err(git_error)?
        .ok_or(WebError::NotFound)?;
    Ok(At {
        ref_name,
        commit,
        path,
    })
}

/// Links shared by the repository pages' headers.
struct RepoLinks {
    base: String,
    ref_name: String,
}

impl RepoLinks {
    fn new(project: &Project, ref_name: &str) -> Self {
        RepoLinks {
            base: format!("/{}", project.full_path()),
            ref_name: ref_name.to_string(),
        }
    }

    fn to(&self, kind: &str, path: &str) -> String {
        let r = encode_path(&self.ref_name);
        if path.is_empty() {
            format!("{}/-/{kind}/{r}", self.base)
        } else {
            format!("{}/-/{kind}/{r}/{}", self.base, encode_path(path))
        }
    }

    /// The breadcrumb of a path: each folder above it, linked to its tree page.
    fn crumbs(&self, path: &str) -> Vec<(String, String)> {
        let mut crumbs = Vec::new();
        let mut so_far = String::new();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(segment);
            crumbs.push((segment.to_string(), self.to("tree", &so_far)));
        }
        crumbs
    }
}

/// A commit as the pages show it.
pub struct CommitView {
    pub title: String,
    pub short_id: String,
    pub id: String,
    pub author: String,
    pub when: String,
    pub when_ago: String,
}

impl CommitView {
    fn of(c: &CommitInfo) -> Self {
        CommitView {
            title: c.title.clone(),
            short_id: c.short_id.clone(),
            id: c.id.clone(),
            author: c.author_name.clone(),
            when: view::iso(c.committed_date),
            when_ago: view::time_ago(c.committed_date),
        }
    }
}

pub struct EntryView {
    pub name: String,
    pub kind: &'static str,
    /// `None` for a submodule: another repository's commit, not browsable here.
    pub url: Option<String>,
}

#[derive(Template)]
#[template(path = "repository_tree.html")]
struct TreePage {
    layout: Layout,
    full_path: String,
    ref_name: String,
    /// The ref as a URL path (encoded, slashes kept).
    ref_path: String,
    root_url: String,
    crumbs: Vec<(String, String)>,
    parent: Option<String>,
    /// The folder's history (`/-/commits/:ref/*path`).
    history_url: String,
    commit: Option<CommitView>,
    entries: Vec<EntryView>,
    truncated: bool,
    empty_repository: bool,
}

fn entry_view(links: &RepoLinks, item: pipewright_git::TreeItem) -> EntryView {
    let (kind, url) = match item.kind {
        EntryKind::Folder => ("dir", Some(links.to("tree", &item.path))),
        EntryKind::File => ("file", Some(links.to("blob", &item.path))),
        EntryKind::Symlink => ("link", Some(links.to("blob", &item.path))),
        EntryKind::Submodule => ("sub", None),
    };
    EntryView {
        name: item.name,
        kind,
        url,
    }
}

/// `GET /<ns>/<project>/-/tree/:ref/*path`: a folder's files and folders at a ref.
pub async fn tree(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, repo, id)): Path<(String, String, String)>,
) -> WebResult<Response> {
    let (project, access) = repository_project(&state, &viewer, &namespace, &repo).await?;
    let layout = Layout::new(&viewer, &headers, format!("Files · {}", project.name))
        .with_project(ProjectNav::new(&project, &access, "code"));
    if state
        .repos
        .is_empty_async(project.id)
        .await
        .map_err(git_error)?
    {
        // GitLab shows an empty project's instructions rather than a 404.
        return render_tree(&state, TreePage::empty(layout, &project));
    }
    let at = resolve(&state, &project, &id).await?;
    let listing = state
        .repos
        .list_folder_async(project.id, &at.commit.id, &at.path, MAX_ENTRIES)
        .await
        .map_err(git_error)?
        .ok_or(WebError::NotFound)?;
    let links = RepoLinks::new(&project, &at.ref_name);
    let parent = (!at.path.is_empty()).then(|| match at.path.rsplit_once('/') {
        Some((up, _)) => links.to("tree", up),
        None => links.to("tree", ""),
    });
    let page = TreePage {
        layout,
        full_path: project.full_path(),
        root_url: links.to("tree", ""),
        crumbs: links.crumbs(&at.path),
        parent,
        history_url: links.to("commits", &at.path),
        commit: Some(CommitView::of(&at.commit)),
        entries: listing
            .items
            .into_iter()
            .map(|item| entry_view(&links, item))
            .collect(),
        truncated: listing.truncated,
        empty_repository: false,
        ref_path: encode_path(&at.ref_name),
        ref_name: at.ref_name,
    };
    render_tree(&state, page)
}

impl TreePage {
    fn empty(layout: Layout, project: &Project) -> Self {
        TreePage {
            layout,
            full_path: project.full_path(),
            ref_name: project.default_branch.clone(),
            ref_path: encode_path(&project.default_branch),
            root_url: String::new(),
            crumbs: Vec::new(),
            parent: None,
            history_url: String::new(),
            commit: None,
            entries: Vec::new(),
            truncated: false,
            empty_repository: true,
        }
    }
}

fn render_tree(state: &AppState, page: TreePage) -> WebResult<Response> {
    view::render(state, &page.layout, &page)
}

#[derive(Template)]
#[template(path = "repository_blob.html")]
struct BlobPage {
    layout: Layout,
    full_path: String,
    ref_name: String,
    /// The ref as a URL path (encoded, slashes kept).
    ref_path: String,
    root_url: String,
    crumbs: Vec<(String, String)>,
    name: String,
    size: String,
    raw_url: String,
    /// The file's history (`/-/commits/:ref/*path`).
    history_url: String,
    commit: CommitView,
    /// Why the content is not shown (binary, too large), if it is not.
    notice: Option<&'static str>,
    lines: Vec<String>,
}

/// `GET /<ns>/<project>/-/blob/:ref/*path`: a file with line numbers and its raw link.
pub async fn blob(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, repo, id)): Path<(String, String, String)>,
) -> WebResult<Response> {
    let (project, access) = repository_project(&state, &viewer, &namespace, &repo).await?;
    let at = resolve(&state, &project, &id).await?;
    if at.path.is_empty() {
        return Err(WebError::NotFound);
    }
    let file = state
        .repos
        .file_at_async(project.id, &at.commit.id, &at.path, MAX_DISPLAYED_BYTES)
        .await
        .map_err(git_error)?
        .ok_or(WebError::NotFound)?;
    let (notice, lines) = match (&file.content, file.binary) {
        (None, _) => (
            Some("The file is too large to display here. Download it to see it."),
            Vec::new(),
        ),
        (Some(_), true) => (
            Some("The file is stored in a binary format. Download it to see it."),
            Vec::new(),
        ),
        (Some(bytes), false) if bytecount_lines(bytes) > MAX_DISPLAYED_LINES => (
            Some("The file is too large to display here. Download it to see it."),
            Vec::new(),
        ),
        (Some(bytes), false) => (None, text_lines(bytes)),
    };
    let links = RepoLinks::new(&project, &at.ref_name);
    let mut crumbs = links.crumbs(&at.path);
    let name = crumbs.pop().map(|(name, _)| name).unwrap_or_default();
    let page = BlobPage {
        layout: Layout::new(&viewer, &headers, format!("{name} · {}", project.name))
            .with_project(ProjectNav::new(&project, &access, "code")),
        full_path: project.full_path(),
        root_url: links.to("tree", ""),
        crumbs,
        name,
        size: super::jobs::human_size(i64::try_from(file.size).unwrap_or(i64::MAX)),
        raw_url: links.to("raw", &at.path),
        history_url: links.to("commits", &at.path),
        commit: CommitView::of(&at.commit),
        notice,
        lines,
        ref_path: encode_path(&at.ref_name),
        ref_name: at.ref_name,
    };
    view::render(&state, &page.layout, &page)
}

fn bytecount_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count()
}

/// A text file's lines (invalid UTF-8 shown as replacement characters; the template escapes).
fn text_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() {
        return Vec::new();
    }
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line).to_string())
        .collect()
}

/// `GET /<ns>/<project>/-/raw/:ref/*path`: the file's bytes. Text is `text/plain` whatever its
/// name (an `.html` or `.svg` file must never render as a page of this site), binary files are
/// downloads; both with `nosniff` and a sandboxing CSP.
pub async fn raw(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((namespace, repo, id)): Path<(String, String, String)>,
) -> WebResult<Response> {
    let (project, _) = repository_project(&state, &viewer, &namespace, &repo).await?;
    let at = resolve(&state, &project, &id).await?;
    if at.path.is_empty() {
        return Err(WebError::NotFound);
    }
    let limit = state.config.max_raw_file_bytes;
    let file = state
        .repos
        .file_at_async(project.id, &at.commit.id, &at.path, limit)
        .await
        .map_err(git_error)?
        .ok_or(WebError::NotFound)?;
    let Some(content) = file.content else {
        return Ok((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The file is larger than this server serves ({limit} bytes)."),
        )
            .into_response());
    };
    let name = at.path.rsplit('/').next().unwrap_or(&at.path).to_string();
    Ok(raw_response(content, file.binary, &name))
}

fn raw_response(content: Vec<u8>, binary: bool, name: &str) -> Response {
    let mut response = (StatusCode::OK, content).into_response();
    let headers = response.headers_mut();
    let content_type = if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if binary {
        // RFC 6266: the name percent-encoded in `filename*`, so no byte of it can end the header.
        let disposition = format!(
            "attachment; filename*=UTF-8''{}",
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        );
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

/// A commit's latest pipeline on a ref, with its link, as the lists show it. GitLab:
/// `CommitPresenter#status_for(ref)` → `CommitWithPipeline#latest_pipeline(ref)`
/// (app/presenters/commit_presenter.rb, app/models/commit_with_pipeline.rb): the newest
/// pipeline of that SHA on that ref.
pub struct PipelineBadge {
    pub status: StatusView,
    pub url: String,
}

/// Each (ref, SHA)'s latest pipeline badge, for a page of rows: one lookup per row, and one
/// question for the whole page about which of them passed with warnings.
async fn latest_pipelines(
    state: &AppState,
    project: &Project,
    wanted: &[(&str, &str)],
) -> WebResult<Vec<Option<PipelineBadge>>> {
    let mut latest = Vec::with_capacity(wanted.len());
    for (ref_name, sha) in wanted {
        let filter = PipelineFilter {
            ref_name: Some(ref_name.to_string()),
            sha: Some(sha.to_string()),
            ..PipelineFilter::default()
        };
        let found = state
            .store
            .pipelines_window(project.id, &filter, 1, 0)
            .await?;
        latest.push(found.into_iter().next());
    }
    let warned =
        crate::api::pipelines::passed_with_warnings_among(state, latest.iter().flatten()).await?;
    Ok(latest
        .into_iter()
        .map(|p| {
            p.map(|p| PipelineBadge {
                status: StatusView::of_pipeline(p.status, warned.contains(&p.id)),
                url: format!("/{}/-/pipelines/{}", project.full_path(), p.id),
            })
        })
        .collect())
}

pub struct CommitRow {
    pub commit: CommitView,
    pub pipeline: Option<PipelineBadge>,
}

#[derive(Template)]
#[template(path = "repository_commits.html")]
struct CommitsPage {
    layout: Layout,
    full_path: String,
    ref_name: String,
    /// The ref as a URL path (encoded, slashes kept).
    ref_path: String,
    tree_url: String,
    /// The file or folder whose history this is; empty for the whole ref's.
    path: String,
    commits: Vec<CommitRow>,
    /// The walk stopped at [`MAX_COMMITS_WALKED`]: older changes of the path are not listed.
    exhausted: bool,
    page: u32,
    prev_url: Option<String>,
    next_url: Option<String>,
}

/// One page of a ref's history, or of a path's: the commits and whether the walk ran out of
/// budget. `None` when the path is not in the ref's commit (GitLab:
/// app/controllers/projects/commits_controller.rb, `set_commits`, answers 404 unless the path
/// is a blob or a folder with entries at the commit).
async fn history(
    state: &AppState,
    project: &Project,
    at: &At,
    window: Window,
) -> WebResult<Option<(Vec<CommitInfo>, bool)>> {
    let skip = usize::try_from(window.offset()).unwrap_or(usize::MAX);
    let limit = usize::try_from(window.limit()).unwrap_or(0);
    if at.path.is_empty() {
        let log = state
            .repos
            .log_async(project.id, &at.commit.id, skip, limit);
        return Ok(Some((log.await.map_err(git_error)?, false)));
    }
    let found = state
        .repos
        .log_path_async(
            project.id,
            &at.commit.id,
            &at.path,
            (skip, limit),
            MAX_COMMITS_WALKED,
        )
        .await
        .map_err(git_error)?;
    Ok(found.map(|h| (h.commits, h.exhausted)))
}

/// `GET /<ns>/<project>/-/commits/:ref[/*path]`: the ref's history, or the history of a file
/// or folder in it (`git log <ref> -- <path>`, as GitLab's), twenty commits a page, each with
/// its latest pipeline.
pub async fn commits(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, repo, id)): Path<(String, String, String)>,
    Query(query): Query<PageQuery>,
) -> WebResult<Response> {
    let (project, access) = repository_project(&state, &viewer, &namespace, &repo).await?;
    let at = resolve(&state, &project, &id).await?;
    let page = query.page().min(MAX_COMMITS_PAGE);
    let window = Window { page };
    let (found, exhausted) = history(&state, &project, &at, window)
        .await?
        .ok_or(WebError::NotFound)?;
    let (found, more) = window.split(found);
    let badges = if access.can(Action::ReadPipelines) {
        let wanted: Vec<(&str, &str)> = found
            .iter()
            .map(|c| (at.ref_name.as_str(), c.id.as_str()))
            .collect();
        latest_pipelines(&state, &project, &wanted).await?
    } else {
        Vec::new()
    };
    let mut badges = badges.into_iter();
    let commits: Vec<CommitRow> = found
        .iter()
        .map(|c| CommitRow {
            commit: CommitView::of(c),
            pipeline: badges.next().flatten(),
        })
        .collect();
    let links = RepoLinks::new(&project, &at.ref_name);
    let here = links.to("commits", &at.path);
    let page_url = |n: u32| format!("{here}?page={n}");
    let page_view = CommitsPage {
        layout: Layout::new(&viewer, &headers, format!("Commits · {}", project.name))
            .with_project(ProjectNav::new(&project, &access, "code")),
        full_path: project.full_path(),
        tree_url: links.to("tree", ""),
        path: at.path.clone(),
        commits,
        exhausted,
        page,
        prev_url: (page > 1).then(|| page_url(page - 1)),
        next_url: (more && page < MAX_COMMITS_PAGE).then(|| page_url(page + 1)),
        ref_path: encode_path(&at.ref_name),
        ref_name: at.ref_name,
    };
    view::render(&state, &page_view.layout, &page_view)
}

pub struct RefRow {
    pub name: String,
    pub tree_url: String,
    pub commits_url: String,
    pub default: bool,
    pub commit: CommitView,
    pub pipeline: Option<PipelineBadge>,
}

#[derive(Template)]
#[template(path = "repository_refs.html")]
struct RefsPage {
    layout: Layout,
    /// `Branches` or `Tags`.
    title: &'static str,
    rows: Vec<RefRow>,
    page: u32,
    prev_url: Option<String>,
    next_url: Option<String>,
}

/// `GET /<ns>/<project>/-/branches`: every branch, the default first, then the most recently
/// updated; each with its head's latest pipeline on that branch.
pub async fn branches(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, repo)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> WebResult<Response> {
    let (project, access) = repository_project(&state, &viewer, &namespace, &repo).await?;
    let mut all: Vec<(String, CommitInfo)> = state
        .repos
        .branches_async(project.id)
        .await
        .map_err(git_error)?
        .into_iter()
        .map(|b| (b.name, b.commit))
        .collect();
    all.sort_by_key(|(name, c)| {
        (
            *name != project.default_branch,
            std::cmp::Reverse(c.committed_date.millis()),
        )
    });
    let listed = Listed {
        title: "Branches",
        tab: "branches",
        refs: all,
        page: query.page(),
    };
    render_refs(&state, &viewer, &headers, &project, &access, listed).await
}

/// `GET /<ns>/<project>/-/tags`: every tag, newest commit first, each with its latest pipeline.
pub async fn tags(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((namespace, repo)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> WebResult<Response> {
    let (project, access) = repository_project(&state, &viewer, &namespace, &repo).await?;
    let mut all: Vec<(String, CommitInfo)> = state
        .repos
        .tags_async(project.id)
        .await
        .map_err(git_error)?
        .into_iter()
        .map(|t| (t.name, t.commit))
        .collect();
    all.sort_by_key(|(_, c)| std::cmp::Reverse(c.committed_date.millis()));
    let listed = Listed {
        title: "Tags",
        tab: "tags",
        refs: all,
        page: query.page(),
    };
    render_refs(&state, &viewer, &headers, &project, &access, listed).await
}

/// Branches or tags, sorted, before paging.
struct Listed {
    title: &'static str,
    tab: &'static str,
    refs: Vec<(String, CommitInfo)>,
    page: u32,
}

async fn render_refs(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    project: &Project,
    access: &ProjectAccess,
    listed: Listed,
) -> WebResult<Response> {
    let per_page = Window::PER_PAGE as usize;
    let start = (listed.page as usize - 1).saturating_mul(per_page);
    let more = listed.refs.len() > start.saturating_add(per_page);
    let shown: Vec<_> = listed.refs.into_iter().skip(start).take(per_page).collect();
    let badges = if access.can(Action::ReadPipelines) {
        let wanted: Vec<(&str, &str)> = shown
            .iter()
            .map(|(name, commit)| (name.as_str(), commit.id.as_str()))
            .collect();
        latest_pipelines(state, project, &wanted).await?
    } else {
        Vec::new()
    };
    let mut badges = badges.into_iter();
    let mut rows = Vec::new();
    for (name, commit) in shown {
        let pipeline = badges.next().flatten();
        let links = RepoLinks::new(project, &name);
        rows.push(RefRow {
            tree_url: links.to("tree", ""),
            commits_url: links.to("commits", ""),
            default: listed.tab == "branches" && name == project.default_branch,
            commit: CommitView::of(&commit),
            pipeline,
            name,
        });
    }
    let here = format!("/{}/-/{}", project.full_path(), listed.tab);
    let page = listed.page;
    let page_view = RefsPage {
        layout: Layout::new(
            viewer,
            headers,
            format!("{} · {}", listed.title, project.name),
        )
        .with_project(ProjectNav::new(project, access, "code")),
        title: listed.title,
        rows,
        page,
        prev_url: (page > 1).then(|| format!("{here}?page={}", page - 1)),
        next_url: more.then(|| format!("{here}?page={}", page + 1)),
    };
    view::render(state, &page_view.layout, &page_view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_split_into_lines_without_a_phantom_last_line() {
        assert_eq!(text_lines(b"a\r\nb\n"), vec!["a", "b"]);
        assert_eq!(text_lines(b""), Vec::<String>::new());
        assert_eq!(text_lines(b"\n\n"), vec!["", ""]);
        assert_eq!(text_lines(b"x"), vec!["x"]);
    }
}
