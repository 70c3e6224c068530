//! Typed, read-only views of `Bind.Opts` (§6.2), and the requested name of an endpoint.
//!
//! `Bind.Opts` stays a raw JSON value so it can be echoed back verbatim; these views are parsed
//! from it on demand. Reading is lenient: a missing key, `null` and (for names) `""` all read as
//! `None`; unknown keys are ignored; `LocalUrlScheme`/`LocalURLScheme` are both accepted. Byte
//! strings (certificates, keys, sealed secrets) arrive base64-encoded and are decoded here. The
//! views never decide policy: whether an option is supported is the edge's call.

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::Bind;
use crate::ProtoError;
use crate::serde_util::{b64, non_empty, nullable, opt_b64};

/// `Opts` of an `http`/`https` endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct HttpOpts {
    /// Requested domain (Rust ≥ 0.17 / Node).
    #[serde(rename = "Domain", default, deserialize_with = "non_empty")]
    pub domain: Option<String>,
    /// Requested domain (Rust ≤ 0.16 / Python).
    #[serde(rename = "Hostname", default, deserialize_with = "non_empty")]
    pub hostname: Option<String>,
    /// Requested subdomain of the edge's base domain.
    #[serde(rename = "Subdomain", default, deserialize_with = "non_empty")]
    pub subdomain: Option<String>,
    /// Legacy basic-auth string (`""` from current SDKs).
    #[serde(rename = "Auth", default, deserialize_with = "non_empty")]
    pub auth: Option<String>,
    /// Legacy Host rewrite flag.
    #[serde(rename = "HostHeaderRewrite", default, deserialize_with = "nullable")]
    pub host_header_rewrite: bool,
    /// Scheme the agent uses towards its upstream.
    #[serde(
        rename = "LocalUrlScheme",
        alias = "LocalURLScheme",
        default,
        deserialize_with = "non_empty"
    )]
    pub local_url_scheme: Option<String>,
    /// 0 = none, 1 = PROXY protocol v1, 2 = v2. Other values are rejected.
    #[serde(rename = "ProxyProto", default, deserialize_with = "proxy_proto")]
    pub proxy_proto: u8,
    /// Present (any value, usually `{}`) = gzip responses at the edge.
    #[serde(rename = "Compression", default)]
    pub compression: Option<Value>,
    /// Circuit breaker settings.
    #[serde(rename = "CircuitBreaker", default)]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Visitor IP allow/deny lists.
    #[serde(rename = "IPRestriction", default)]
    pub ip_restriction: Option<IpRestriction>,
    /// Basic auth credentials.
    #[serde(rename = "BasicAuth", default)]
    pub basic_auth: Option<BasicAuth>,
    /// OAuth at the edge.
    #[serde(rename = "OAuth", default)]
    pub oauth: Option<OAuth>,
    /// OIDC at the edge.
    #[serde(rename = "OIDC", default)]
    pub oidc: Option<Oidc>,
    /// Webhook signature verification at the edge.
    #[serde(rename = "WebhookVerification", default)]
    pub webhook_verification: Option<WebhookVerification>,
    /// Mutual TLS with visitors, against these CAs.
    #[serde(rename = "MutualTLSCA", default)]
    pub mutual_tls_ca: Option<MutualTlsCa>,
    /// Request header changes.
    #[serde(rename = "RequestHeaders", default)]
    pub request_headers: Option<Headers>,
    /// Response header changes.
    #[serde(rename = "ResponseHeaders", default)]
    pub response_headers: Option<Headers>,
    /// Present = convert websockets to TCP.
    #[serde(rename = "WebsocketTCPConverter", default)]
    pub websocket_tcp_converter: Option<Value>,
    /// User-Agent allow/deny regexes.
    #[serde(rename = "UserAgentFilter", default)]
    pub user_agent_filter: Option<UserAgentFilter>,
    /// Traffic policy document (JSON or YAML text).
    #[serde(rename = "TrafficPolicy", default, deserialize_with = "policy_text")]
    pub traffic_policy: Option<String>,
    /// Full requested URL (Go v2).
    #[serde(rename = "URL", default, deserialize_with = "non_empty")]
    pub url: Option<String>,
    /// Deprecated protobuf-shaped policy (Go).
    #[serde(rename = "Policy", default)]
    pub policy: Option<Value>,
}

/// `Opts` of a `tcp` endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TcpOpts {
    /// Requested `host:port`; `None` = any address.
    #[serde(rename = "Addr", default, deserialize_with = "non_empty")]
    pub addr: Option<String>,
    /// 0 = none, 1 = PROXY protocol v1, 2 = v2.
    #[serde(rename = "ProxyProto", default, deserialize_with = "proxy_proto")]
    pub proxy_proto: u8,
    /// Visitor IP allow/deny lists.
    #[serde(rename = "IPRestriction", default)]
    pub ip_restriction: Option<IpRestriction>,
    /// Traffic policy document (JSON or YAML text).
    #[serde(rename = "TrafficPolicy", default, deserialize_with = "policy_text")]
    pub traffic_policy: Option<String>,
    /// Full requested URL (Go v2), e.g. `tcp://1.tcp.example.com:20001`.
    #[serde(rename = "URL", default, deserialize_with = "non_empty")]
    pub url: Option<String>,
    /// Deprecated protobuf-shaped policy (Go).
    #[serde(rename = "Policy", default)]
    pub policy: Option<Value>,
}

/// `Opts` of a `tls` endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct TlsOpts {
    /// Requested domain (Rust ≥ 0.17 / Node).
    #[serde(rename = "Domain", default, deserialize_with = "non_empty")]
    pub domain: Option<String>,
    /// Requested domain (Rust ≤ 0.16 / Python).
    #[serde(rename = "Hostname", default, deserialize_with = "non_empty")]
    pub hostname: Option<String>,
    /// Requested subdomain of the edge's base domain.
    #[serde(rename = "Subdomain", default, deserialize_with = "non_empty")]
    pub subdomain: Option<String>,
    /// 0 = none, 1 = PROXY protocol v1, 2 = v2.
    #[serde(rename = "ProxyProto", default, deserialize_with = "proxy_proto")]
    pub proxy_proto: u8,
    /// The agent terminates mutual TLS itself.
    #[serde(rename = "MutualTLSAtAgent", default, deserialize_with = "nullable")]
    pub mutual_tls_at_agent: bool,
    /// Mutual TLS with visitors at the edge, against these CAs.
    #[serde(rename = "MutualTLSAtEdge", default)]
    pub mutual_tls_at_edge: Option<MutualTlsCa>,
    /// If present, the edge terminates TLS with this agent-supplied certificate and key;
    /// if absent, the TLS bytes are passed through.
    #[serde(rename = "TLSTermination", default)]
    pub tls_termination: Option<TlsTermination>,
    /// Visitor IP allow/deny lists.
    #[serde(rename = "IPRestriction", default)]
    pub ip_restriction: Option<IpRestriction>,
    /// Traffic policy document (JSON or YAML text).
    #[serde(rename = "TrafficPolicy", default, deserialize_with = "policy_text")]
    pub traffic_policy: Option<String>,
    /// Full requested URL (Go v2), e.g. `tls://foo.example.com`.
    #[serde(rename = "URL", default, deserialize_with = "non_empty")]
    pub url: Option<String>,
    /// Deprecated protobuf-shaped policy (Go).
    #[serde(rename = "Policy", default)]
    pub policy: Option<Value>,
}

/// `CircuitBreaker`: trip when the upstream error ratio reaches the threshold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CircuitBreaker {
    /// Error ratio 0.0..=1.0.
    #[serde(default, deserialize_with = "nullable")]
    pub error_threshold: f64,
}

/// `IPRestriction`: CIDR allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IpRestriction {
    /// CIDRs allowed.
    #[serde(default, deserialize_with = "nullable")]
    pub allow_cidrs: Vec<String>,
    /// CIDRs denied.
    #[serde(default, deserialize_with = "nullable")]
    pub deny_cidrs: Vec<String>,
}

/// `BasicAuth`: credentials visitors must present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BasicAuth {
    /// Accepted credentials.
    #[serde(default, deserialize_with = "nullable")]
    pub credentials: Vec<BasicAuthCredential>,
}

/// One basic-auth credential. `Debug` hides the password.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BasicAuthCredential {
    /// User name.
    #[serde(default, deserialize_with = "nullable")]
    pub username: String,
    /// Password in clear text.
    #[serde(default, deserialize_with = "nullable")]
    pub cleartext_password: String,
    /// Hashed password (base64 on the wire, decoded here); empty when absent.
    #[serde(default, deserialize_with = "b64")]
    pub hashed_password: Vec<u8>,
}

impl fmt::Debug for BasicAuthCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuthCredential")
            .field("username", &self.username)
            .field("cleartext_password", &"<redacted>")
            .field("hashed_password", &"<redacted>")
            .finish()
    }
}

/// `OAuth` at the edge. `Debug` hides the secrets.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OAuth {
    /// Provider name (`google`, `github`, …).
    #[serde(default, deserialize_with = "nullable")]
    pub provider: String,
    /// OAuth client id.
    #[serde(default, deserialize_with = "non_empty")]
    pub client_id: Option<String>,
    /// OAuth client secret.
    #[serde(default, deserialize_with = "non_empty")]
    pub client_secret: Option<String>,
    /// Sealed client secret (base64-decoded).
    #[serde(default, deserialize_with = "opt_b64")]
    pub sealed_client_secret: Option<Vec<u8>>,
    /// Allowed e-mail addresses.
    #[serde(default, deserialize_with = "nullable")]
    pub allow_emails: Vec<String>,
    /// Allowed e-mail domains.
    #[serde(default, deserialize_with = "nullable")]
    pub allow_domains: Vec<String>,
    /// Requested scopes.
    #[serde(default, deserialize_with = "nullable")]
    pub scopes: Vec<String>,
}

impl fmt::Debug for OAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("allow_emails", &self.allow_emails)
            .field("allow_domains", &self.allow_domains)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// `OIDC` at the edge. `Debug` hides the secrets.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Oidc {
    /// Issuer URL.
    #[serde(default, deserialize_with = "nullable")]
    pub issuer_url: String,
    /// Client id.
    #[serde(default, deserialize_with = "nullable")]
    pub client_id: String,
    /// Client secret.
    #[serde(default, deserialize_with = "nullable")]
    pub client_secret: String,
    /// Sealed client secret (base64-decoded).
    #[serde(default, deserialize_with = "opt_b64")]
    pub sealed_client_secret: Option<Vec<u8>>,
    /// Allowed e-mail addresses.
    #[serde(default, deserialize_with = "nullable")]
    pub allow_emails: Vec<String>,
    /// Allowed e-mail domains.
    #[serde(default, deserialize_with = "nullable")]
    pub allow_domains: Vec<String>,
    /// Requested scopes.
    #[serde(default, deserialize_with = "nullable")]
    pub scopes: Vec<String>,
}

impl fmt::Debug for Oidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("allow_emails", &self.allow_emails)
            .field("allow_domains", &self.allow_domains)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// `WebhookVerification` at the edge. `Debug` hides the secrets.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WebhookVerification {
    /// Provider name (`github`, `stripe`, …).
    #[serde(default, deserialize_with = "nullable")]
    pub provider: String,
    /// Signing secret.
    #[serde(default, deserialize_with = "nullable")]
    pub secret: String,
    /// Sealed signing secret (base64-decoded).
    #[serde(default, deserialize_with = "opt_b64")]
    pub sealed_secret: Option<Vec<u8>>,
}

impl fmt::Debug for WebhookVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookVerification")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// `MutualTLSCA` / `MutualTLSAtEdge`: CA certificates for visitor client certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MutualTlsCa {
    /// Concatenated PEM certificates (base64 on the wire, decoded here).
    #[serde(default, deserialize_with = "b64")]
    pub mutual_tls_ca: Vec<u8>,
}

/// `RequestHeaders` / `ResponseHeaders`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Headers {
    /// `name:value` entries to add (names lowercased by the SDK).
    #[serde(default, deserialize_with = "nullable")]
    pub add: Vec<String>,
    /// Header names to remove.
    #[serde(default, deserialize_with = "nullable")]
    pub remove: Vec<String>,
}

/// `UserAgentFilter`: regexes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserAgentFilter {
    /// Allowed User-Agent regexes.
    #[serde(default, deserialize_with = "nullable")]
    pub allow: Vec<String>,
    /// Denied User-Agent regexes.
    #[serde(default, deserialize_with = "nullable")]
    pub deny: Vec<String>,
}

/// `TLSTermination`: the agent's certificate and key for the edge to terminate TLS with.
/// `Debug` hides the key.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TlsTermination {
    /// PEM certificate chain (base64 on the wire, decoded here).
    #[serde(default, deserialize_with = "b64")]
    pub cert: Vec<u8>,
    /// PEM private key (base64 on the wire, decoded here); may be empty if `sealed_key` is set.
    #[serde(default, deserialize_with = "b64")]
    pub key: Vec<u8>,
    /// Sealed private key (base64-decoded).
    #[serde(default, deserialize_with = "opt_b64")]
    pub sealed_key: Option<Vec<u8>>,
}

impl fmt::Debug for TlsTermination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTermination")
            .field("cert", &format_args!("<{} bytes>", self.cert.len()))
            .field("key", &"<redacted>")
            .field(
                "sealed_key",
                &self.sealed_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `ProxyProto`: null/missing = 0; only 0, 1, 2 are valid.
fn proxy_proto<'de, D: Deserializer<'de>>(de: D) -> Result<u8, D::Error> {
    use serde::de::Error;
    match Option::<i64>::deserialize(de)? {
        None => Ok(0),
        Some(n @ 0..=2) => Ok(n as u8),
        Some(n) => Err(D::Error::custom(format!(
            "ProxyProto must be 0, 1 or 2, got {n}"
        ))),
    }
}

/// `TrafficPolicy`: a string (JSON or YAML text); an object is accepted and kept as JSON text.
fn policy_text<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

// ---------------------------------------------------------------------------------------------
// Requested name
// ---------------------------------------------------------------------------------------------

/// What name an agent asked for in a [`Bind`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestedName {
    /// A full host name (lowercased), from `Opts.URL`, `Domain` or `Hostname`. May be a wildcard
    /// (`*.example.com`); the edge decides whether that is allowed.
    Host(String),
    /// A label to put in front of the edge's base domain (lowercased), from `Opts.Subdomain`.
    Subdomain(String),
    /// A TCP `host:port` (lowercased), from `Opts.URL` or `Opts.Addr` of a `tcp` bind.
    Address(String),
    /// Nothing requested: the edge picks (random subdomain or port).
    None,
}

/// A parsed `Opts.URL`: `[scheme://]host[:port][/…]`. The path, query and fragment are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    /// Lowercased scheme; `""` when the URL had none.
    pub scheme: String,
    /// Lowercased host, without IPv6 brackets; may be empty (`tcp://`) or a wildcard.
    pub host: String,
    /// Explicit port, if any.
    pub port: Option<u16>,
}

impl EndpointUrl {
    /// Parses an endpoint URL as sent in `Opts.URL`.
    pub fn parse(text: &str) -> Result<EndpointUrl, ProtoError> {
        let bad = |reason| ProtoError::InvalidUrl {
            url: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => {
                let ok = scheme
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic())
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
                if !ok {
                    return Err(bad("invalid scheme"));
                }
                (scheme.to_ascii_lowercase(), rest)
            }
            None => (String::new(), trimmed),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad("user info is not allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inside, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            if inside.parse::<Ipv6Addr>().is_err() {
                return Err(bad("invalid IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (inside, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<u16>().map_err(|_| bad("port out of range"))?)
            }
            Some(_) => return Err(bad("invalid port")),
        };
        let is_v6 = authority.starts_with('[');
        if !is_v6
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._*".contains(&b))
        {
            return Err(bad("invalid host"));
        }
        Ok(EndpointUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host:port` (`[v6]:port`), or just the host when there is no port.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }
}

impl Bind {
    /// `Opts` read as an `http`/`https` endpoint's options (does not check `Proto`).
    pub fn http_opts(&self) -> Result<HttpOpts, ProtoError> {
        self.view()
    }

    /// `Opts` read as a `tcp` endpoint's options (does not check `Proto`).
    pub fn tcp_opts(&self) -> Result<TcpOpts, ProtoError> {
        self.view()
    }

    /// `Opts` read as a `tls` endpoint's options (does not check `Proto`).
    pub fn tls_opts(&self) -> Result<TlsOpts, ProtoError> {
        self.view()
    }

    fn view<T: for<'de> Deserialize<'de> + Default>(&self) -> Result<T, ProtoError> {
        if self.opts.is_null() {
            return Ok(T::default());
        }
        T::deserialize(&self.opts).map_err(ProtoError::InvalidOpts)
    }

    /// The name this bind asks for, by `Proto`:
    ///
    /// - `http`/`https`/`tls`: the host of `Opts.URL`, else `Domain`, else `Hostname`, else
    ///   `Subdomain` (for the caller to put in front of its base domain), else
    ///   [`RequestedName::None`]. A port in `Opts.URL` is ignored here (see [`EndpointUrl`]).
    /// - `tcp`: the `host:port` of `Opts.URL`, else `Opts.Addr`, else [`RequestedName::None`].
    ///
    /// Errors: unknown `Proto` ([`ProtoError::UnsupportedProto`]), malformed `Opts` or URL.
    pub fn requested_host(&self) -> Result<RequestedName, ProtoError> {
        let (url, names) = match self.proto.as_str() {
            "http" | "https" => {
                let o = self.http_opts()?;
                (o.url, [o.domain, o.hostname, o.subdomain])
            }
            "tls" => {
                let o = self.tls_opts()?;
                (o.url, [o.domain, o.hostname, o.subdomain])
            }
            "tcp" => {
                let o = self.tcp_opts()?;
                if let Some(url) = o.url {
                    let parsed = EndpointUrl::parse(&url)?;
                    if !parsed.host.is_empty() {
                        return Ok(RequestedName::Address(parsed.authority()));
                    }
                }
                return Ok(match o.addr {
                    Some(addr) => RequestedName::Address(addr.trim().to_ascii_lowercase()),
                    None => RequestedName::None,
                });
            }
            other => return Err(ProtoError::UnsupportedProto(other.to_owned())),
        };
        if let Some(url) = url {
            let parsed = EndpointUrl::parse(&url)?;
            if !parsed.host.is_empty() {
                return Ok(RequestedName::Host(parsed.host));
            }
        }
        let [domain, hostname, subdomain] = names;
        Ok(if let Some(host) = domain.or(hostname) {
            RequestedName::Host(host.trim().to_ascii_lowercase())
        } else if let Some(sub) = subdomain {
            RequestedName::Subdomain(sub.trim().to_ascii_lowercase())
        } else {
            RequestedName::None
        })
    }
}
