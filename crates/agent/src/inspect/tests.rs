use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpListener;
use warren::{Upstream, UpstreamScheme};

use super::*;
use crate::config::{EndpointConfig, UpstreamConfig};
use crate::control::{
    AgentStatus, Control, ControlError, CounterCells, EndpointCounters, EndpointState,
    EndpointStatus, SessionState,
};
use warren_proto::proxy_protocol;

const VISITOR: &str = "203.0.113.7:40000";

/// An HTTP/1.1 + h2c origin that answers `METHOD URI host=HOST len=N` after reading the whole
/// body, and counts the connections it accepted.
async fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let head = format!(
                        "{} {} host={}",
                        req.method(),
                        req.uri().path_and_query().map_or("", |p| p.as_str()),
                        req.headers()
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("-"),
                    );
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let len = body.map(|b| b.len()).unwrap_or(0);
                    let mut resp =
                        Response::new(Full::new(Bytes::from(format!("{head} len={len}"))));
                    resp.headers_mut()
                        .insert("x-origin", http::HeaderValue::from_static("yes"));
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, conns)
}

fn forward(upstream: SocketAddr, ring: &Arc<Inspector>) -> Arc<HttpForward> {
    Arc::new(HttpForward {
        tunnel_name: "web".into(),
        upstream: Upstream::parse(&upstream.to_string(), UpstreamScheme::Http).unwrap(),
        upstream_http2: false,
        proxy_protocol: None,
        inspector: Some(ring.clone()),
        counters: Arc::new(CounterCells::default()),
    })
}

/// Starts `serve_http` on one end of a duplex pipe and returns the other (the visitor's side).
fn visitor_pipe(fwd: Arc<HttpForward>) -> DuplexStream {
    let (visitor, agent) = tokio::io::duplex(256 * 1024);
    tokio::spawn(serve_http(agent, VISITOR.parse().unwrap(), fwd));
    visitor
}

async fn h1_client(io: DuplexStream) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    sender
}

async fn text(resp: Response<Incoming>) -> String {
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "app.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Waits until the ring has recorded `n` exchanges in all.
async fn recorded(ring: &Inspector, n: u64) {
    let mut watch = ring.watch();
    tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|c| *c >= n))
        .await
        .expect("captures recorded in time")
        .unwrap();
}

#[tokio::test]
async fn keep_alive_requests_share_one_upstream_connection_and_are_captured() {
    let (origin, conns) = origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let fwd = forward(origin, &ring);
    let mut client = h1_client(visitor_pipe(fwd.clone())).await;

    for path in ["/first", "/second?x=1"] {
        client.ready().await.unwrap();
        let resp = client.send_request(get(path)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            text(resp).await,
            format!("GET {path} host=app.example.com len=0")
        );
    }
    recorded(&ring, 2).await;
    assert_eq!(conns.load(Ordering::SeqCst), 1, "one upstream connection");
    assert_eq!(fwd.counters.http_requests.load(Ordering::Relaxed), 2);

    let list = ring.list(10, None);
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].request.uri, "/second?x=1", "newest first");
    assert_eq!(list[1].request.uri, "/first");
    assert!(list[0].id > list[1].id);
    assert_eq!(list[0].id.len(), 16);
    assert!(list[0].id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(list[0].id[..8], list[1].id[..8], "one prefix per ring");

    let json = list[1].to_json();
    let id = list[1].id.clone();
    assert_eq!(json["uri"], format!("/api/requests/http/{id}"));
    assert_eq!(json["id"], id);
    assert_eq!(json["tunnel_name"], "web");
    assert_eq!(json["remote_addr"], "203.0.113.7");
    assert!(json["duration"].as_u64().is_some());
    let start = json["start"].as_str().unwrap();
    time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(json["request"]["method"], "GET");
    assert_eq!(json["request"]["proto"], "HTTP/1.1");
    assert_eq!(json["request"]["uri"], "/first");
    assert_eq!(json["request"]["headers"]["Host"][0], "app.example.com");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(json["request"]["raw"].as_str().unwrap())
        .unwrap();
    assert!(raw.starts_with(b"GET /first HTTP/1.1\r\nHost: app.example.com\r\n"));
    assert_eq!(json["response"]["status"], "200 OK");
    assert_eq!(json["response"]["status_code"], 200);
    assert_eq!(json["response"]["headers"]["X-Origin"][0], "yes");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(json["response"]["raw"].as_str().unwrap())
        .unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(raw.ends_with(b"GET /first host=app.example.com len=0"));

    assert_eq!(ring.get(&id).unwrap().request.uri, "/first");
    assert!(ring.get("0000000000000000").is_none());
    assert_eq!(ring.recent(1)[0].request.uri, "/second?x=1");
}

/// A body sent frame by frame.
type Streamed =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A request body sent as `chunks` frames of `size` bytes each.
fn streamed(chunks: usize, size: usize) -> Request<Streamed> {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = (0..chunks)
        .map(|i| Ok(Frame::data(Bytes::from(vec![b'a' + (i % 26) as u8; size]))))
        .collect();
    Request::post("/upload")
        .header("host", "app.example.com")
        .header("content-type", "application/octet-stream")
        .body(StreamBody::new(futures::stream::iter(frames)))
        .unwrap()
}

#[tokio::test]
async fn request_bodies_stream_through_and_only_their_start_is_captured() {
    let (origin, _) = origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let io = visitor_pipe(forward(origin, &ring));
    let (mut client, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);

    // Small body: captured whole.
    let resp = client.send_request(streamed(3, 10)).await.unwrap();
    assert_eq!(text(resp).await, "POST /upload host=app.example.com len=30");
    recorded(&ring, 1).await;
    let small = ring.recent(1)[0].clone();
    assert_eq!(small.request.body.len, 30);
    assert_eq!(small.request.body.data.len(), 30);
    assert!(small.request.body.is_whole());
    assert_eq!(&small.request.body.data[..10], b"aaaaaaaaaa");
    assert!(small.request.raw.ends_with(&small.request.body.data));

    // Past the limit: all of it reaches the origin, the capture keeps the first bytes.
    let total = 70 * 1000;
    assert!(total > MAX_CAPTURED_BODY);
    client.ready().await.unwrap();
    let resp = client
        .send_request(streamed(total / 1000, 1000))
        .await
        .unwrap();
    assert_eq!(
        text(resp).await,
        format!("POST /upload host=app.example.com len={total}")
    );
    recorded(&ring, 2).await;
    let big = ring.recent(1)[0].clone();
    assert_eq!(big.request.body.len, total as u64);
    assert_eq!(big.request.body.data.len(), MAX_CAPTURED_BODY);
    assert!(big.request.body.truncated);
    assert!(big.request.body.complete);
    assert!(!big.request.body.is_whole());
    let response = big.response.as_ref().unwrap();
    assert!(response.body.is_whole());
}

fn synthetic(tunnel: &str, body: usize) -> Capture {
    let headers = HeaderMap::new();
    let (raw, data) = raw_message("GET / HTTP/1.1", &headers, &vec![b'x'; body]);
    Capture {
        id: String::new(),
        tunnel_name: tunnel.into(),
        remote_addr: VISITOR.parse().unwrap(),
        start: SystemTime::now(),
        duration: Duration::from_millis(1),
        request: CapturedRequest {
            method: http::Method::GET,
            uri: "/".into(),
            proto: "HTTP/1.1",
            headers,
            body: CapturedBody {
                len: body as u64,
                data,
                truncated: false,
                complete: true,
            },
            raw,
        },
        response: None,
    }
}

fn push(ring: &Inspector, tunnel: &str, body: usize) -> String {
    let mut capture = synthetic(tunnel, body);
    capture.id = ring.next_id();
    let id = capture.id.clone();
    ring.push(capture);
    id
}

#[test]
fn the_ring_evicts_oldest_first_by_count() {
    let ring = Inspector::with_limits(usize::MAX, 3);
    let ids: Vec<String> = (0..5).map(|_| push(&ring, "web", 10)).collect();
    assert_eq!(ring.len(), 3);
    let kept: Vec<String> = ring.list(10, None).iter().map(|c| c.id.clone()).collect();
    assert_eq!(kept, vec![ids[4].clone(), ids[3].clone(), ids[2].clone()]);
    assert!(ring.get(&ids[1]).is_none());
    assert_eq!(*ring.watch().borrow(), 5);
}

#[test]
fn the_ring_evicts_oldest_first_by_bytes() {
    let size = {
        let mut c = synthetic("web", 1000);
        c.id = "0".repeat(16);
        c.size()
    };
    let ring = Inspector::with_limits(3 * size, MAX_CAPTURES);
    let ids: Vec<String> = (0..4).map(|_| push(&ring, "web", 1000)).collect();
    assert_eq!(ring.len(), 3);
    assert!(ring.bytes() <= 3 * size);
    assert!(ring.get(&ids[0]).is_none());
    assert!(ring.get(&ids[3]).is_some());

    // One big capture pushes out as many as needed; one bigger than the ring is not kept.
    push(&ring, "web", 2 * size);
    assert_eq!(ring.len(), 1);
    push(&ring, "web", 4 * size);
    assert_eq!(ring.len(), 1);

    ring.clear();
    assert!(ring.is_empty());
    assert_eq!(ring.bytes(), 0);
}

#[test]
fn list_filters_by_tunnel_and_limit() {
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    for i in 0..6 {
        push(&ring, if i % 2 == 0 { "a" } else { "b" }, 1);
    }
    assert_eq!(ring.list(10, Some("a")).len(), 3);
    assert_eq!(ring.list(2, Some("b")).len(), 2);
    assert!(ring.list(2, Some("b")).iter().all(|c| c.tunnel_name == "b"));
    assert_eq!(ring.list(4, None).len(), 4);
    assert_eq!(ring.list(0, None).len(), 0);
    assert!(ring.list(10, Some("c")).is_empty());
}

#[tokio::test]
async fn an_unreachable_upstream_gets_a_captured_502() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let fwd = forward(closed, &ring);
    let mut client = h1_client(visitor_pipe(fwd.clone())).await;
    let resp = client.send_request(get("/down")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.headers()["ngrok-error-code"], UPSTREAM_UNREACHABLE);
    let body = text(resp).await;
    assert!(body.contains("failed to establish a connection"), "{body}");
    assert!(body.contains(&closed.to_string()), "{body}");

    // The connection stays usable.
    client.ready().await.unwrap();
    let resp = client.send_request(get("/again")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);

    recorded(&ring, 2).await;
    let capture = ring.get(&ring.recent(2)[1].id).unwrap();
    assert_eq!(capture.request.uri, "/down");
    let response = capture.response.as_ref().unwrap();
    assert_eq!(response.status_code, 502);
    assert_eq!(response.status, "502 Bad Gateway");
    assert!(response.body.is_whole());
    assert_eq!(fwd.counters.http_requests.load(Ordering::Relaxed), 2);
}

/// Whether `seen` holds a whole request head (after whatever precedes the request line, such
/// as a PROXY v2 header, which contains a blank line of its own).
fn has_request_head(seen: &[u8]) -> bool {
    let Some(line) = seen.windows(10).position(|w| w == b"HTTP/1.1\r\n") else {
        return false;
    };
    seen[line..].windows(4).any(|w| w == b"\r\n\r\n")
}

/// A raw TCP origin: reads one request head (after an optional PROXY v1 line) and answers with
/// the bytes it read as the body.
async fn raw_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !has_request_head(&seen) {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    seen.len()
                );
                let _ = tcp.write_all(head.as_bytes()).await;
                let _ = tcp.write_all(&seen).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_proxy_header_is_read_and_repeated_to_the_upstream() {
    let origin = raw_origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let mut fwd = Arc::into_inner(forward(origin, &ring)).unwrap();
    fwd.proxy_protocol = Some(1);
    let mut io = visitor_pipe(Arc::new(fwd));
    let header = b"PROXY TCP4 198.51.100.1 192.0.2.1 51000 443\r\n";
    io.write_all(header).await.unwrap();
    let mut client = h1_client(io).await;
    let resp = client.send_request(get("/pp")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = text(resp).await;
    assert!(
        seen.starts_with("PROXY TCP4 198.51.100.1 192.0.2.1 51000 443\r\nGET /pp HTTP/1.1\r\n"),
        "{seen:?}"
    );
    recorded(&ring, 1).await;
    let capture = ring.recent(1)[0].clone();
    assert_eq!(capture.request.uri, "/pp");
    assert!(!capture.request.raw.starts_with(b"PROXY"));
}

#[tokio::test]
async fn a_bad_proxy_header_ends_the_connection() {
    let (origin, conns) = origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let mut fwd = Arc::into_inner(forward(origin, &ring)).unwrap();
    fwd.proxy_protocol = Some(2);
    let fwd = Arc::new(fwd);
    let mut v1_too_long = b"PROXY TCP4 ".to_vec();
    v1_too_long.resize(proxy_protocol::V1_MAX_LEN + 10, b'1');
    let mut v2_too_long = proxy_protocol::V2_SIGNATURE.to_vec();
    v2_too_long.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    v2_too_long.resize(600, 0);
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        b"PROXY SOMETHING ELSE\r\nGET / HTTP/1.1\r\n\r\n",
        &v1_too_long,
        &v2_too_long,
    ];
    for case in cases {
        let mut io = visitor_pipe(fwd.clone());
        io.write_all(case).await.unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .unwrap();
        assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(case));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 0);
    assert!(ring.is_empty());
}

#[tokio::test]
async fn a_proxy_v2_header_is_repeated_too() {
    let origin = raw_origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let mut fwd = Arc::into_inner(forward(origin, &ring)).unwrap();
    fwd.proxy_protocol = Some(2);
    let mut io = visitor_pipe(Arc::new(fwd));
    let header = proxy_protocol::v2(
        "198.51.100.1:51000".parse().unwrap(),
        "192.0.2.1:443".parse().unwrap(),
    );
    // The header and the request in one write: the bytes past the header are not lost.
    let mut first = header.clone();
    first.extend_from_slice(b"GET /v2 HTTP/1.1\r\nhost: app.example.com\r\n\r\n");
    io.write_all(&first).await.unwrap();
    let mut answer = Vec::new();
    io.read_to_end(&mut answer).await.unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let seen = &answer[split..];
    assert!(seen.starts_with(&header));
    assert!(seen[header.len()..].starts_with(b"GET /v2 HTTP/1.1\r\n"));
}

/// A raw TCP origin that answers any request with 101 and then echoes bytes.
async fn upgrade_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&seen).to_ascii_lowercase();
                if !head.contains("upgrade: websocket") {
                    let _ = tcp
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                    )
                    .await;
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn upgrades_are_spliced_both_ways() {
    let origin = upgrade_origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let mut client = h1_client(visitor_pipe(forward(origin, &ring))).await;
    let req = Request::get("/ws")
        .header("host", "app.example.com")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let upgraded = hyper::upgrade::on(resp).await.unwrap();
    let mut upgraded = TokioIo::new(upgraded);
    upgraded.write_all(b"ping over the tunnel").await.unwrap();
    let mut back = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(5), upgraded.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&back, b"ping over the tunnel");
    recorded(&ring, 1).await;
    assert_eq!(
        ring.recent(1)[0].response.as_ref().unwrap().status_code,
        101
    );
}

#[tokio::test]
async fn http2_prior_knowledge_is_forwarded_to_an_http2_upstream() {
    let (origin, conns) = origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let mut fwd = Arc::into_inner(forward(origin, &ring)).unwrap();
    fwd.upstream_http2 = true;
    let io = visitor_pipe(Arc::new(fwd));
    let (mut client, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    for path in ["/one", "/two"] {
        let req = Request::get(format!("http://app.example.com{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            text(resp).await,
            format!("GET {path} host=- len=0"),
            "HTTP/2 all the way: the authority stays in the URI"
        );
    }
    recorded(&ring, 2).await;
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    let capture = ring.recent(1)[0].clone();
    assert_eq!(capture.request.proto, "HTTP/2.0");
    assert_eq!(capture.request.headers["host"], "app.example.com");
    assert_eq!(capture.response.as_ref().unwrap().proto, "HTTP/2.0");
}

/// A [`Control`] with one endpoint, enough for replay.
struct OneEndpoint {
    name: String,
    upstream: Upstream,
}

impl Control for OneEndpoint {
    fn status(&self) -> AgentStatus {
        AgentStatus {
            state: SessionState::Online,
            latency: None,
            agent_version: "test".into(),
            connect_url: "edge:443".into(),
            client_id: String::new(),
        }
    }

    fn endpoints(&self) -> Vec<EndpointStatus> {
        self.endpoint(&self.name).into_iter().collect()
    }

    fn endpoint(&self, name: &str) -> Option<EndpointStatus> {
        (name == self.name).then(|| EndpointStatus {
            config: EndpointConfig {
                name: self.name.clone(),
                upstream: UpstreamConfig {
                    url: self.upstream.to_string(),
                    ..UpstreamConfig::default()
                },
                ..EndpointConfig::default()
            },
            proto: "https".into(),
            public_url: Some("https://app.example.com".into()),
            id: Some("ep_1".into()),
            state: EndpointState::Online,
            counters: EndpointCounters::default(),
            started_at: SystemTime::now(),
        })
    }

    fn start(&self, _: EndpointConfig) -> BoxFuture<'_, Result<EndpointStatus, ControlError>> {
        Box::pin(async { Err(ControlError::ShuttingDown) })
    }

    fn replace(
        &self,
        _: EndpointConfig,
    ) -> BoxFuture<'_, Result<(bool, EndpointStatus), ControlError>> {
        Box::pin(async { Err(ControlError::ShuttingDown) })
    }

    fn stop(&self, _: &str) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async { Err(ControlError::ShuttingDown) })
    }

    fn upstream(&self, name: &str) -> Option<Upstream> {
        (name == self.name).then(|| self.upstream.clone())
    }
}

#[tokio::test]
async fn replay_sends_the_request_again_and_captures_it() {
    let (origin, conns) = origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let fwd = forward(origin, &ring);
    let io = visitor_pipe(fwd.clone());
    let (mut client, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = client.send_request(streamed(2, 7)).await.unwrap();
    assert_eq!(text(resp).await, "POST /upload host=app.example.com len=14");
    recorded(&ring, 1).await;
    let original = ring.recent(1)[0].clone();

    let control = OneEndpoint {
        name: "web".into(),
        upstream: fwd.upstream.clone(),
    };
    replay(&ring, &control, &original.id, None).await.unwrap();
    recorded(&ring, 2).await;
    let again = ring.recent(1)[0].clone();
    assert_ne!(again.id, original.id);
    assert_eq!(again.tunnel_name, "web");
    assert_eq!(again.request.method, http::Method::POST);
    assert_eq!(again.request.uri, "/upload");
    assert_eq!(again.request.body.data, original.request.body.data);
    assert_eq!(again.remote_addr, original.remote_addr);
    let response = again.response.as_ref().unwrap();
    assert_eq!(response.status_code, 200);
    assert_eq!(
        &response.body.data[..],
        b"POST /upload host=app.example.com len=14"
    );
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "replay dials its own connection"
    );

    assert_eq!(
        replay(&ring, &control, "ffffffffffffffff", None).await,
        Err(ReplayError::NotFound("ffffffffffffffff".into()))
    );
    assert_eq!(
        replay(&ring, &control, &original.id, Some("other")).await,
        Err(ReplayError::NoEndpoint("other".into()))
    );
}

#[tokio::test]
async fn replay_refuses_truncated_bodies_and_reports_a_down_upstream() {
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let mut big = synthetic("web", 10);
    big.request.body.truncated = true;
    big.id = ring.next_id();
    let big_id = big.id.clone();
    ring.push(big);
    let small_id = push(&ring, "web", 10);

    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let control = OneEndpoint {
        name: "web".into(),
        upstream: Upstream::parse(&closed.to_string(), UpstreamScheme::Http).unwrap(),
    };
    assert_eq!(
        replay(&ring, &control, &big_id, None).await,
        Err(ReplayError::Truncated)
    );
    match replay(&ring, &control, &small_id, None).await {
        Err(ReplayError::Upstream(msg)) => {
            assert!(msg.contains("failed to establish a connection"), "{msg}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_visitor_leaving_before_the_response_is_captured_without_one() {
    // An origin that reads the request, says so, and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = got_tx.send(());
        let _ = tcp.read(&mut buf).await;
    });
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let mut io = visitor_pipe(forward(origin, &ring));
    io.write_all(b"GET /hang HTTP/1.1\r\nhost: app.example.com\r\n\r\n")
        .await
        .unwrap();
    got_rx.await.unwrap();
    drop(io);
    recorded(&ring, 1).await;
    let capture = ring.recent(1)[0].clone();
    assert_eq!(capture.request.uri, "/hang");
    assert!(capture.response.is_none());
    assert_eq!(capture.to_json()["response"], serde_json::Value::Null);
}

#[tokio::test]
async fn http1_visitors_reach_an_http2_upstream() {
    let (origin, _) = origin().await;
    let ring = Inspector::new(DEFAULT_CAPTURE_BYTES);
    let mut fwd = Arc::into_inner(forward(origin, &ring)).unwrap();
    fwd.upstream_http2 = true;
    let mut client = h1_client(visitor_pipe(Arc::new(fwd))).await;
    let resp = client.send_request(get("/h1-to-h2?q=1")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_11);
    assert_eq!(
        text(resp).await,
        "GET /h1-to-h2?q=1 host=app.example.com len=0"
    );
    recorded(&ring, 1).await;
    let capture = ring.recent(1)[0].clone();
    assert_eq!(capture.request.proto, "HTTP/1.1");
    assert_eq!(capture.response.as_ref().unwrap().proto, "HTTP/2.0");
}
