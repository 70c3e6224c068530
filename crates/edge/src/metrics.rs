//! The edge's own metrics: agents, endpoints, connects and their failures, proxied
//! connections, HTTP requests by status class, bytes, heartbeat latency, and per-endpoint
//! traffic — kept in relaxed atomics and written out in the OpenMetrics text format.
//!
//! The hot path never locks or allocates: each tunnel resolves its [`Meter`] (its endpoint
//! series and its usage counters) once at bind, and every chunk of bytes is one or two relaxed
//! atomic adds. Gauges (agents online, endpoints) are read from the session registry and the
//! route table when metrics are encoded. Edge-wide byte totals are the sum of the endpoint
//! series, so a byte is counted once.
//!
//! Per-endpoint series are capped at [`crate::config::EdgeConfig::max_endpoint_series`]
//! distinct endpoints; later endpoints share the series labelled [`OVERFLOW_LABEL`]. Series are
//! never removed (they are counters), so the cap bounds memory for the life of the process.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warren_events::EndpointUsage;

use crate::tunnel::Proto;

/// The `endpoint` label shared by every endpoint past the series cap.
pub const OVERFLOW_LABEL: &str = "_overflow";

/// Upper bounds (seconds) of the heartbeat latency histogram's buckets.
pub const HEARTBEAT_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why an agent connection did not become a session (the bounded `reason` label set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The TLS handshake failed.
    TlsHandshake,
    /// TLS plus Auth did not finish in time.
    HandshakeTimeout,
    /// Auth carried no authtoken.
    AuthMissing,
    /// The Auth body or the authtoken was malformed.
    AuthMalformed,
    /// The authtoken is unknown or revoked, or its ACL is unreadable.
    AuthInvalid,
    /// The credential's service-user owner is inactive.
    OwnerInactive,
    /// An `agent` IP restriction refused the agent's address.
    IpRestricted,
    /// The credential already has the most sessions it may have.
    SessionLimit,
    /// The credential was revoked while the agent authenticated.
    Revoked,
    /// The edge failed (store unavailable).
    Internal,
    /// The connection ended before Auth.
    Disconnected,
}

impl ConnectFailure {
    /// Every reason, in label order.
    pub const ALL: [ConnectFailure; 11] = [
        ConnectFailure::TlsHandshake,
        ConnectFailure::HandshakeTimeout,
        ConnectFailure::AuthMissing,
        ConnectFailure::AuthMalformed,
        ConnectFailure::AuthInvalid,
        ConnectFailure::OwnerInactive,
        ConnectFailure::IpRestricted,
        ConnectFailure::SessionLimit,
        ConnectFailure::Revoked,
        ConnectFailure::Internal,
        ConnectFailure::Disconnected,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectFailure::TlsHandshake => "tls_handshake",
            ConnectFailure::HandshakeTimeout => "handshake_timeout",
            ConnectFailure::AuthMissing => "auth_missing",
            ConnectFailure::AuthMalformed => "auth_malformed",
            ConnectFailure::AuthInvalid => "auth_invalid",
            ConnectFailure::OwnerInactive => "owner_inactive",
            ConnectFailure::IpRestricted => "ip_restricted",
            ConnectFailure::SessionLimit => "session_limit",
            ConnectFailure::Revoked => "revoked",
            ConnectFailure::Internal => "internal",
            ConnectFailure::Disconnected => "disconnected",
        }
    }

    fn index(self) -> usize {
        ConnectFailure::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0)
    }
}

const PROTOS: [Proto; 4] = [Proto::Http, Proto::Https, Proto::Tcp, Proto::Tls];

fn proto_index(proto: Proto) -> usize {
    match proto {
        Proto::Http => 0,
        Proto::Https => 1,
        Proto::Tcp => 2,
        Proto::Tls => 3,
    }
}

/// Traffic counters of one endpoint label.
#[derive(Debug, Default)]
pub(crate) struct EndpointSeries {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    requests: AtomicU64,
    connections: AtomicU64,
}

/// What one tunnel bumps: its endpoint series and, when events are attached, its usage
/// counters. Resolved once at bind.
#[derive(Debug)]
pub(crate) struct Meter {
    series: Arc<EndpointSeries>,
    usage: Option<Arc<EndpointUsage>>,
    proxied: Arc<Metrics>,
    proto: usize,
}

impl Meter {
    /// Bytes from a visitor toward the agent.
    #[inline]
    pub(crate) fn bytes_in(&self, n: u64) {
        self.series.bytes_in.fetch_add(n, Ordering::Relaxed);
        if let Some(usage) = &self.usage {
            usage.bytes_in(n);
        }
    }

    /// Bytes from the agent toward a visitor.
    #[inline]
    pub(crate) fn bytes_out(&self, n: u64) {
        self.series.bytes_out.fetch_add(n, Ordering::Relaxed);
        if let Some(usage) = &self.usage {
            usage.bytes_out(n);
        }
    }

    /// One HTTP request routed to the endpoint.
    pub(crate) fn request(&self) {
        self.series.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(usage) = &self.usage {
            usage.request();
        }
    }

    /// One proxy stream opened to the agent.
    pub(crate) fn connection(&self) {
        self.series.connections.fetch_add(1, Ordering::Relaxed);
        self.proxied.proxied[self.proto].fetch_add(1, Ordering::Relaxed);
        if let Some(usage) = &self.usage {
            usage.connection();
        }
    }
}

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; HEARTBEAT_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = HEARTBEAT_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(HEARTBEAT_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Per-endpoint series, by endpoint URL, up to the cap.
#[derive(Debug)]
struct EndpointSeriesMap {
    cap: usize,
    by_url: HashMap<String, Arc<EndpointSeries>>,
    overflow: Arc<EndpointSeries>,
}

/// Every edge metric that is counted (gauges are read when encoding).
#[derive(Debug)]
pub(crate) struct Metrics {
    connects: AtomicU64,
    connect_failures: [AtomicU64; ConnectFailure::ALL.len()],
    proxied: [AtomicU64; PROTOS.len()],
    /// HTTP responses by status class, 1xx..5xx.
    http_status: [AtomicU64; 5],
    heartbeat: Histogram,
    endpoints: Mutex<EndpointSeriesMap>,
}

/// The gauges, read from live state by the caller of [`Metrics::encode`].
pub(crate) struct Gauges {
    pub(crate) agents_online: usize,
    /// Bound endpoints per protocol, indexed like [`Proto`]'s variants.
    pub(crate) endpoints: [usize; 4],
}

impl Gauges {
    /// Counts one bound endpoint of `proto`.
    pub(crate) fn endpoint(&mut self, proto: Proto) {
        self.endpoints[proto_index(proto)] += 1;
    }
}

impl Metrics {
    /// Metrics with at most `max_endpoint_series` distinct endpoint labels.
    pub(crate) fn new(max_endpoint_series: usize) -> Metrics {
        Metrics {
            connects: AtomicU64::new(0),
            connect_failures: Default::default(),
            proxied: Default::default(),
            http_status: Default::default(),
            heartbeat: Histogram::default(),
            endpoints: Mutex::new(EndpointSeriesMap {
                cap: max_endpoint_series,
                by_url: HashMap::new(),
                overflow: Arc::new(EndpointSeries::default()),
            }),
        }
    }

    /// The meter for a tunnel bound at `url`: the URL's series (the same one again for a
    /// rebind), or the shared overflow series past the cap.
    pub(crate) fn meter(
        self: &Arc<Self>,
        url: &str,
        proto: Proto,
        usage: Option<Arc<EndpointUsage>>,
    ) -> Meter {
        let series = {
            let mut map = self.endpoints.lock().expect("endpoint series lock");
            match map.by_url.get(url) {
                Some(series) => series.clone(),
                None if map.by_url.len() < map.cap => {
                    let series = Arc::new(EndpointSeries::default());
                    map.by_url.insert(url.to_owned(), series.clone());
                    series
                }
                None => map.overflow.clone(),
            }
        };
        Meter {
            series,
            usage,
            proxied: self.clone(),
            proto: proto_index(proto),
        }
    }

    /// An agent session was registered.
    pub(crate) fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    /// An agent connection failed to become a session.
    pub(crate) fn connect_failed(&self, reason: ConnectFailure) {
        self.connect_failures[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The edge answered an HTTP request with `status` (the agent's or its own).
    pub(crate) fn http_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.http_status[class].fetch_add(1, Ordering::Relaxed);
    }

    /// A heartbeat probe was answered after `rtt`.
    pub(crate) fn heartbeat(&self, rtt: Duration) {
        self.heartbeat.observe(rtt);
    }

    /// Appends every family in the OpenMetrics text format (without `# EOF`).
    pub(crate) fn encode(&self, gauges: &Gauges, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        family(
            out,
            "warren_agents_online",
            "gauge",
            "Agent sessions connected to this edge.",
        );
        let _ = writeln!(out, "warren_agents_online {}", gauges.agents_online);

        family(
            out,
            "warren_endpoints",
            "gauge",
            "Endpoints bound on this edge, by protocol.",
        );
        for proto in PROTOS {
            let _ = writeln!(
                out,
                "warren_endpoints{{proto=\"{proto}\"}} {}",
                gauges.endpoints[proto_index(proto)]
            );
        }

        family(
            out,
            "warren_agent_connects",
            "counter",
            "Agent connections that authenticated and became sessions.",
        );
        let _ = writeln!(out, "warren_agent_connects_total {}", load(&self.connects));

        family(
            out,
            "warren_agent_connect_failures",
            "counter",
            "Agent connections that did not become sessions, by reason.",
        );
        for reason in ConnectFailure::ALL {
            let _ = writeln!(
                out,
                "warren_agent_connect_failures_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                load(&self.connect_failures[reason.index()])
            );
        }

        family(
            out,
            "warren_proxied_connections",
            "counter",
            "Proxy streams opened to agents for visitor connections, by endpoint protocol.",
        );
        for proto in PROTOS {
            let _ = writeln!(
                out,
                "warren_proxied_connections_total{{proto=\"{proto}\"}} {}",
                load(&self.proxied[proto_index(proto)])
            );
        }

        family(
            out,
            "warren_http_requests",
            "counter",
            "HTTP requests answered on the public ports (the agent's responses and the edge's own error pages), by status class.",
        );
        for (i, count) in self.http_status.iter().enumerate() {
            let _ = writeln!(
                out,
                "warren_http_requests_total{{status_class=\"{}xx\"}} {}",
                i + 1,
                load(count)
            );
        }

        let (series, overflow) = {
            let map = self.endpoints.lock().expect("endpoint series lock");
            let mut series: Vec<(String, Arc<EndpointSeries>)> = map
                .by_url
                .iter()
                .map(|(url, s)| (url.clone(), s.clone()))
                .collect();
            series.sort_by(|a, b| a.0.cmp(&b.0));
            (series, map.overflow.clone())
        };
        let all = || {
            series
                .iter()
                .map(|(url, s)| (url.as_str(), s.as_ref()))
                .chain(std::iter::once((OVERFLOW_LABEL, overflow.as_ref())))
        };
        let total_in: u64 = all().map(|(_, s)| load(&s.bytes_in)).sum();
        let total_out: u64 = all().map(|(_, s)| load(&s.bytes_out)).sum();
        family(
            out,
            "warren_bytes_in",
            "counter",
            "Bytes from visitors toward agents, through every endpoint.",
        );
        let _ = writeln!(out, "warren_bytes_in_total {total_in}");
        family(
            out,
            "warren_bytes_out",
            "counter",
            "Bytes from agents toward visitors, through every endpoint.",
        );
        let _ = writeln!(out, "warren_bytes_out_total {total_out}");

        family(
            out,
            "warren_heartbeat_latency_seconds",
            "histogram",
            "Round-trip time of the edge's heartbeat probes to agents.",
        );
        let mut cumulative = 0;
        for (i, le) in HEARTBEAT_BUCKETS.iter().enumerate() {
            cumulative += load(&self.heartbeat.buckets[i]);
            let _ = writeln!(
                out,
                "warren_heartbeat_latency_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += load(&self.heartbeat.buckets[HEARTBEAT_BUCKETS.len()]);
        let _ = writeln!(
            out,
            "warren_heartbeat_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = Duration::from_nanos(load(&self.heartbeat.sum_nanos)).as_secs_f64();
        let _ = writeln!(out, "warren_heartbeat_latency_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "warren_heartbeat_latency_seconds_count {}",
            load(&self.heartbeat.count)
        );

        type Pick = fn(&EndpointSeries) -> &AtomicU64;
        let per_endpoint: [(&str, &str, Pick); 4] = [
            (
                "warren_endpoint_bytes_in",
                "Bytes from visitors toward the agent, per endpoint.",
                |s| &s.bytes_in,
            ),
            (
                "warren_endpoint_bytes_out",
                "Bytes from the agent toward visitors, per endpoint.",
                |s| &s.bytes_out,
            ),
            (
                "warren_endpoint_requests",
                "HTTP requests routed to the endpoint.",
                |s| &s.requests,
            ),
            (
                "warren_endpoint_connections",
                "Proxy streams opened to the endpoint's agent.",
                |s| &s.connections,
            ),
        ];
        for (name, help, pick) in per_endpoint {
            family(out, name, "counter", help);
            for (label, s) in all() {
                out.push_str(name);
                out.push_str("_total{endpoint=\"");
                escape_label(label, out);
                let _ = writeln!(out, "\"}} {}", load(pick(s)));
            }
        }
    }
}

/// Writes a family's TYPE and HELP lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "# HELP {name} {help}");
}

/// Appends `value` escaped for an OpenMetrics label value.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_series_are_capped_and_shared_past_the_cap() {
        let metrics = Arc::new(Metrics::new(2));
        let a = metrics.meter("http://a", Proto::Http, None);
        let a2 = metrics.meter("http://a", Proto::Http, None);
        let b = metrics.meter("tcp://b:1", Proto::Tcp, None);
        let c = metrics.meter("http://c", Proto::Http, None);
        let d = metrics.meter("http://d\"x", Proto::Http, None);
        a.bytes_in(3);
        a2.bytes_in(4);
        b.bytes_out(5);
        b.connection();
        c.request();
        d.request();
        let mut out = String::new();
        metrics.encode(
            &Gauges {
                agents_online: 1,
                endpoints: [1, 0, 1, 0],
            },
            &mut out,
        );
        assert!(
            out.contains("warren_endpoint_bytes_in_total{endpoint=\"http://a\"} 7\n"),
            "{out}"
        );
        assert!(out.contains("warren_endpoint_bytes_out_total{endpoint=\"tcp://b:1\"} 5\n"));
        assert!(out.contains("warren_endpoint_requests_total{endpoint=\"_overflow\"} 2\n"));
        assert!(!out.contains("http://c"), "{out}");
        assert!(out.contains("warren_bytes_in_total 7\n"));
        assert!(out.contains("warren_proxied_connections_total{proto=\"tcp\"} 1\n"));
        assert!(out.contains("warren_endpoints{proto=\"http\"} 1\n"));
        assert!(out.contains("warren_agents_online 1\n"));
    }

    #[test]
    fn status_classes_histogram_and_escaping() {
        let metrics = Metrics::new(10);
        for status in [101, 200, 204, 404, 502, 999] {
            metrics.http_response(status);
        }
        metrics.heartbeat(Duration::from_micros(1500));
        metrics.heartbeat(Duration::from_secs(60));
        metrics.connect_failed(ConnectFailure::AuthInvalid);
        let mut out = String::new();
        metrics.encode(
            &Gauges {
                agents_online: 0,
                endpoints: [0; 4],
            },
            &mut out,
        );
        assert!(out.contains("warren_http_requests_total{status_class=\"2xx\"} 2\n"));
        assert!(out.contains("warren_http_requests_total{status_class=\"5xx\"} 2\n"));
        assert!(out.contains("warren_heartbeat_latency_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(out.contains("warren_heartbeat_latency_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(out.contains("warren_heartbeat_latency_seconds_bucket{le=\"10\"} 1\n"));
        assert!(out.contains("warren_heartbeat_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(out.contains("warren_heartbeat_latency_seconds_count 2\n"));
        assert!(out.contains("warren_agent_connect_failures_total{reason=\"auth_invalid\"} 1\n"));
        let mut escaped = String::new();
        escape_label("a\\b\"c\nd", &mut escaped);
        assert_eq!(escaped, "a\\\\b\\\"c\\nd");
    }
}
