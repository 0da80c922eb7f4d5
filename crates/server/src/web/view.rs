//! What every page shares: the layout's context (viewer, CSRF token, flash message, project
//! navigation), rendering a template into a response, and the small formatting helpers
//! (statuses, relative times, durations) that make pages read like GitLab's.

use askama::Template;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use pipewright_core::{Status, Timestamp};
use pipewright_store::{Project, User};

use super::error::WebResult;
use super::session::{self, Viewer};
use crate::permissions::{Action, ProjectAccess};
use crate::state::AppState;

const FLASH_COOKIE: &str = "_pipewright_flash";

/// A one-time message shown on the next page (after a form's redirect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// `notice` (success) or `alert` (something went wrong).
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    pub fn notice(text: impl Into<String>) -> Self {
        Flash {
            kind: "notice",
            text: text.into(),
        }
    }
    pub fn alert(text: impl Into<String>) -> Self {
        Flash {
            kind: "alert",
            text: text.into(),
        }
    }

    fn encode(&self) -> String {
        let text: String = self.text.chars().take(500).collect();
        format!(
            "{}:{}",
            self.kind,
            percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
        )
    }

    fn decode(value: &str) -> Option<Flash> {
        let (kind, text) = value.split_once(':')?;
        let kind = match kind {
            "notice" => "notice",
            "alert" => "alert",
            _ => return None,
        };
        let text = percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .ok()?;
        Some(Flash {
            kind,
            text: text.chars().take(500).collect(),
        })
    }
}

/// The signed-in user as the header shows them.
#[derive(Debug, Clone)]
pub struct UserView {
    pub username: String,
    pub name: String,
    pub is_admin: bool,
}

/// The project navigation: which tabs exist for this viewer and which is active.
#[derive(Debug, Clone)]
pub struct ProjectNav {
    pub id: i64,
    pub name: String,
    pub full_path: String,
    /// The namespace's breadcrumbs: a group's each link to the group's page; a user's is
    /// plain text (it has no page).
    pub namespace_crumbs: Vec<(String, Option<String>)>,
    pub can_manage: bool,
    /// The default branch's files, for viewers who may read the code.
    pub repository_url: Option<String>,
    pub active: &'static str,
}

impl ProjectNav {
    pub fn new(project: &Project, access: &ProjectAccess, active: &'static str) -> Self {
        ProjectNav {
            id: project.id,
            name: project.name.clone(),
            full_path: project.full_path(),
            namespace_crumbs: if project.namespace.is_group() {
                group_crumbs(&project.namespace.full_path)
                    .into_iter()
                    .map(|c| (c.label, Some(c.href)))
                    .collect()
            } else {
                vec![(project.namespace.full_path.clone(), None)]
            },
            can_manage: access.can(Action::ManageTriggers),
            repository_url: access.can(Action::ReadRepository).then(|| {
                format!(
                    "/{}/-/tree/{}",
                    project.full_path(),
                    encode_path(&project.default_branch)
                )
            }),
            active,
        }
    }
}

/// The layout's context, built once per page.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub user: Option<UserView>,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub project: Option<ProjectNav>,
    /// The top-level section: `projects` or `admin`.
    pub section: &'static str,
}

impl Layout {
    pub fn new(viewer: &Viewer, headers: &axum::http::HeaderMap, title: impl Into<String>) -> Self {
        Layout {
            title: title.into(),
            user: viewer.user.as_ref().map(|u: &User| UserView {
                username: u.username.clone(),
                name: u.name.clone(),
                is_admin: u.is_admin,
            }),
            csrf: viewer.csrf_token(),
            flash: session::cookie(headers, FLASH_COOKIE).and_then(Flash::decode),
            project: None,
            section: "projects",
        }
    }

    pub fn with_project(mut self, nav: ProjectNav) -> Self {
        self.project = Some(nav);
        self
    }

    pub fn in_section(mut self, section: &'static str) -> Self {
        self.section = section;
        self
    }

    pub fn tab_class(&self, tab: &str) -> &'static str {
        match &self.project {
            Some(p) if p.active == tab => "active",
            _ => "",
        }
    }
}

/// Renders a page template; clears the flash cookie once it has been shown.
pub fn render(state: &AppState, layout: &Layout, page: &impl Template) -> WebResult<Response> {
    let html = page.render()?;
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    if layout.flash.is_some() {
        headers.append(
            header::SET_COOKIE,
            session::set_cookie(state, FLASH_COOKIE, "", Some(0)),
        );
    }
    Ok(response)
}

/// A redirect after a form, with a message for the next page.
pub fn redirect_with(state: &AppState, to: &str, flash: Flash) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(state, FLASH_COOKIE, &flash.encode(), Some(60)),
    );
    response
}

/// A page number from the query string; nonsense is page 1, and pages are capped so an
/// offset never grows without bound.
pub fn page_number(raw: Option<&str>) -> u32 {
    raw.and_then(|p| p.parse::<u32>().ok())
        .filter(|p| *p >= 1)
        .map_or(1, |p| p.min(10_000))
}

/// One page of a list, read as a window of `PER_PAGE + 1` rows: the extra row only says that
/// a next page exists, so no list ever counts a project's whole history.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub page: u32,
}

impl Window {
    pub const PER_PAGE: i64 = 20;

    pub fn limit(self) -> i64 {
        Self::PER_PAGE + 1
    }

    pub fn offset(self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * Self::PER_PAGE
    }

    /// The rows to show, and whether there is a next page.
    pub fn split<T>(self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let more = rows.len() as i64 > Self::PER_PAGE;
        rows.truncate(Self::PER_PAGE as usize);
        (rows, more)
    }
}

/// The previous and next pages' links of a list at `base` (a path without a query), for
/// `pagination.html`.
pub fn page_links(base: &str, page: u32, more: bool) -> (Option<String>, Option<String>) {
    let link = |p: u32| {
        if p > 1 {
            format!("{base}?page={p}")
        } else {
            base.to_string()
        }
    };
    (
        (page > 1).then(|| link(page - 1)),
        more.then(|| link(page + 1)),
    )
}

/// A status as the pages show it: label, CSS class and an icon glyph.
#[derive(Debug, Clone)]
pub struct StatusView {
    pub name: &'static str,
    pub label: &'static str,
    pub icon: &'static str,
}

impl StatusView {
    pub fn of(status: Status) -> Self {
        let (label, icon) = match status {
            Status::Created => ("created", "○"),
            Status::WaitingForResource => ("waiting", "◔"),
            Status::Preparing => ("preparing", "◔"),
            Status::Pending => ("pending", "◔"),
            Status::Running => ("running", "◑"),
            Status::Success => ("passed", "✓"),
            Status::Failed => ("failed", "✕"),
            Status::Canceled => ("canceled", "⊘"),
            Status::Skipped => ("skipped", "»"),
            Status::Manual => ("manual", "⚙"),
            Status::Scheduled => ("delayed", "◷"),
        };
        StatusView {
            name: status.as_str(),
            label,
            icon,
        }
    }

    /// A pipeline that passed while a job allowed to fail failed shows a warning. GitLab:
    /// `lib/gitlab/ci/status/success_warning.rb` (label `passed with warnings`).
    pub fn of_pipeline(status: Status, warnings: bool) -> Self {
        if status == Status::Success && warnings {
            StatusView {
                name: "warning",
                label: "passed with warnings",
                icon: "!",
            }
        } else {
            Self::of(status)
        }
    }

    /// A failed job that was allowed to fail shows a warning. GitLab:
    /// `lib/gitlab/ci/status/build/failed_allowed.rb` (label `failed (allowed to fail)`,
    /// group `failed-with-warnings`).
    pub fn of_job(status: Status, allow_failure: bool) -> Self {
        if status == Status::Failed && allow_failure {
            StatusView {
                name: "warning",
                label: "failed (allowed to fail)",
                icon: "!",
            }
        } else {
            Self::of(status)
        }
    }
}

/// Whether a pipeline or job in `status` will change without anyone acting (so its page keeps
/// itself up to date); a manual job waits for a person, a finished one for nothing.
pub fn is_live(status: Status) -> bool {
    !status.is_complete() && status != Status::Manual
}

/// "3 minutes ago", as GitLab's time-ago.
pub fn time_ago(at: Timestamp) -> String {
    let seconds = (Timestamp::now().millis() - at.millis()) / 1000;
    let future = seconds < 0;
    let s = seconds.abs();
    let (n, unit) = if s < 60 {
        return if future {
            "in a few seconds".into()
        } else {
            "just now".into()
        };
    } else if s < 3600 {
        (s / 60, "minute")
    } else if s < 86_400 {
        (s / 3600, "hour")
    } else if s < 30 * 86_400 {
        (s / 86_400, "day")
    } else if s < 365 * 86_400 {
        (s / (30 * 86_400), "month")
    } else {
        (s / (365 * 86_400), "year")
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// An absolute time for `title` attributes and `<time datetime>`.
pub fn iso(at: Timestamp) -> String {
    at.to_gitlab()
}

/// `00:01:05`, GitLab's duration format.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Seconds between two times; running things count up to now.
pub fn seconds_between(start: Option<Timestamp>, end: Option<Timestamp>) -> Option<i64> {
    let start = start?;
    let end = end.unwrap_or_else(Timestamp::now);
    Some((end.millis() - start.millis()) / 1000)
}

/// Characters a path segment of a URL keeps as they are; `/` separates segments.
const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A ref or file path as a URL path: each segment percent-encoded, the slashes kept.
pub fn encode_path(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, PATH).to_string()
}

pub fn short_sha(sha: &str) -> String {
    sha.chars().take(8).collect()
}

/// One link of a page's breadcrumbs.
pub struct Crumb {
    pub label: String,
    pub href: String,
}

/// Breadcrumbs for a group's full path: each ancestor group and the group itself.
pub fn group_crumbs(full_path: &str) -> Vec<Crumb> {
    let mut crumbs = Vec::new();
    let mut prefix = String::new();
    for segment in full_path.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(segment);
        crumbs.push(Crumb {
            label: segment.to_string(),
            href: format!("/groups/{prefix}"),
        });
    }
    crumbs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_messages_survive_the_cookie() {
        let flash = Flash::alert("Description can't be blank; <b>ü</b>");
        assert_eq!(Flash::decode(&flash.encode()), Some(flash));
        assert_eq!(Flash::decode("evil:text"), None);
    }

    #[test]
    fn paths_in_links_are_encoded_but_keep_their_slashes() {
        assert_eq!(encode_path("feature/x"), "feature/x");
        assert_eq!(encode_path("a b/#?.md"), "a%20b/%23%3F.md");
    }

    #[test]
    fn durations_read_like_gitlab() {
        assert_eq!(duration(65), "00:01:05");
        assert_eq!(duration(3_725), "01:02:05");
    }

    #[test]
    fn times_ago() {
        let now = Timestamp::now().millis();
        assert_eq!(time_ago(Timestamp(now - 5_000)), "just now");
        assert_eq!(time_ago(Timestamp(now - 120_000)), "2 minutes ago");
        assert_eq!(time_ago(Timestamp(now - 3_600_000)), "1 hour ago");
    }
}
