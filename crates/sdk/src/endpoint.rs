//! Endpoint builders: what an application asks the edge to serve. Each builder produces a
//! [`BindSpec`] (the `Bind` message minus the ids the edge assigns) and hands it to the session.
//!
//! Nothing here talks to the edge; [`crate::Session`] does the bind and keeps the spec so every
//! reconnect can bind the endpoint again with the same id and token.

use serde_json::{Map, Value, json};

use crate::error::ListenError;
use crate::listener::Listener;
use crate::session::Session;

/// PROXY protocol header the edge puts in front of each connection's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyProto {
    /// None (default).
    #[default]
    None,
    /// Version 1 (text).
    V1,
    /// Version 2 (binary).
    V2,
}

impl ProxyProto {
    fn number(self) -> u8 {
        match self {
            ProxyProto::None => 0,
            ProxyProto::V1 => 1,
            ProxyProto::V2 => 2,
        }
    }

    /// From the number used in config files (0, 1, 2).
    pub fn from_number(n: u8) -> Option<ProxyProto> {
        match n {
            0 => Some(ProxyProto::None),
            1 => Some(ProxyProto::V1),
            2 => Some(ProxyProto::V2),
            _ => None,
        }
    }
}

/// Everything the session needs to bind (and re-bind) one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BindSpec {
    pub proto: String,
    pub opts: Value,
    pub forwards_to: String,
    pub forwards_proto: String,
    pub metadata: String,
    pub description: String,
    pub bindings: Vec<String>,
    pub pooling_enabled: bool,
}

/// Settings every endpoint kind shares.
#[derive(Debug, Clone, Default)]
struct Common {
    url: Option<String>,
    metadata: String,
    description: String,
    bindings: Vec<String>,
    pooling_enabled: bool,
    forwards_to: String,
    proxy_proto: ProxyProto,
    traffic_policy: Option<String>,
}

impl Common {
    fn opts(&self, extra: Map<String, Value>) -> Value {
        let mut opts = extra;
        if let Some(url) = &self.url {
            opts.insert("URL".into(), json!(url));
        }
        if self.proxy_proto != ProxyProto::None {
            opts.insert("ProxyProto".into(), json!(self.proxy_proto.number()));
        }
        if let Some(policy) = &self.traffic_policy {
            opts.insert("TrafficPolicy".into(), json!(policy));
        }
        Value::Object(opts)
    }

    fn spec(&self, proto: &str, opts: Value, forwards_proto: &str) -> BindSpec {
        BindSpec {
            proto: proto.to_owned(),
            opts,
            forwards_to: self.forwards_to.clone(),
            forwards_proto: forwards_proto.to_owned(),
            metadata: self.metadata.clone(),
            description: self.description.clone(),
            bindings: self.bindings.clone(),
            pooling_enabled: self.pooling_enabled,
        }
    }
}

macro_rules! common_setters {
    () => {
        /// Endpoint metadata, shown by the edge's API.
        pub fn metadata(mut self, metadata: impl Into<String>) -> Self {
            self.common.metadata = metadata.into();
            self
        }

        /// Endpoint description.
        pub fn description(mut self, description: impl Into<String>) -> Self {
            self.common.description = description.into();
            self
        }

        /// `public` (default) or `internal`.
        pub fn binding(mut self, binding: impl Into<String>) -> Self {
            self.common.bindings = vec![binding.into()];
            self
        }

        /// Let several agents serve the same URL (the edge spreads visitors across them).
        pub fn pooling_enabled(mut self, pooling: bool) -> Self {
            self.common.pooling_enabled = pooling;
            self
        }

        /// Informational: where this endpoint forwards on the device (shown by the edge's API).
        pub fn forwards_to(mut self, forwards_to: impl Into<String>) -> Self {
            self.common.forwards_to = forwards_to.into();
            self
        }

        /// Prepend a PROXY protocol header to each connection's bytes.
        pub fn proxy_proto(mut self, proxy_proto: ProxyProto) -> Self {
            self.common.proxy_proto = proxy_proto;
            self
        }

        /// A traffic policy document (YAML or JSON text) for the edge to apply.
        pub fn traffic_policy(mut self, policy: impl Into<String>) -> Self {
            self.common.traffic_policy = Some(policy.into());
            self
        }
    };
}

/// Upstream application protocol of an HTTP endpoint: what the edge sends on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (default).
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
}

/// Builds an `http`/`https` endpoint. Get one from [`Session::http_endpoint`].
#[derive(Debug, Clone)]
pub struct HttpEndpointBuilder {
    session: Session,
    common: Common,
    domain: Option<String>,
    plain_http: bool,
    upstream_protocol: UpstreamProtocol,
}

impl HttpEndpointBuilder {
    pub(crate) fn new(session: Session) -> Self {
        HttpEndpointBuilder {
            session,
            common: Common::default(),
            domain: None,
            plain_http: false,
            upstream_protocol: UpstreamProtocol::Http1,
        }
    }

    /// The public URL: `https://cam1.site1.example.com`, `http://…` for a plain-HTTP endpoint, a
    /// wildcard `https://*.site1.example.com`, or `https://` alone for a generated name.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.plain_http = url.to_ascii_lowercase().starts_with("http://");
        self.common.url = Some(url);
        self
    }

    /// The domain to serve (`cam1.site1.example.com`, or a wildcard `*.site1.example.com`).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// What the edge speaks on each connection ([`UpstreamProtocol::Http1`] by default).
    pub fn upstream_protocol(mut self, protocol: UpstreamProtocol) -> Self {
        self.upstream_protocol = protocol;
        self
    }

    common_setters!();

    pub(crate) fn spec(&self) -> BindSpec {
        let mut extra = Map::new();
        if let Some(domain) = &self.domain {
            extra.insert("Domain".into(), json!(domain));
        }
        let proto = if self.plain_http { "http" } else { "https" };
        let forwards_proto = match self.upstream_protocol {
            UpstreamProtocol::Http1 => "",
            UpstreamProtocol::Http2 => "http2",
        };
        self.common
            .spec(proto, self.common.opts(extra), forwards_proto)
    }

    /// Binds the endpoint and returns its listener.
    pub async fn listen(self) -> Result<Listener, ListenError> {
        let spec = self.spec();
        self.session.listen(spec).await
    }
}

/// Builds a `tcp` endpoint. Get one from [`Session::tcp_endpoint`].
#[derive(Debug, Clone)]
pub struct TcpEndpointBuilder {
    session: Session,
    common: Common,
    remote_addr: Option<String>,
}

impl TcpEndpointBuilder {
    pub(crate) fn new(session: Session) -> Self {
        TcpEndpointBuilder {
            session,
            common: Common::default(),
            remote_addr: None,
        }
    }

    /// The public URL: `tcp://host:port` (a reserved address) or `tcp://` for any free port.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.common.url = Some(url.into());
        self
    }

    /// The reserved `host:port` to serve.
    pub fn remote_addr(mut self, addr: impl Into<String>) -> Self {
        self.remote_addr = Some(addr.into());
        self
    }

    common_setters!();

    pub(crate) fn spec(&self) -> BindSpec {
        let mut extra = Map::new();
        if let Some(addr) = &self.remote_addr {
            extra.insert("Addr".into(), json!(addr));
        }
        self.common.spec("tcp", self.common.opts(extra), "")
    }

    /// Binds the endpoint and returns its listener.
    pub async fn listen(self) -> Result<Listener, ListenError> {
        let spec = self.spec();
        self.session.listen(spec).await
    }
}

/// Builds a `tls` endpoint (TLS passed through by SNI, terminated on the device). Get one from
/// [`Session::tls_endpoint`].
#[derive(Debug, Clone)]
pub struct TlsEndpointBuilder {
    session: Session,
    common: Common,
    domain: Option<String>,
}

impl TlsEndpointBuilder {
    pub(crate) fn new(session: Session) -> Self {
        TlsEndpointBuilder {
            session,
            common: Common::default(),
            domain: None,
        }
    }

    /// The public URL: `tls://cam1.site1.example.com`, or `tls://` for a generated name.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.common.url = Some(url.into());
        self
    }

    /// The domain to serve.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    common_setters!();

    pub(crate) fn spec(&self) -> BindSpec {
        let mut extra = Map::new();
        if let Some(domain) = &self.domain {
            extra.insert("Domain".into(), json!(domain));
        }
        self.common.spec("tls", self.common.opts(extra), "")
    }

    /// Binds the endpoint and returns its listener.
    pub async fn listen(self) -> Result<Listener, ListenError> {
        let spec = self.spec();
        self.session.listen(spec).await
    }
}
