//! The client's address: the TCP peer's, or, when the peer is a trusted reverse proxy
//! (`--trusted-proxies`), the address the proxies say they forwarded for in `X-Forwarded-For`.
//! A middleware over every route works it out once and leaves it in the request's extensions
//! ([`ClientAddress`]); everything that counts or checks by address (sign-in and sign-up
//! throttling, the monitoring allowlist) reads it from there with [`client_ip`].
//!
//! The walk is Rails' `ActionDispatch::RemoteIp` (GitLab: config/initializers/trusted_proxies.rb
//! feeds `gitlab.trusted_proxies` to it; Rails: actionpack/lib/action_dispatch/middleware/
//! remote_ip.rb, `GetIp#calculate_ip`): read `X-Forwarded-For` from the right, drop trusted
//! proxies, and take the first address that is not one. Each proxy appends the address it
//! received the request from, so the rightmost untrusted entry is the last one a proxy we trust
//! wrote; everything to its left came from the client and is never believed.
//!
//! Where this differs from Rails, it is safer:
//! - the header is read only when the TCP peer is itself a trusted proxy (Rails reads it from
//!   anyone, which lets a client that reaches the server directly choose its address);
//! - the default list is empty (GitLab trusts `127.0.0.1` and `::1` always): on one host the
//!   embedded runner's jobs connect from loopback too, and must not choose their address;
//! - a malformed entry ends the walk at the last trusted hop (Rails skips it and reads on to
//!   the left, into what the client wrote);
//! - `Client-IP` and `Forwarded` (RFC 7239) are not read, only `X-Forwarded-For`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, header::HeaderName};

/// At most this many `X-Forwarded-For` entries are read (from the right): more proxies than
/// this in a row is not a real deployment, and the walk stays cheap whatever a client sends.
const MAX_HOPS: usize = 16;

/// An entry longer than this is not an address (the longest IPv6 text form is 45 bytes).
const MAX_ENTRY_BYTES: usize = 64;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A set of addresses and CIDR ranges: the trusted proxies, the monitoring allowlist.
#[derive(Debug, Clone, Default)]
pub struct IpRanges(Vec<ipnet::IpNet>);

impl IpRanges {
    /// `127.0.0.0/8` and `::1`.
    pub fn loopback() -> Self {
        IpRanges(vec![
            ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
                std::net::Ipv4Addr::new(127, 0, 0, 0),
                8,
            )),
            ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
                std::net::Ipv6Addr::LOCALHOST,
                128,
            )),
        ])
    }

    /// A comma-separated list of addresses and CIDR ranges (`10.0.0.0/8,::1`). An address
    /// alone is a range of one.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let range = match item.parse::<ipnet::IpNet>() {
                Ok(net) => net,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| format!("not an address or CIDR range: {item:?}"))?,
            };
            ranges.push(range);
        }
        Ok(IpRanges(ranges))
    }

    /// Whether `addr` is in one of the ranges. An IPv4 client on a dual-stack socket
    /// (`::ffff:127.0.0.1`) is checked as its IPv4 address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client's address, as the middleware worked it out (absent when the server runs
/// without connection info, as in-process tests do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The client's address of a request the middleware has seen.
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ClientAddress>()
        .map(|ClientAddress(ip)| *ip)
}

/// The middleware: works the client's address out from the TCP peer and the
/// `X-Forwarded-For` headers, and stores it in the request's extensions. Its state is the
/// configuration's `trusted_proxies` (not `AppState`: the state module names this one).
pub async fn resolve(
    State(trusted): State<Arc<IpRanges>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let forwarded = req.headers().get_all(&X_FORWARDED_FOR).iter();
        let client = client_address(peer, forwarded, &trusted);
        req.extensions_mut().insert(ClientAddress(client));
    }
    next.run(req).await
}

/// The client's address for a request from `peer` carrying the `X-Forwarded-For` header
/// lines `forwarded` (in the order received). IPv4-mapped IPv6 addresses come out as IPv4.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    trusted: &IpRanges,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    // Several header lines are one list, in order (RFC 9110 §5.3): the last line's last entry
    // is the nearest hop.
    let entries = forwarded
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|b| *b == b','));
    let mut last_trusted = peer;
    for entry in entries.take(MAX_HOPS) {
        let Some(hop) = parse_entry(entry) else {
            return last_trusted;
        };
        if !trusted.contains(hop) {
            return hop;
        }
        last_trusted = hop;
    }
    // Every hop we read is a trusted proxy: the farthest one is the best we know (Rails takes
    // the leftmost entry then too).
    last_trusted
}

/// One `X-Forwarded-For` entry: an address alone, spaces around it allowed; anything else
/// (a port, a host name, `unknown`, an empty entry) is `None`.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    if entry.len() > MAX_ENTRY_BYTES {
        return None;
    }
    let text = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The client address for `peer` with these header lines, trusting `trusted`.
    fn walk(peer: &str, lines: &[&[u8]], trusted: &str) -> IpAddr {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_bytes(l).unwrap())
            .collect();
        client_address(ip(peer), values.iter(), &IpRanges::parse(trusted).unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(walk("127.0.0.1", &[b"203.0.113.5"], ""), ip("127.0.0.1"));
        // A peer that is not a trusted proxy cannot choose its address either.
        assert_eq!(
            walk("198.51.100.7", &[b"203.0.113.5"], "127.0.0.1/32"),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        assert_eq!(
            walk("127.0.0.1", &[b"203.0.113.5"], "127.0.0.1/32"),
            ip("203.0.113.5")
        );
        // No header from a trusted proxy: the proxy is all we know.
        assert_eq!(walk("127.0.0.1", &[], "127.0.0.1/32"), ip("127.0.0.1"));
    }

    #[test]
    fn a_client_cannot_choose_its_address_through_a_trusted_proxy() {
        // The client sent `X-Forwarded-For: 10.9.9.9, 192.0.2.1`; the proxy appended the
        // address it saw. The rightmost untrusted entry is the proxy's word.
        assert_eq!(
            walk(
                "127.0.0.1",
                &[b"10.9.9.9, 192.0.2.1, 203.0.113.5"],
                "127.0.0.1"
            ),
            ip("203.0.113.5")
        );
        // Claiming to be a trusted proxy itself does not help: the real hop is still to the right.
        assert_eq!(
            walk("127.0.0.1", &[b"127.0.0.1, 203.0.113.5"], "127.0.0.1"),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        // client → CDN (10.0.0.2) → load balancer (10.0.0.3) → nginx (127.0.0.1) → us.
        assert_eq!(
            walk(
                "127.0.0.1",
                &[b"198.51.100.1, 203.0.113.5, 10.0.0.2", b"10.0.0.3"],
                "127.0.0.1, 10.0.0.0/8"
            ),
            ip("203.0.113.5")
        );
        // Only proxies: the farthest one.
        assert_eq!(
            walk(
                "127.0.0.1",
                &[b"10.0.0.2,10.0.0.3"],
                "127.0.0.1, 10.0.0.0/8"
            ),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn a_malformed_entry_ends_the_walk_at_the_last_trusted_hop() {
        let trusted = "127.0.0.1, 10.0.0.0/8";
        for (bad, hop) in [
            (&b"203.0.113.5, 10.0.0.2:8080"[..], "127.0.0.1"),
            (b"203.0.113.5, unknown", "127.0.0.1"),
            (b"203.0.113.5, ", "127.0.0.1"),
            (b"203.0.113.5, 10.0.0.3 10.0.0.4", "127.0.0.1"),
            (b"203.0.113.5, \xff\xfe", "127.0.0.1"),
            (b"203.0.113.5, fe80::1%eth0", "127.0.0.1"),
            // The trusted hop before the bad entry, never the client-written one past it.
            (b"203.0.113.5,,10.0.0.3", "10.0.0.3"),
        ] {
            let what = String::from_utf8_lossy(bad);
            assert_eq!(walk("127.0.0.1", &[bad], trusted), ip(hop), "{what}");
        }
        // Garbage to the left of the client's entry is never read.
        assert_eq!(
            walk("127.0.0.1", &[b"\xff<script>, 203.0.113.5"], trusted),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_walk_is_bounded() {
        let long = vec!["10.0.0.1"; 10_000].join(",");
        let line = format!("203.0.113.5,{long}");
        // Past MAX_HOPS trusted hops the walk stops at the farthest one it read.
        assert_eq!(
            walk("127.0.0.1", &[line.as_bytes()], "127.0.0.1, 10.0.0.0/8"),
            ip("10.0.0.1")
        );
        let huge = format!("{}, 203.0.113.5", "9".repeat(100_000));
        assert_eq!(
            walk("127.0.0.1", &[huge.as_bytes()], "127.0.0.1"),
            ip("203.0.113.5")
        );
        let huge_entry = format!("203.0.113.5, {}", "1".repeat(1_000));
        assert_eq!(
            walk("127.0.0.1", &[huge_entry.as_bytes()], "127.0.0.1"),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        assert_eq!(
            walk("::ffff:127.0.0.1", &[b"::ffff:203.0.113.5"], "127.0.0.1"),
            ip("203.0.113.5")
        );
        assert_eq!(walk("::1", &[b"2001:db8::5"], "::1"), ip("2001:db8::5"));
    }

    #[test]
    fn ranges_parse_addresses_and_cidrs() {
        let list = IpRanges::parse("10.0.0.0/8, 192.168.1.7, ::1").unwrap();
        assert!(list.contains(ip("10.1.2.3")));
        assert!(list.contains(ip("192.168.1.7")));
        assert!(list.contains(ip("::ffff:10.1.2.3")));
        assert!(!list.contains(ip("192.168.1.8")));
        assert!(IpRanges::parse("10.0.0.0/33").is_err());
        assert!(IpRanges::parse("localhost").is_err());
        assert!(IpRanges::parse("").unwrap().is_empty());
    }
}
