//! The public HTTP pipeline, shared by the HTTP and HTTPS ports.
//!
//! Phases for each request: **route** (Host → tunnel; exact beats wildcard) → **forward** (a proxy
//! stream to the agent speaking HTTP/1.1, reused for the next request of an HTTP/1.1 visitor
//! connection) → **response** (streamed back; a 101 joins both upgraded connections for
//! WebSockets). Errors say who is to blame: an unknown host is the visitor's 404, a gone or silent
//! agent is a 502/503/504 from the edge with its own code.
//!
//! Observability: every answer is counted by status class (the edge's own pages too). A request
//! routed to an endpoint counts as one of its requests; its head and body bytes are metered as
//! they move (heads at their HTTP/1.1 size), upgraded connections included; and, only when
//! something wants `http_request_complete.v0`, the event is built and emitted once the response
//! body has ended or been dropped. Requests that reach no endpoint have no event.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::timeout;
use warren_events::types::HTTP_REQUEST_COMPLETE;

use super::activity::{Activity, Watched};
use super::metered::{Completion, Counted, RequestBody, ResponseBody};
use super::pages::{self, Body, error_page};
use crate::config::{AGENT_RESPONSE_TIMEOUT, MAX_REQUEST_HEAD_BYTES, VISITOR_HEADER_TIMEOUT};
use crate::event_objects::{ConnInfo, HttpRequestInfo, HttpResponseInfo};
use crate::tunnel::{ConnectError, Tunnel};
use crate::{Edge, VisitorAddrs};

/// Most concurrent HTTP/2 streams per visitor connection.
pub const MAX_H2_STREAMS: u32 = 128;
/// A visitor connection with no bytes moving either way for this long is closed (this also
/// reaps dead HTTP/2 peers, so no PINGs are sent: they would keep idle connections alive).
pub const VISITOR_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Which public port a request arrived on (sets `X-Forwarded-Proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

pub(crate) async fn serve(edge: Edge, listener: TcpListener) {
    let edge2 = edge.clone();
    super::accept_loop(&edge, listener, None, move |tcp, addrs| {
        serve_connection(edge2.clone(), tcp, addrs, Scheme::Http)
    })
    .await;
}

/// Serves HTTP/1.1 or HTTP/2 on one visitor connection until it closes or the edge drains.
pub(crate) async fn serve_connection<I>(edge: Edge, io: I, addrs: VisitorAddrs, scheme: Scheme)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stop = edge.visitors_stopped();
    let header_timeout = edge.config().visitor_header_timeout;
    let activity = Activity::new();
    let started = edge.events().map(|events| events.now());
    let conn = Arc::new(VisitorConn {
        edge,
        addrs,
        scheme,
        started,
        idle_agent: Mutex::new(None),
    });
    let service = service_fn({
        let activity = activity.clone();
        move |req| {
            activity.request();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(conn.handle(req).await) }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(MAX_REQUEST_HEAD_BYTES as u32);
    let io = Watched::new(io, activity.clone());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    loop {
        // hyper bounds each HTTP/1 request head, but not the protocol sniffing before the first
        // request nor an HTTP/2 connection that never sends one; and nothing bounds silence.
        let deadline = if activity.requests() == 0 {
            activity.started() + header_timeout
        } else {
            activity.last() + VISITOR_IDLE_TIMEOUT
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(remote = %addrs.remote, %error, "visitor connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled() => {
                // Drain: finish in-flight requests, take no new ones.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
                return;
            }
            _ = tokio::time::sleep_until(deadline) => {
                let idle_since = if activity.requests() == 0 { activity.started() } else { activity.last() };
                let limit = if activity.requests() == 0 { header_timeout } else { VISITOR_IDLE_TIMEOUT };
                if idle_since.elapsed() >= limit {
                    tracing::debug!(remote = %addrs.remote, "visitor connection silent too long; closed");
                    return;
                }
            }
        }
    }
}

/// The request body as it goes to the agent: counted for the tunnel.
type AgentBody = RequestBody<Incoming>;

/// State of one visitor connection.
struct VisitorConn {
    edge: Edge,
    addrs: VisitorAddrs,
    scheme: Scheme,
    /// When the connection was accepted, by the event pipeline's clock (when one is attached).
    started: Option<OffsetDateTime>,
    /// The agent connection the previous HTTP/1.1 request used, kept for the next one.
    idle_agent: Mutex<Option<(Arc<Tunnel>, SendRequest<AgentBody>)>>,
}

/// What `http_request_complete.v0` needs that is known before the response: built only when
/// the event is wanted.
struct Exchange {
    events: warren_events::Events,
    conn: ConnInfo,
    request: HttpRequestInfo,
    request_length: Arc<AtomicU64>,
}

impl Exchange {
    /// The completion to run when the response body ends: emits the event.
    fn completion(self, tunnel: Arc<Tunnel>, status: StatusCode) -> Completion {
        let first_byte = self.events.now();
        Box::new(move |body_length| {
            let response = HttpResponseInfo {
                status: status.as_u16(),
                body_length,
                first_byte,
                last_byte: self.events.now(),
            };
            let object = crate::event_objects::http_request_complete(
                &tunnel,
                &self.conn,
                &self.request,
                self.request_length.load(Ordering::Relaxed),
                &response,
            );
            self.events.emit(HTTP_REQUEST_COMPLETE, None, object);
        })
    }
}

impl VisitorConn {
    /// Answers one request and counts the answer by status class.
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let resp = self.route_and_forward(req).await;
        self.edge
            .inner()
            .metrics
            .http_response(resp.status().as_u16());
        resp
    }

    async fn route_and_forward(&self, mut req: Request<Incoming>) -> Response<Body> {
        // Policy: `endpoints` IP restrictions, checked per request so a new restriction also
        // applies to kept-alive connections.
        if !crate::ip_restrictions::visitor_admitted(&self.edge, self.addrs).await {
            return error_page(
                StatusCode::FORBIDDEN,
                crate::ip_restrictions::VISITOR_IP_RESTRICTED,
                "Forbidden",
                "Your IP address is not allowed to reach this endpoint.",
            );
        }
        // Route.
        let Some(authority) = authority(&req) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                pages::BAD_HOST,
                "Bad request",
                "The request names no host.",
            );
        };
        let host = host_only(&authority);
        let Some(tunnel) = self
            .edge
            .routes()
            .host(&host)
            .filter(|t| t.proto.is_http())
            .cloned()
        else {
            return error_page(
                StatusCode::NOT_FOUND,
                pages::ENDPOINT_OFFLINE,
                "Endpoint not found",
                &format!("The endpoint {host} is offline: no agent serves it."),
            );
        };

        // Forward.
        tunnel.meter.request();
        let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
        let reuse = req.version() != Version::HTTP_2 && upgrade.is_none();
        let (mut parts, body) = req.into_parts();
        let exchange = self.exchange(&parts, &host);
        let body = RequestBody::new(
            body,
            tunnel.clone(),
            exchange.as_ref().map(|e| e.request_length.clone()),
        );
        prepare_request_head(
            &mut parts,
            &authority,
            self.addrs,
            self.scheme,
            upgrade.is_some(),
        );
        tunnel.meter.bytes_in(request_head_len(&parts));
        let mut sender = match self.agent(&tunnel).await {
            Ok(sender) => sender,
            Err(error) => return finish_page(connect_error_page(error), &tunnel, exchange),
        };
        let sent = timeout(
            AGENT_RESPONSE_TIMEOUT,
            sender.send_request(Request::from_parts(parts, body)),
        )
        .await;
        let mut resp = match sent {
            Ok(Ok(resp)) => resp,
            Ok(Err(error)) => {
                tracing::debug!(tunnel = %tunnel.id, %error, "agent response failed");
                let page = error_page(
                    StatusCode::BAD_GATEWAY,
                    pages::AGENT_UNAVAILABLE,
                    "Bad gateway",
                    "The agent closed the connection before sending a complete response.",
                );
                return finish_page(page, &tunnel, exchange);
            }
            Err(_) => {
                let page = error_page(
                    StatusCode::GATEWAY_TIMEOUT,
                    pages::AGENT_TIMEOUT,
                    "Gateway timeout",
                    "The agent did not answer in time.",
                );
                return finish_page(page, &tunnel, exchange);
            }
        };

        // Response.
        tunnel.meter.bytes_out(response_head_len(&resp));
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(visitor_side) = upgrade {
                let agent_side = hyper::upgrade::on(&mut resp);
                // The upgraded connection outlives this HTTP connection: it keeps a visitor slot
                // of its own (when one is free) and a drain waits for it like any visitor.
                let inner = self.edge.inner();
                let slot = inner.visitor_slots.clone().try_acquire_owned().ok();
                let upgraded = tunnel.clone();
                inner.visitors.spawn(async move {
                    join_upgraded(visitor_side, agent_side, upgraded).await;
                    drop(slot);
                });
            }
        } else {
            strip_hop_by_hop(resp.headers_mut(), false);
            if reuse {
                *self.idle_agent.lock().expect("idle agent lock") = Some((tunnel.clone(), sender));
            }
        }
        let done = exchange.map(|e| e.completion(tunnel.clone(), resp.status()));
        resp.map(|body| ResponseBody::new(body, tunnel, true, done).boxed())
    }

    /// The event's request half, when `http_request_complete.v0` is wanted.
    fn exchange(&self, head: &http::request::Parts, host: &str) -> Option<Exchange> {
        let events = self.edge.events()?;
        if !events.wants(HTTP_REQUEST_COMPLETE) {
            return None;
        }
        let conn = ConnInfo {
            client: self.addrs.remote,
            server: self.addrs.local,
            server_name: host.to_owned(),
            start: self.started.unwrap_or_else(|| events.now()),
        };
        Some(Exchange {
            events: events.clone(),
            conn,
            request: HttpRequestInfo::capture(head, self.scheme.as_str(), host),
            request_length: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The agent connection for `tunnel`: the idle one from the previous request when it is for
    /// the same tunnel and still usable, else a new proxy stream speaking HTTP/1.1.
    async fn agent(&self, tunnel: &Arc<Tunnel>) -> Result<SendRequest<AgentBody>, ConnectError> {
        let idle = self.idle_agent.lock().expect("idle agent lock").take();
        if let Some((idle_tunnel, mut sender)) = idle
            && Arc::ptr_eq(&idle_tunnel, tunnel)
            && !sender.is_closed()
            && (sender.is_ready()
                || matches!(
                    timeout(VISITOR_HEADER_TIMEOUT, sender.ready()).await,
                    Ok(Ok(()))
                ))
        {
            return Ok(sender);
        }
        let stream = tunnel.connect(self.addrs.remote, self.addrs.local).await?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ConnectError::AgentGone)?;
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        Ok(sender)
    }
}

/// An edge error page answering a request routed to `tunnel`: reported in the request's event
/// (when one is wanted); its bytes are not the endpoint's traffic.
fn finish_page(
    page: Response<Body>,
    tunnel: &Arc<Tunnel>,
    exchange: Option<Exchange>,
) -> Response<Body> {
    let Some(exchange) = exchange else {
        return page;
    };
    let done = exchange.completion(tunnel.clone(), page.status());
    let tunnel = tunnel.clone();
    page.map(|body| ResponseBody::new(body, tunnel, false, Some(done)).boxed())
}

fn connect_error_page(error: ConnectError) -> Response<Body> {
    match error {
        ConnectError::AgentGone => error_page(
            StatusCode::BAD_GATEWAY,
            pages::AGENT_UNAVAILABLE,
            "Bad gateway",
            "The agent serving this endpoint went away.",
        ),
        ConnectError::Busy => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::AGENT_UNAVAILABLE,
            "Service unavailable",
            "The agent serving this endpoint has too many open connections; try again.",
        ),
        ConnectError::Timeout => error_page(
            StatusCode::GATEWAY_TIMEOUT,
            pages::AGENT_TIMEOUT,
            "Gateway timeout",
            "The agent serving this endpoint did not accept the connection in time.",
        ),
    }
}

/// The request's authority: the URI's (HTTP/2, absolute-form) or the Host header.
fn authority(req: &Request<Incoming>) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    let host = req.headers().get(header::HOST)?.to_str().ok()?.trim();
    (!host.is_empty()).then(|| host.to_owned())
}

/// The host part of an authority, lowercased, without port or trailing dot.
fn host_only(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority.split(']').next().map_or(authority, |h| &h[1..])
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), keeping `Connection: upgrade` and `Upgrade`
/// when the request is an upgrade.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| !(keep_upgrade && t.eq_ignore_ascii_case("upgrade")))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
    ] {
        headers.remove(name);
    }
    headers.remove(header::CONNECTION);
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Size of a header block as HTTP/1.1 writes it (`name: value\r\n` each, then `\r\n`).
fn headers_len(headers: &HeaderMap) -> u64 {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (fields + 2) as u64
}

/// Size of a request head as sent to the agent over HTTP/1.1 (metered as bytes in).
fn request_head_len(parts: &http::request::Parts) -> u64 {
    let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    // `METHOD SP target SP HTTP/1.1 CRLF`
    (parts.method.as_str().len() + target + 12) as u64 + headers_len(&parts.headers)
}

/// Size of a response head as the agent sent it over HTTP/1.1 (metered as bytes out).
fn response_head_len<B>(resp: &Response<B>) -> u64 {
    let reason = resp.status().canonical_reason().map_or(0, str::len);
    // `HTTP/1.1 SP code SP reason CRLF`
    (15 + reason) as u64 + headers_len(resp.headers())
}

/// Rewrites the visitor's request head for the agent: origin-form URI, HTTP/1.1, Host, and the
/// `X-Forwarded-*` headers.
fn prepare_request_head(
    parts: &mut http::request::Parts,
    authority: &str,
    addrs: VisitorAddrs,
    scheme: Scheme,
    upgrade: bool,
) {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = Version::HTTP_11;
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers, upgrade);
    if let Ok(value) = HeaderValue::from_str(authority) {
        headers.insert(header::HOST, value.clone());
        headers.insert("x-forwarded-host", value);
    }
    let visitor_ip = addrs.remote.ip().to_canonical().to_string();
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {visitor_ip}"),
        None => visitor_ip,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(scheme.as_str()),
    );
}

/// Copies bytes between the visitor and the agent once both sides have switched protocols,
/// counting them for `tunnel`.
async fn join_upgraded(
    visitor: hyper::upgrade::OnUpgrade,
    agent: hyper::upgrade::OnUpgrade,
    tunnel: Arc<Tunnel>,
) {
    let (Ok(visitor), Ok(agent)) = tokio::join!(visitor, agent) else {
        return;
    };
    let mut visitor = Counted::new(TokioIo::new(visitor), tunnel);
    let mut agent = TokioIo::new(agent);
    let _ = tokio::io::copy_bidirectional(&mut visitor, &mut agent).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_sizes_are_their_http1_wire_sizes() {
        let (mut parts, ()) = Request::get("/a?b=1").body(()).unwrap().into_parts();
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_static("x.io"));
        // "GET /a?b=1 HTTP/1.1\r\n" + "host: x.io\r\n" + "\r\n"
        assert_eq!(request_head_len(&parts), 21 + 12 + 2);
        let resp = Response::builder()
            .status(404)
            .header("a", "b")
            .body(())
            .unwrap();
        // "HTTP/1.1 404 Not Found\r\n" + "a: b\r\n" + "\r\n"
        assert_eq!(response_head_len(&resp), 24 + 6 + 2);
    }

    #[test]
    fn hosts_lose_ports_and_case() {
        assert_eq!(host_only("App.Example.com:8443"), "app.example.com");
        assert_eq!(host_only("app.example.com."), "app.example.com");
        assert_eq!(host_only("[::1]:8080"), "::1");
        assert_eq!(host_only("localhost"), "localhost");
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, false);
        assert!(headers.get("x-secret").is_none());
        assert!(headers.get("keep-alive").is_none());
        assert!(headers.get(header::CONNECTION).is_none());
        assert!(headers.get("x-kept").is_some());

        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers[header::CONNECTION], "upgrade");
        assert_eq!(headers[header::UPGRADE], "websocket");
    }
}
