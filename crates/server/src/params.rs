//! Request parameters the way GitLab's API (Grape on Rack) reads them.
//!
//! GitLab merges parameters from the query string, urlencoded and multipart form bodies and
//! JSON bodies into one hash, so `curl --form token=…`, `?token=…` and python-gitlab's JSON
//! body all reach the same handler. Keys in forms and query strings use Rack's nesting syntax:
//! `variables[KEY]=v` builds a map, `scopes[]=api` builds a list. A JSON body may also carry
//! literal keys such as `"variables[KEY]"` (Perl's GitLab::API::v4 sends them when users copy
//! the curl docs); those are nested the same way. Body parameters win over the query string and
//! path parameters win over both.
//!
//! The body is read here, under the server's size limit, so this extractor must come last in
//! a handler's argument list. A body that cannot be read (a broken chunked encoding, a
//! connection cut short) is a 400; only one over the limit is a 413. Malformed strings (a NUL
//! byte, invalid UTF-8) anywhere in the parameters are refused as `crate::malformed` explains.
//! Path parameters ([`Segments`]) are read here too, for the API, the pages and git over HTTP.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, RawPathParams, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How deeply `a[b][c]…` may nest; deeper keys are rejected rather than recursed into.
const MAX_NESTING: usize = 16;

/// A file part of a multipart body.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub field: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// All parameters of a request, merged.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: Map<String, Value>,
    files: Vec<UploadedFile>,
}

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        Params::parse(req, state.config.max_body_bytes).await
    }
}

impl Params {
    /// Every parameter of `req` (query string and body, whatever its media type), with the body
    /// read under `limit` bytes. The extractor's whole work, without the server's state, so the
    /// fuzz target (`fuzz/fuzz_targets/params.rs`) runs exactly what a request runs.
    pub async fn parse(req: Request, limit: usize) -> ApiResult<Params> {
        let mut params = Params::default();
        if let Some(query) = req.uri().query() {
            params.merge_urlencoded(query.as_bytes())?;
        }
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, &())
                .await
                .map_err(|_| ApiError::BadRequest("invalid multipart body".into()))?;
            let mut total = 0usize;
            loop {
                let field = match multipart.next_field().await {
                    Ok(Some(field)) => field,
                    Ok(None) => break,
                    Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                        return Err(ApiError::PayloadTooLarge);
                    }
                    Err(_) => return Err(ApiError::BadRequest("invalid multipart body".into())),
                };
                let name = field.name().unwrap_or_default().to_string();
                let filename = field.file_name().map(str::to_string);
                let part_type = field.content_type().map(str::to_string);
                let data = field.bytes().await.map_err(|e| {
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::PayloadTooLarge
                    } else {
                        ApiError::BadRequest("invalid multipart body".into())
                    }
                })?;
                total += data.len();
                if total > limit {
                    return Err(ApiError::PayloadTooLarge);
                }
                if filename.is_some() {
                    params.files.push(UploadedFile {
                        field: name,
                        filename,
                        content_type: part_type,
                        data,
                    });
                } else {
                    let text =
                        std::str::from_utf8(&data).map_err(|_| ApiError::MalformedRequest)?;
                    params.insert_nested(&name, Value::String(text.to_string()))?;
                }
            }
            params.check_strings()?;
            return Ok(params);
        }
        let body = read_body(req.into_body(), limit).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            // python-gitlab sends `Content-Type: application/json` with no body on GET/DELETE.
            return Ok(params);
        }
        if content_type.starts_with("application/json") || content_type.contains("+json") {
            params.merge_json(&body)?;
        } else if content_type.starts_with("application/x-www-form-urlencoded")
            || content_type.is_empty()
        {
            params.merge_urlencoded(&body)?;
        }
        // Other media types (text/plain, …) carry no parameters, as in GitLab.
        params.check_strings()?;
        Ok(params)
    }

    /// [`Params::parse`] for a request made of its pieces: the query string, the
    /// `Content-Type` and the body. Pieces no HTTP request could carry are a 400.
    pub async fn parse_parts(
        query: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
        limit: usize,
    ) -> ApiResult<Params> {
        let uri = match query {
            Some(q) => format!("/?{q}"),
            None => "/".to_string(),
        };
        let req = Request::builder()
            .method("POST")
            .uri(uri)
            .header(CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .map_err(|_| ApiError::BadRequest("malformed request".into()))?;
        Params::parse(req, limit).await
    }
}

/// The whole body, up to `limit` bytes: 413 past it, 400 when it cannot be read (a broken
/// chunked encoding, a connection cut short).
async fn read_body(body: axum::body::Body, limit: usize) -> ApiResult<Bytes> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buffer = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::BadRequest("the request body could not be read".into()))?;
        if buffer.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

impl Params {
    /// Builds parameters from a query string alone (for handlers that stream their body).
    pub fn from_query(query: Option<&str>) -> ApiResult<Self> {
        let mut params = Params::default();
        if let Some(q) = query {
            params.merge_urlencoded(q.as_bytes())?;
        }
        params.check_strings()?;
        Ok(params)
    }

    /// Refuses a NUL byte in any key or value, at any depth, and in uploaded files' field
    /// names and file names (their contents are data).
    fn check_strings(&self) -> ApiResult<()> {
        let values_ok = self
            .values
            .iter()
            .all(|(k, v)| !k.contains('\0') && crate::malformed::check_value(v));
        let files_ok = self.files.iter().all(|f| {
            !f.field.contains('\0') && !f.filename.as_deref().unwrap_or("").contains('\0')
        });
        if values_ok && files_ok {
            Ok(())
        } else {
            Err(ApiError::MalformedRequest)
        }
    }

    fn merge_urlencoded(&mut self, raw: &[u8]) -> ApiResult<()> {
        for pair in raw.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let key = decode_component(k)?;
            let value = decode_component(v)?;
            if key.is_empty() {
                continue;
            }
            self.insert_nested(&key, Value::String(value))?;
        }
        Ok(())
    }

    fn merge_json(&mut self, body: &[u8]) -> ApiResult<()> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| ApiError::BadRequest("the request body is not valid JSON".into()))?;
        let Value::Object(object) = value else {
            return Err(ApiError::BadRequest(
                "the JSON body must be an object".into(),
            ));
        };
        for (key, value) in object {
            if key.contains('[') {
                self.insert_nested(&key, value)?;
            } else {
                self.values.insert(key, value);
            }
        }
        Ok(())
    }

    /// Inserts `value` under a Rack-style key (`a`, `a[b]`, `a[]`, `a[b][c]`).
    fn insert_nested(&mut self, key: &str, value: Value) -> ApiResult<()> {
        let (head, segments) = parse_key(key)?;
        insert_at(&mut self.values, head, &segments, value);
        Ok(())
    }

    /// Sets a path parameter, which wins over body and query.
    pub fn set_path(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .insert(key.to_string(), Value::String(value.into()));
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    pub fn files(&self) -> &[UploadedFile] {
        &self.files
    }

    pub fn take_file(&mut self, field: &str) -> Option<UploadedFile> {
        let index = self.files.iter().position(|f| f.field == field)?;
        Some(self.files.remove(index))
    }

    /// Every parameter as a JSON object (for `TRIGGER_PAYLOAD`).
    pub fn to_json_object(&self) -> Map<String, Value> {
        self.values.clone()
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.values.remove(key)
    }

    /// A hash parameter (Grape's `type: Hash`): `name[KEY]=value` in forms and query strings, an
    /// object in JSON; absent, `null` or an empty form value is an empty hash, anything else
    /// `"{key} is invalid"`. GitLab reads `variables` and `inputs` (CI/CD inputs) this way.
    pub fn hash(&self, key: &str) -> ApiResult<Map<String, Value>> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(Value::String(s)) if s.is_empty() => Ok(Map::new()),
            Some(_) => Err(ApiError::InvalidParam(key.to_string())),
        }
    }

    /// A scalar parameter as text; numbers and booleans (from JSON) are accepted as their text.
    pub fn str(&self, key: &str) -> ApiResult<Option<String>> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(ApiError::InvalidParam(key.to_string())),
        }
    }

    /// A required parameter: absent → `"{key} is missing"`.
    pub fn required_str(&self, key: &str) -> ApiResult<String> {
        self.str(key)?
            .ok_or_else(|| ApiError::MissingParam(key.to_string()))
    }

    /// A required parameter that may not be blank: blank → `"{key} is empty"`.
    pub fn non_blank(&self, key: &str) -> ApiResult<String> {
        let value = self.required_str(key)?;
        if value.trim().is_empty() {
            return Err(ApiError::EmptyParam(key.to_string()));
        }
        Ok(value)
    }

    pub fn i64(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::InvalidParam(key.to_string())),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::InvalidParam(key.to_string())),
            Some(_) => Err(ApiError::InvalidParam(key.to_string())),
        }
    }

    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "t" => Ok(Some(true)),
                "false" | "0" | "no" | "f" => Ok(Some(false)),
                "" => Ok(None),
                _ => Err(ApiError::InvalidParam(key.to_string())),
            },
            Some(Value::Number(n)) => match n.as_i64() {
                Some(1) => Ok(Some(true)),
                Some(0) => Ok(Some(false)),
                _ => Err(ApiError::InvalidParam(key.to_string())),
            },
            Some(_) => Err(ApiError::InvalidParam(key.to_string())),
        }
    }

    /// A list of strings: `key[]=a&key[]=b`, a JSON array, or a single value (comma-separated
    /// values are split, as Grape does for `Array[String]` with `coerce_with`).
    pub fn string_list(&self, key: &str) -> ApiResult<Option<Vec<String>>> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(ApiError::InvalidParam(key.to_string())),
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Some(_) => Err(ApiError::InvalidParam(key.to_string())),
        }
    }
}

fn decode_component(raw: &[u8]) -> ApiResult<String> {
    // `+` means space in form encoding.
    crate::malformed::decode(raw, true).ok_or(ApiError::MalformedRequest)
}

/// One step below the top-level key: `[name]` or `[]`.
#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Push,
}

fn parse_key(key: &str) -> ApiResult<(&str, Vec<Segment>)> {
    let Some(open) = key.find('[') else {
        return Ok((key, Vec::new()));
    };
    if open == 0 {
        // `[a]=b` has no name; Rack treats the whole thing as a plain key.
        return Ok((key, Vec::new()));
    }
    let head = &key[..open];
    let mut rest = &key[open..];
    let mut segments = Vec::new();
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            // Unbalanced brackets: Rack keeps the remainder literally as part of the key.
            return Ok((key, Vec::new()));
        };
        let inner = &stripped[..close];
        segments.push(if inner.is_empty() {
            Segment::Push
        } else {
            Segment::Key(inner.to_string())
        });
        if segments.len() > MAX_NESTING {
            return Err(ApiError::BadRequest(
                "parameters are nested too deeply".into(),
            ));
        }
        rest = &stripped[close + 1..];
    }
    if !rest.is_empty() {
        return Ok((key, Vec::new()));
    }
    Ok((head, segments))
}

fn insert_at(map: &mut Map<String, Value>, head: &str, segments: &[Segment], value: Value) {
    let Some((first, rest)) = segments.split_first() else {
        map.insert(head.to_string(), value);
        return;
    };
    let slot = map.entry(head.to_string()).or_insert(Value::Null);
    insert_into(slot, first, rest, value);
}

fn insert_into(slot: &mut Value, segment: &Segment, rest: &[Segment], value: Value) {
    match segment {
        Segment::Push => {
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(items) = slot {
                match rest.split_first() {
                    None => items.push(value),
                    // Rack's `normalize_params`: `a[][name]=x&a[][value]=y` fills the last
                    // hash until a key repeats, so it is one element, `[{name, value}]`.
                    Some((Segment::Key(key), tail))
                        if items
                            .last()
                            .and_then(Value::as_object)
                            .is_some_and(|last| !last.contains_key(key)) =>
                    {
                        if let Some(last) = items.last_mut() {
                            insert_into(last, &Segment::Key(key.clone()), tail, value);
                        }
                    }
                    Some((next, tail)) => {
                        let mut child = Value::Null;
                        insert_into(&mut child, next, tail, value);
                        items.push(child);
                    }
                }
            }
        }
        Segment::Key(key) => {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(map) = slot {
                match rest.split_first() {
                    None => {
                        map.insert(key.clone(), value);
                    }
                    Some((next, tail)) => {
                        let child = map.entry(key.clone()).or_insert(Value::Null);
                        insert_into(child, next, tail, value);
                    }
                }
            }
        }
    }
}

/// Path parameters, percent-decoded. A malformed one (invalid UTF-8, a NUL byte) is GitLab's
/// plain-text 400; the `malformed` layer normally refuses it before any handler runs.
pub struct Segments(HashMap<String, String>);

impl Segments {
    /// Path parameters for calling a handler from elsewhere (the web UI reuses the API's
    /// operations, so both apply the same checks).
    pub fn from_pairs(pairs: &[(&str, String)]) -> Self {
        Segments(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> ApiResult<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::MissingParam(name.to_string()))
    }

    /// A numeric id segment; anything else is a 404 (GitLab's routes only match digits).
    pub fn id(&self, name: &str, what: &'static str) -> ApiResult<i64> {
        self.get(name)?
            .parse::<i64>()
            .map_err(|_| ApiError::NotFound(what))
    }
}

impl FromRequestParts<AppState> for Segments {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| match e {
                axum::extract::rejection::RawPathParamsRejection::InvalidUtf8InPathParam(_) => {
                    ApiError::MalformedRequest
                }
                _ => ApiError::NotFound(""),
            })?;
        let mut map = HashMap::new();
        for (key, value) in &raw {
            // axum has percent-decoded the value once already (decoding again would turn a
            // file named `100%25.txt` into `100%.txt`).
            if value.contains('\0') {
                return Err(ApiError::MalformedRequest);
            }
            map.insert(key.to_string(), value.to_string());
        }
        Ok(Segments(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(query: &str) -> Value {
        let p = Params::from_query(Some(query)).expect("parses");
        Value::Object(p.values)
    }

    #[test]
    fn rack_nesting_builds_maps_and_lists() {
        assert_eq!(
            parse("token=t&ref=main&variables[UPLOAD_TO_S3]=true&variables[B]=x%20y"),
            json!({"token": "t", "ref": "main", "variables": {"UPLOAD_TO_S3": "true", "B": "x y"}})
        );
        assert_eq!(
            parse("scopes[]=api&scopes[]=read_api"),
            json!({"scopes": ["api", "read_api"]})
        );
        assert_eq!(parse("a[b][c]=1"), json!({"a": {"b": {"c": "1"}}}));
        // GitLab's documented `inputs[][name]=…&inputs[][value]=…`: one hash per name.
        assert_eq!(
            parse("inputs[][name]=a&inputs[][value]=1&inputs[][name]=b&inputs[][destroy]=true"),
            json!({"inputs": [{"name": "a", "value": "1"}, {"name": "b", "destroy": "true"}]})
        );
        assert_eq!(parse("q=a+b"), json!({"q": "a b"}));
    }

    #[test]
    fn odd_keys_stay_literal() {
        assert_eq!(parse("[x]=1"), json!({"[x]": "1"}));
        assert_eq!(parse("a[b=1"), json!({"a[b": "1"}));
        assert_eq!(parse("variables=plain"), json!({"variables": "plain"}));
    }

    #[test]
    fn json_literal_bracket_keys_nest() {
        let mut p = Params::default();
        p.merge_json(br#"{"ref":"main","variables[K]":"v","n":5}"#)
            .expect("json");
        assert_eq!(
            Value::Object(p.values),
            json!({"ref": "main", "variables": {"K": "v"}, "n": 5})
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let key = format!("a{}", "[b]".repeat(40));
        assert!(Params::from_query(Some(&format!("{key}=1"))).is_err());
    }

    #[test]
    fn malformed_strings_are_refused() {
        for query in ["a=%ff%fe", "a=%00", "a%00=b", "a[%00]=b", "a=%zz"] {
            assert!(
                matches!(
                    Params::from_query(Some(query)),
                    Err(ApiError::MalformedRequest)
                ),
                "{query}"
            );
        }
        let mut p = Params::default();
        p.merge_json(br#"{"a":{"b":["c","d\u0000"]}}"#)
            .expect("json");
        assert!(p.check_strings().is_err());
    }
}
