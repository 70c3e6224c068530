//! Bind: choosing the URL an agent asked for, checking it against the credential's ACL and the
//! route table, and registering the tunnel.
//!
//! Which name is served, in order: `Opts.URL`'s host, `Domain`, `Hostname`, `Subdomain` under the
//! base domain, the URL named by a valid bind token (a reconnecting agent keeps its generated
//! name), else a random name under the base domain. TCP endpoints: `Opts.Addr`'s port, the token's
//! port, else a free port from the configured range that no reserved address holds.
//!
//! Checks, in order: the credential's ACL (ERR_NGROK_316/308/356), then — when
//! [`EdgeConfig::require_reservations`](crate::EdgeConfig::require_reservations) is on — the
//! reservations in the store, read on every bind (binds are rare; no cache to invalidate):
//! a custom name (not under the edge's base domain) needs its exact reservation or a reserved
//! wildcard covering it (ERR_NGROK_319), a wildcard name needs that exact wildcard reserved
//! (ERR_NGROK_318), and a chosen TCP address needs a reserved address on that port
//! (ERR_NGROK_307). Names under the base domain, generated names and random ports need none.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::Rng;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_model::host::{DomainPattern, HostName};
use warren_proto::msg::{Bind, BindResp, BindRespExtra, RequestedName};
use warren_proto::{ErrCode, encode_error};

use crate::agent::{AgentSession, new_id};
use crate::config::MAX_TUNNELS_PER_SESSION;
use crate::routes::RouteKey;
use crate::tunnel::{Proto, Tunnel};
use crate::{Edge, ingress};

/// Longest tunnel id an agent may present on rebind.
const MAX_TUNNEL_ID_LEN: usize = 64;
/// Random ports tried before a bind reports the TCP range as exhausted.
const PORT_ATTEMPTS: usize = 64;
/// Attempts to bind a requested TCP port that a released listener may still hold.
const RELISTEN_ATTEMPTS: usize = 20;
const RELISTEN_DELAY: std::time::Duration = std::time::Duration::from_millis(25);
/// Length of a generated host label.
const RANDOM_LABEL_LEN: usize = 12;

/// A refused bind: the wire text for `BindResp.Error`.
struct Refusal(String);

impl Refusal {
    fn new(message: impl AsRef<str>, code: ErrCode) -> Refusal {
        Refusal(encode_error(message.as_ref(), code))
    }
}

/// Handles one Bind for `session`.
pub(crate) async fn bind(edge: &Edge, session: &Arc<AgentSession>, req: Bind) -> BindResp {
    match try_bind(edge, session, &req).await {
        Ok(tunnel) => {
            let token = edge.inner().tokens.issue(
                &session.credential_id,
                &tunnel.id,
                &req.proto,
                &tunnel.url,
            );
            tracing::info!(session = %session.id, tunnel = %tunnel.id, url = %tunnel.url, "tunnel bound");
            BindResp {
                id: tunnel.id.clone(),
                url: tunnel.url.clone(),
                proto: req.proto.clone(),
                opts: req.opts.clone(),
                extra: BindRespExtra { token },
                error: String::new(),
            }
        }
        Err(Refusal(error)) => {
            tracing::info!(session = %session.id, %error, "bind refused");
            BindResp {
                id: req.id.clone(),
                proto: req.proto.clone(),
                opts: req.opts.clone(),
                error,
                ..Default::default()
            }
        }
    }
}

async fn try_bind(
    edge: &Edge,
    session: &Arc<AgentSession>,
    req: &Bind,
) -> Result<Arc<Tunnel>, Refusal> {
    let proto = Proto::parse(&req.proto).ok_or_else(|| {
        Refusal::new(
            format!(
                "Unsupported endpoint protocol {:?}: use http, https, tcp or tls.",
                req.proto
            ),
            ErrCode::UNSUPPORTED_PROTO,
        )
    })?;
    let id = tunnel_id(req)?;
    // A rebind of an id this session already holds replaces the old tunnel.
    session.remove_tunnel(edge, &id);
    if session.tunnels.lock().expect("tunnels lock").len() >= MAX_TUNNELS_PER_SESSION {
        return Err(Refusal::new(
            format!(
                "This agent session already has {MAX_TUNNELS_PER_SESSION} endpoints, the most one session may have."
            ),
            ErrCode::TOO_MANY_ENDPOINTS,
        ));
    }
    let remembered = if req.extra.token.is_empty() {
        None
    } else {
        edge.inner()
            .tokens
            .verify(&req.extra.token, &session.credential_id, &id, &req.proto)
    };
    let (key, url, proxy_proto, listener) = match proto {
        Proto::Tcp => {
            let opts = req.tcp_opts().map_err(invalid_opts)?;
            let addr = match req.requested_host().map_err(invalid_opts)? {
                RequestedName::Address(addr) => addr,
                _ => String::new(),
            };
            let (port, listener) =
                tcp_port(edge, session, &id, &addr, remembered.as_deref()).await?;
            let url = format!("tcp://{}:{port}", edge.config().domain);
            (RouteKey::Port(port), url, opts.proxy_proto, Some(listener))
        }
        Proto::Http | Proto::Https | Proto::Tls => {
            let (proxy_proto, terminate) = if proto == Proto::Tls {
                let opts = req.tls_opts().map_err(invalid_opts)?;
                (opts.proxy_proto, opts.tls_termination.is_some())
            } else {
                (req.http_opts().map_err(invalid_opts)?.proxy_proto, false)
            };
            let requested = req.requested_host().map_err(invalid_opts)?;
            if terminate {
                return Err(Refusal::new(
                    "Terminating TLS at the edge with an agent-supplied certificate is not supported; use TLS passthrough (no TLSTermination) or an https endpoint.",
                    ErrCode::UNSUPPORTED_OPTION,
                ));
            }
            let host = host_for(edge, session, requested, remembered.as_deref()).await?;
            let url = edge.host_url(proto, &host);
            (RouteKey::Host(host), url, proxy_proto, None)
        }
    };
    let meter = edge.meter(&url, &session.credential_id, proto);
    let tunnel = Arc::new(Tunnel {
        id: id.clone(),
        session_id: session.id.clone(),
        credential_id: session.credential_id.clone(),
        proto,
        url,
        key: key.clone(),
        proxy_proto,
        forwards_to: req.forwards_to.clone(),
        metadata: req.extra.metadata.clone(),
        mux: session.mux.clone(),
        gone: CancellationToken::new(),
        connections: Default::default(),
        meter,
    });
    // The holder of a valid token for this very tunnel may take a route over from a stale
    // session of the same credential (the agent reconnected before the edge noticed the old
    // connection die).
    let may_replace = |holder: &Arc<Tunnel>| {
        remembered.as_deref() == Some(tunnel.url.as_str())
            && holder.id == id
            && holder.credential_id == session.credential_id
    };
    match edge
        .inner()
        .routes
        .insert(&key, tunnel.clone(), may_replace)
    {
        Ok(Some(displaced)) => {
            if let Some(old) = edge.session(&displaced.session_id) {
                old.tunnels
                    .lock()
                    .expect("tunnels lock")
                    .remove(&displaced.id);
            }
            displaced.gone.cancel();
        }
        Ok(None) => {}
        Err(_holder) => {
            return Err(Refusal::new(
                format!(
                    "The endpoint '{}' is already online. Stop the other agent serving it first.",
                    tunnel.url
                ),
                ErrCode::ENDPOINT_ALREADY_ONLINE,
            ));
        }
    }
    session
        .tunnels
        .lock()
        .expect("tunnels lock")
        .insert(id, tunnel.clone());
    if session.mux.is_closed() {
        // The session ended while we bound: do not leave a route behind.
        session.remove_tunnel(edge, &tunnel.id);
    }
    if let Some(listener) = listener {
        ingress::tcp::spawn_endpoint(edge.clone(), listener, tunnel.clone());
    }
    Ok(tunnel)
}

fn invalid_opts(error: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        format!("Invalid endpoint options: {error}"),
        ErrCode::INVALID_BIND_OPTS,
    )
}

/// The client-supplied id on rebind (the SDK keys its tunnels by it), or a new one.
fn tunnel_id(req: &Bind) -> Result<String, Refusal> {
    let id = req.id.trim();
    if id.is_empty() {
        return Ok(new_id(
            warren_model::IdPrefix::Tunnel,
            time::OffsetDateTime::now_utc(),
        ));
    }
    if id.len() > MAX_TUNNEL_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Refusal::new(
            "Invalid tunnel id.",
            ErrCode::INVALID_BIND_OPTS,
        ));
    }
    Ok(id.to_owned())
}

/// Chooses and checks the host name for an HTTP(S) or TLS endpoint.
async fn host_for(
    edge: &Edge,
    session: &AgentSession,
    requested: RequestedName,
    remembered: Option<&str>,
) -> Result<String, Refusal> {
    let domain = &edge.config().domain;
    let name = match requested {
        RequestedName::Host(host) => Some(host),
        RequestedName::Subdomain(sub) => Some(format!("{sub}.{domain}")),
        RequestedName::None | RequestedName::Address(_) => remembered.and_then(host_of_url),
    };
    let pattern = match name {
        Some(name) => DomainPattern::parse(&name).map_err(|e| {
            Refusal::new(
                format!("Invalid domain {name:?}: {e}"),
                ErrCode::INVALID_BIND_OPTS,
            )
        })?,
        None => random_host(edge, domain)?,
    };
    if !session.acl.permits_domain(&pattern) {
        return Err(Refusal::new(
            format!(
                "The credential ACL policy does not permit binding this name.\nCredential ID: {}\nName: {pattern}",
                session.credential_id
            ),
            ErrCode::ACL_NAME_DENIED,
        ));
    }
    if edge.config().require_reservations && !under_base_domain(&pattern, domain) {
        check_domain_reserved(edge, &pattern).await?;
    }
    Ok(pattern.to_string())
}

/// Whether every name `pattern` matches lies under the edge's base domain `domain` (such names
/// need no reservation): `x.<domain>`, `a.b.<domain>`, `*.<domain>`, `*.x.<domain>`; never
/// `<domain>` itself.
pub fn under_base_domain(pattern: &DomainPattern, domain: &str) -> bool {
    let Ok(base) = HostName::parse(domain) else {
        return false;
    };
    match pattern {
        DomainPattern::Exact(host) => host.is_strict_subdomain_of(&base),
        DomainPattern::Wildcard { suffix } => {
            *suffix == base || suffix.is_strict_subdomain_of(&base)
        }
    }
}

/// Refuses a custom name no reserved domain covers (ERR_NGROK_319; ERR_NGROK_318 for a
/// wildcard, which must be reserved exactly).
async fn check_domain_reserved(edge: &Edge, pattern: &DomainPattern) -> Result<(), Refusal> {
    let name = pattern.to_string();
    let reserved = edge
        .store()
        .domain_is_reserved(&name)
        .await
        .map_err(store_failed)?;
    if reserved {
        return Ok(());
    }
    Err(if pattern.is_wildcard() {
        Refusal::new(
            format!(
                "The wildcard domain '{name}' is not reserved. Reserve exactly '{name}' (POST /reserved_domains) before binding it."
            ),
            ErrCode::WILDCARD_NOT_RESERVED,
        )
    } else {
        Refusal::new(
            format!(
                "The domain '{name}' is not reserved. Reserve it or a wildcard domain covering it (POST /reserved_domains) before binding it."
            ),
            ErrCode::HOSTNAME_NOT_RESERVED,
        )
    })
}

fn store_failed(error: warren_store::StoreError) -> Refusal {
    tracing::error!(%error, "reading reservations failed");
    Refusal::new(
        "The edge could not read its reservations; try again.",
        ErrCode::INTERNAL,
    )
}

/// Refuses a chosen TCP address unless a reserved address holds `port` and the address's host
/// part, when given, names this edge (its base domain or the reservation's host).
async fn check_addr_reserved(edge: &Edge, addr: &str, port: u16) -> Result<(), Refusal> {
    let reservation = edge
        .store()
        .reserved_addr_by_port(port)
        .await
        .map_err(store_failed)?;
    let host = addr_host(addr);
    let reserved = reservation.is_some_and(|r| {
        host.is_empty()
            || host.eq_ignore_ascii_case(&edge.config().domain)
            || addr_host(&r.addr).eq_ignore_ascii_case(host)
    });
    if reserved {
        return Ok(());
    }
    Err(Refusal::new(
        format!(
            "The TCP address '{}' is not reserved. Reserve an address (POST /reserved_addrs) and bind the address it returns.",
            addr.trim()
        ),
        ErrCode::ADDRESS_NOT_RESERVED,
    ))
}

/// The host part of `host:port` / `tcp://host:port` (empty for `:port` or `port`).
fn addr_host(addr: &str) -> &str {
    let addr = addr.trim();
    let addr = addr.strip_prefix("tcp://").unwrap_or(addr);
    addr.rsplit_once(':').map_or("", |(host, _)| host)
}

fn random_host(edge: &Edge, domain: &str) -> Result<DomainPattern, Refusal> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    for _ in 0..8 {
        let label: String = (0..RANDOM_LABEL_LEN)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        let name = format!("{label}.{domain}");
        if edge.routes().host(&name).is_none() {
            return DomainPattern::parse(&name).map_err(|e| {
                Refusal::new(
                    format!("The base domain {domain:?} is not a valid host name: {e}"),
                    ErrCode::INVALID_BIND_OPTS,
                )
            });
        }
    }
    Err(Refusal::new(
        "Could not generate a free host name.",
        ErrCode::INVALID_BIND_OPTS,
    ))
}

fn host_of_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Chooses the port of a TCP endpoint and binds its listener.
async fn tcp_port(
    edge: &Edge,
    session: &AgentSession,
    id: &str,
    addr: &str,
    remembered: Option<&str>,
) -> Result<(u16, TcpListener), Refusal> {
    let range = edge.config().tcp_ports;
    let domain = &edge.config().domain;
    let requested = parse_port(addr).map_err(|e| {
        Refusal::new(
            format!("Invalid TCP address {addr:?}: {e}"),
            ErrCode::INVALID_BIND_OPTS,
        )
    })?;
    let remembered = remembered.and_then(|url| {
        url.strip_prefix("tcp://")
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
    });
    match requested.or(remembered) {
        Some(port) => {
            if !range.contains(port) {
                return Err(Refusal::new(
                    format!(
                        "TCP port {port} is outside the edge's TCP endpoint range {}-{}.",
                        range.first, range.last
                    ),
                    ErrCode::ADDRESS_NOT_RESERVED,
                ));
            }
            let address = format!("{domain}:{port}");
            if requested.is_some() && !session.acl.permits_addr(&address) {
                return Err(Refusal::new(
                    format!(
                        "The credential ACL policy does not permit binding this address.\nCredential ID: {}\nAddress: {address}",
                        session.credential_id
                    ),
                    ErrCode::ACL_ADDRESS_DENIED,
                ));
            }
            if requested.is_none()
                && !session.acl.permits_addr(&address)
                && !session.acl.permits_random_addr()
            {
                return Err(random_denied(session));
            }
            if requested.is_some() && edge.config().require_reservations {
                check_addr_reserved(edge, addr, port).await?;
            }
            if let Some(holder) = edge.routes().port(port).cloned() {
                if holder.credential_id != session.credential_id || holder.id != id {
                    return Err(in_use(port));
                }
                // A stale session of this agent still holds the port: release it.
                match edge.session(&holder.session_id) {
                    Some(old) => {
                        old.remove_tunnel(edge, &holder.id);
                    }
                    None => {
                        holder.retire(&edge.inner().routes);
                    }
                }
            }
            // A released listener closes asynchronously; give it a moment.
            for _ in 0..RELISTEN_ATTEMPTS {
                if let Ok(listener) = listen(edge, port) {
                    return Ok((port, listener));
                }
                tokio::time::sleep(RELISTEN_DELAY).await;
            }
            Err(in_use(port))
        }
        None => {
            if !session.acl.permits_random_addr() {
                return Err(random_denied(session));
            }
            // A random endpoint never takes a reserved port. Best effort: if the store cannot
            // be read, the bind goes ahead without the check.
            let reserved: std::collections::HashSet<u16> = match edge.store().reserved_ports().await
            {
                Ok(ports) => ports.into_iter().collect(),
                Err(error) => {
                    tracing::warn!(%error, "reading reserved ports failed; choosing a port without them");
                    Default::default()
                }
            };
            if range.is_any() {
                for _ in 0..PORT_ATTEMPTS {
                    let listener = listen(edge, 0).map_err(|e| {
                        Refusal::new(
                            format!("Could not open a TCP port: {e}"),
                            ErrCode::ADDRESS_NOT_RESERVED,
                        )
                    })?;
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                    if !reserved.contains(&port) {
                        return Ok((port, listener));
                    }
                }
                return Err(Refusal::new(
                    "Could not open a TCP port that no reserved address holds.",
                    ErrCode::ADDRESS_NOT_RESERVED,
                ));
            }
            let mut rng = rand::thread_rng();
            let routes = edge.routes();
            for _ in 0..PORT_ATTEMPTS.min(range.port_count() * 2) {
                let port = rng.gen_range(range.first..=range.last);
                if routes.port(port).is_some() || reserved.contains(&port) {
                    continue;
                }
                if let Ok(listener) = listen(edge, port) {
                    return Ok((port, listener));
                }
            }
            Err(Refusal::new(
                format!(
                    "No free TCP port is left in the edge's range {}-{}.",
                    range.first, range.last
                ),
                ErrCode::ADDRESS_NOT_RESERVED,
            ))
        }
    }
}

fn random_denied(session: &AgentSession) -> Refusal {
    Refusal::new(
        format!(
            "The credential ACL policy does not permit binding random TCP addresses.\nCredential ID: {}",
            session.credential_id
        ),
        ErrCode::ACL_RANDOM_TCP_DENIED,
    )
}

fn in_use(port: u16) -> Refusal {
    Refusal::new(
        format!("TCP port {port} is already in use by another endpoint."),
        ErrCode::ENDPOINT_ALREADY_ONLINE,
    )
}

/// `""` = any port; `host:port`, `:port` or `port` = that port.
fn parse_port(addr: &str) -> Result<Option<u16>, String> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Ok(None);
    }
    let addr = addr.strip_prefix("tcp://").unwrap_or(addr);
    let port = addr.rsplit_once(':').map_or(addr, |(_, port)| port);
    match port.parse::<u16>() {
        Ok(0) => Ok(None),
        Ok(port) => Ok(Some(port)),
        Err(_) => Err("expected host:port".into()),
    }
}

fn listen(edge: &Edge, port: u16) -> std::io::Result<TcpListener> {
    let addr = SocketAddr::new(edge.config().tcp_bind_ip, port);
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_urls() {
        assert_eq!(parse_port(""), Ok(None));
        assert_eq!(parse_port("example.com:2222"), Ok(Some(2222)));
        assert_eq!(parse_port(":2222"), Ok(Some(2222)));
        assert_eq!(parse_port("tcp://1.tcp.example.com:20001"), Ok(Some(20001)));
        assert!(parse_port("example.com:http").is_err());
        assert_eq!(host_of_url("https://a.b.c:8443").as_deref(), Some("a.b.c"));
        assert_eq!(
            host_of_url("tls://x.localhost").as_deref(),
            Some("x.localhost")
        );
        assert_eq!(
            host_of_url("https://*.s.example.com").as_deref(),
            Some("*.s.example.com")
        );
        assert_eq!(addr_host("tcp://localhost:20001"), "localhost");
        assert_eq!(addr_host(":20001"), "");
        assert_eq!(addr_host("20001"), "");
    }

    #[test]
    fn names_under_the_base_domain_need_no_reservation() {
        let under = |p: &str| under_base_domain(&DomainPattern::parse(p).unwrap(), "example.net");
        assert!(under("a.example.net"));
        assert!(under("a.b.example.net"));
        assert!(under("*.example.net"));
        assert!(under("*.x.example.net"));
        assert!(!under("example.net"));
        assert!(!under("a.example.com"));
        assert!(!under("aexample.net"));
        assert!(!under("*.net"));
    }
}
