//! Edge settings and limits. Every limit the edge enforces is named here with its default.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Time allowed for an agent's TLS handshake plus its Auth RPC.
pub const AGENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for an RPC body to arrive once its stream is open.
pub const RPC_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most endpoints one agent session may bind (ERR_NGROK_324 past it).
pub const MAX_TUNNELS_PER_SESSION: usize = 100;
/// Default for the most concurrent agent sessions one credential may have.
pub const DEFAULT_MAX_SESSIONS_PER_CREDENTIAL: usize = 1_000;
/// Most concurrent agent sessions on one edge.
pub const MAX_AGENT_SESSIONS: usize = 20_000;
/// Most concurrent public visitor connections across all public ports.
pub const MAX_VISITOR_CONNECTIONS: usize = 20_000;
/// Time a visitor has to finish a TLS ClientHello or send complete HTTP request headers.
pub const VISITOR_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest HTTP/1 request head a visitor may send.
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;
/// Time the agent has to produce response headers for a proxied HTTP request.
pub const AGENT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time in-flight visitor connections get to finish when the edge drains.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of the edge's own heartbeat probes toward each agent.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Time without a heartbeat echo after which an agent session is declared dead.
pub const DEFAULT_HEARTBEAT_TOLERANCE: Duration = Duration::from_secs(15);

/// Default for the most distinct `endpoint` labels the per-endpoint metrics carry; endpoints
/// past it share the label `_overflow`.
pub const MAX_ENDPOINT_SERIES: usize = 1_000;

/// An inclusive TCP port range; `0-0` lets the operating system choose free ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// The OS chooses any free port.
    pub const ANY: PortRange = PortRange { first: 0, last: 0 };

    /// Parses `20000-20999`, a single port, or `0` (any).
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let bad = || format!("invalid port range {s:?}: expected FIRST-LAST, e.g. 20000-20999");
        let (first, last) = match s.trim().split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s.trim(), s.trim()),
        };
        let first: u16 = first.parse().map_err(|_| bad())?;
        let last: u16 = last.parse().map_err(|_| bad())?;
        if first > last || (first == 0 && last != 0) {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }

    /// Whether the OS picks ports.
    pub fn is_any(self) -> bool {
        self.first == 0
    }

    /// Whether `port` may be bound for a TCP endpoint.
    pub fn contains(self, port: u16) -> bool {
        if self.is_any() {
            port != 0
        } else {
            (self.first..=self.last).contains(&port)
        }
    }

    /// Number of ports in the range (a parsed range always has at least one).
    pub fn port_count(self) -> usize {
        usize::from(self.last - self.first) + 1
    }
}

/// Everything the edge needs to run.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Directory holding the CA, certificates and the edge secret.
    pub data_dir: PathBuf,
    /// Base domain for generated names (`<random>.<domain>`) and TCP URLs.
    pub domain: String,
    /// Extra names (DNS or IP) the agent listener's certificate covers, besides `localhost`,
    /// `127.0.0.1`, `::1` and `domain`.
    pub agent_names: Vec<String>,
    /// Operator-supplied certificate chain and key for the agent listener.
    pub agent_cert: Option<(PathBuf, PathBuf)>,
    /// Operator-supplied certificate chain and key for public HTTPS (used for every name).
    pub public_cert: Option<(PathBuf, PathBuf)>,
    /// Ports for TCP endpoints.
    pub tcp_ports: PortRange,
    /// Address TCP endpoint listeners bind.
    pub tcp_bind_ip: IpAddr,
    /// Public HTTP port shown in URLs (`None`: the port the HTTP listener bound).
    pub public_http_port: Option<u16>,
    /// Public HTTPS port shown in URLs (`None`: the port the HTTPS listener bound).
    pub public_https_port: Option<u16>,
    /// Time in-flight visitor connections get when draining.
    pub drain_timeout: Duration,
    /// Time an agent gets for its TLS handshake plus Auth.
    pub agent_handshake_timeout: Duration,
    /// Interval of the edge's heartbeat probes to each agent.
    pub heartbeat_interval: Duration,
    /// Time without an echo after which an agent session is declared dead and closed.
    pub heartbeat_tolerance: Duration,
    /// Most concurrent agent sessions per credential (ERR_NGROK_108 past it).
    pub max_sessions_per_credential: usize,
    /// Time a visitor gets for its ClientHello and for each request head.
    pub visitor_header_timeout: Duration,
    /// Whether binding a custom domain (one not under `domain`) needs a reserved domain
    /// covering it (ERR_NGROK_319 / 318 otherwise) and binding a chosen TCP address needs a
    /// reserved address (ERR_NGROK_307 otherwise). Names under `domain`, generated names and
    /// random TCP ports never need one. Default `true`; test harnesses turn it off.
    pub require_reservations: bool,
    /// Most distinct `endpoint` labels in the per-endpoint metrics (default
    /// [`MAX_ENDPOINT_SERIES`]); later endpoints are counted under `endpoint="_overflow"`.
    pub max_endpoint_series: usize,
}

impl EdgeConfig {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> EdgeConfig {
        EdgeConfig {
            data_dir: data_dir.into(),
            domain: "localhost".into(),
            agent_names: Vec::new(),
            agent_cert: None,
            public_cert: None,
            tcp_ports: PortRange {
                first: 20000,
                last: 20999,
            },
            tcp_bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            public_http_port: None,
            public_https_port: None,
            drain_timeout: DRAIN_TIMEOUT,
            agent_handshake_timeout: AGENT_HANDSHAKE_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_tolerance: DEFAULT_HEARTBEAT_TOLERANCE,
            max_sessions_per_credential: DEFAULT_MAX_SESSIONS_PER_CREDENTIAL,
            visitor_header_timeout: VISITOR_HEADER_TIMEOUT,
            require_reservations: true,
            max_endpoint_series: MAX_ENDPOINT_SERIES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(
            PortRange::parse("20000-20999"),
            Ok(PortRange {
                first: 20000,
                last: 20999
            })
        );
        assert_eq!(PortRange::parse("0"), Ok(PortRange::ANY));
        assert_eq!(PortRange::parse("5").unwrap().port_count(), 1);
        assert!(PortRange::parse("9-1").is_err());
        assert!(PortRange::parse("0-5").is_err());
        assert!(PortRange::parse("x").is_err());
        assert!(PortRange::parse("70000").is_err());
        assert!(PortRange::ANY.contains(4000));
        assert!(!PortRange::ANY.contains(0));
        assert!(!PortRange::parse("10-20").unwrap().contains(21));
    }
}
