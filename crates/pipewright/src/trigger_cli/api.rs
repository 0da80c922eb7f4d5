//! The few API v4 calls `pipewright trigger` makes, all of them GitLab's public API so the CLI
//! works against GitLab too: `POST /projects/:id/trigger/pipeline`, `GET …/pipelines/:id`,
//! `GET …/pipelines/:id/jobs`, `GET …/jobs/:id/trace` and `POST …/jobs/:id/play`.
//! A refusal keeps the server's own message (`{"message": …}` or `{"error": …}`).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::args::ReadAuth;

/// JSON answers larger than this are refused (a pipeline's jobs page is a few hundred KiB).
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;
/// One read of a job's log; GitLab's default log limit is 100 MiB.
const MAX_TRACE_BYTES: usize = 128 * 1024 * 1024;
/// One request may take this long before it counts as a (transient) failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request did not give what was asked for.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status; `message` is its own words.
    #[error("{what}: the server answered {status}: {message}")]
    Refused {
        what: String,
        status: StatusCode,
        message: String,
    },
    /// No answer (connection refused, reset, timed out) or an unreadable one.
    #[error("{what}: {detail}")]
    Unreachable { what: String, detail: String },
}

impl ApiError {
    /// Worth asking again: the server was restarting, overloaded or briefly unreachable.
    pub fn transient(&self) -> bool {
        match self {
            ApiError::Refused { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unreachable { .. } => true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Pipeline {
    pub id: i64,
    #[serde(default)]
    pub project_id: Option<i64>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub allow_failure: bool,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
}

/// The trigger's answer: the JSON as sent, and whether it replays an earlier request with the
/// same idempotency key.
pub struct Triggered {
    pub status: StatusCode,
    pub body: Value,
    pub replayed: bool,
}

/// New bytes of a job's log, and the offset to read from next time.
pub struct Tail {
    pub bytes: Vec<u8>,
    pub end: u64,
}

/// One server, one project.
pub struct Api {
    http: reqwest::Client,
    /// `<url>/api/v4/projects/<id or url-encoded path>`
    project_url: String,
    read_auth: HeaderMap,
}

impl Api {
    pub fn new(url: &str, project: &str, read: Option<&ReadAuth>) -> anyhow::Result<Api> {
        let mut read_auth = HeaderMap::new();
        let header = match read {
            Some(ReadAuth::Private(token)) => Some(("private-token", token)),
            Some(ReadAuth::Job(token)) => Some(("job-token", token)),
            None => None,
        };
        if let Some((name, token)) = header {
            let mut value = HeaderValue::from_str(token).map_err(|_| {
                anyhow::anyhow!("the API token has characters a header cannot hold")
            })?;
            value.set_sensitive(true);
            read_auth.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("pipewright-trigger/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Api {
            http,
            project_url: project_url(url, project),
            read_auth,
        })
    }

    /// From here on, address the project by its numeric id (the trigger's answer has it).
    pub fn use_project_id(&mut self, id: i64) {
        if let Some(base) = self.project_url.rsplit_once("/projects/") {
            self.project_url = format!("{}/projects/{id}", base.0);
        }
    }

    /// `POST /projects/:id/trigger/pipeline` as a form: `token`, `ref`, `variables[K]=V`, and
    /// `dry_run=true` when asked.
    pub async fn trigger(
        &self,
        token: &str,
        git_ref: &str,
        vars: &[(String, String)],
        idempotency_key: Option<&str>,
        dry_run: bool,
    ) -> Result<Triggered, ApiError> {
        let mut form: Vec<(String, &str)> = vec![("token".into(), token), ("ref".into(), git_ref)];
        for (key, value) in vars {
            form.push((format!("variables[{key}]"), value));
        }
        if dry_run {
            form.push(("dry_run".into(), "true"));
        }
        let mut request = self
            .http
            .post(format!("{}/trigger/pipeline", self.project_url))
            .form(&form);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let what = "triggering the pipeline";
        let res = send(request, what).await?;
        let replayed = res
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let status = res.status();
        let body = read_json::<Value>(res, what).await?;
        Ok(Triggered {
            status,
            body,
            replayed,
        })
    }

    /// `GET /projects/:id` with the read credentials: a wrong token or a project they cannot
    /// read is found out before a pipeline is created that could not be watched. The
    /// project's numeric id is returned.
    pub async fn project_id(&self) -> Result<i64, ApiError> {
        #[derive(Deserialize)]
        struct Project {
            id: i64,
        }
        let what = "reading the project";
        let res = send(self.read(self.http.get(&self.project_url)), what).await?;
        Ok(read_json::<Project>(res, what).await?.id)
    }

    pub async fn pipeline(&self, id: i64) -> Result<Pipeline, ApiError> {
        let url = format!("{}/pipelines/{id}", self.project_url);
        let res = send(self.read(self.http.get(url)), "reading the pipeline").await?;
        read_json(res, "reading the pipeline").await
    }

    /// Every job of the pipeline (the latest try of each), following the pages.
    pub async fn jobs(&self, pipeline: i64) -> Result<Vec<Job>, ApiError> {
        let what = "reading the pipeline's jobs";
        let mut jobs = Vec::new();
        let mut page = 1u32;
        loop {
            let url = format!(
                "{}/pipelines/{pipeline}/jobs?per_page=100&page={page}",
                self.project_url
            );
            let res = send(self.read(self.http.get(url)), what).await?;
            let next = res
                .headers()
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok());
            jobs.extend(read_json::<Vec<Job>>(res, what).await?);
            match next {
                // A server that keeps answering "next" is not followed forever.
                Some(n) if n > page && page < 100 => page = n,
                _ => return Ok(jobs),
            }
        }
    }

    /// The job's log from byte `offset` on. GitLab's trace endpoint sends the whole log every
    /// time (lib/api/ci/jobs.rb: `body build.trace.raw`); a `Range` is asked for anyway, so a
    /// server or proxy that honours it sends only the new bytes (206), and a whole log (200) is
    /// cut here.
    pub async fn trace_from(&self, job: i64, offset: u64) -> Result<Tail, ApiError> {
        let what = "reading a job's log";
        let url = format!("{}/jobs/{job}/trace", self.project_url);
        let request = self
            .read(self.http.get(url))
            .header("Range", format!("bytes={offset}-"));
        let res = match send(request, what).await {
            Err(ApiError::Refused { status, .. })
                if status == StatusCode::RANGE_NOT_SATISFIABLE =>
            {
                return Ok(Tail {
                    bytes: Vec::new(),
                    end: offset,
                });
            }
            other => other?,
        };
        // Where the body starts in the log: a 206 says so, anything else is the whole log.
        let body_start = match res.status() {
            StatusCode::PARTIAL_CONTENT => content_range_start(res.headers()).unwrap_or(0),
            _ => 0,
        };
        let bytes = read_capped(res, MAX_TRACE_BYTES, what).await?;
        let end = body_start + bytes.len() as u64;
        let skip = usize::try_from(offset.saturating_sub(body_start)).unwrap_or(usize::MAX);
        Ok(Tail {
            bytes: bytes.get(skip..).map(<[u8]>::to_vec).unwrap_or_default(),
            end: end.max(offset),
        })
    }

    /// `POST /projects/:id/jobs/:job_id/play`.
    pub async fn play(&self, job: i64) -> Result<(), ApiError> {
        let url = format!("{}/jobs/{job}/play", self.project_url);
        send(self.read(self.http.post(url)), "playing a manual job").await?;
        Ok(())
    }

    fn read(&self, request: RequestBuilder) -> RequestBuilder {
        request.headers(self.read_auth.clone())
    }
}

/// `<url>/api/v4/projects/<id>`, a path URL-encoded as one segment (`group%2Fproject`).
pub fn project_url(url: &str, project: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(
        project.trim_matches('/'),
        percent_encoding::NON_ALPHANUMERIC,
    );
    format!("{}/api/v4/projects/{encoded}", url.trim_end_matches('/'))
}

fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get("content-range")?.to_str().ok()?;
    let range = value.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// Sends; an error status becomes [`ApiError::Refused`] with the server's message.
async fn send(request: RequestBuilder, what: &str) -> Result<Response, ApiError> {
    let res = request.send().await.map_err(|e| unreachable(what, &e))?;
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let body = read_capped(res, 64 * 1024, what).await.unwrap_or_default();
    Err(ApiError::Refused {
        what: what.to_string(),
        status,
        message: server_message(status, &body),
    })
}

fn unreachable(what: &str, err: &reqwest::Error) -> ApiError {
    // reqwest's Display names the URL, never headers; the chain says why (refused, timed out…).
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    ApiError::Unreachable {
        what: what.to_string(),
        detail,
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    res: Response,
    what: &str,
) -> Result<T, ApiError> {
    let bytes = read_capped(res, MAX_JSON_BYTES, what).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Unreachable {
        what: what.to_string(),
        detail: format!("the server's answer is not the JSON expected: {e}"),
    })
}

/// Reads a body, refusing one larger than `cap` before holding it all.
async fn read_capped(mut res: Response, cap: usize, what: &str) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| unreachable(what, &e))? {
        if bytes.len() + chunk.len() > cap {
            return Err(ApiError::Unreachable {
                what: what.to_string(),
                detail: format!("the server's answer is larger than {cap} bytes"),
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The server's words for an error: GitLab's `{"message": "…"}`, its validation form
/// `{"message": {"base": ["…"], "field": ["…"]}}`, `{"error": "…"}`, or the body's text.
pub fn server_message(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|json| {
        json.get("message")
            .or_else(|| json.get("error"))
            .map(flatten_message)
    });
    let message = match from_json {
        Some(message) => message,
        None => text.trim().chars().take(500).collect(),
    };
    if message.is_empty() {
        status.to_string()
    } else {
        message
    }
}

fn flatten_message(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(flatten_message)
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(fields) => fields
            .iter()
            .map(|(field, v)| match field.as_str() {
                "base" => flatten_message(v),
                _ => format!("{field} {}", flatten_message(v)),
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_path_is_one_url_encoded_segment() {
        assert_eq!(
            project_url("https://ci.example.com/", "group/sub/app"),
            "https://ci.example.com/api/v4/projects/group%2Fsub%2Fapp"
        );
        assert_eq!(
            project_url("http://h:1", "42"),
            "http://h:1/api/v4/projects/42"
        );
    }

    #[test]
    fn the_servers_message_is_kept_in_every_shape_gitlab_uses() {
        let msg = |body: &str| server_message(StatusCode::BAD_REQUEST, body.as_bytes());
        assert_eq!(msg(r#"{"message":"404 Not Found"}"#), "404 Not Found");
        assert_eq!(
            msg(r#"{"message":{"base":["Reference not found"]}}"#),
            "Reference not found"
        );
        assert_eq!(
            msg(r#"{"message":{"cron":["is invalid"],"ref":["is missing"]}}"#),
            "cron is invalid; ref is missing"
        );
        assert_eq!(msg(r#"{"error":"token is missing"}"#), "token is missing");
        assert_eq!(msg("Bad gateway\n"), "Bad gateway");
        assert_eq!(msg(""), "400 Bad Request");
    }
}
