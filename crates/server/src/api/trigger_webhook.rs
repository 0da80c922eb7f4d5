//! `POST /projects/:id/triggers/:trigger_id/webhook` (issue 14 §5): a trigger fired by a
//! GitHub, Gitea or Forgejo webhook whose body is signed with the trigger's token (no token in
//! the URL). The raw body (at most `TRIGGER_PAYLOAD`'s 1 MiB) is read first, the signature is
//! verified in [`crate::domain::signed_webhooks`] (404 `{"message":"404 Not Found"}` for
//! anything that does not verify, as a wrong token), then the ref comes from the query's `ref`
//! or the body's `ref` (`refs/heads/main`, `refs/tags/v1`), and the pipeline is a trigger
//! pipeline with the raw body as `TRIGGER_PAYLOAD`. A forge's delivery id (or an
//! `Idempotency-Key`) makes a redelivery answer the first pipeline again.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use crate::domain::pipeline_variables::MAX_TRIGGER_PAYLOAD_BYTES;
use crate::domain::{idempotency, signed_webhooks, triggers};
use crate::error::{ApiError, ApiResult};
use crate::params::Segments;
use crate::routes::{Access, Route};
use crate::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![Route::post(
        "/api/v4/projects/{id}/triggers/{trigger_id}/webhook",
        webhook,
        Access::TriggerToken,
    )]
}

async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    seg: Segments,
    RawQuery(query): RawQuery,
    body: Body,
) -> ApiResult<Response> {
    let body = axum::body::to_bytes(body, MAX_TRIGGER_PAYLOAD_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let header = |name: &'static str| (name, headers.get(name).and_then(|v| v.to_str().ok()));
    let signature_headers: Vec<_> = signed_webhooks::SIGNATURE_HEADERS
        .iter()
        .map(|(name, _)| header(name))
        .collect();
    let signature = signed_webhooks::signature(&signature_headers);
    let id = seg.get("id")?.to_string();
    let token = signed_webhooks::verified_token(
        &state,
        &id,
        seg.get("trigger_id")?,
        &body,
        signature.as_deref(),
    )
    .await?;
    let payload = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let ref_name = query_ref(query.as_deref())
        .or_else(|| body_ref(&payload))
        .ok_or_else(|| ApiError::MissingParam("ref".into()))?;
    let key = delivery_key(&headers)?;
    let authorized = triggers::authorize(&state, &id, &token).await?;
    // A redelivery carries the same id and body: the body is part of what a repeat must match.
    let fingerprint = idempotency::fingerprint(
        &ref_name,
        &[(
            "TRIGGER_PAYLOAD".to_string(),
            crate::secrets::token_digest(&payload),
            String::new(),
        )],
        None,
    );
    let (project_id, credential) = (authorized.project.id, authorized.credential.clone());
    let create = super::trigger_pipeline::create_and_respond(
        state.clone(),
        authorized,
        ref_name,
        Vec::new(),
        pipewright_config::Inputs::new(),
        payload,
    );
    super::idempotency::guard(&state, key, project_id, credential, &fingerprint, create).await
}

/// The request's idempotency key: an `Idempotency-Key` header, else the forge's delivery id
/// (`X-GitHub-Delivery`, `X-Gitea-Delivery`, `X-Forgejo-Delivery`), so a redelivered webhook
/// within 24 hours answers the first pipeline again instead of starting another.
fn delivery_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    if let Some(key) = super::idempotency::key(headers)? {
        return Ok(Some(key));
    }
    signed_webhooks::DELIVERY_HEADERS
        .iter()
        .find_map(|name| headers.get(*name))
        .map(|id| idempotency::validate_key(id.as_bytes()))
        .transpose()
}

/// `?ref=…`, if given and not blank.
fn query_ref(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "ref")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A push event's `ref` (`refs/heads/main`, `refs/tags/v1`), if the body is JSON with one.
fn body_ref(body: &str) -> Option<String> {
    match serde_json::from_str::<Value>(body).ok()?.get("ref")? {
        Value::String(r) if !r.trim().is_empty() => Some(r.trim().to_string()),
        _ => None,
    }
}
