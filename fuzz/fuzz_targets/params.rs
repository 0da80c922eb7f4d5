//! Request parameters as the trigger endpoint reads them (query string, urlencoded, multipart
//! and JSON bodies, Rack nesting `variables[KEY]`, `scopes[]`) must never panic, hang or blow
//! up memory, whatever the request: the parser runs before anyone is authenticated.
//!
//! Input: byte 0 picks the `Content-Type`, byte 1 the query string's length; the query string
//! follows (bytes outside its grammar are percent-encoded, so the fuzzer steers the structure),
//! and the rest is the body.
#![no_main]

use std::future::Future;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use pipewright_server::params::Params;

const CONTENT_TYPES: &[&str] = &[
    "",
    "application/x-www-form-urlencoded",
    "application/json",
    "application/vnd.api+json; charset=utf-8",
    "multipart/form-data; boundary=X",
    "multipart/form-data",
    "text/plain",
];

/// The parser's futures only wait for an in-memory body: they finish without ever waiting.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("parameter parsing waited on an in-memory body");
}

fn query_text(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"&=[]%+-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Some((&query_len, rest)) = rest.split_first() else {
        return;
    };
    let split = usize::from(query_len).min(rest.len());
    let (query, body) = rest.split_at(split);
    let content_type = CONTENT_TYPES[usize::from(kind) % CONTENT_TYPES.len()];
    let query = (!query.is_empty()).then(|| query_text(query));
    let Ok(mut params) = run(Params::parse_parts(
        query.as_deref(),
        content_type,
        body.to_vec(),
        64 * 1024,
    )) else {
        return;
    };
    // What the trigger endpoint reads, then its `TRIGGER_PAYLOAD`.
    let _ = params.str("ref");
    let _ = params.non_blank("token");
    let _ = params.get("variables");
    let _ = params.string_list("scopes");
    let _ = params.i64("id");
    let _ = params.bool("enabled");
    params.set_path("ref", "main");
    let _ = serde_json::Value::Object(params.to_json_object()).to_string();
});
