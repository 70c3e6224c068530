//! The data plane's observability against real agents (the official `ngrok` SDK) and real
//! visitors: metrics that move while connections are open, HTTP status classes, gauges,
//! connect failures, the per-endpoint series cap, heartbeat health, agent session events with
//! their stop reasons, traffic events, and usage counters.

use std::sync::Arc;
use std::time::Duration;

use ngrok::prelude::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::timeout;
use url::Url;
use warren_events::Envelope;
use warren_events::types::{
    AGENT_SESSION_START, AGENT_SESSION_STOP, HTTP_REQUEST_COMPLETE, TCP_CONNECTION_CLOSED,
};
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin};

/// The metrics text of `edge`.
fn metrics(edge: &TestEdge) -> String {
    let mut out = String::new();
    edge.server.edge().encode_metrics(&mut out);
    out
}

/// The value of the sample `series` (name and labels exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// [`sample`] of the current metrics, 0 when absent.
fn value(edge: &TestEdge, series: &str) -> f64 {
    sample(&metrics(edge), series).unwrap_or(0.0)
}

/// Polls the metrics until `series` reaches at least `min`.
async fn wait_for_sample(edge: &TestEdge, series: &str, min: f64) {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let text = metrics(edge);
        if sample(&text, series).is_some_and(|v| v >= min) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never reached {min}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A live tail of `edge`'s events.
fn live(edge: &TestEdge) -> broadcast::Receiver<Arc<Envelope>> {
    edge.server
        .edge()
        .events()
        .expect("warrend attaches events")
        .live()
}

/// The next event of type `ty` whose object satisfies `matches`.
async fn next_event(
    rx: &mut broadcast::Receiver<Arc<Envelope>>,
    ty: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let found = timeout(STEP_TIMEOUT, async {
        loop {
            match rx.recv().await {
                Ok(envelope) if envelope.event_type == ty && matches(&envelope.object_value()) => {
                    assert!(envelope.principal.is_none(), "{envelope:?}");
                    return envelope.object_value();
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the live tail closed"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {ty} event in time"))
}

fn http_url(addr: std::net::SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_bytes_count_while_the_connection_is_open_and_the_close_is_an_event() {
    let edge = TestEdge::start().await;
    let mut events = live(&edge);
    let echo = origin::tcp_echo().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let fwd = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{echo}")).unwrap())
        .await
        .unwrap();
    let url = fwd.url().to_owned();
    let port = Url::parse(&url).unwrap().port().unwrap();

    let mut visitor = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let payload = origin::pattern(10_000);
    visitor.write_all(&payload).await.unwrap();
    let mut back = vec![0u8; payload.len()];
    timeout(STEP_TIMEOUT, visitor.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, payload);

    // Still open: the counters already show the traffic.
    let series = |name: &str| format!("warren_endpoint_{name}_total{{endpoint=\"{url}\"}}");
    wait_for_sample(&edge, &series("bytes_in"), 10_000.0).await;
    wait_for_sample(&edge, &series("bytes_out"), 10_000.0).await;
    assert_eq!(value(&edge, &series("connections")), 1.0);
    assert!(value(&edge, "warren_bytes_in_total") >= 10_000.0);
    assert!(value(&edge, "warren_bytes_out_total") >= 10_000.0);
    assert_eq!(
        value(&edge, "warren_proxied_connections_total{proto=\"tcp\"}"),
        1.0
    );

    // Usage counters move too (flushed to the store while the connection is open).
    let pipeline = edge.server.edge().events().unwrap().clone();
    pipeline.flush_usage().await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let rows = edge
        .server
        .edge()
        .store()
        .usage_between(
            now - time::Duration::hours(2),
            now + time::Duration::hours(2),
        )
        .await
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.endpoint == url)
        .unwrap_or_else(|| panic!("no usage row for {url}: {rows:?}"));
    assert_eq!(
        (row.bytes_in, row.bytes_out, row.connections),
        (10_000, 10_000, 1)
    );

    visitor.shutdown().await.unwrap();
    let mut rest = Vec::new();
    timeout(STEP_TIMEOUT, visitor.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    drop(visitor);

    let object = next_event(&mut events, TCP_CONNECTION_CLOSED, |o| {
        o["endpoint"]["url"] == url.as_str()
    })
    .await;
    let conn = &object["conn"];
    assert_eq!(conn["bytes_in"], 10_000, "{object}");
    assert_eq!(conn["bytes_out"], 10_000, "{object}");
    assert_eq!(conn["client_ip"], "127.0.0.1");
    assert_eq!(conn["server_port"], port);
    assert_eq!(conn["server_name"], "");
    for ts in ["start_ts", "end_ts"] {
        assert!(conn[ts].as_str().unwrap().ends_with('Z'), "{object}");
    }
    assert!(
        object["endpoint"]["id"]
            .as_str()
            .unwrap()
            .starts_with("ep_"),
        "{object}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_are_counted_by_status_class_and_reported_when_complete() {
    let edge = TestEdge::start().await;
    let mut events = live(&edge);
    let origin = origin::http().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let fwd = session
        .http_endpoint()
        .domain("app.example.com")
        .listen_and_forward(http_url(origin))
        .await
        .unwrap();
    let url = fwd.url().to_owned();

    let ok = edge
        .http()
        .get("app.example.com", "/bytes?n=5000")
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body.len(), 5000);
    let missing = edge.http().get("nobody.example.com", "/").await.unwrap();
    assert_eq!(missing.status, 404);

    wait_for_sample(
        &edge,
        "warren_http_requests_total{status_class=\"2xx\"}",
        1.0,
    )
    .await;
    wait_for_sample(
        &edge,
        "warren_http_requests_total{status_class=\"4xx\"}",
        1.0,
    )
    .await;
    let text = metrics(&edge);
    assert_eq!(
        sample(
            &text,
            &format!("warren_endpoint_requests_total{{endpoint=\"{url}\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            &format!("warren_endpoint_bytes_out_total{{endpoint=\"{url}\"}}")
        )
        .unwrap()
            >= 5000.0,
        "{text}"
    );

    let object = next_event(&mut events, HTTP_REQUEST_COMPLETE, |o| {
        o["endpoint"]["url"] == url.as_str()
    })
    .await;
    let request = &object["http"]["request"];
    let response = &object["http"]["response"];
    assert_eq!(request["method"], "get", "{object}");
    assert_eq!(request["url"]["path"], "/bytes");
    assert_eq!(request["url"]["query"], "n=5000");
    assert_eq!(request["url"]["raw"], "/bytes?n=5000");
    assert_eq!(request["url"]["host"], "app.example.com");
    assert_eq!(request["url"]["scheme"], "http");
    assert_eq!(request["version"], "HTTP/1.1");
    assert_eq!(request["body_length"], 0);
    assert_eq!(response["status_code"], 200);
    assert_eq!(response["body_length"], 5000, "{object}");
    assert!(
        response["last_byte_ts"].as_str().unwrap() >= response["first_byte_ts"].as_str().unwrap()
    );
    assert_eq!(object["conn"]["server_name"], "app.example.com");
    assert_eq!(object["conn"]["client_ip"], "127.0.0.1");
    assert_eq!(object["conn"]["server_port"], edge.http_addr().port());

    // A request body is counted in and reported.
    let post = http::Request::post("/sha256")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            origin::pattern(3000),
        )))
        .unwrap();
    let reply = edge.http().send("app.example.com", post).await.unwrap();
    assert_eq!(reply.status, 200);
    let object = next_event(&mut events, HTTP_REQUEST_COMPLETE, |o| {
        o["http"]["request"]["method"] == "post"
    })
    .await;
    assert_eq!(object["http"]["request"]["body_length"], 3000, "{object}");
    assert!(
        value(
            &edge,
            &format!("warren_endpoint_bytes_in_total{{endpoint=\"{url}\"}}")
        ) >= 3000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_follow_agents_and_endpoints_and_failed_connects_are_counted() {
    let edge = TestEdge::start().await;
    assert_eq!(value(&edge, "warren_agents_online"), 0.0);
    let token = edge.credential(&[]).await;
    let session = edge.agent(&token).await.unwrap();
    let _http = session
        .http_endpoint()
        .listen_and_forward(http_url(origin::http().await))
        .await
        .unwrap();
    let _tcp = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{}", origin::tcp_echo().await)).unwrap())
        .await
        .unwrap();
    let text = metrics(&edge);
    assert_eq!(sample(&text, "warren_agents_online"), Some(1.0), "{text}");
    // The official SDK's HTTP endpoints default to https URLs.
    assert_eq!(
        sample(&text, "warren_endpoints{proto=\"https\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "warren_endpoints{proto=\"tcp\"}"), Some(1.0));
    assert_eq!(sample(&text, "warren_agent_connects_total"), Some(1.0));

    // A well-formed token nobody issued, and a malformed one.
    let unknown = edge.credential(&[]).await;
    let unknown_id = edge
        .server
        .edge()
        .store()
        .credential_by_token(&unknown)
        .await
        .unwrap()
        .unwrap()
        .id;
    edge.server
        .edge()
        .store()
        .delete_credential(&unknown_id)
        .await
        .unwrap();
    assert!(edge.agent(&unknown).await.is_err());
    assert!(edge.agent("not a token").await.is_err());
    wait_for_sample(
        &edge,
        "warren_agent_connect_failures_total{reason=\"auth_invalid\"}",
        1.0,
    )
    .await;
    wait_for_sample(
        &edge,
        "warren_agent_connect_failures_total{reason=\"auth_malformed\"}",
        1.0,
    )
    .await;

    // Revoked: the session and its endpoints go (the SDK cannot come back).
    let credential_id = edge.server.edge().sessions()[0].credential_id.clone();
    assert_eq!(edge.server.edge().revoke_credential(&credential_id), 1);
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    while value(&edge, "warren_agents_online") != 0.0
        || value(&edge, "warren_endpoints{proto=\"https\"}") != 0.0
    {
        assert!(tokio::time::Instant::now() < deadline, "{}", metrics(&edge));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_past_the_series_cap_share_the_overflow_label() {
    let edge = TestEdge::start_with(|c| c.edge.max_endpoint_series = 2).await;
    let origin = origin::http().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let mut forwarders = Vec::new();
    for name in ["one", "two", "three"] {
        let fwd = session
            .http_endpoint()
            .domain(format!("{name}.example.com"))
            .listen_and_forward(http_url(origin))
            .await
            .unwrap();
        forwarders.push(fwd);
    }
    for name in ["one", "two", "three"] {
        let reply = edge
            .http()
            .get(&format!("{name}.example.com"), "/")
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    let text = metrics(&edge);
    let labelled = |url: &str| {
        sample(
            &text,
            &format!("warren_endpoint_requests_total{{endpoint=\"{url}\"}}"),
        )
    };
    assert_eq!(labelled(forwarders[0].url()), Some(1.0), "{text}");
    assert_eq!(labelled(forwarders[1].url()), Some(1.0), "{text}");
    assert_eq!(labelled(forwarders[2].url()), None, "{text}");
    assert_eq!(labelled("_overflow"), Some(1.0), "{text}");
    let endpoint_labels = text
        .lines()
        .filter(|l| l.starts_with("warren_endpoint_requests_total{"))
        .count();
    assert_eq!(
        endpoint_labels, 3,
        "two endpoints and the overflow:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_show_when_the_agent_last_answered_and_how_fast() {
    let edge =
        TestEdge::start_with(|c| c.edge.heartbeat_interval = Duration::from_millis(50)).await;
    let _session = edge.agent(&edge.authtoken).await.unwrap();
    edge.eventually("a heartbeat echo", |e| {
        e.sessions()
            .first()
            .is_some_and(|s| s.last_heartbeat_at().is_some() && s.latency().is_some())
    })
    .await;
    let agent = edge.server.edge().sessions().pop().unwrap();
    let at = agent.last_heartbeat_at().unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(
        at <= now + time::Duration::seconds(1)
            && at >= agent.started_at - time::Duration::seconds(1)
    );
    assert!(agent.latency().unwrap() < STEP_TIMEOUT);
    wait_for_sample(&edge, "warren_heartbeat_latency_seconds_count", 1.0).await;
    assert!(
        value(
            &edge,
            "warren_heartbeat_latency_seconds_bucket{le=\"+Inf\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_events_say_why_each_session_stopped() {
    let edge = TestEdge::start().await;
    let mut events = live(&edge);

    // The agent hangs up (Warren's SDK says goodbye with GOAWAY).
    let agent = edge
        .warren(&edge.authtoken)
        .metadata("device-7")
        .connect()
        .await
        .unwrap();
    let start = next_event(&mut events, AGENT_SESSION_START, |_| true).await;
    let id = start["session"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ts_"), "{start}");
    assert_eq!(start["error"], "");
    assert_eq!(start["metadata"], "device-7");
    assert_eq!(start["transport"], "muxado");
    assert_eq!(start["agent_ip"], "127.0.0.1");
    assert_eq!(start["ingress_server_ip"], "127.0.0.1");
    assert_eq!(start["region"], "warren");
    assert!(
        start["credential"]["id"]
            .as_str()
            .unwrap()
            .starts_with("cr_")
    );
    assert!(
        start["session"]["uri"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/tunnel_sessions/{id}")),
        "{start}"
    );
    assert!(start.get("stopped_at").is_none(), "{start}");
    agent.close().await;
    let stop = next_event(&mut events, AGENT_SESSION_STOP, |o| {
        o["session"]["id"] == id.as_str()
    })
    .await;
    assert_eq!(stop["error"], "closed by agent", "{stop}");
    assert!(
        stop["stopped_at"].as_str().unwrap().ends_with('Z'),
        "{stop}"
    );
    assert_eq!(stop["started_at"], start["started_at"]);

    // The official SDK reports what it is.
    let mut builder = edge.sdk(&edge.authtoken);
    builder.metadata("device-8");
    let _official = timeout(STEP_TIMEOUT, builder.connect())
        .await
        .unwrap()
        .unwrap();
    let start = next_event(&mut events, AGENT_SESSION_START, |o| {
        o["metadata"] == "device-8"
    })
    .await;
    assert_eq!(start["os"], std::env::consts::OS);
    assert!(
        start["user_agent"].as_str().unwrap().contains("ngrok"),
        "{start}"
    );

    // The credential is revoked.
    let token = edge.credential(&[]).await;
    let _session = edge.agent(&token).await.unwrap();
    let start = next_event(&mut events, AGENT_SESSION_START, |_| true).await;
    let id = start["session"]["id"].as_str().unwrap().to_owned();
    let credential_id = start["credential"]["id"].as_str().unwrap().to_owned();
    assert_eq!(edge.server.edge().revoke_credential(&credential_id), 1);
    let stop = next_event(&mut events, AGENT_SESSION_STOP, |o| {
        o["session"]["id"] == id.as_str()
    })
    .await;
    assert_eq!(stop["error"], "credential revoked", "{stop}");

    // The operator disconnects it.
    let token = edge.credential(&[]).await;
    let _session = edge.agent(&token).await.unwrap();
    let start = next_event(&mut events, AGENT_SESSION_START, |_| true).await;
    let id = start["session"]["id"].as_str().unwrap().to_owned();
    assert!(edge.server.edge().disconnect(&id));
    let stop = next_event(&mut events, AGENT_SESSION_STOP, |o| {
        o["session"]["id"] == id.as_str()
    })
    .await;
    assert_eq!(stop["error"], "stopped by operator", "{stop}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_stops_with_a_heartbeat_timeout() {
    let edge = TestEdge::start_with(|c| {
        c.edge.heartbeat_interval = Duration::from_millis(50);
        c.edge.heartbeat_tolerance = Duration::from_millis(300);
    })
    .await;
    let mut events = live(&edge);
    let relay = warren_testkit::relay::Relay::start(edge.server.agent_addr).await;
    let _agent = edge
        .warren(&edge.authtoken)
        .server_addr(relay.addr().to_string())
        .connect()
        .await
        .unwrap();
    let start = next_event(&mut events, AGENT_SESSION_START, |_| true).await;
    let id = start["session"]["id"].as_str().unwrap().to_owned();
    // The connection stays up but nothing gets through any more.
    relay.blackhole(true);
    let stop = next_event(&mut events, AGENT_SESSION_STOP, |o| {
        o["session"]["id"] == id.as_str()
    })
    .await;
    assert_eq!(stop["error"], "heartbeat timeout", "{stop}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_websocket_traffic_counts_while_open() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let edge = TestEdge::start().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let fwd = session
        .http_endpoint()
        .domain("ws.example.com")
        .listen_and_forward(http_url(origin::http().await))
        .await
        .unwrap();
    let url = fwd.url().to_owned();
    let tcp = TcpStream::connect(edge.http_addr()).await.unwrap();
    let (mut ws, resp) = timeout(
        STEP_TIMEOUT,
        tokio_tungstenite::client_async("ws://ws.example.com/ws", tcp),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), 101);
    let before_in = value(
        &edge,
        &format!("warren_endpoint_bytes_in_total{{endpoint=\"{url}\"}}"),
    );
    for _ in 0..10 {
        ws.send(Message::binary(origin::pattern(1000)))
            .await
            .unwrap();
        let echoed = timeout(STEP_TIMEOUT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_data().len(), 1000);
    }
    // Still open: both directions are counted already.
    wait_for_sample(
        &edge,
        &format!("warren_endpoint_bytes_in_total{{endpoint=\"{url}\"}}"),
        before_in + 10_000.0,
    )
    .await;
    wait_for_sample(
        &edge,
        &format!("warren_endpoint_bytes_out_total{{endpoint=\"{url}\"}}"),
        10_000.0,
    )
    .await;
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_closes_report_the_sni() {
    let edge = TestEdge::start().await;
    let mut events = live(&edge);
    let (tls_origin, origin_ca) = origin::tls_origin("secure.example.com").await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let fwd = session
        .tls_endpoint()
        .domain("secure.example.com")
        .listen_and_forward(Url::parse(&format!("tls://{tls_origin}")).unwrap())
        .await
        .unwrap();
    let url = fwd.url().to_owned();
    let config = Arc::new(warren_testkit::client_tls(&origin_ca, &[]));
    let tcp = TcpStream::connect(edge.https_addr()).await.unwrap();
    let mut tls = timeout(
        STEP_TIMEOUT,
        warren_testkit::client::tls_with(config, tcp, "secure.example.com"),
    )
    .await
    .unwrap()
    .unwrap();
    let mut text = String::new();
    timeout(STEP_TIMEOUT, tls.read_to_string(&mut text))
        .await
        .unwrap()
        .ok();
    assert_eq!(text, "tls origin secure.example.com\n");
    drop(tls);

    let object = next_event(&mut events, TCP_CONNECTION_CLOSED, |o| {
        o["endpoint"]["url"] == url.as_str()
    })
    .await;
    assert_eq!(
        object["conn"]["server_name"], "secure.example.com",
        "{object}"
    );
    assert_eq!(object["conn"]["server_port"], edge.https_addr().port());
    // The ClientHello the edge read to route the connection counts as the visitor's bytes.
    assert!(
        object["conn"]["bytes_in"].as_u64().unwrap() > 100,
        "{object}"
    );
    assert!(
        object["conn"]["bytes_out"].as_u64().unwrap() > 100,
        "{object}"
    );
    assert_eq!(
        value(&edge, "warren_proxied_connections_total{proto=\"tls\"}"),
        1.0
    );
}
