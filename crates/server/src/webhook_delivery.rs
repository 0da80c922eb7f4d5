//! Sending webhook deliveries: the worker the maintenance loop runs over the durable queue
//! (`hook_deliveries`, filled by [`crate::domain::webhooks`]). Failures retry with backoff and
//! are given up on after [`MAX_ATTEMPTS`]; every attempt's status, duration and a bounded part
//! of the answer stay visible through the API.
//!
//! Safety: a hook URL must be http(s); its host is resolved and every address checked — no
//! loopback, private, link-local, shared (CGNAT) or unique-local address unless the admin
//! turned on `allow_local_requests_from_web_hooks_and_services`, and never a special-purpose
//! one (unspecified, multicast, broadcast, reserved, documentation, benchmarking); an IPv6
//! address that embeds an IPv4 one (mapped, NAT64, 6to4) is judged by it — and the request
//! goes to exactly the address that was checked (no second lookup a rebinding DNS server
//! could answer differently, and no proxy from the environment, which would do that lookup
//! itself). Redirects are not followed; requests time out; answers are read up to a cap. This
//! sender is the server's only outbound HTTP client: [`fetch`], for `include: remote:`, goes
//! through the same checks and the same client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use pipewright_core::Timestamp;
use pipewright_store::{DeliveryAttempt, HookDelivery};

use crate::sealing::Purpose;
use crate::state::AppState;

pub const ALLOW_LOCAL_SETTING: &str = "allow_local_requests_from_web_hooks_and_services";

/// Attempts before a delivery is given up on.
pub const MAX_ATTEMPTS: i64 = 5;

const TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an answer is kept (and read).
const MAX_RESPONSE_BYTES: usize = 16 * 1024;

/// Backoff after the n-th failed attempt: 1, 6, 30, then 180 times the base (10 s by default:
/// 10 s, 1 min, 5 min, 30 min).
fn backoff(base: Duration, attempts: i64) -> Duration {
    base * match attempts {
        ..=1 => 1,
        2 => 6,
        3 => 30,
        _ => 180,
    }
}

pub fn new_uuid() -> String {
    let hex = crate::secrets::random_hex_token("", 16);
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Why a hook URL may not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum Blocked {
    Invalid,
    Local,
    /// Multicast, broadcast, reserved, documentation…: refused even with local requests allowed.
    SpecialPurpose,
    Unresolvable,
}

impl Blocked {
    pub fn message(&self) -> &'static str {
        match self {
            Blocked::Invalid => "is blocked: Only allowed schemes are http, https",
            Blocked::Local => "is blocked: Requests to the local network are not allowed",
            Blocked::SpecialPurpose => {
                "is blocked: Requests to special-purpose addresses are not allowed"
            }
            Blocked::Unresolvable => "is blocked: Host cannot be resolved or invalid",
        }
    }
}

/// Where an address leads, for a hook: the internet, the local network (only when the admin
/// turned on `allow_local_requests_from_web_hooks_and_services`), or nowhere a hook may go
/// (special-purpose ranges: refused whatever the setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Public,
    Local,
    Never,
}

/// IPv4 ranges that are not the internet (IANA's special-purpose registry). GitLab's
/// `UrlBlocker` (gitlab-http: lib/gitlab/http_v2/url_blocker.rb) refuses loopback, private,
/// link-local, shared (100.64/10) and the limited broadcast address; Pipewright also refuses
/// what no webhook can be meant for — "this network", documentation, benchmarking, multicast
/// and the reserved 240/4 — even with local requests allowed.
const V4_RANGES: &[([u8; 4], u8, Reach)] = &[
    ([127, 0, 0, 0], 8, Reach::Local),     // loopback
    ([10, 0, 0, 0], 8, Reach::Local),      // private
    ([172, 16, 0, 0], 12, Reach::Local),   // private
    ([192, 168, 0, 0], 16, Reach::Local),  // private
    ([169, 254, 0, 0], 16, Reach::Local),  // link-local (cloud metadata)
    ([100, 64, 0, 0], 10, Reach::Local),   // shared address space (CGNAT)
    ([0, 0, 0, 0], 8, Reach::Never),       // "this network" (0.0.0.0 reaches this host)
    ([192, 0, 0, 0], 24, Reach::Never),    // IETF protocol assignments
    ([192, 0, 2, 0], 24, Reach::Never),    // documentation (TEST-NET-1)
    ([198, 51, 100, 0], 24, Reach::Never), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24, Reach::Never),  // documentation (TEST-NET-3)
    ([192, 88, 99, 0], 24, Reach::Never),  // 6to4 relay anycast (deprecated)
    ([198, 18, 0, 0], 15, Reach::Never),   // benchmarking
    ([224, 0, 0, 0], 4, Reach::Never),     // multicast
    ([240, 0, 0, 0], 4, Reach::Never),     // reserved, and 255.255.255.255 (broadcast)
];

fn reach_v4(ip: Ipv4Addr) -> Reach {
    let bits = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, len, _)| {
            bits & (u32::MAX << (32 - u32::from(*len))) == u32::from_be_bytes(*net)
        })
        .map_or(Reach::Public, |(_, _, reach)| *reach)
}

/// IPv6 ranges judged by prefix alone (first match wins). Anything else outside global unicast
/// `2000::/3` is refused: IPv4-compatible `::a.b.c.d` (deprecated), discard `100::/64`,
/// multicast `ff00::/8` and the unassigned space.
const V6_RANGES: &[(u128, u32, Reach)] = &[
    (1, 128, Reach::Local),                     // loopback ::1
    (0, 128, Reach::Never),                     // unspecified ::
    (0x0064_ff9b_0001 << 80, 48, Reach::Local), // local-use NAT64 64:ff9b:1::/48
    (0xfc00 << 112, 7, Reach::Local),           // unique-local fc00::/7
    (0xfe80 << 112, 10, Reach::Local),          // link-local fe80::/10
    (0xfec0 << 112, 10, Reach::Local),          // site-local fec0::/10 (deprecated)
    (0x2001_0000 << 96, 32, Reach::Never),      // Teredo: an obfuscated IPv4 address
    (0x2001 << 112, 23, Reach::Never),          // IETF protocol assignments
    (0x2001_0db8 << 96, 32, Reach::Never),      // documentation
    (0x3fff << 112, 20, Reach::Never),          // documentation
    (0x2000 << 112, 3, Reach::Public),          // global unicast
];

fn in_v6(bits: u128, net: u128, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    bits & mask == net
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:0:0/96` (how a dual-stack
/// resolver returns IPv4), IPv4-translated `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96` (the
/// translator connects to it) and 6to4 `2002::/16`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    if in_v6(bits, 0xffff << 32, 96)
        || in_v6(bits, 0xffff << 48, 96)
        || in_v6(bits, 0x0064_ff9b << 96, 96)
    {
        Some(low)
    } else if in_v6(bits, 0x2002 << 112, 16) {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

/// An IPv6 address reaches what it embeds (`http://[64:ff9b::7f00:1]` is loopback through a
/// translator); otherwise its range decides.
fn reach_v6(ip: Ipv6Addr) -> Reach {
    if let Some(v4) = embedded_v4(ip) {
        return reach_v4(v4);
    }
    let bits = u128::from(ip);
    V6_RANGES
        .iter()
        .find(|(net, len, _)| in_v6(bits, *net, *len))
        .map_or(Reach::Never, |(_, _, reach)| *reach)
}

fn reach(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => reach_v4(v4),
        IpAddr::V6(v6) => reach_v6(v6),
    }
}

/// Checks a URL and returns the address to connect to.
pub async fn resolve(url: &str, allow_local: bool) -> Result<(url::Url, SocketAddr), Blocked> {
    let parsed = url::Url::parse(url).map_err(|_| Blocked::Invalid)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Blocked::Invalid);
    }
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = parsed.port_or_known_default().ok_or(Blocked::Invalid)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| Blocked::Unresolvable)?
        .collect();
    let first = *addrs.first().ok_or(Blocked::Unresolvable)?;
    // Every address the name has must pass, not only the one connected to.
    for addr in &addrs {
        match reach(addr.ip()) {
            Reach::Public => {}
            Reach::Local if allow_local => {}
            Reach::Local => return Err(Blocked::Local),
            Reach::Never => return Err(Blocked::SpecialPurpose),
        }
    }
    Ok((parsed, first))
}

pub async fn allow_local(state: &AppState) -> anyhow::Result<bool> {
    Ok(state.store.setting(ALLOW_LOCAL_SETTING).await?.as_deref() == Some("true"))
}

/// Sends every due delivery (called by the maintenance loop).
pub async fn deliver_due(state: &AppState) -> anyhow::Result<()> {
    let now = Timestamp::now();
    // A sender that dies mid-request leaves its claim to expire, and the delivery is retried.
    let claim_until = Timestamp(now.millis() + (TIMEOUT.as_millis() as i64) * 3);
    let due = state
        .store
        .claim_hook_deliveries(now, claim_until, 32)
        .await?;
    if due.is_empty() {
        return Ok(());
    }
    let allow_local = allow_local(state).await?;
    let mut sends = Vec::new();
    for delivery in due {
        let state = state.clone();
        sends.push(tokio::spawn(async move {
            let attempt = send(&state, &delivery, allow_local).await;
            state.metrics.webhook_delivery(&attempt.state);
            if let Err(err) = state.store.record_hook_attempt(delivery.id, &attempt).await {
                tracing::warn!(error = %err, "recording a webhook delivery failed");
            }
        }));
    }
    for s in sends {
        let _ = s.await;
    }
    Ok(())
}

fn failed_attempt(
    state: &AppState,
    delivery: &HookDelivery,
    error: String,
    status: Option<i64>,
    body: Option<String>,
    ms: Option<i64>,
) -> DeliveryAttempt {
    let give_up = delivery.attempts >= MAX_ATTEMPTS;
    let wait = backoff(state.config.webhook_retry_base, delivery.attempts);
    DeliveryAttempt {
        state: if give_up { "failed" } else { "pending" }.into(),
        next_attempt_at: Timestamp(Timestamp::now().millis() + wait.as_millis() as i64),
        response_status: status,
        response_body: body,
        duration_ms: ms,
        error: Some(error),
    }
}

/// A client that connects only to `addr` (the checked address of `url`'s host), follows no
/// redirects and gives up after `timeout`.
fn client(
    url: &url::Url,
    addr: SocketAddr,
    timeout: Duration,
    verify_tls: bool,
) -> reqwest::Result<reqwest::Client> {
    let host = url.host_str().unwrap_or_default().to_string();
    reqwest::Client::builder()
        // No `HTTP(S)_PROXY`/`ALL_PROXY`: a proxy would resolve the name again, itself, and
        // reach whatever the checked address was not. (GitLab turns its DNS-rebinding
        // protection off when a proxy is set; Pipewright connects directly instead.)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .danger_accept_invalid_certs(!verify_tls)
        .resolve(&host, addr)
        .build()
}

/// Why [`fetch`] got no text.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchError {
    Blocked(Blocked),
    Timeout,
    /// No connection, or the connection broke.
    Socket,
    /// An answer of 400 or more (or a redirect left unanswered).
    Status(u16),
    /// A redirect to another host (or one with no usable `Location`).
    Redirect,
    TooLarge(usize),
    NotText,
}

/// Redirects [`fetch`] follows, each to the same host (and each checked again).
const MAX_REDIRECTS: usize = 3;

/// GETs `url` as text, with the hook checks (scheme, every address of the host, local
/// addresses only when `allow_local`), within `timeout`, reading at most `max_bytes`.
/// Redirects are followed only to the same host and port, at most [`MAX_REDIRECTS`].
pub async fn fetch(
    url: &str,
    allow_local: bool,
    timeout: Duration,
    max_bytes: usize,
) -> Result<String, FetchError> {
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let (parsed, addr) = resolve(&current, allow_local)
            .await
            .map_err(FetchError::Blocked)?;
        let client = client(&parsed, addr, timeout, true).map_err(|_| FetchError::Socket)?;
        let started = Instant::now();
        let mut res = client
            .get(parsed.clone())
            .header(
                "User-Agent",
                concat!("GitLab/", env!("CARGO_PKG_VERSION"), " (Pipewright)"),
            )
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    FetchError::Timeout
                } else {
                    FetchError::Socket
                }
            })?;
        let status = res.status();
        if status.is_redirection() {
            current = same_host_redirect(&parsed, &res).ok_or(FetchError::Redirect)?;
            continue;
        }
        if status.as_u16() >= 400 {
            return Err(FetchError::Status(status.as_u16()));
        }
        let mut body = Vec::new();
        loop {
            // The client's timeout covers the body too; this keeps a trickle within it.
            let left = timeout.saturating_sub(started.elapsed());
            let chunk = match tokio::time::timeout(left, res.chunk()).await {
                Err(_) => return Err(FetchError::Timeout),
                Ok(Err(e)) if e.is_timeout() => return Err(FetchError::Timeout),
                Ok(Err(_)) => return Err(FetchError::Socket),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            if body.len() + chunk.len() > max_bytes {
                return Err(FetchError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        return String::from_utf8(body).map_err(|_| FetchError::NotText);
    }
    Err(FetchError::Redirect)
}

/// Where a redirect leads, if it stays on the same scheme, host and port.
fn same_host_redirect(from: &url::Url, res: &reqwest::Response) -> Option<String> {
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    let to = from.join(location).ok()?;
    (to.scheme() == from.scheme()
        && to.host_str() == from.host_str()
        && to.port_or_known_default() == from.port_or_known_default())
    .then(|| to.to_string())
}

/// One attempt at one delivery.
pub async fn send(state: &AppState, delivery: &HookDelivery, allow_local: bool) -> DeliveryAttempt {
    let hook = match state.store.project_hook_by_id(delivery.hook_id).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            return DeliveryAttempt {
                state: "failed".into(),
                next_attempt_at: Timestamp::now(),
                response_status: None,
                response_body: None,
                duration_ms: None,
                error: Some("the hook was deleted".into()),
            };
        }
        Err(e) => return failed_attempt(state, delivery, e.to_string(), None, None, None),
    };
    let (url, addr) = match resolve(&hook.url, allow_local).await {
        Ok(ok) => ok,
        Err(blocked) => {
            let mut attempt = failed_attempt(
                state,
                delivery,
                format!("URL {}", blocked.message()),
                None,
                None,
                None,
            );
            // A blocked address will not become allowed by waiting.
            if blocked != Blocked::Unresolvable {
                attempt.state = "failed".into();
            }
            return attempt;
        }
    };
    let client = match client(&url, addr, TIMEOUT, hook.enable_ssl_verification) {
        Ok(c) => c,
        Err(e) => return failed_attempt(state, delivery, e.to_string(), None, None, None),
    };
    let mut request = client
        .post(url)
        .header("Content-Type", "application/json")
        .header(
            "User-Agent",
            concat!("GitLab/", env!("CARGO_PKG_VERSION"), " (Pipewright)"),
        )
        .header("X-Gitlab-Event", &delivery.event)
        .header("X-Gitlab-Event-UUID", &delivery.uuid)
        .header("X-Gitlab-Webhook-UUID", &delivery.uuid)
        .header("X-Gitlab-Instance", &state.config.external_url)
        .body(delivery.payload.clone());
    if let Some(sealed) = &hook.token_sealed
        && let Ok(token) = state.sealer.open(Purpose::HookToken, sealed)
    {
        request = request.header("X-Gitlab-Token", token);
    }
    let started = Instant::now();
    let result = request.send().await;
    let ms = started.elapsed().as_millis() as i64;
    match result {
        Err(e) => failed_attempt(
            state,
            delivery,
            if e.is_timeout() {
                "the request timed out".into()
            } else {
                format!("{}", e.without_url())
            },
            None,
            None,
            Some(ms),
        ),
        Ok(mut res) => {
            let status = i64::from(res.status().as_u16());
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_RESPONSE_BYTES {
                    break;
                }
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            if res.status().is_success() {
                DeliveryAttempt {
                    state: "delivered".into(),
                    next_attempt_at: Timestamp::now(),
                    response_status: Some(status),
                    response_body: Some(body),
                    duration_ms: Some(ms),
                    error: None,
                }
            } else {
                failed_attempt(
                    state,
                    delivery,
                    format!("HTTP {status}"),
                    Some(status),
                    Some(body),
                    Some(ms),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_judged_by_where_they_lead() {
        let reach_of = |ip: &str| reach(ip.parse().unwrap());
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ] {
            assert_eq!(reach_of(ip), Reach::Local, "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "0.0.0.1",
            "0.255.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:0.0.0.1",
            "::ffff:224.0.0.1",
            "64:ff9b::e000:1",
            "2002:e000:1::",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "ff02::1",
            "ff0e::1",
            "4000::1",
        ] {
            assert_eq!(reach_of(ip), Reach::Never, "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(reach_of(ip), Reach::Public, "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_before_use() {
        assert_eq!(
            resolve("ftp://example.com/", true).await.err(),
            Some(Blocked::Invalid)
        );
        assert_eq!(
            resolve("not a url", true).await.err(),
            Some(Blocked::Invalid)
        );
        assert_eq!(
            resolve("http://127.0.0.1:9/hook", false).await.err(),
            Some(Blocked::Local)
        );
        assert_eq!(
            resolve("http://[::1]:9/hook", false).await.err(),
            Some(Blocked::Local)
        );
        assert_eq!(
            resolve("http://localhost:9/hook", false).await.err(),
            Some(Blocked::Local)
        );
        assert!(resolve("http://127.0.0.1:9/hook", true).await.is_ok());
        // Special-purpose addresses stay refused with local requests allowed.
        for url in [
            "http://0.0.0.1/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
            "http://[::127.0.0.1]/",
            "http://255.255.255.255/",
        ] {
            assert_eq!(
                resolve(url, true).await.err(),
                Some(Blocked::SpecialPurpose),
                "{url}"
            );
        }
    }
}
