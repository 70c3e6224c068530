//! End to end with the official `ngrok` agent SDK from crates.io as the agent: it connects to an
//! in-process edge with `server_addr` + `ca_cert` and serves endpoints that visitors reach through
//! the public HTTP, HTTPS, TCP and TLS ports.

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::Full;
use ngrok::Error as _;
use ngrok::config::ProxyProto;
use ngrok::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use url::Url;
use warren_testkit::client::{HttpVisitor, tls_with};
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin, sha256_hex};

/// Connects the official SDK to `edge` with `token`.
async fn agent(
    edge: &TestEdge,
    token: &str,
) -> Result<ngrok::Session, ngrok::session::ConnectError> {
    edge.agent(token).await
}

fn http_url(addr: std::net::SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}")).unwrap()
}

#[tokio::test]
async fn http_endpoint_on_a_chosen_domain_through_http_https_and_h2() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let fwd = session
        .http_endpoint()
        .domain("app.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    assert_eq!(
        fwd.url(),
        format!("https://app.example.com:{}", edge.https_addr().port())
    );

    let plain = edge.http().get("app.example.com", "/hi?x=1").await.unwrap();
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text());
    let text = plain.text();
    assert!(
        text.starts_with("hello from origin\nGET /hi?x=1\n"),
        "{text}"
    );
    assert!(text.contains("x-forwarded-proto: http\n"), "{text}");
    assert!(text.contains("x-forwarded-for: 127.0.0.1\n"), "{text}");
    assert!(
        text.contains("x-forwarded-host: app.example.com\n"),
        "{text}"
    );
    assert!(text.contains("host: app.example.com\n"), "{text}");

    let secure = edge.https().get("app.example.com", "/").await.unwrap();
    assert_eq!(secure.status, StatusCode::OK);
    assert!(secure.text().contains("x-forwarded-proto: https\n"));

    let h2 = HttpVisitor::h2(edge.https_addr(), &edge.ca_pem)
        .get("app.example.com", "/two")
        .await
        .unwrap();
    assert_eq!(h2.status, StatusCode::OK);
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert!(h2.text().contains("GET /two\n"), "{}", h2.text());

    // Host names are case-insensitive and may carry the port.
    let upper = edge
        .http()
        .get(&format!("APP.example.com:{}", edge.http_addr().port()), "/")
        .await
        .unwrap();
    assert_eq!(upper.status, StatusCode::OK);
}

#[tokio::test]
async fn keep_alive_requests_reuse_one_agent_stream() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let _fwd = session
        .http_endpoint()
        .domain("keep.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    let tcp = TcpStream::connect(edge.http_addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..20 {
        let req = Request::get(format!("/n{i}"))
            .header("host", "keep.example.com")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = timeout(STEP_TIMEOUT, sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(&format!("GET /n{i}\n")));
    }
}

#[tokio::test]
async fn wildcard_domains_route_by_specificity() {
    let edge = TestEdge::start().await;
    let origin_a = origin::http().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let wide = session
        .http_endpoint()
        .domain("*.example.com")
        .listen_and_forward(Url::parse(&format!("http://{origin_a}/")).unwrap())
        .await
        .unwrap();
    assert!(
        wide.url().starts_with("https://*.example.com"),
        "{}",
        wide.url()
    );
    let narrow = session
        .http_endpoint()
        .domain("*.site1.example.com")
        .metadata("narrow")
        .listen_and_forward(http_url(origin_a))
        .await
        .unwrap();
    let exact = session
        .http_endpoint()
        .domain("cam1.site1.example.com")
        .listen_and_forward(http_url(origin_a))
        .await
        .unwrap();

    let routes = edge.server.edge().routes();
    let owner = |host: &str| routes.host(host).map(|t| t.id.clone());
    assert_eq!(owner("cam1.site1.example.com").as_deref(), Some(exact.id()));
    assert_eq!(
        owner("cam2.site1.example.com").as_deref(),
        Some(narrow.id())
    );
    assert_eq!(owner("a.b.site1.example.com").as_deref(), Some(narrow.id()));
    assert_eq!(owner("site1.example.com").as_deref(), Some(wide.id()));
    assert_eq!(owner("other.example.com").as_deref(), Some(wide.id()));
    assert_eq!(owner("example.com"), None);

    for host in [
        "cam2.site1.example.com",
        "deep.cam9.site1.example.com",
        "x.example.com",
    ] {
        let reply = edge.https().get(host, "/").await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text());
        assert!(reply.text().contains(&format!("host: {host}\n")));
    }
    let missing = edge.http().get("example.com", "/").await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn generated_names_live_under_the_base_domain() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let fwd = session
        .http_endpoint()
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    let url = Url::parse(fwd.url()).unwrap();
    let host = url.host_str().unwrap().to_owned();
    assert!(host.ends_with(".localhost"), "{host}");
    let reply = edge.https().get(&host, "/").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn tcp_endpoint_echoes_and_passes_proxy_protocol() {
    let edge = TestEdge::start().await;
    let echo = origin::tcp_echo().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let fwd = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .unwrap();
    let port = Url::parse(fwd.url()).unwrap().port().unwrap();
    assert!(fwd.url().starts_with("tcp://localhost:"), "{}", fwd.url());
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(b"ping over tcp").await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(STEP_TIMEOUT, tcp.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"ping over tcp");

    // With PROXY protocol v1 the agent passes the visitor's address on to the upstream.
    let (back, local, port) = through_proxy_protocol(&session, ProxyProto::V1).await;
    let text = String::from_utf8_lossy(&back);
    assert!(
        text.starts_with(&format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n",
            local.port()
        )),
        "{text:?}"
    );
}

#[tokio::test]
async fn tls_endpoint_is_passed_through_by_sni() {
    let edge = TestEdge::start().await;
    let (tls_origin, origin_ca) = origin::tls_origin("secure.example.com").await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let fwd = session
        .tls_endpoint()
        .domain("secure.example.com")
        .listen_and_forward(Url::parse(&format!("tls://{tls_origin}")).unwrap())
        .await
        .unwrap();
    assert_eq!(
        fwd.url(),
        format!("tls://secure.example.com:{}", edge.https_addr().port())
    );
    // The visitor trusts only the origin's CA: the handshake succeeds only if the edge passed the
    // TLS bytes through untouched to the origin.
    let config = Arc::new(warren_testkit::client_tls(&origin_ca, &[]));
    let tcp = TcpStream::connect(edge.https_addr()).await.unwrap();
    let mut tls = timeout(STEP_TIMEOUT, tls_with(config, tcp, "secure.example.com"))
        .await
        .unwrap()
        .unwrap();
    let mut text = String::new();
    timeout(STEP_TIMEOUT, tls.read_to_string(&mut text))
        .await
        .unwrap()
        .ok();
    assert_eq!(text, "tls origin secure.example.com\n");

    // Other names on the same port still get the edge's own TLS and HTTP.
    let other = edge.https().get("nothing.example.com", "/").await.unwrap();
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn websocket_echo_end_to_end() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let _fwd = session
        .http_endpoint()
        .domain("ws.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    let tcp = TcpStream::connect(edge.http_addr()).await.unwrap();
    let (mut ws, resp) = timeout(
        STEP_TIMEOUT,
        tokio_tungstenite::client_async("ws://ws.example.com/ws", tcp),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..10 {
        let msg = format!("message {i}");
        ws.send(tokio_tungstenite::tungstenite::Message::text(msg.clone()))
            .await
            .unwrap();
        let echoed = timeout(STEP_TIMEOUT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn sixty_four_mebibytes_each_way_with_checksums() {
    const SIZE: usize = 64 * 1024 * 1024;
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let _fwd = session
        .http_endpoint()
        .domain("bulk.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    let data = origin::pattern(SIZE);
    let expected = sha256_hex(&data);

    let up = Request::post("/sha256")
        .body(Full::new(Bytes::from(data)))
        .unwrap();
    let reply = edge.http().send("bulk.example.com", up).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), format!("{expected} {SIZE}"));

    let down = edge
        .https()
        .get("bulk.example.com", &format!("/bytes?n={SIZE}"))
        .await
        .unwrap();
    assert_eq!(down.status, StatusCode::OK);
    assert_eq!(down.body.len(), SIZE);
    assert_eq!(sha256_hex(&down.body), expected);
}

#[tokio::test]
async fn two_hundred_concurrent_visitors() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let _fwd = session
        .http_endpoint()
        .domain("busy.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    let visitor = edge.http();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let visitor = visitor.clone();
        tasks.spawn(async move { (i, visitor.get("busy.example.com", &format!("/v{i}")).await) });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, reply) = joined.unwrap();
        let reply = reply.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.text().contains(&format!("GET /v{i}\n")));
        ok += 1;
    }
    assert_eq!(ok, 200);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_codes() {
    let edge = TestEdge::start().await;
    let unknown = format!("{}_{}", "2abcdefghijklmnopqrstuvwxyz", "A".repeat(43));
    let err = agent(&edge, &unknown).await.err().expect("refused");
    assert!(
        matches!(err, ngrok::session::ConnectError::Auth(_)),
        "{err:?}"
    );
    assert_eq!(err.error_code(), Some("ERR_NGROK_107"), "{err:?}");

    let err = agent(&edge, "").await.err().expect("refused");
    assert!(err.error_code().is_some(), "{err:?}");

    let err = agent(&edge, "has spaces in it")
        .await
        .err()
        .expect("refused");
    assert_eq!(err.error_code(), Some("ERR_NGROK_105"), "{err:?}");
    assert!(edge.server.edge().sessions().is_empty());
}

#[tokio::test]
async fn a_domain_is_held_by_one_session_at_a_time() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let first = agent(&edge, &edge.authtoken).await.unwrap();
    let _held = first
        .http_endpoint()
        .domain("taken.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    let second = agent(&edge, &edge.authtoken).await.unwrap();
    let err = second
        .http_endpoint()
        .domain("taken.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .err()
        .expect("duplicate bind refused");
    assert_eq!(err.error_code(), Some("ERR_NGROK_334"), "{err:?}");
    assert!(err.msg().contains("already online"), "{}", err.msg());
    // The first holder is unaffected.
    let reply = edge.http().get("taken.example.com", "/").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn acl_rules_limit_what_a_token_may_bind() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let token = edge.credential(&["bind:*.factory1.example.com"]).await;
    let session = agent(&edge, &token).await.unwrap();
    let ok = session
        .http_endpoint()
        .domain("cam.factory1.example.com")
        .listen_and_forward(http_url(origin))
        .await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    let err = session
        .http_endpoint()
        .domain("cam.factory2.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .err()
        .expect("outside the ACL");
    assert_eq!(err.error_code(), Some("ERR_NGROK_316"), "{err:?}");
    let err = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse("tcp://127.0.0.1:1").unwrap())
        .await
        .err()
        .expect("random TCP address outside the ACL");
    assert_eq!(err.error_code(), Some("ERR_NGROK_356"), "{err:?}");
}

#[tokio::test]
async fn unknown_hosts_dead_upstreams_and_gone_agents_get_clear_errors() {
    // A short heartbeat: the SDK stops echoing once its session is closed (it keeps the TCP
    // connection), and the edge must notice that on its own.
    let edge = TestEdge::start_with(|config| {
        config.edge.heartbeat_interval = std::time::Duration::from_millis(300);
        config.edge.heartbeat_tolerance = std::time::Duration::from_millis(900);
    })
    .await;
    let unknown = edge.http().get("nobody.example.com", "/").await.unwrap();
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.headers["warren-error-code"], "ERR_NGROK_3200");
    assert!(unknown.text().contains("ERR_NGROK_3200"));

    // An upstream that refuses connections: the agent cannot connect and the visitor gets 502.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let mut session = agent(&edge, &edge.authtoken).await.unwrap();
    let _fwd = session
        .http_endpoint()
        .domain("dead.example.com")
        .listen_and_forward(http_url(dead))
        .await
        .unwrap();
    let reply = edge.http().get("dead.example.com", "/").await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());

    // The agent goes away: its routes go with it and visitors get a clear 404, not a hang.
    session.close().await.unwrap();
    edge.eventually("session gone", |e| e.sessions().is_empty())
        .await;
    let reply = edge.http().get("dead.example.com", "/").await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reconnect_after_the_edge_drops_the_connection_keeps_the_url() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let echo = origin::tcp_echo().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let http = session
        .http_endpoint()
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    let tcp = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .unwrap();
    let host = Url::parse(http.url())
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let port = Url::parse(tcp.url()).unwrap().port().unwrap();
    let first = edge.server.edge().sessions()[0].id.clone();
    let client_id = session.id();

    assert!(edge.server.edge().disconnect(&first));
    edge.eventually("the agent reconnected and rebound both endpoints", |e| {
        let sessions = e.sessions();
        sessions.len() == 1 && sessions[0].id != first && sessions[0].tunnels().len() == 2
    })
    .await;
    let now = edge.server.edge().sessions()[0].clone();
    assert_eq!(now.client_id, client_id, "the agent keeps its ClientId");
    let urls: Vec<String> = now.tunnels().iter().map(|t| t.url.clone()).collect();
    assert!(urls.contains(&http.url().to_owned()), "{urls:?}");
    assert!(urls.contains(&tcp.url().to_owned()), "{urls:?}");

    let reply = edge.http().get(&host, "/again").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(b"still here").await.unwrap();
    conn.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(STEP_TIMEOUT, conn.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"still here");
}

#[tokio::test]
async fn stop_tunnel_closes_the_sdk_listener() {
    let edge = TestEdge::start().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let mut listener = session
        .http_endpoint()
        .domain("stopme.example.com")
        .listen()
        .await
        .unwrap();
    let id = listener.id().to_owned();
    edge.server
        .edge()
        .stop_tunnel(&id, "stopped by the operator", Some("ERR_NGROK_9020"))
        .await
        .unwrap();
    let next = timeout(STEP_TIMEOUT, listener.next())
        .await
        .expect("listener ends");
    match next {
        Some(Err(ngrok::tunnel::AcceptError::ListenerClosed {
            message,
            error_code,
        })) => {
            assert_eq!(message, "stopped by the operator");
            assert_eq!(error_code.as_deref(), Some("ERR_NGROK_9020"));
        }
        Some(Err(other)) => panic!("expected ListenerClosed, got {other:?}"),
        Some(Ok(_)) => panic!("expected ListenerClosed, got a connection"),
        None => panic!("expected ListenerClosed, got the end of the stream"),
    }
    let reply = edge.http().get("stopme.example.com", "/").await.unwrap();
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // Unbind of a tunnel the edge already dropped succeeds (Unbind is idempotent), twice.
    session.close_tunnel(&id).await.unwrap();
    session.close_tunnel(&id).await.unwrap();
    assert_eq!(edge.server.edge().sessions().len(), 1);
}

#[tokio::test]
async fn stop_and_restart_commands_reach_the_agent() {
    let edge = TestEdge::start().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut builder = edge.sdk(&edge.authtoken);
    builder.handle_stop_command(move |_req| {
        let tx = tx.clone();
        async move {
            let _ = tx.send("stop");
            Ok(())
        }
    });
    let _session = timeout(STEP_TIMEOUT, builder.connect())
        .await
        .unwrap()
        .unwrap();
    let id = edge.server.edge().sessions()[0].id.clone();
    edge.server.edge().stop_agent(&id).await.unwrap();
    assert_eq!(
        timeout(STEP_TIMEOUT, rx.recv()).await.unwrap(),
        Some("stop")
    );

    // An agent without a restart handler says so, and the edge reports it as a refusal.
    let err = edge.server.edge().restart_agent(&id).await.unwrap_err();
    assert!(
        matches!(&err, warren_edge::CommandError::Refused(text) if text.contains("callback")),
        "{err:?}"
    );
    assert!(matches!(
        edge.server.edge().stop_agent("ts_unknown").await,
        Err(warren_edge::CommandError::NotFound)
    ));
}

#[tokio::test]
async fn proxy_protocol_v2_reaches_the_upstream() {
    let edge = TestEdge::start().await;
    let session = agent(&edge, &edge.authtoken).await.unwrap();
    let (back, local, port) = through_proxy_protocol(&session, ProxyProto::V2).await;
    let (header, _) = warren_proto::proxy_protocol::parse(&back)
        .expect("a PROXY v2 header")
        .expect("complete");
    assert_eq!(header.version, 2);
    let addrs = header.addrs.expect("TCP addresses");
    assert_eq!(addrs.source, local);
    assert_eq!(addrs.destination.port(), port);
}

/// Serves a TCP endpoint with PROXY protocol `version` in front of an origin that echoes the
/// first bytes it reads; returns those bytes, the visitor's address and the public port.
async fn through_proxy_protocol(
    session: &ngrok::Session,
    version: ProxyProto,
) -> (Vec<u8>, std::net::SocketAddr, u16) {
    let first = origin::tcp_first_bytes().await;
    let fwd = session
        .tcp_endpoint()
        .proxy_proto(version)
        .listen_and_forward(Url::parse(&format!("tcp://{first}")).unwrap())
        .await
        .unwrap();
    let port = Url::parse(fwd.url()).unwrap().port().unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let local = tcp.local_addr().unwrap();
    tcp.write_all(b"x").await.unwrap();
    let mut back = Vec::new();
    timeout(STEP_TIMEOUT, tcp.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    (back, local, port)
}

#[tokio::test]
async fn sessions_per_credential_are_limited() {
    let edge = TestEdge::start_with(|config| config.edge.max_sessions_per_credential = 1).await;
    let first = agent(&edge, &edge.authtoken).await.unwrap();
    let err = agent(&edge, &edge.authtoken)
        .await
        .err()
        .expect("over the limit");
    assert_eq!(err.error_code(), Some("ERR_NGROK_108"), "{err:?}");
    // Another credential is not affected.
    let other = edge.credential(&[]).await;
    assert!(agent(&edge, &other).await.is_ok());
    // A dropped connection reconnects into its own slot.
    let id = edge
        .server
        .edge()
        .sessions()
        .iter()
        .find(|s| s.client_id == first.id())
        .unwrap()
        .id
        .clone();
    edge.server.edge().disconnect(&id);
    edge.eventually("the agent reconnected", |e| {
        e.sessions()
            .iter()
            .any(|s| s.client_id == first.id() && s.id != id)
    })
    .await;
    // Once the first session ends, the slot is free again.
    drop(first);
    edge.eventually("the session is gone", |e| e.sessions().len() == 1)
        .await;
    assert!(agent(&edge, &edge.authtoken).await.is_ok());
}
