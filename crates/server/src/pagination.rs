//! GitLab's offset pagination: `page` and `per_page` in, `X-*` headers and a `Link` header out.
//! python-gitlab and gitbeaker follow only `Link: <…>; rel="next"`, so it is always sent, built
//! from the external URL so clients do not warn about a changed base.

use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use pipewright_store::Page;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::params::Params;

pub const DEFAULT_PER_PAGE: u32 = 20;
pub const MAX_PER_PAGE: u32 = 100;

/// Reads `page` and `per_page`; out-of-range values are clamped as GitLab does, and
/// non-numbers are `"page is invalid"`.
pub fn page_from(params: &Params) -> ApiResult<Page> {
    let page = params.i64("page")?.unwrap_or(1);
    let per_page = params
        .i64("per_page")?
        .unwrap_or(i64::from(DEFAULT_PER_PAGE));
    let page = u32::try_from(page.max(1)).map_err(|_| ApiError::InvalidParam("page".into()))?;
    let per_page = u32::try_from(per_page.clamp(1, i64::from(MAX_PER_PAGE)))
        .map_err(|_| ApiError::InvalidParam("per_page".into()))?;
    Ok(Page { page, per_page })
}

/// The items of one page of an in-memory list (branches, tags: lists git gives us whole).
pub fn page_of<T>(items: &[T], page: Page) -> &[T] {
    let start = usize::try_from(page.offset())
        .unwrap_or(usize::MAX)
        .min(items.len());
    let end = start
        .saturating_add(usize::try_from(page.limit()).unwrap_or(0))
        .min(items.len());
    &items[start..end]
}

/// A JSON list response with pagination headers.
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: Page,
    /// `external_url` + request path + query, used for `Link`.
    pub base: String,
    pub query: Vec<(String, String)>,
}

impl<T> Paginated<T> {
    pub fn new(items: Vec<T>, total: i64, page: Page, external_url: &str, uri: &Uri) -> Self {
        let query = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, _)| k != "page" && k != "per_page" && k != "private_token")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Paginated {
            items,
            total,
            page,
            base: format!("{external_url}{}", uri.path()),
            query,
        }
    }

    fn link(&self, page: u32) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            serializer.append_pair(k, v);
        }
        serializer.append_pair("page", &page.to_string());
        serializer.append_pair("per_page", &self.page.per_page.to_string());
        format!("{}?{}", self.base, serializer.finish())
    }

    pub fn headers(&self) -> HeaderMap {
        let per_page = i64::from(self.page.per_page);
        let total_pages = ((self.total + per_page - 1) / per_page).max(1);
        let current = i64::from(self.page.page);
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        set("x-page", current.to_string());
        set("x-per-page", per_page.to_string());
        set("x-total", self.total.to_string());
        set("x-total-pages", total_pages.to_string());
        set(
            "x-next-page",
            if current < total_pages {
                (current + 1).to_string()
            } else {
                String::new()
            },
        );
        set(
            "x-prev-page",
            if current > 1 {
                (current - 1).to_string()
            } else {
                String::new()
            },
        );
        let mut links = Vec::new();
        if current > 1 {
            links.push(format!("<{}>; rel=\"prev\"", self.link(self.page.page - 1)));
        }
        if current < total_pages {
            links.push(format!("<{}>; rel=\"next\"", self.link(self.page.page + 1)));
        }
        links.push(format!("<{}>; rel=\"first\"", self.link(1)));
        links.push(format!(
            "<{}>; rel=\"last\"",
            self.link(u32::try_from(total_pages).unwrap_or(1))
        ));
        set("link", links.join(", "));
        headers
    }
}

impl<T: Serialize> IntoResponse for Paginated<T> {
    fn into_response(self) -> Response {
        let headers = self.headers();
        (headers, axum::Json(self.items)).into_response()
    }
}
