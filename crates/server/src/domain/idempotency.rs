//! `Idempotency-Key` on the pipeline-creating endpoints (issue 14 §4): the first request with a
//! key creates, a repeat with the same key, credential and parameters within [`KEY_LIFETIME`]
//! gets the first answer again, the same key with other parameters is refused (422).
//!
//! A key is claimed in the database (an INSERT under a unique key, see
//! `pipewright_store::IdempotencyStore`) before anything is created, so of concurrent requests
//! with one key — on one server or on replicas sharing a database — exactly one creates; the
//! others poll for its answer (at most [`WAIT_FOR_FIRST`]) and replay it. A request that
//! created nothing releases its claim; one whose server died mid-way is taken over after
//! [`ABANDONED_AFTER`]. GitLab has no such feature; the header and the replay marker follow
//! the IETF draft "The Idempotency-Key HTTP Header Field" and Stripe's API.

use std::time::Duration;

use pipewright_core::Timestamp;
use pipewright_store::IdempotencyScope;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a key's answer is kept.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a repeat waits for the first request with its key to finish.
pub const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);
/// When an unfinished claim is considered abandoned (its server stopped mid-request).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(120);
const POLL_EVERY: Duration = Duration::from_millis(50);
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A claimed key: this request creates, then [`finish`]es or [`release`]s it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub scope: IdempotencyScope,
}

/// What a request with a key does.
#[derive(Debug)]
pub enum Begin {
    /// First with this key: create, then record the answer.
    Create(Claim),
    /// A repeat: answer with the first request's status and JSON body.
    Replay { status: u16, body: String },
}

/// Checks a key's text: 1 to 255 printable ASCII characters (400 otherwise).
pub fn validate_key(key: &[u8]) -> ApiResult<String> {
    let printable = key.iter().all(|b| (0x20..=0x7e).contains(b));
    if key.is_empty() || key.len() > MAX_KEY_LEN || !printable {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable characters"
        )));
    }
    Ok(String::from_utf8_lossy(key).into_owned())
}

/// The digest of a request's parameters that a repeat must match: the ref, the variables
/// sorted by key (with their types), and the inputs, as canonical JSON (objects' keys sorted).
pub fn fingerprint(
    ref_name: &str,
    variables: &[(String, String, String)],
    inputs: Option<&Value>,
) -> String {
    let mut variables: Vec<&(String, String, String)> = variables.iter().collect();
    variables.sort();
    let canonical = json!({
        "ref": ref_name,
        "variables": variables,
        "inputs": inputs.map(canonical).unwrap_or(Value::Null),
    });
    crate::secrets::token_digest(&canonical.to_string())
}

/// `value` with every object's keys in order, whatever map serde_json was built with.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Claims `scope` for a request with `fingerprint`, or finds the answer to replay (waiting for
/// a first request still creating). 422 when the key was used with other parameters, 409 when
/// the first request did not finish within [`WAIT_FOR_FIRST`].
pub async fn begin(
    state: &AppState,
    scope: IdempotencyScope,
    fingerprint: &str,
) -> ApiResult<Begin> {
    let give_up = tokio::time::Instant::now() + WAIT_FOR_FIRST;
    loop {
        let now = Timestamp::now();
        let claimed = state
            .store
            .claim_idempotency_key(
                &scope,
                fingerprint,
                now,
                later(now, KEY_LIFETIME),
                Timestamp(now.millis() - millis(ABANDONED_AFTER)),
            )
            .await?;
        if claimed {
            return Ok(Begin::Create(Claim { scope }));
        }
        // Released between the claim and this read: claim again.
        let Some(record) = state.store.idempotency_key(&scope).await? else {
            continue;
        };
        if record.fingerprint != fingerprint {
            return Err(ApiError::Unprocessable(
                "Idempotency-Key was already used with different parameters".into(),
            ));
        }
        if let Some((status, body)) = record.response {
            return Ok(Begin::Replay { status, body });
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(ApiError::Conflict(
                "Idempotency-Key is in use by a request that has not finished".into(),
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Records the answer of the request holding `claim`.
pub async fn finish(state: &AppState, claim: &Claim, status: u16, body: &str) -> ApiResult<()> {
    state
        .store
        .finish_idempotency_key(&claim.scope, status, body)
        .await?;
    Ok(())
}

/// Gives the key back: the request holding `claim` created nothing.
pub async fn release(state: &AppState, claim: &Claim) -> ApiResult<()> {
    state.store.release_idempotency_key(&claim.scope).await?;
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn later(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp(now.millis().saturating_add(millis(d)))
}
