//! Bad input from agents and visitors: malformed and oversized frames, RPC bodies over their
//! limit, unknown stream types, handshakes that never finish, garbage and oversized HTTP heads,
//! floods of streams and of connections. Each misbehaving connection must get a clear error or be
//! closed within a bound, and a healthy agent (the official ngrok SDK) on the same edge must keep
//! serving visitors throughout.

use std::io::ErrorKind;
use std::time::Duration;

use http::StatusCode;
use ngrok::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use url::Url;
use warren_mux::ErrorCode;
use warren_proto::{ErrCode, MAX_RPC_BODY, stream_type};
use warren_testkit::raw::{self, Drained, Ended, RawAgent};
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin};

/// How long a connection the edge must drop "at once" may stay open.
const PROMPT: Duration = Duration::from_secs(5);
/// The shortened handshake and header timeouts, where a test waits for one to fire.
const SHORT: Duration = Duration::from_secs(1);
/// A handshake timeout so long that a close within [`PROMPT`] cannot be its doing.
const LONG: Duration = Duration::from_secs(300);

/// A healthy official-SDK agent serving an HTTP endpoint on `host`.
struct Healthy {
    host: String,
    _session: ngrok::Session,
    _forwarder: ngrok::forwarder::Forwarder<ngrok::tunnel::HttpTunnel>,
}

/// Starts an edge (after `adjust`) with a healthy agent already serving `healthy.example.com`.
async fn start(adjust: impl FnOnce(&mut warrend::config::Config)) -> (TestEdge, Healthy) {
    let edge = TestEdge::start_with(adjust).await;
    let healthy = healthy_agent(&edge, "healthy.example.com").await;
    (edge, healthy)
}

async fn healthy_agent(edge: &TestEdge, host: &str) -> Healthy {
    let origin = origin::http().await;
    let session = edge
        .agent(&edge.authtoken)
        .await
        .expect("the healthy agent connects");
    let forwarder = timeout(
        STEP_TIMEOUT,
        session
            .http_endpoint()
            .domain(host)
            .listen_and_forward(Url::parse(&format!("http://{origin}")).unwrap()),
    )
    .await
    .expect("the healthy bind does not hang")
    .expect("the healthy agent binds");
    let healthy = Healthy {
        host: host.to_owned(),
        _session: session,
        _forwarder: forwarder,
    };
    assert_serves(edge, &healthy, "/before").await;
    healthy
}

/// The healthy agent's endpoint answers a visitor on the public HTTP port.
async fn assert_serves(edge: &TestEdge, healthy: &Healthy, path: &str) {
    let reply = edge
        .http()
        .get(&healthy.host, path)
        .await
        .expect("the healthy endpoint answers");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply
            .text()
            .starts_with(&format!("hello from origin\nGET {path}\n")),
        "{}",
        reply.text()
    );
}

/// The non-empty `Error` text of an RPC reply.
fn error_text(reply: &Drained) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(&reply.bytes).ok()?;
    let error = value.get("Error")?.as_str()?;
    (!error.is_empty()).then(|| error.to_owned())
}

/// An RPC the edge must refuse: either a reply with an `Error` carrying an `ERR_NGROK_` code, or
/// a stream (or session) the edge ended, within [`PROMPT`]. Returns what happened, for messages.
fn assert_refused(what: &str, reply: &Drained) -> String {
    assert!(reply.elapsed < PROMPT, "{what}: took {:?}", reply.elapsed);
    match error_text(reply) {
        Some(error) => {
            assert!(
                error.contains("ERR_NGROK_"),
                "{what}: error without a code: {error:?}"
            );
            format!("error {error:?}")
        }
        None => {
            assert!(
                matches!(reply.ended, Ended::Error(_)),
                "{what}: neither an error nor a closed stream: {reply:?}"
            );
            format!("stream ended with {:?}", reply.ended)
        }
    }
}

/// An RPC reply that must carry exactly `code` in its `Error`.
fn assert_error_code(what: &str, reply: &Drained, code: ErrCode) {
    assert!(reply.elapsed < PROMPT, "{what}: took {:?}", reply.elapsed);
    let error = error_text(reply)
        .unwrap_or_else(|| panic!("{what}: expected an Error with {code}, got {reply:?}"));
    assert!(
        error.ends_with(&code.to_string()),
        "{what}: expected {code}: {error:?}"
    );
}

/// Binds `domain` on a raw session and expects success.
async fn assert_binds(agent: &RawAgent, domain: &str) {
    let reply = agent
        .rpc(
            stream_type::BIND,
            raw::bind_json("https", domain, "0").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(reply.ended, Ended::Eof, "{reply:?}");
    assert_eq!(error_text(&reply), None, "{}", reply.text());
    let resp: serde_json::Value = serde_json::from_slice(&reply.bytes).unwrap();
    let url = resp["URL"].as_str().unwrap_or_default();
    assert!(url.contains(domain), "{}", reply.text());
}

/// Waits until the edge has exactly `n` agent sessions.
async fn assert_sessions(edge: &TestEdge, n: usize) {
    edge.eventually(&format!("{n} agent sessions"), |e| e.sessions().len() == n)
        .await;
}

/// Opens a TLS connection to the agent port and writes `bytes`.
async fn agent_tls_with(
    edge: &TestEdge,
    bytes: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut tls = raw::agent_tls(edge).await.unwrap();
    send(&mut tls, bytes).await;
    tls
}

/// A TCP connection to `addr`, within [`STEP_TIMEOUT`].
async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect does not hang")
        .expect("connect")
}

/// Writes and flushes `bytes`, within [`STEP_TIMEOUT`].
async fn send<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) {
    timeout(STEP_TIMEOUT, async {
        io.write_all(bytes).await?;
        io.flush().await
    })
    .await
    .expect("write does not hang")
    .expect("write");
}

// ---------------------------------------------------------------------------------------------
// Agent port: framing
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_agent_port_closes_the_connection() {
    let (edge, healthy) = start(|c| c.edge.agent_handshake_timeout = LONG).await;

    // Not TLS at all.
    let mut tcp = connect(edge.server.agent_addr).await;
    send(&mut tcp, b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n").await;
    let seen = raw::drain(&mut tcp, PROMPT).await;
    assert!(seen.closed(), "plain-text garbage before TLS: {seen:?}");

    // TLS, then bytes that are not muxado frames.
    let garbage: [(&str, Vec<u8>); 3] = [
        (
            "HTTP text",
            b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n".to_vec(),
        ),
        ("zero bytes", vec![0; 64]),
        ("0xFF bytes", vec![0xFF; 64]),
    ];
    for (what, bytes) in garbage {
        let mut tls = agent_tls_with(&edge, &bytes).await;
        let seen = raw::drain(&mut tls, PROMPT).await;
        assert!(
            seen.closed(),
            "{what}: still open after {PROMPT:?}: {seen:?}"
        );
        assert!(
            seen.goaway().is_some(),
            "{what}: closed without GOAWAY: {seen:?}"
        );
    }

    assert_sessions(&edge, 1).await;
    assert_serves(&edge, &healthy, "/after-garbage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_frames_close_the_session() {
    let (edge, healthy) = start(|c| c.edge.agent_handshake_timeout = LONG).await;

    let cases: [(&str, Vec<u8>); 7] = [
        ("unknown frame type 7", raw::frame(7, 0, 3, &[0; 4])),
        (
            "unknown frame type 15 on stream 0",
            raw::frame(15, 0xF, 0, b""),
        ),
        (
            "RST with a 3-byte body",
            raw::frame(raw::RST, 0, 3, &[0, 0, 1]),
        ),
        (
            "WNDINC with an 8-byte body",
            raw::frame(raw::WNDINC, 0, 3, &[0; 8]),
        ),
        ("GOAWAY on stream 5", raw::frame(raw::GOAWAY, 0, 5, &[0; 8])),
        (
            "GOAWAY shorter than 8 bytes",
            raw::frame(raw::GOAWAY, 0, 0, &[0; 4]),
        ),
        (
            "DATA on stream 0",
            raw::frame(raw::DATA, raw::SYN, 0, &[0; 8]),
        ),
    ];
    for (what, bytes) in &cases {
        let mut tls = agent_tls_with(&edge, bytes).await;
        let seen = raw::drain(&mut tls, PROMPT).await;
        assert!(
            seen.closed(),
            "{what}: still open after {PROMPT:?}: {seen:?}"
        );
        let (code, debug) = seen
            .goaway()
            .unwrap_or_else(|| panic!("{what}: closed without GOAWAY: {seen:?}"));
        assert_eq!(code, ErrorCode::ProtocolError, "{what}: {debug}");
    }

    // The same on an authenticated session: it ends, and the edge forgets it.
    for (what, bytes) in &cases[..2] {
        let mut tls = raw::agent_tls(&edge).await.unwrap();
        let auth = raw::raw_auth(&mut tls, &edge.authtoken).await.unwrap();
        assert!(!String::from_utf8_lossy(&auth).contains("ERR_NGROK_"));
        assert_sessions(&edge, 2).await;
        send(&mut tls, bytes).await;
        let seen = raw::drain(&mut tls, PROMPT).await;
        assert!(seen.closed(), "{what} after Auth: still open: {seen:?}");
        assert_sessions(&edge, 1).await;
    }

    assert_serves(&edge, &healthy, "/after-bad-frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_header_announcing_a_huge_body_closes_at_once() {
    let (edge, healthy) = start(|c| c.edge.agent_handshake_timeout = LONG).await;

    // Only the header is sent: the edge must decide from it, not wait for 16 MiB that never come.
    let huge = [
        (
            "DATA of 0xFFFFFF bytes",
            raw::header(0xFF_FFFF, raw::DATA, raw::SYN, 3),
        ),
        (
            "DATA one byte over the stream window",
            raw::header(warren_mux::DEFAULT_WINDOW + 1, raw::DATA, raw::SYN, 3),
        ),
        (
            "GOAWAY of 0xFFFFFF bytes",
            raw::header(0xFF_FFFF, raw::GOAWAY, 0, 0),
        ),
    ];
    for (what, header) in huge {
        let mut tls = agent_tls_with(&edge, &header).await;
        let seen = raw::drain(&mut tls, PROMPT).await;
        assert!(
            seen.closed(),
            "{what}: still open after {PROMPT:?}: {seen:?}"
        );
        let (code, debug) = seen
            .goaway()
            .unwrap_or_else(|| panic!("{what}: closed without GOAWAY: {seen:?}"));
        assert_eq!(code, ErrorCode::FrameSizeError, "{what}: {debug}");
    }

    // After Auth too.
    let mut tls = raw::agent_tls(&edge).await.unwrap();
    raw::raw_auth(&mut tls, &edge.authtoken).await.unwrap();
    assert_sessions(&edge, 2).await;
    send(&mut tls, &raw::header(0xFF_FFFF, raw::DATA, raw::SYN, 5)).await;
    let seen = raw::drain(&mut tls, PROMPT).await;
    assert!(seen.closed(), "after Auth: still open: {seen:?}");
    assert_sessions(&edge, 1).await;

    assert_serves(&edge, &healthy, "/after-huge-frame").await;
}

// ---------------------------------------------------------------------------------------------
// Agent port: RPCs and streams
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_bodies_over_the_limit_are_refused() {
    let (edge, healthy) = start(|_| {}).await;
    let over = "x".repeat(MAX_RPC_BODY + 36 * 1024);

    // An Auth over the limit: refused, then the unauthenticated connection is dropped.
    let agent = RawAgent::connect(&edge, warren_mux::Config::client())
        .await
        .unwrap();
    let auth = format!(
        r#"{{"Version":["3","2"],"ClientId":"","Extra":{{"AuthToken":{},"Metadata":"{over}"}}}}"#,
        raw::json_str(&edge.authtoken)
    );
    let reply = agent.rpc(stream_type::AUTH, auth.as_bytes()).await.unwrap();
    let outcome = assert_refused("Auth over the limit", &reply);
    eprintln!("Auth over the limit: {outcome}");
    let ended = timeout(PROMPT, agent.mux.closed()).await;
    assert!(
        ended.is_ok(),
        "the refused connection is still open after {PROMPT:?}"
    );
    assert_sessions(&edge, 1).await;

    // A Bind over the limit on an authenticated session: refused; the session keeps working.
    let agent = RawAgent::authenticated(&edge, &edge.authtoken)
        .await
        .unwrap();
    let bind = format!(
        r#"{{"Id":"","Proto":"https","ForwardsTo":"{over}","Opts":{{"Domain":"big.example.com"}},"Extra":{{}}}}"#
    );
    let reply = agent.rpc(stream_type::BIND, bind.as_bytes()).await.unwrap();
    let outcome = assert_refused("Bind over the limit", &reply);
    eprintln!("Bind over the limit: {outcome}");
    assert!(
        edge.server
            .edge()
            .routes()
            .host("big.example.com")
            .is_none()
    );
    assert!(!agent.mux.is_closed());
    assert_binds(&agent, "after-big.example.com").await;

    assert_serves(&edge, &healthy, "/after-big-rpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stream_types_are_reset_and_the_session_survives() {
    let (edge, healthy) = start(|_| {}).await;
    let agent = RawAgent::authenticated(&edge, &edge.authtoken)
        .await
        .unwrap();
    assert_sessions(&edge, 2).await;

    // 77 and 0xFFFFFFFE are unknown; 3, 4 and 9 are types only the edge may open.
    for ty in [
        77,
        0xFFFF_FFFE,
        stream_type::PROXY,
        stream_type::RESTART,
        stream_type::STOP_TUNNEL,
    ] {
        let reply = agent.rpc(ty, b"{}").await.unwrap();
        assert!(
            reply.elapsed < PROMPT,
            "type {ty}: took {:?}",
            reply.elapsed
        );
        assert_eq!(
            reply.ended,
            Ended::Error(ErrorKind::ConnectionReset),
            "type {ty}: expected a reset stream: {reply:?}"
        );
        assert!(reply.bytes.is_empty(), "type {ty}: {reply:?}");
    }

    // The same session still works.
    assert!(!agent.mux.is_closed());
    assert_binds(&agent, "raw.example.com").await;
    assert!(
        edge.server
            .edge()
            .routes()
            .host("raw.example.com")
            .is_some()
    );
    assert_sessions(&edge, 2).await;
    assert_serves(&edge, &healthy, "/after-unknown-types").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_before_auth_gets_an_unauthenticated_error() {
    let (edge, healthy) = start(|c| c.edge.agent_handshake_timeout = LONG).await;
    let agent = RawAgent::connect(&edge, warren_mux::Config::client())
        .await
        .unwrap();
    // Repeated: the refusal must arrive every time, not only when it wins a race.
    let bind = raw::bind_json("https", "early.example.com", "0");
    for i in 0..20 {
        let reply = agent.rpc(stream_type::BIND, bind.as_bytes()).await.unwrap();
        assert_error_code(&format!("Bind #{i} before Auth"), &reply, ErrCode(4018));
    }
    assert!(
        edge.server
            .edge()
            .routes()
            .host("early.example.com")
            .is_none()
    );
    // Auth still works afterwards on the same connection.
    let auth = agent.auth(&edge.authtoken).await.unwrap();
    assert!(auth.error.is_empty(), "{}", auth.error);
    assert_binds(&agent, "early.example.com").await;
    assert_serves(&edge, &healthy, "/after-early-rpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_binds_get_error_codes() {
    let (edge, healthy) = start(|_| {}).await;
    let agent = RawAgent::authenticated(&edge, &edge.authtoken)
        .await
        .unwrap();

    let deep = format!(r#"{{"Id":{}{}}}"#, "[".repeat(100), "]".repeat(100));
    let cases: Vec<(&str, String, ErrCode)> = vec![
        (
            "invalid JSON",
            "{not json}".into(),
            ErrCode::MALFORMED_REQUEST,
        ),
        (
            "not an object",
            "[1,2,3]".into(),
            ErrCode::MALFORMED_REQUEST,
        ),
        (
            "binary junk",
            "\u{1}\u{2}\u{3}".into(),
            ErrCode::MALFORMED_REQUEST,
        ),
        (
            "wrong key types",
            r#"{"Id":7,"Proto":["https"],"Opts":{}}"#.into(),
            ErrCode::MALFORMED_REQUEST,
        ),
        (
            "trailing bytes",
            format!(
                "{}garbage",
                raw::bind_json("https", "trail.example.com", "0")
            ),
            ErrCode::MALFORMED_REQUEST,
        ),
        ("nesting too deep", deep, ErrCode::MALFORMED_REQUEST),
        (
            "Proto ssh",
            raw::bind_json("ssh", "ssh.example.com", "0"),
            ErrCode::UNSUPPORTED_PROTO,
        ),
        (
            "Opts.ProxyProto 9",
            raw::bind_json("https", "pp9.example.com", "9"),
            ErrCode::INVALID_BIND_OPTS,
        ),
        (
            "Opts.ProxyProto a string",
            raw::bind_json("https", "ppx.example.com", r#""two""#),
            ErrCode::INVALID_BIND_OPTS,
        ),
        (
            "tcp ProxyProto -1",
            raw::bind_json("tcp", "", "-1"),
            ErrCode::INVALID_BIND_OPTS,
        ),
    ];
    for (what, body, code) in &cases {
        let reply = agent.rpc(stream_type::BIND, body.as_bytes()).await.unwrap();
        assert_error_code(what, &reply, *code);
    }
    let routes = edge.server.edge().routes();
    for host in [
        "trail.example.com",
        "ssh.example.com",
        "pp9.example.com",
        "ppx.example.com",
    ] {
        assert!(routes.host(host).is_none(), "{host} was bound");
    }

    // The session survives every refusal.
    assert!(!agent.mux.is_closed());
    assert_binds(&agent, "good.example.com").await;
    assert_serves(&edge, &healthy, "/after-bad-binds").await;
}

// ---------------------------------------------------------------------------------------------
// Handshakes and heads that never finish
// ---------------------------------------------------------------------------------------------

/// A TLS record header announcing a 512-byte handshake message, and only the first 40 bytes of
/// its body: half a ClientHello.
fn half_client_hello() -> Vec<u8> {
    let mut bytes = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03,
    ];
    bytes.extend_from_slice(&[0x5A; 29]);
    bytes
}

/// Connects to `addr`, writes `bytes` and expects the edge to close within `bound`.
async fn assert_cut_off(
    what: &str,
    addr: std::net::SocketAddr,
    bytes: &[u8],
    bound: Duration,
) -> Drained {
    let seen = probe(addr, bytes, bound).await;
    assert!(
        seen.closed(),
        "{what}: still open after {bound:?}: {seen:?}"
    );
    seen
}

/// Connects to `addr`, writes `bytes` and reads until the edge closes or `bound` runs out.
async fn probe(addr: std::net::SocketAddr, bytes: &[u8], bound: Duration) -> Drained {
    let mut tcp = connect(addr).await;
    send(&mut tcp, bytes).await;
    raw::drain(&mut tcp, bound).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_handshakes_that_never_finish_are_cut_off() {
    let (edge, healthy) = start(|c| c.edge.agent_handshake_timeout = SHORT).await;
    let bound = SHORT + PROMPT;
    let addr = edge.server.agent_addr;

    let hello = half_client_hello();
    let silent = assert_cut_off("silent TCP", addr, b"", bound);
    let half = assert_cut_off("half a ClientHello", addr, &hello, bound);
    let no_auth = async {
        // TLS completes, then nothing.
        let mut tls = raw::agent_tls(&edge).await.unwrap();
        let seen = raw::drain(&mut tls, bound).await;
        assert!(seen.closed(), "TLS without Auth: still open: {seen:?}");
    };
    let heartbeats_only = async {
        // A mux session that answers heartbeats but never authenticates.
        let agent = RawAgent::connect(&edge, warren_mux::Config::client())
            .await
            .unwrap();
        let mut beat = timeout(
            STEP_TIMEOUT,
            agent.mux.open_typed(stream_type::HEARTBEAT, &[1, 2, 3, 4]),
        )
        .await
        .expect("open does not hang")
        .unwrap();
        let mut echo = [0u8; 4];
        timeout(PROMPT, beat.read_exact(&mut echo))
            .await
            .expect("heartbeat echoed before Auth")
            .unwrap();
        assert_eq!(echo, [1, 2, 3, 4]);
        assert!(
            timeout(bound, agent.mux.closed()).await.is_ok(),
            "heartbeats without Auth kept the session open"
        );
    };
    let half_auth = async {
        // An Auth stream whose JSON never completes.
        let agent = RawAgent::connect(&edge, warren_mux::Config::client())
            .await
            .unwrap();
        let reply = timeout(bound, agent.rpc(stream_type::AUTH, br#"{"Version":["3","#))
            .await
            .expect("the half Auth is answered or cut off")
            .unwrap();
        assert!(reply.closed(), "half Auth: {reply:?}");
        assert!(
            timeout(bound, agent.mux.closed()).await.is_ok(),
            "a half Auth kept the session open"
        );
    };
    tokio::join!(silent, half, no_auth, heartbeats_only, half_auth);

    assert_sessions(&edge, 1).await;
    assert_serves(&edge, &healthy, "/after-stalled-agents").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_visitors_on_the_https_port_are_cut_off() {
    let (edge, healthy) = start(|c| c.edge.visitor_header_timeout = SHORT).await;
    let bound = SHORT + PROMPT;
    let addr = edge.https_addr();
    let hello = half_client_hello();
    tokio::join!(
        assert_cut_off("silent TCP on the HTTPS port", addr, b"", bound),
        assert_cut_off("half a ClientHello on the HTTPS port", addr, &hello, bound),
    );
    assert_serves(&edge, &healthy, "/after-stalled-https").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_head_on_the_http_port_is_cut_off() {
    let (edge, healthy) = start(|c| c.edge.visitor_header_timeout = SHORT).await;
    let head = format!("GET / HTTP/1.1\r\nHost: {}\r\nX-Slow: ", healthy.host);
    let seen = assert_cut_off(
        "half a request head",
        edge.http_addr(),
        head.as_bytes(),
        SHORT + PROMPT,
    )
    .await;
    // A 408 is fine; the request must not have been forwarded.
    let text = seen.text();
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    assert_serves(&edge, &healthy, "/after-half-head").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_visitor_on_the_http_port_is_cut_off() {
    let (edge, healthy) = start(|c| c.edge.visitor_header_timeout = SHORT).await;
    let bound = SHORT + PROMPT;
    let addr = edge.http_addr();
    let (silent, partial_preface, bare_preface) = tokio::join!(
        probe(addr, b"", bound),
        // Too short to tell HTTP/1.1 from HTTP/2 yet.
        probe(addr, b"PRI * HTTP/2.0\r\n", bound),
        // The whole h2 preface, then no SETTINGS and no request.
        probe(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", bound),
    );
    assert_serves(&edge, &healthy, "/after-silent-http").await;
    let still_open: Vec<&str> = [
        ("nothing sent", &silent),
        ("part of the h2 preface", &partial_preface),
        ("the h2 preface and nothing else", &bare_preface),
    ]
    .into_iter()
    .filter(|(_, seen)| !seen.closed())
    .map(|(what, _)| what)
    .collect();
    assert!(
        still_open.is_empty(),
        "visitors on the HTTP port still open after {bound:?}: {still_open:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_visitor_that_never_sends_a_request_is_cut_off() {
    let (edge, healthy) = start(|c| c.edge.visitor_header_timeout = SHORT).await;
    let tcp = connect(edge.https_addr()).await;
    let mut tls = timeout(STEP_TIMEOUT, edge.https().connect_tls(tcp, &healthy.host))
        .await
        .expect("TLS handshake does not hang")
        .unwrap();
    let seen = raw::drain(&mut tls, SHORT + PROMPT).await;
    assert!(
        seen.closed(),
        "TLS visitor without a request: still open: {seen:?}"
    );
    assert_serves(&edge, &healthy, "/after-silent-tls").await;
}

// ---------------------------------------------------------------------------------------------
// Public ports: garbage and oversized heads
// ---------------------------------------------------------------------------------------------

/// Writes `bytes` to `addr` (a write the edge cuts short is fine) and reads until the edge closes.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Drained {
    let mut tcp = connect(addr).await;
    let _ = timeout(PROMPT, tcp.write_all(bytes)).await;
    raw::drain(&mut tcp, PROMPT).await
}

/// The status code of a raw HTTP/1.x response, if the bytes start with one.
fn status_of(seen: &Drained) -> Option<u16> {
    let text = seen.text();
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_heads_on_the_public_ports_get_errors() {
    let (edge, healthy) = start(|_| {}).await;
    let http = edge.http_addr();
    let host = &healthy.host;

    let seen = exchange(http, b"\x00\x01\x02 this is not http \xff\xfe\r\n\r\n").await;
    assert!(seen.closed(), "garbage: {seen:?}");
    assert!(
        matches!(status_of(&seen), None | Some(400)),
        "garbage: {}",
        seen.text()
    );
    if status_of(&seen).is_none() {
        assert!(seen.bytes.is_empty(), "garbage: {}", seen.text());
    }

    // One 100 KiB header, and many small ones: over the 64 KiB head limit.
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n",
        "b".repeat(100 * 1024)
    );
    let many = format!(
        "GET /many HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
        (0..8000)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    for (what, head) in [("a 100 KiB header", big), ("8000 headers", many)] {
        let seen = exchange(http, head.as_bytes()).await;
        assert!(seen.closed(), "{what}: {seen:?}");
        match status_of(&seen) {
            Some(status) => assert!(status == 431 || status == 400, "{what}: {}", seen.text()),
            None => assert!(seen.bytes.is_empty(), "{what}: {}", seen.text()),
        }
    }

    // No Host at all, in HTTP/1.1 and HTTP/1.0: a 400 saying so.
    for request in [
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
    ] {
        let seen = exchange(http, request.as_bytes()).await;
        assert_eq!(status_of(&seen), Some(400), "{request:?}: {}", seen.text());
        let lower = seen.text().to_ascii_lowercase();
        assert!(
            lower.contains("\r\nwarren-error-code: err_ngrok_3206\r\n"),
            "{request:?}: {}",
            seen.text()
        );
    }

    // Plain text to the HTTPS port: not a ClientHello, closed at once.
    let seen = exchange(
        edge.https_addr(),
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(seen.closed(), "plain HTTP on the HTTPS port: {seen:?}");
    assert!(seen.elapsed < PROMPT);

    assert_serves(&edge, &healthy, "/after-bad-heads").await;
}

// ---------------------------------------------------------------------------------------------
// Floods
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_streams_is_refused_past_the_limit() {
    const FLOOD: usize = 2000;
    let limit = warren_mux::DEFAULT_MAX_STREAMS;
    let (edge, healthy) = start(|_| {}).await;
    let config = warren_mux::Config {
        max_local_streams: 2 * FLOOD,
        ..warren_mux::Config::client()
    };
    let agent = RawAgent::connect(&edge, config).await.unwrap();
    let auth = agent.auth(&edge.authtoken).await.unwrap();
    assert!(auth.error.is_empty(), "{}", auth.error);

    // Heartbeat streams, never closed: each one the edge takes echoes its probe, each one past
    // the limit must be reset rather than kept.
    let mut streams = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let probe = (i as u32).to_be_bytes();
        let stream = timeout(
            STEP_TIMEOUT,
            agent.mux.open_typed(stream_type::HEARTBEAT, &probe),
        )
        .await
        .expect("opening does not hang")
        .expect("the client may open the stream");
        streams.push(stream);
    }
    let reads = streams
        .iter_mut()
        .enumerate()
        .map(|(i, stream)| async move {
            let mut echo = [0u8; 4];
            match stream.read_exact(&mut echo).await {
                Ok(_) => {
                    assert_eq!(
                        echo,
                        (i as u32).to_be_bytes(),
                        "stream {i} echoed another probe"
                    );
                    Ok(())
                }
                Err(e) => Err(e.kind()),
            }
        });
    let outcomes = timeout(STEP_TIMEOUT, futures::future::join_all(reads))
        .await
        .expect("every flooded stream is echoed or reset in time");
    let echoed = outcomes.iter().filter(|o| o.is_ok()).count();
    let reset = outcomes
        .iter()
        .filter(|o| **o == Err(ErrorKind::ConnectionReset))
        .count();
    let session_gone = agent.mux.is_closed();
    eprintln!("stream flood: {echoed} echoed, {reset} reset, session closed: {session_gone}");
    assert!(
        echoed <= limit,
        "{echoed} streams kept open, above the limit of {limit}"
    );
    if !session_gone {
        assert_eq!(echoed + reset, FLOOD, "{outcomes:?}");
        assert!(reset >= FLOOD - limit);
    }
    drop(streams);

    // A session that survived can still bind once its streams are gone (the edge frees them as
    // it sees our resets, so a bind racing them may itself be refused: retry within a bound).
    if !session_gone {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let bind = raw::bind_json("https", "flood.example.com", "0");
            let reply = agent.rpc(stream_type::BIND, bind.as_bytes()).await.unwrap();
            if reply.ended == Ended::Eof {
                assert_eq!(error_text(&reply), None, "{}", reply.text());
                break;
            }
            assert_eq!(
                reply.ended,
                Ended::Error(ErrorKind::ConnectionReset),
                "{reply:?}"
            );
            assert!(
                Instant::now() < deadline,
                "the flooded session never bound again"
            );
            tokio::task::yield_now().await;
        }
    }
    assert_serves(&edge, &healthy, "/after-stream-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_visitors_does_not_shut_out_others() {
    const IDLE: usize = 500;
    let (edge, healthy) = start(|_| {}).await;
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let addr = if i % 4 == 3 {
            edge.https_addr()
        } else {
            edge.http_addr()
        };
        let mut tcp = connect(addr).await;
        // Some start a request head and stall; the rest send nothing.
        if i % 4 == 1 {
            send(&mut tcp, b"GET / HTTP/1.1\r\nHost: ").await;
        }
        idle.push(tcp);
    }
    let paths: Vec<String> = (0..20).map(|i| format!("/busy{i}")).collect();
    let requests = paths
        .iter()
        .map(|path| assert_serves(&edge, &healthy, path));
    timeout(STEP_TIMEOUT, futures::future::join_all(requests))
        .await
        .expect("the healthy endpoint answers while idle visitors pile up");
    let secure = edge.https().get(&healthy.host, "/busy-tls").await.unwrap();
    assert_eq!(secure.status, StatusCode::OK);
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_stalled_agent_handshakes_does_not_stop_new_agents() {
    const STALLED: usize = 300;
    let (edge, healthy) = start(|c| c.edge.agent_handshake_timeout = LONG).await;
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let mut tcp = connect(edge.server.agent_addr).await;
        if i % 2 == 1 {
            send(&mut tcp, &half_client_hello()).await;
        }
        stalled.push(tcp);
    }
    // A new agent still connects, binds and serves.
    let second = healthy_agent(&edge, "second.example.com").await;
    assert_serves(&edge, &second, "/second").await;
    assert_serves(&edge, &healthy, "/after-stalled-flood").await;
    drop(stalled);
}
