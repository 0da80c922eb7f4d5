//! The server's metrics, served at `GET /-/metrics` in the OpenMetrics text format Prometheus
//! scrapes (`prometheus-client`, the Prometheus project's Rust client).
//!
//! Counters and histograms are updated where things happen (a request, a pipeline created, a
//! trigger answered, a job finished or claimed, a webhook delivered); gauges that describe
//! the database's state (pending jobs, queued webhook deliveries, pool connections) and the
//! process's memory are read when a scrape asks. Labels are bounded sets only: HTTP requests
//! are labelled by the route table's template (`/api/v4/projects/{id}/trigger/pipeline`),
//! never the raw path, so a scanner cannot create a series per URL.
//!
//! Who may scrape: addresses in the monitoring allowlist (`--monitoring-allowlist`, loopback by
//! default), as GitLab's `monitoring.ip_whitelist`; everyone else gets a 404. GitLab:
//! app/controllers/concerns/requires_allowlisted_monitoring_client.rb (`render_404 unless
//! client_ip_allowlisted?`, IPv4 entries also matched as IPv4-mapped IPv6). GitLab's other
//! way in, the health-check access token, is not implemented. The address is the client's
//! (`client_address`): the TCP peer's, or behind a proxy in `--trusted-proxies`, the forwarded one.

use std::net::IpAddr;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::client_address::IpRanges;

/// A metric's labels: a few fixed names, each with a value from a bounded set.
type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets from 5 ms to about 82 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Everything `/-/metrics` reports. One per server process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<Labels, Counter>,
    http_duration: HistogramFamily,
    pipelines_created: Family<Labels, Counter>,
    trigger_requests: Family<Labels, Counter>,
    jobs_finished: Family<Labels, Counter>,
    queue_wait: Histogram,
    long_polls: Gauge,
    webhook_deliveries: Family<Labels, Counter>,
    pending_jobs: Gauge,
    webhook_queue: Gauge,
    db_connections: Family<Labels, Gauge>,
    resident_memory: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("pipewright"),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            pipelines_created: Family::default(),
            trigger_requests: Family::default(),
            jobs_finished: Family::default(),
            queue_wait: latency_histogram(),
            long_polls: Gauge::default(),
            webhook_deliveries: Family::default(),
            pending_jobs: Gauge::default(),
            webhook_queue: Gauge::default(),
            db_connections: Family::default(),
            resident_memory: Gauge::default(),
        };
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            self.http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "HTTP request latency by route template and method",
            Unit::Seconds,
            self.http_duration.clone(),
        );
        r.register(
            "pipelines_created",
            "Pipelines created, by source",
            self.pipelines_created.clone(),
        );
        r.register(
            "trigger_requests",
            "Trigger requests (POST /projects/:id/trigger/pipeline, signed webhooks) by outcome",
            self.trigger_requests.clone(),
        );
        r.register(
            "jobs_finished",
            "Jobs that reached a final status, by status",
            self.jobs_finished.clone(),
        );
        r.register_with_unit(
            "job_queue_wait",
            "Time from a job becoming pending to a runner claiming it",
            Unit::Seconds,
            self.queue_wait.clone(),
        );
        r.register(
            "runner_long_polls_in_flight",
            "Runners' job requests waiting for a job",
            self.long_polls.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome",
            self.webhook_deliveries.clone(),
        );
        r.register(
            "jobs_pending",
            "Jobs waiting for a runner (queue depth)",
            self.pending_jobs.clone(),
        );
        r.register(
            "webhook_deliveries_queued",
            "Webhook deliveries waiting to be sent or retried",
            self.webhook_queue.clone(),
        );
        r.register(
            "database_connections",
            "Database pool connections, by state (idle, in_use)",
            self.db_connections.clone(),
        );
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory of the server process",
            Unit::Bytes,
            self.resident_memory.clone(),
        );
    }

    /// One HTTP request: its route template (`None`: no route matched), method, status and
    /// how long it took.
    pub fn http_request(&self, route: Option<&str>, method: &str, status: u16, took: Duration) {
        let route = route.unwrap_or("unmatched").to_string();
        // HTTP allows any token as a method: only the standard ones get a series of their own.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        }
        .to_string();
        self.http_requests
            .get_or_create(&vec![
                ("route", route.clone()),
                ("method", method.clone()),
                ("status", status.to_string()),
            ])
            .inc();
        self.http_duration
            .get_or_create(&vec![("route", route), ("method", method)])
            .observe(took.as_secs_f64());
    }

    pub fn pipeline_created(&self, source: &str) {
        self.pipelines_created
            .get_or_create(&vec![("source", source.to_string())])
            .inc();
    }

    /// A trigger request's outcome: `created`, `not_found`, `bad_ref`, `rate_limited`,
    /// `config_error`, `rejected` or `error`.
    pub fn trigger_request(&self, outcome: &'static str) {
        self.trigger_requests
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    pub fn job_finished(&self, status: &str) {
        self.jobs_finished
            .get_or_create(&vec![("status", status.to_string())])
            .inc();
    }

    /// A runner claimed a job that had waited `waited` since it became pending.
    pub fn job_claimed(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    /// A runner's long poll, counted while the returned guard lives.
    pub fn long_poll(&self) -> LongPoll {
        self.long_polls.inc();
        LongPoll(self.long_polls.clone())
    }

    /// A webhook delivery attempt's outcome (`delivered`, `pending` for a retry, `failed`).
    pub fn webhook_delivery(&self, outcome: &str) {
        self.webhook_deliveries
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    /// The gauges read at scrape time, then the whole registry as OpenMetrics text.
    pub fn encode(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        if let Some(n) = snapshot.pending_jobs {
            self.pending_jobs.set(n);
        }
        if let Some(n) = snapshot.queued_deliveries {
            self.webhook_queue.set(n);
        }
        if let Some((size, idle)) = snapshot.pool {
            self.db_connections
                .get_or_create(&vec![("state", "idle".to_string())])
                .set(i64::from(idle));
            self.db_connections
                .get_or_create(&vec![("state", "in_use".to_string())])
                .set(i64::from(size.saturating_sub(idle)));
        }
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(bytes);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What a scrape reads from the store (each `None` when it could not be read).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub pending_jobs: Option<i64>,
    pub queued_deliveries: Option<i64>,
    /// The pool's connections and how many of them are idle.
    pub pool: Option<(u32, u32)>,
}

/// Decrements the long-poll gauge when the request ends, however it ends.
pub struct LongPoll(Gauge);

impl Drop for LongPoll {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The process's resident set: `/proc/self/statm`'s second field, in pages of 4 KiB (the page
/// size of every Linux platform the binary is built for but a few 64 KiB-page arm64
/// kernels, where this under-reports; `/proc/self/status` `VmRSS` is read first for that).
fn resident_memory_bytes() -> Option<i64> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok());
        if let Some(kib) = kib {
            return Some(kib.saturating_mul(1024));
        }
    }
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(4096))
}

/// Who may scrape `/-/metrics`: a list of address ranges.
#[derive(Debug, Clone)]
pub struct Allowlist(IpRanges);

impl Default for Allowlist {
    /// Loopback only, as GitLab's default `monitoring.ip_whitelist` (`127.0.0.0/8`, `::1/128`).
    fn default() -> Self {
        Allowlist(IpRanges::loopback())
    }
}

impl Allowlist {
    /// A comma-separated list of addresses and CIDR ranges (`10.0.0.0/8,::1`). An address
    /// alone is a range of one.
    pub fn parse(list: &str) -> Result<Self, String> {
        IpRanges::parse(list).map(Allowlist)
    }

    /// Whether `addr` (the client's address, `client_address`) may scrape. An IPv4 client on
    /// a dual-stack socket (`::ffff:127.0.0.1`) is checked as its IPv4 address.
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.0.contains(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist_is_loopback_by_default_and_parses_ranges() {
        let default = Allowlist::default();
        for ok in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(default.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in ["10.0.0.1", "::2", "192.168.1.1"] {
            assert!(!default.allows(no.parse().unwrap()), "{no}");
        }
        let list = Allowlist::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        assert!(list.allows("10.1.2.3".parse().unwrap()));
        assert!(list.allows("192.168.1.7".parse().unwrap()));
        assert!(!list.allows("192.168.1.8".parse().unwrap()));
        assert!(!list.allows("127.0.0.1".parse().unwrap()));
        assert!(Allowlist::parse("10.0.0.0/33").is_err());
        assert!(Allowlist::parse("localhost").is_err());
        assert!(
            !Allowlist::parse("")
                .unwrap()
                .allows("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn requests_are_labelled_by_route_template() {
        let m = Metrics::new();
        m.http_request(
            Some("/api/v4/projects/{id}"),
            "GET",
            200,
            Duration::from_millis(3),
        );
        m.http_request(None, "GET", 404, Duration::from_millis(1));
        m.http_request(None, "BREW", 405, Duration::from_millis(1));
        let text = m.encode(&Snapshot::default()).unwrap();
        assert!(text.contains(
            "pipewright_http_requests_total{route=\"/api/v4/projects/{id}\",method=\"GET\",status=\"200\"} 1"
        ));
        assert!(text.contains("route=\"unmatched\""));
        assert!(text.contains("method=\"other\"") && !text.contains("BREW"));
        assert!(text.ends_with("# EOF\n"));
    }
}
