//! The Warren SDK against an in-process edge: endpoints of every kind, the visitor's address,
//! refusals with their codes, reconnect after an edge restart and after a silent network drop,
//! commands, StopTunnel, and the official ngrok SDK on the same edge.

use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use warren::{Backoff, ListenError, ListenerClosed, SessionState, Upstream, UpstreamScheme};
use warren_testkit::relay::Relay;
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin};

fn http_upstream(addr: std::net::SocketAddr) -> Upstream {
    Upstream::parse(&format!("http://{addr}"), UpstreamScheme::Http).unwrap()
}

async fn wait_for_state(session: &warren::Session, want: fn(&SessionState) -> bool) {
    let mut rx = session.watch_state();
    timeout(STEP_TIMEOUT, rx.wait_for(want))
        .await
        .expect("state reached in time")
        .expect("session alive");
}

/// GETs `host` through the edge's plain-HTTP port until it answers 200 or `limit` passes.
async fn get_until_ok(
    edge: &TestEdge,
    host: &str,
    limit: Duration,
) -> warren_testkit::client::Reply {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(reply) = edge.http().get(host, "/").await
            && reply.status == StatusCode::OK
        {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "{host} did not answer within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn http_endpoint_forwards_and_connections_carry_the_visitor() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = edge
        .warren(&edge.authtoken)
        .metadata("kiosk-17")
        .connect()
        .await
        .unwrap();
    assert!(session.client_id().starts_with("ts_") || !session.client_id().is_empty());
    assert_eq!(edge.server.edge().sessions()[0].info.metadata, "kiosk-17");

    let mut manual = session
        .http_endpoint()
        .domain("manual.example.com")
        .listen()
        .await
        .unwrap();
    assert_eq!(
        manual.url(),
        format!("https://manual.example.com:{}", edge.https_addr().port())
    );
    let visitor = tokio::spawn({
        let v = edge.http();
        async move { v.get("manual.example.com", "/x").await }
    });
    let mut conn = timeout(STEP_TIMEOUT, manual.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.remote_addr().ip().to_string(), "127.0.0.1");
    assert_eq!(conn.proto(), "https");
    let mut head = vec![0u8; 256];
    let n = conn.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("GET /x HTTP/1.1\r\n"));
    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nmanual")
        .await
        .unwrap();
    conn.shutdown().await.unwrap();
    let reply = visitor.await.unwrap().unwrap();
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "manual")
    );

    let fwd = session
        .http_endpoint()
        .url("https://app.example.com")
        .listen()
        .await
        .unwrap();
    tokio::spawn(fwd.forward(http_upstream(origin)));
    let reply = edge.https().get("app.example.com", "/hello").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("GET /hello\n"), "{}", reply.text());

    // Dropping a listener unbinds it: the URL stops answering.
    drop(manual);
    let deadline = Instant::now() + STEP_TIMEOUT;
    while edge
        .http()
        .get("manual.example.com", "/")
        .await
        .unwrap()
        .status
        != StatusCode::NOT_FOUND
    {
        assert!(Instant::now() < deadline, "unbind did not take effect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn upstream_down_gives_the_visitor_a_502() {
    let edge = TestEdge::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let session = edge.warren(&edge.authtoken).connect().await.unwrap();
    let fwd = session
        .http_endpoint()
        .domain("down.example.com")
        .listen()
        .await
        .unwrap();
    tokio::spawn(fwd.forward(http_upstream(dead)));
    let reply = edge.http().get("down.example.com", "/").await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.text().contains("could not reach the upstream"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn tcp_and_tls_endpoints() {
    let edge = TestEdge::start().await;
    let session = edge.warren(&edge.authtoken).connect().await.unwrap();

    let echo = origin::tcp_echo().await;
    let tcp = session.tcp_endpoint().listen().await.unwrap();
    let url = tcp.url();
    assert!(url.starts_with("tcp://"), "{url}");
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    tokio::spawn(tcp.forward(Upstream::parse(&echo.to_string(), UpstreamScheme::Tcp).unwrap()));
    let mut visitor = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    visitor.write_all(b"ping over tcp").await.unwrap();
    let mut back = [0u8; 13];
    timeout(STEP_TIMEOUT, visitor.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"ping over tcp");

    // TLS passthrough: the visitor's TLS session ends at the device's origin, not at the edge.
    let (tls_origin, origin_ca) = origin::tls_origin("cam.example.com").await;
    let tls = session
        .tls_endpoint()
        .domain("cam.example.com")
        .listen()
        .await
        .unwrap();
    assert_eq!(
        tls.url(),
        format!("tls://cam.example.com:{}", edge.https_addr().port())
    );
    tokio::spawn(
        tls.forward(Upstream::parse(&tls_origin.to_string(), UpstreamScheme::Tcp).unwrap()),
    );
    let config = std::sync::Arc::new(warren_testkit::client_tls(&origin_ca, &[]));
    let tcp = TcpStream::connect(edge.https_addr()).await.unwrap();
    let mut tls = timeout(
        STEP_TIMEOUT,
        warren_testkit::client::tls_with(config, tcp, "cam.example.com"),
    )
    .await
    .unwrap()
    .unwrap();
    let mut text = String::new();
    timeout(STEP_TIMEOUT, tls.read_to_string(&mut text))
        .await
        .unwrap()
        .ok();
    assert_eq!(text, "tls origin cam.example.com\n");
}

#[tokio::test]
async fn refusals_carry_the_edge_codes() {
    let edge = TestEdge::start().await;
    let err = edge
        .warren("not-a-valid-token")
        .connect()
        .await
        .unwrap_err();
    assert!(
        err.error_code()
            .is_some_and(|c| c.starts_with("ERR_NGROK_10")),
        "{err}"
    );
    assert!(err.is_fatal(), "{err}");

    let scoped = edge.credential(&["bind:*.factory1.example.com"]).await;
    let session = edge.warren(&scoped).connect().await.unwrap();
    let _first = session
        .http_endpoint()
        .domain("cam1.factory1.example.com")
        .listen()
        .await
        .unwrap();
    let err = session
        .http_endpoint()
        .domain("cam1.factory2.example.com")
        .listen()
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), Some("ERR_NGROK_316"), "{err}");

    // The same name twice: the second bind is refused, the first keeps serving.
    let err = session
        .http_endpoint()
        .domain("cam1.factory1.example.com")
        .listen()
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), Some("ERR_NGROK_334"), "{err}");
    assert!(matches!(err, ListenError::Edge(_)));
}

#[tokio::test]
async fn edge_restart_during_traffic_agent_returns_with_the_same_urls() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let echo = origin::tcp_echo().await;
    // The production backoff: the point is that the default schedule brings agents back fast.
    let session = edge
        .warren(&edge.authtoken)
        .backoff(Backoff::default())
        .connect()
        .await
        .unwrap();
    let web = session.http_endpoint().listen().await.unwrap();
    let web_url = web.url();
    let web_host = web_url
        .trim_start_matches("https://")
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    tokio::spawn(web.forward(http_upstream(origin)));
    let tcp = session.tcp_endpoint().listen().await.unwrap();
    let tcp_url = tcp.url();
    tokio::spawn(tcp.forward(Upstream::parse(&echo.to_string(), UpstreamScheme::Tcp).unwrap()));
    get_until_ok(&edge, &web_host, STEP_TIMEOUT).await;

    // Traffic keeps flowing while the edge restarts.
    let traffic = tokio::spawn({
        let visitor = edge.http();
        let host = web_host.clone();
        async move {
            let mut ok = 0u32;
            for _ in 0..200 {
                if let Ok(r) = visitor.get(&host, "/").await {
                    ok += u32::from(r.status == StatusCode::OK);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ok
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let old_id = session.client_id();
    let edge = edge.restart().await;
    let restarted = Instant::now();
    // Back well within the 30 s cap (one restart costs the agent at most a couple of retries).
    get_until_ok(&edge, &web_host, Duration::from_secs(30)).await;
    let back_after = restarted.elapsed();
    assert!(back_after < Duration::from_secs(30), "{back_after:?}");
    assert_eq!(session.state(), SessionState::Online);
    assert_eq!(
        session.client_id(),
        old_id,
        "the edge keeps the session id on a reconnect"
    );

    let port: u16 = tcp_url.rsplit(':').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
            s.write_all(b"again").await.unwrap();
            let mut back = [0u8; 5];
            if timeout(Duration::from_secs(2), s.read_exact(&mut back))
                .await
                .is_ok_and(|r| r.is_ok())
            {
                assert_eq!(&back, b"again");
                break;
            }
        }
        assert!(Instant::now() < deadline, "{tcp_url} did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(traffic.await.unwrap() > 0);
}

#[tokio::test]
async fn a_silently_dropped_connection_is_replaced_after_the_heartbeat_tolerance() {
    let edge = TestEdge::start().await;
    let relay = Relay::start(edge.server.agent_addr).await;
    let origin = origin::http().await;
    let session = edge
        .warren(&edge.authtoken)
        .server_addr(relay.addr().to_string())
        .heartbeat_interval(Duration::from_millis(200))
        .heartbeat_tolerance(Duration::from_millis(600))
        .connect()
        .await
        .unwrap();
    let web = session
        .http_endpoint()
        .domain("nat.example.com")
        .listen()
        .await
        .unwrap();
    tokio::spawn(web.forward(http_upstream(origin)));
    get_until_ok(&edge, "nat.example.com", STEP_TIMEOUT).await;
    assert!(session.latency().is_some());

    // The NAT box forgets the flow: nothing arrives, nothing is closed.
    relay.blackhole(true);
    wait_for_state(&session, |s| matches!(s, SessionState::Reconnecting { .. })).await;
    relay.blackhole(false);
    wait_for_state(&session, |s| *s == SessionState::Online).await;
    assert!(relay.accepted() >= 2);
    get_until_ok(&edge, "nat.example.com", STEP_TIMEOUT).await;
}

#[tokio::test]
async fn started_in_the_background_it_waits_for_the_edge() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // The session needs the edge's CA and token before the edge is up: start it once to create
    // them, stop it, start the agent, then start the edge again on the same data directory.
    let edge =
        TestEdge::start_with(|c| c.agent_addr = format!("127.0.0.1:{port}").parse().unwrap()).await;
    let builder = edge.warren(&edge.authtoken);
    let origin = origin::http().await;
    let edge_config = edge.config.clone();
    // A partial move: the data directory (owned by `edge`) lives until the end of the test.
    edge.server.shutdown().await;

    let session = builder.start().unwrap();
    let pending = tokio::spawn({
        let session = session.clone();
        async move {
            session
                .http_endpoint()
                .domain("late.example.com")
                .listen()
                .await
        }
    });
    wait_for_state(&session, |s| matches!(s, SessionState::Reconnecting { .. })).await;
    assert!(!pending.is_finished());

    let server = warrend::start(edge_config).await.unwrap();
    let listener = timeout(STEP_TIMEOUT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(session.state(), SessionState::Online);
    tokio::spawn(listener.forward(http_upstream(origin)));
    let visitor = warren_testkit::client::HttpVisitor::plain(server.http_addr);
    let reply = visitor.get("late.example.com", "/").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn stop_restart_update_commands_reach_the_handlers() {
    let edge = TestEdge::start().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop_tx = tx.clone();
    let session = edge
        .warren(&edge.authtoken)
        .handle_stop(move || {
            let tx = stop_tx.clone();
            async move {
                let _ = tx.send("stop");
                Ok(())
            }
        })
        .handle_restart(|| async { Err("restart is not allowed here".to_owned()) })
        .connect()
        .await
        .unwrap();
    let id = edge.server.edge().sessions()[0].id.clone();
    edge.server.edge().stop_agent(&id).await.unwrap();
    assert_eq!(
        timeout(STEP_TIMEOUT, rx.recv()).await.unwrap(),
        Some("stop")
    );
    let err = edge.server.edge().restart_agent(&id).await.unwrap_err();
    assert!(
        matches!(&err, warren_edge::CommandError::Refused(t) if t.contains("restart is not allowed here")),
        "{err:?}"
    );
    drop(session);
}

#[tokio::test]
async fn stop_tunnel_ends_the_listener_with_the_edge_reason() {
    let edge = TestEdge::start().await;
    let session = edge.warren(&edge.authtoken).connect().await.unwrap();
    let mut listener = session
        .http_endpoint()
        .domain("stopme.example.com")
        .listen()
        .await
        .unwrap();
    let id = listener.id();
    edge.server
        .edge()
        .stop_tunnel(&id, "stopped by the operator", Some("ERR_NGROK_9020"))
        .await
        .unwrap();
    match timeout(STEP_TIMEOUT, listener.accept()).await.unwrap() {
        Err(ListenerClosed::Edge(e)) => {
            assert_eq!(e.message, "stopped by the operator");
            assert_eq!(e.code.as_deref(), Some("ERR_NGROK_9020"));
        }
        other => panic!("expected the edge's StopTunnel, got {other:?}"),
    }
    // The session itself stays up and can bind the name again.
    session
        .http_endpoint()
        .domain("stopme.example.com")
        .listen()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_official_ngrok_sdk_and_warren_share_an_edge() {
    use ngrok::prelude::*;
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let ngrok_session = edge.agent(&edge.authtoken).await.unwrap();
    let warren_session = edge.warren(&edge.authtoken).connect().await.unwrap();

    let _ngrok_fwd = ngrok_session
        .http_endpoint()
        .domain("ngrok.example.com")
        .listen_and_forward(url::Url::parse(&format!("http://{origin}")).unwrap())
        .await
        .unwrap();
    let warren_listener = warren_session
        .http_endpoint()
        .domain("warren.example.com")
        .listen()
        .await
        .unwrap();
    tokio::spawn(warren_listener.forward(http_upstream(origin)));
    for host in ["ngrok.example.com", "warren.example.com"] {
        let reply = edge.http().get(host, "/").await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{host}");
    }

    // Each refuses the other's name with the same code.
    let err = warren_session
        .http_endpoint()
        .domain("ngrok.example.com")
        .listen()
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), Some("ERR_NGROK_334"));
    let Err(err) = ngrok_session
        .http_endpoint()
        .domain("warren.example.com")
        .listen()
        .await
    else {
        panic!("the official SDK bound a name Warren's SDK holds");
    };
    assert_eq!(ngrok::Error::error_code(&err), Some("ERR_NGROK_334"));
    assert_eq!(edge.server.edge().sessions().len(), 2);
}
