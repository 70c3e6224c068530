//! The inspecting HTTP forwarder: one visitor connection from the edge, served with hyper, each
//! request forwarded to the upstream over one kept-alive upstream connection, each exchange
//! captured while its bodies stream. Also [`replay`], which sends a captured request again.
//!
//! Per request the phases are: capture the request head → forward (dial or reuse the upstream
//! connection; PROXY header first when the endpoint asks for it) → stream the response back (or
//! answer 502 when the upstream cannot be reached) → record the capture when both bodies have
//! ended. Upgrades (WebSocket) are spliced byte for byte after the 101.
//!
//! This file must not buffer whole bodies (only the first [`MAX_CAPTURED_BODY`] bytes of each
//! are copied aside) and must not rewrite what the visitor sent beyond what crossing between
//! HTTP/1 and HTTP/2 requires: the Host header and header names pass through unchanged.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName, UPGRADE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use warren::{Prefixed, Upstream};
use warren_proto::proxy_protocol;

use super::{
    Capture, CapturedBody, CapturedRequest, CapturedResponse, Inspector, MAX_CAPTURED_BODY,
    proto_name, raw_message,
};
use crate::control::{Control, CounterCells};

/// How long a visitor connection may take to send its PROXY protocol header.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a visitor may take to send a request's headers (hyper's HTTP/1 header timer).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a replay may take, from dialing the upstream to the end of its response body.
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

pub use warren::UPSTREAM_UNREACHABLE;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the forwarder needs to know about one HTTP endpoint; shared by all of its connections.
#[derive(Debug)]
pub struct HttpForward {
    /// The endpoint's name, recorded in captures.
    pub tunnel_name: String,
    /// Where requests go.
    pub upstream: Upstream,
    /// Speak HTTP/2 (prior knowledge) to the upstream, and accept it from the edge.
    pub upstream_http2: bool,
    /// The PROXY protocol version the edge puts ahead of each connection (`Some(1 | 2)`); the
    /// same header is written ahead of each upstream connection.
    pub proxy_protocol: Option<u8>,
    /// Where exchanges are captured; `None` forwards without capturing.
    pub inspector: Option<Arc<Inspector>>,
    /// The endpoint's counters; `http_requests` is counted here.
    pub counters: Arc<CounterCells>,
}

/// Serves one visitor connection until it ends. Errors (a bad PROXY header, a protocol error,
/// a reset) end the connection and are logged at debug level; nothing here panics on input.
pub async fn serve_http<IO>(io: IO, remote_addr: SocketAddr, fwd: Arc<HttpForward>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (io, proxy_header) = match fwd.proxy_protocol {
        Some(version) if version != 0 => {
            let mut io = io;
            match tokio::time::timeout(PROXY_HEADER_TIMEOUT, read_proxy_header(&mut io)).await {
                Ok(Ok((header, rest))) => (Prefixed::new(rest, io), Some(header)),
                Ok(Err(e)) => {
                    tracing::debug!(%remote_addr, error = %e, "bad PROXY protocol header");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote_addr, "no PROXY protocol header in time");
                    return;
                }
            }
        }
        _ => (Prefixed::new(Bytes::new(), io), None),
    };
    let conn = Arc::new(VisitorConn {
        fwd: fwd.clone(),
        remote_addr,
        proxy_header,
        upstream: Mutex::new(None),
    });
    let service = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(conn.exchange(req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .preserve_header_case(true);
    builder.http2().timer(TokioTimer::new());
    let builder = if fwd.upstream_http2 {
        builder
    } else {
        builder.http1_only()
    };
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(%remote_addr, endpoint = %fwd.tunnel_name, error = %e, "visitor connection ended with an error");
    }
}

/// Reads a PROXY v1/v2 header; returns it and the bytes read past it.
async fn read_proxy_header<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<(Bytes, Bytes)> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        match proxy_protocol::parse(&buf) {
            Ok(Some((_, n))) => {
                let buf = Bytes::from(buf);
                return Ok((buf.slice(..n), buf.slice(n..)));
            }
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
        let room = proxy_protocol::MAX_V2_LEN.saturating_sub(buf.len());
        if room == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "PROXY protocol header too long",
            ));
        }
        let want = room.min(chunk.len());
        let n = io.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The request body type sent upstream for visitor requests.
type VisitorBody = TapBody<Incoming>;

/// The response body type sent to visitors: the upstream's, or a local page (502).
type ToVisitorBody = TapBody<Either<Incoming, Full<Bytes>>>;

/// One visitor connection's state.
struct VisitorConn {
    fwd: Arc<HttpForward>,
    remote_addr: SocketAddr,
    /// The PROXY header the edge sent, repeated ahead of every upstream connection.
    proxy_header: Option<Bytes>,
    /// The upstream connection kept for the next request (an HTTP/1 sender is taken out while
    /// a request is in flight; an HTTP/2 one stays and is cloned).
    upstream: Mutex<Option<Sender<VisitorBody>>>,
}

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("failed to establish a connection to the upstream {upstream}: {source}")]
    Dial { upstream: String, source: io::Error },
    #[error("the upstream {upstream} failed: {source}")]
    Exchange {
        upstream: String,
        source: hyper::Error,
    },
}

impl VisitorConn {
    /// Forwards one request and returns what the visitor gets.
    async fn exchange(self: Arc<Self>, mut req: Request<Incoming>) -> Response<ToVisitorBody> {
        let fwd = &self.fwd;
        fwd.counters.http_requests.fetch_add(1, Ordering::Relaxed);
        let exchange = fwd
            .inspector
            .as_ref()
            .map(|ring| Exchange::start(ring.clone(), &fwd.tunnel_name, self.remote_addr, &req));
        let visitor_upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
        let visitor_version = req.version();
        let response_part = Part::new(exchange.clone(), Side::Response);
        let req = req.map(|body| TapBody::new(body, Part::new(exchange.clone(), Side::Request)));
        let req = to_upstream(req, &fwd.upstream, fwd.upstream_http2);
        let resp = match self.send(req).await {
            Ok(mut resp) => {
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(visitor) = visitor_upgrade
                {
                    let upstream = hyper::upgrade::on(&mut resp);
                    tokio::spawn(splice(visitor, upstream));
                }
                if let Some(x) = &exchange {
                    x.set_response(resp.status(), resp.version(), resp.headers());
                }
                to_visitor(resp, visitor_version).map(Either::Left)
            }
            Err(e) => {
                tracing::debug!(endpoint = %fwd.tunnel_name, error = %e, "answering 502");
                let resp = bad_gateway(&fwd.upstream, &e, visitor_version);
                if let Some(x) = &exchange {
                    x.set_response(resp.status(), resp.version(), resp.headers());
                }
                resp.map(Either::Right)
            }
        };
        resp.map(|body| TapBody::new(body, response_part))
    }

    /// Sends on the kept upstream connection, or a new one; retries once on a new connection
    /// when a kept one turns out closed before the request went out.
    async fn send(&self, req: Request<VisitorBody>) -> Result<Response<Incoming>, SendError> {
        let (mut sender, fresh) = match self.kept_sender().await {
            Some(sender) => (sender, false),
            None => (self.dial().await?, true),
        };
        let mut err = match sender.try_send(req).await {
            Ok(resp) => {
                self.keep(sender);
                return Ok(resp);
            }
            Err(err) => err,
        };
        if !fresh && let Some(req) = err.take_message() {
            let mut sender = self.dial().await?;
            match sender.try_send(req).await {
                Ok(resp) => {
                    self.keep(sender);
                    return Ok(resp);
                }
                Err(e) => err = e,
            }
        }
        Err(SendError::Exchange {
            upstream: self.fwd.upstream.to_string(),
            source: err.into_error(),
        })
    }

    /// The kept upstream connection once it can take a request; `None` when there is none or
    /// it closed.
    async fn kept_sender(&self) -> Option<Sender<VisitorBody>> {
        let kept = {
            let mut slot = self.upstream.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(Sender::H2(h2)) => Some(Sender::H2(h2.clone())),
                _ => slot.take(),
            }
        };
        let mut sender = kept?;
        if sender.ready().await.is_ok() {
            return Some(sender);
        }
        if let Sender::H2(_) = sender {
            *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        None
    }

    /// Keeps `sender` for the next request (unless one is kept already).
    fn keep(&self, sender: Sender<VisitorBody>) {
        let mut slot = self.upstream.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(sender);
        }
    }

    async fn dial(&self) -> Result<Sender<VisitorBody>, SendError> {
        dial(
            &self.fwd.upstream,
            self.fwd.upstream_http2,
            self.proxy_header.as_deref(),
        )
        .await
        .map_err(|source| SendError::Dial {
            upstream: self.fwd.upstream.to_string(),
            source,
        })
    }
}

/// A client connection to the upstream.
enum Sender<B> {
    H1(http1::SendRequest<B>),
    H2(http2::SendRequest<B>),
}

impl<B: Body + 'static> Sender<B> {
    async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    async fn try_send(
        &mut self,
        req: Request<B>,
    ) -> Result<Response<Incoming>, TrySendError<Request<B>>> {
        match self {
            Sender::H1(s) => s.try_send_request(req).await,
            Sender::H2(s) => s.try_send_request(req).await,
        }
    }
}

/// Connects to the upstream, writes the PROXY header when given, and starts an HTTP client
/// connection on it (its driver runs on its own task and ends with the connection).
async fn dial<B>(
    upstream: &Upstream,
    http2: bool,
    proxy_header: Option<&[u8]>,
) -> io::Result<Sender<B>>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut io = upstream.dial().await?;
    if let Some(header) = proxy_header {
        io.write_all(header).await?;
    }
    let io = TokioIo::new(io);
    if http2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = http1::Builder::new()
            .preserve_header_case(true)
            .handshake(io)
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Sender::H1(sender))
    }
}

/// Whether an HTTP/1.1 request asks to switch protocols.
fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(UPGRADE)
        && req
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Copies bytes both ways between the two upgraded connections until both ends close.
async fn splice(visitor: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (visitor, upstream) = match tokio::try_join!(visitor, upstream) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut visitor = TokioIo::new(visitor);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut visitor, &mut upstream).await {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
    }
}

/// Headers that belong to one HTTP/1 connection, dropped when crossing to or from HTTP/2.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    let keep_te = headers.get("te").is_some_and(|v| v == "trailers");
    for name in HOP_BY_HOP {
        if !(name == "te" && keep_te) {
            headers.remove(name);
        }
    }
}

/// Adapts a request for the upstream's protocol. Same protocol: unchanged. HTTP/1 → HTTP/2: an
/// absolute URI (scheme of the upstream, authority from Host). HTTP/2 → HTTP/1: origin-form and
/// a Host header from the authority.
fn to_upstream<B>(mut req: Request<B>, upstream: &Upstream, http2: bool) -> Request<B> {
    let from_http2 = req.version() == Version::HTTP_2;
    if from_http2 == http2 {
        return req;
    }
    strip_hop_by_hop(req.headers_mut());
    if http2 {
        *req.version_mut() = Version::HTTP_2;
        if req.uri().authority().is_none() {
            let authority = req
                .headers()
                .get(HOST)
                .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                .or_else(|| Authority::try_from(upstream.authority()).ok());
            let scheme = if upstream.scheme().is_tls() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            };
            let mut parts = req.uri().clone().into_parts();
            parts.scheme = Some(scheme);
            parts.authority = authority;
            if parts.path_and_query.is_none() {
                parts.path_and_query = Some(PathAndQuery::from_static("/"));
            }
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    } else {
        *req.version_mut() = Version::HTTP_11;
        if !req.headers().contains_key(HOST) {
            let host = req
                .uri()
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_else(|| upstream.authority());
            if let Ok(value) = HeaderValue::from_str(&host) {
                req.headers_mut().insert(HOST, value);
            }
        }
        if req.method() != Method::CONNECT {
            let path = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            *req.uri_mut() = Uri::from(path);
        }
    }
    req
}

/// Adapts an upstream response for the visitor's protocol.
fn to_visitor<B>(mut resp: Response<B>, visitor: Version) -> Response<B> {
    let from_http2 = resp.version() == Version::HTTP_2;
    let to_http2 = visitor == Version::HTTP_2;
    if from_http2 != to_http2 {
        strip_hop_by_hop(resp.headers_mut());
        *resp.version_mut() = if to_http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
    }
    resp
}

/// The page a visitor gets when the upstream cannot be reached or fails before answering.
fn bad_gateway(upstream: &Upstream, e: &SendError, version: Version) -> Response<Full<Bytes>> {
    let what = match e {
        SendError::Dial { source, .. } => format!(
            "The agent failed to establish a connection to the upstream web service at {upstream}: {source}"
        ),
        SendError::Exchange { source, .. } => {
            format!("The upstream web service at {upstream} failed: {source}")
        }
    };
    let body = warren::bad_gateway_page(&what);
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    *resp.version_mut() = version;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut().insert(
        HeaderName::from_static("ngrok-error-code"),
        HeaderValue::from_static(UPSTREAM_UNREACHABLE),
    );
    resp
}

/// Which body of an exchange a [`Part`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

/// One exchange being captured: its heads, and its bodies as they end. Recorded in the ring
/// when both bodies have ended (or been dropped).
struct Exchange {
    inspector: Arc<Inspector>,
    tunnel_name: String,
    remote_addr: SocketAddr,
    start: SystemTime,
    started: Instant,
    state: Mutex<ExchangeState>,
}

struct ExchangeState {
    request: RequestHead,
    request_body: CapturedParts,
    response: Option<ResponseHead>,
    response_body: CapturedParts,
    duration: Option<Duration>,
    /// Parts not yet ended (request body, response).
    pending: u8,
}

struct RequestHead {
    method: Method,
    uri: String,
    version: Version,
    headers: HeaderMap,
}

impl RequestHead {
    fn of<B>(req: &Request<B>) -> RequestHead {
        let uri = req.uri();
        let mut headers = req.headers().clone();
        // An HTTP/2 request names its host in the URI; show it as the Host header HTTP/1 has.
        if let Some(authority) = uri.authority()
            && !headers.contains_key(HOST)
            && let Ok(v) = HeaderValue::from_str(authority.as_str())
        {
            headers.insert(HOST, v);
        }
        RequestHead {
            method: req.method().clone(),
            uri: uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| uri.to_string()),
            version: req.version(),
            headers,
        }
    }
}

struct ResponseHead {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

/// A body as a [`Part`] saw it.
#[derive(Default)]
struct CapturedParts {
    data: Vec<u8>,
    len: u64,
    complete: bool,
}

impl Exchange {
    fn start<B>(
        inspector: Arc<Inspector>,
        tunnel_name: &str,
        remote_addr: SocketAddr,
        req: &Request<B>,
    ) -> Arc<Exchange> {
        Arc::new(Exchange {
            inspector,
            tunnel_name: tunnel_name.to_owned(),
            remote_addr,
            start: SystemTime::now(),
            started: Instant::now(),
            state: Mutex::new(ExchangeState {
                request: RequestHead::of(req),
                request_body: CapturedParts::default(),
                response: None,
                response_body: CapturedParts::default(),
                duration: None,
                pending: 2,
            }),
        })
    }

    fn set_response(&self, status: StatusCode, version: Version, headers: &HeaderMap) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.response = Some(ResponseHead {
            status,
            version,
            headers: headers.clone(),
        });
    }

    fn part_done(&self, side: Side, body: CapturedParts) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match side {
            Side::Request => st.request_body = body,
            Side::Response => {
                st.response_body = body;
                st.duration = Some(self.started.elapsed());
            }
        }
        st.pending = st.pending.saturating_sub(1);
        if st.pending > 0 {
            return;
        }
        let capture = self.capture(&mut st);
        drop(st);
        self.inspector.push(capture);
    }

    fn capture(&self, st: &mut ExchangeState) -> Capture {
        fn body(parts: &CapturedParts, data: Bytes) -> CapturedBody {
            CapturedBody {
                truncated: parts.len > data.len() as u64,
                data,
                len: parts.len,
                complete: parts.complete,
            }
        }
        let req = &st.request;
        let proto = proto_name(req.version);
        let line = format!("{} {} {proto}", req.method, req.uri);
        let (raw, data) = raw_message(&line, &req.headers, &st.request_body.data);
        let request = CapturedRequest {
            method: req.method.clone(),
            uri: req.uri.clone(),
            proto,
            headers: owned_headers(std::mem::take(&mut st.request.headers)),
            body: body(&st.request_body, data),
            raw,
        };
        let response = st.response.take().map(|head| {
            let proto = proto_name(head.version);
            let status = format!(
                "{} {}",
                head.status.as_u16(),
                head.status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_owned();
            let line = format!("{proto} {status}");
            let (raw, data) = raw_message(&line, &head.headers, &st.response_body.data);
            CapturedResponse {
                status_code: head.status.as_u16(),
                status,
                proto,
                headers: owned_headers(head.headers),
                body: body(&st.response_body, data),
                raw,
            }
        });
        Capture {
            id: self.inspector.next_id(),
            tunnel_name: self.tunnel_name.clone(),
            remote_addr: self.remote_addr,
            start: self.start,
            duration: st.duration.unwrap_or_else(|| self.started.elapsed()),
            request,
            response,
        }
    }
}

/// A copy of `headers` that owns its bytes. Values parsed by hyper are slices of the
/// connection's read buffer; keeping them in the ring would keep whole buffers alive (kilobytes
/// per capture instead of the few bytes the headers take).
fn owned_headers(headers: HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in &headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        copy.set_sensitive(value.is_sensitive());
        owned.append(name.clone(), copy);
    }
    owned
}

/// Follows one body of an exchange: copies its first [`MAX_CAPTURED_BODY`] bytes aside, counts
/// the rest, and reports to the exchange once, when the body ends, fails or is dropped.
struct Part {
    exchange: Option<Arc<Exchange>>,
    side: Side,
    body: CapturedParts,
}

impl Part {
    fn new(exchange: Option<Arc<Exchange>>, side: Side) -> Part {
        Part {
            exchange,
            side,
            body: CapturedParts::default(),
        }
    }

    fn observe(&mut self, chunk: &[u8]) {
        if self.exchange.is_none() {
            return;
        }
        self.body.len += chunk.len() as u64;
        let room = MAX_CAPTURED_BODY.saturating_sub(self.body.data.len());
        self.body
            .data
            .extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    fn finish(&mut self, complete: bool) {
        if let Some(exchange) = self.exchange.take() {
            let mut body = std::mem::take(&mut self.body);
            body.complete = complete;
            exchange.part_done(self.side, body);
        }
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// A body passed through unchanged while a [`Part`] watches it.
pub(crate) struct TapBody<B: Body> {
    inner: B,
    part: Part,
}

impl<B: Body> TapBody<B> {
    fn new(inner: B, part: Part) -> TapBody<B> {
        TapBody { inner, part }
    }
}

impl<B> Body for TapBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.part.finish(true);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.part.observe(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.part.finish(false);
                Poll::Ready(Some(Err(e.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for TapBody<B> {
    fn drop(&mut self) {
        // hyper stops polling a body that says it has ended; that is a complete body too.
        if self.inner.is_end_stream() {
            self.part.finish(true);
        }
    }
}

/// Why a replay failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// No capture with that id (never captured, or evicted).
    #[error("no captured request with id `{0}`")]
    NotFound(String),
    /// No running endpoint with that name to send it through.
    #[error("no running endpoint named `{0}`")]
    NoEndpoint(String),
    /// Only part of the request body was captured, so it cannot be sent again.
    #[error(
        "the captured request body is incomplete (bodies over {MAX_CAPTURED_BODY} bytes are truncated), so it cannot be replayed"
    )]
    Truncated,
    /// The upstream could not be reached or failed.
    #[error("{0}")]
    Upstream(String),
}

/// Sends the captured request `id` again to the upstream of `tunnel_name` (default: the
/// endpoint it was captured on), on a new upstream connection, and captures the new exchange
/// (it shows as a new request; its remote address is the original's). The response body is
/// read to its end and dropped. Bounded by [`REPLAY_TIMEOUT`].
pub async fn replay(
    inspector: &Inspector,
    control: &dyn Control,
    id: &str,
    tunnel_name: Option<&str>,
) -> Result<(), ReplayError> {
    let capture = inspector
        .get(id)
        .ok_or_else(|| ReplayError::NotFound(id.to_owned()))?;
    let name = match tunnel_name {
        Some(name) if !name.is_empty() => name,
        _ => capture.tunnel_name.as_str(),
    };
    let upstream = control
        .upstream(name)
        .ok_or_else(|| ReplayError::NoEndpoint(name.to_owned()))?;
    if !capture.request.body.is_whole() {
        return Err(ReplayError::Truncated);
    }
    let endpoint = control.endpoint(name);
    let http2 = endpoint
        .as_ref()
        .is_some_and(|e| e.config.upstream.protocol.as_deref() == Some("http2"));
    let proxy_header = endpoint
        .and_then(|e| e.config.upstream.proxy_protocol)
        .and_then(|version| {
            let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), upstream.port());
            proxy_protocol::header(version, capture.remote_addr, dst)
        });
    let req = captured_request(&capture.request)?;
    let exchange = inspector
        .handle()
        .map(|ring| Exchange::start(ring, name, capture.remote_addr, &req));
    let send = async {
        let mut sender = dial::<TapBody<Full<Bytes>>>(&upstream, http2, proxy_header.as_deref())
            .await
            .map_err(|e| {
                ReplayError::Upstream(format!(
                    "failed to establish a connection to the upstream {upstream}: {e}"
                ))
            })?;
        let response_part = Part::new(exchange.clone(), Side::Response);
        let req = req.map(|body| TapBody::new(body, Part::new(exchange.clone(), Side::Request)));
        let req = to_upstream(req, &upstream, http2);
        let failed = |e: &dyn std::fmt::Display| {
            ReplayError::Upstream(format!("the upstream {upstream} failed: {e}"))
        };
        sender.ready().await.map_err(|e| failed(&e))?;
        let resp = sender
            .try_send(req)
            .await
            .map_err(|e| failed(&e.into_error()))?;
        if let Some(x) = &exchange {
            x.set_response(resp.status(), resp.version(), resp.headers());
        }
        let mut body = TapBody::new(resp.into_body(), response_part);
        while let Some(frame) = body.frame().await {
            frame.map_err(|e| failed(&e))?;
        }
        Ok(())
    };
    tokio::time::timeout(REPLAY_TIMEOUT, send)
        .await
        .map_err(|_| ReplayError::Upstream(format!("the upstream {upstream} timed out")))?
}

/// The captured request as a request to send again.
fn captured_request(captured: &CapturedRequest) -> Result<Request<Full<Bytes>>, ReplayError> {
    let uri = Uri::try_from(captured.uri.as_str())
        .map_err(|e| ReplayError::Upstream(format!("the captured URI is invalid: {e}")))?;
    let mut req = Request::new(Full::new(captured.body.data.clone()));
    *req.method_mut() = captured.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = match captured.proto {
        "HTTP/1.0" => Version::HTTP_10,
        "HTTP/2.0" => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    *req.headers_mut() = captured.headers.clone();
    if req.version() == Version::HTTP_2 {
        // The Host header was added from the authority at capture; HTTP/2 carries it in the URI.
        req.headers_mut().remove(HOST);
        let host = captured.headers.get(HOST).and_then(|h| h.to_str().ok());
        if let Some(authority) = host.and_then(|h| Authority::try_from(h).ok()) {
            let mut parts = req.uri().clone().into_parts();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(authority);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    Ok(req)
}

#[cfg(test)]
mod owned_headers_tests {
    use super::*;

    #[test]
    fn captured_headers_do_not_keep_the_read_buffer_alive() {
        let buffer = Bytes::from(vec![b'a'; 64 * 1024]);
        let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        let mut parsed = HeaderMap::new();
        parsed.insert(
            HeaderName::from_static("x-shared"),
            HeaderValue::from_maybe_shared(buffer.slice(10..20)).unwrap(),
        );
        assert!(range.contains(&(parsed["x-shared"].as_bytes().as_ptr() as usize)));
        let owned = owned_headers(parsed);
        assert_eq!(owned["x-shared"].as_bytes(), b"aaaaaaaaaa");
        assert!(!range.contains(&(owned["x-shared"].as_bytes().as_ptr() as usize)));
    }
}
