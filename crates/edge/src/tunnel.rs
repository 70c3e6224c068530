//! A bound tunnel (an endpoint served by one agent session) and opening proxy streams to it.
//!
//! A tunnel is created by a Bind and lives until Unbind, a StopTunnel, or the end of its session.
//! It holds a handle to its session's mux so the public ingress can open one proxy stream per
//! visitor connection without looking the session up again.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warren_mux::Stream;
use warren_proto::msg::ProxyHeader;

use crate::routes::RouteKey;

/// How long opening a proxy stream may take before the visitor gets an error.
pub const PROXY_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint protocol a tunnel was bound with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http,
    Https,
    Tcp,
    Tls,
}

impl Proto {
    /// Parses the Bind `Proto` string.
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "http" => Some(Proto::Http),
            "https" => Some(Proto::Https),
            "tcp" => Some(Proto::Tcp),
            "tls" => Some(Proto::Tls),
            _ => None,
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Https => "https",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
        }
    }

    /// Whether visitors speak HTTP to this endpoint (so the edge parses and routes requests).
    pub fn is_http(self) -> bool {
        matches!(self, Proto::Http | Proto::Https)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bound endpoint.
pub struct Tunnel {
    /// Tunnel id as the agent knows it (sent back in every ProxyHeader).
    pub id: String,
    /// The agent session (`ts_…`) that bound it.
    pub session_id: String,
    /// The credential the session authenticated with.
    pub credential_id: String,
    pub proto: Proto,
    /// The public URL reported to the agent.
    pub url: String,
    /// The route key it occupies.
    pub key: RouteKey,
    /// PROXY protocol version to prepend toward the agent (0 = none).
    pub proxy_proto: u8,
    /// Where the agent forwards (informational).
    pub forwards_to: String,
    /// Per-endpoint metadata from the agent.
    pub metadata: String,
    /// The session's mux, used to open proxy streams.
    pub(crate) mux: warren_mux::Session,
    /// Cancelled when the tunnel goes away: stops its TCP listener, if any.
    pub(crate) gone: CancellationToken,
    /// Proxy streams opened to the agent so far.
    pub(crate) connections: AtomicU64,
    /// Where its traffic is counted (metrics series and usage), resolved at bind.
    pub(crate) meter: crate::metrics::Meter,
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("id", &self.id)
            .field("session_id", &self.session_id)
            .field("proto", &self.proto)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a proxy stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the agent session has ended")]
    AgentGone,
    #[error("the agent has too many open connections")]
    Busy,
    #[error("the agent did not accept the connection in time")]
    Timeout,
}

impl Tunnel {
    /// Takes the tunnel off the route table (if it still holds its key) and stops its TCP
    /// listener, if any.
    pub(crate) fn retire(self: &std::sync::Arc<Self>, routes: &crate::routes::RouteTable) {
        routes.remove(&self.key, self);
        self.gone.cancel();
    }

    /// The id of the endpoint this tunnel serves: `ep_` and the body of the tunnel id (a tunnel
    /// id without the `tn_` prefix is its own body), as the API shows it.
    pub fn endpoint_id(&self) -> String {
        let body = self.id.strip_prefix("tn_").unwrap_or(&self.id);
        format!("ep_{body}")
    }

    /// Number of visitor connections handed to the agent so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Opens a proxy stream for one visitor connection: the first frame carries the stream type,
    /// the ProxyHeader and, when the bind asked for it, a PROXY protocol header.
    pub async fn connect(
        &self,
        visitor: SocketAddr,
        local: SocketAddr,
    ) -> Result<Stream, ConnectError> {
        let header = ProxyHeader {
            id: self.id.clone(),
            client_addr: visitor.to_string(),
            proto: self.proto.as_str().to_owned(),
            edge_type: String::new(),
            passthrough_tls: self.proto == Proto::Tls,
        };
        let mut first = header.encode();
        if let Some(proxy) = warren_proto::proxy_protocol::header(self.proxy_proto, visitor, local)
        {
            first.extend_from_slice(&proxy);
        }
        let open = self
            .mux
            .open_typed(warren_proto::stream_type::PROXY, &first);
        match tokio::time::timeout(PROXY_OPEN_TIMEOUT, open).await {
            Ok(Ok(stream)) => {
                self.connections.fetch_add(1, Ordering::Relaxed);
                self.meter.connection();
                Ok(stream)
            }
            Ok(Err(warren_mux::Error::StreamsExhausted)) => Err(ConnectError::Busy),
            Ok(Err(_)) => Err(ConnectError::AgentGone),
            Err(_) => Err(ConnectError::Timeout),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    /// A tunnel at `url` whose mux leads nowhere, for unit tests.
    pub(crate) fn tunnel_for_tests(url: &str) -> Arc<Tunnel> {
        let (io, _peer) = tokio::io::duplex(64);
        Arc::new(Tunnel {
            id: "tn_test".into(),
            session_id: "ts_test".into(),
            credential_id: "cr_test".into(),
            proto: Proto::Http,
            url: url.into(),
            key: RouteKey::Host("a.example".into()),
            proxy_proto: 0,
            forwards_to: String::new(),
            metadata: String::new(),
            mux: warren_mux::Session::new(io, warren_mux::Config::server()),
            gone: CancellationToken::new(),
            connections: Default::default(),
            meter: Arc::new(crate::metrics::Metrics::new(10)).meter(url, Proto::Http, None),
        })
    }

    #[tokio::test]
    async fn endpoint_ids_share_the_tunnel_id_body() {
        let tunnel = tunnel_for_tests("http://a.example");
        assert_eq!(tunnel.endpoint_id(), "ep_test");
    }
}
