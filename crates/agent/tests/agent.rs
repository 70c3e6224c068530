//! The agent runtime end to end against an in-process edge: on-demand endpoints through the local
//! API (reachable only while they exist), capture and replay, remote Stop/Restart/Update with
//! remote management on and off, reload by difference, an edge restart, refusals.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use warren_agent::config::{Config, EndpointConfig, UpstreamConfig};
use warren_agent::control::{EndpointState, SessionState};
use warren_agent::supervisor::{Agent, AgentOptions, Exit};
use warren_testkit::client::HttpVisitor;
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin};

/// An agent config for `edge` with the local API on a free port and the edge's CA on disk.
fn config(edge: &TestEdge, dir: &tempfile::TempDir, token: &str) -> Config {
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &edge.ca_pem).unwrap();
    let mut config = Config::default();
    config.agent.authtoken = Some(token.to_owned());
    config.agent.connect_url = Some(edge.agent_addr());
    config.agent.connect_cas = Some(ca.display().to_string());
    config.agent.web_addr = Some(Some("127.0.0.1:0".parse().unwrap()));
    config
}

fn endpoint(name: &str, url: &str, upstream: &str) -> EndpointConfig {
    EndpointConfig {
        name: name.to_owned(),
        url: Some(url.to_owned()),
        upstream: UpstreamConfig {
            url: upstream.to_owned(),
            ..UpstreamConfig::default()
        },
        ..EndpointConfig::default()
    }
}

async fn start(config: Config, names: &[&str]) -> Agent {
    let agent = Agent::start(AgentOptions {
        config,
        start: names.iter().map(|s| s.to_string()).collect(),
        start_all: false,
    })
    .await
    .expect("agent starts");
    let mut state = agent.session().watch_state();
    timeout(STEP_TIMEOUT, state.wait_for(|s| *s == SessionState::Online))
        .await
        .expect("online in time")
        .unwrap();
    agent
}

/// Waits until every started endpoint has left `Starting`.
async fn settled(agent: &Agent) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while agent
        .control()
        .endpoints()
        .iter()
        .any(|e| e.state == EndpointState::Starting)
    {
        assert!(Instant::now() < deadline, "endpoints did not settle");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The local API client.
struct Api {
    visitor: HttpVisitor,
}

impl Api {
    fn of(agent: &Agent) -> Api {
        Api {
            visitor: HttpVisitor::plain(agent.local_api_addr().expect("local API on")),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&b).unwrap())
            }
            None => Bytes::new(),
        };
        let reply = self
            .visitor
            .send("localhost:4040", req.body(Full::new(bytes)).unwrap())
            .await
            .unwrap();
        let value = if reply.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&reply.body).unwrap_or_else(|_| json!(reply.text()))
        };
        (reply.status, value)
    }
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_owned()
}

async fn status_of(edge: &TestEdge, host: &str) -> StatusCode {
    edge.http().get(host, "/").await.unwrap().status
}

#[tokio::test]
async fn endpoints_started_through_the_local_api_answer_only_while_they_exist() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin::http().await;
    let agent = start(config(&edge, &dir, &edge.authtoken), &[]).await;
    let api = Api::of(&agent);

    assert_eq!(
        status_of(&edge, "cam1.example.com").await,
        StatusCode::NOT_FOUND
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/api/endpoints",
            Some(json!({"name": "cam", "url": "https://cam1.example.com", "upstream": {"url": origin.to_string()}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["url"],
        format!("https://cam1.example.com:{}", edge.https_addr().port())
    );
    assert_eq!(status_of(&edge, "cam1.example.com").await, StatusCode::OK);

    let (status, list) = api.call(Method::GET, "/api/endpoints", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["endpoints"].as_array().unwrap().len(), 1);
    let (status, _) = api
        .call(
            Method::POST,
            "/api/endpoints",
            Some(
                json!({"name": "cam", "url": "https://cam2.example.com", "upstream": {"url": "1"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, _) = api.call(Method::DELETE, "/api/endpoints/cam", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        status_of(&edge, "cam1.example.com").await,
        StatusCode::NOT_FOUND
    );
    let (status, _) = api.call(Method::GET, "/api/endpoints/cam", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The v2-style tunnels route: a TCP tunnel on demand.
    let echo = origin::tcp_echo().await;
    let (status, tunnel) = api
        .call(
            Method::POST,
            "/api/tunnels",
            Some(json!({"name": "ssh", "proto": "tcp", "addr": echo.to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tunnel}");
    let url = tunnel["public_url"].as_str().unwrap().to_owned();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let mut visitor = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    visitor.write_all(b"hi").await.unwrap();
    let mut back = [0u8; 2];
    timeout(STEP_TIMEOUT, visitor.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"hi");
    let (status, got) = api.call(Method::GET, "/api/tunnels/ssh", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["public_url"], url.as_str());
    assert_eq!(got["metrics"]["conns"]["count"], 1);
    let (status, _) = api.call(Method::DELETE, "/api/tunnels/ssh", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err() || {
            // The port may be taken over by nothing; a connection must not reach the echo.
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let _ = s.write_all(b"x").await;
            let mut b = [0u8; 1];
            !matches!(
                timeout(Duration::from_millis(500), s.read(&mut b)).await,
                Ok(Ok(1))
            )
        }
    );

    let (status, st) = api.call(Method::GET, "/api/status", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(st["status"], "online");
    agent.shutdown().await;
}

#[tokio::test]
async fn a_refused_endpoint_reports_the_edge_code() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scoped = edge.credential(&["bind:*.site1.example.com"]).await;
    let mut cfg = config(&edge, &dir, &scoped);
    cfg.endpoints = vec![
        endpoint("ok", "https://cam1.site1.example.com", "1"),
        endpoint("denied", "https://cam1.site2.example.com", "1"),
    ];
    let agent = start(cfg, &["ok", "denied"]).await;
    settled(&agent).await;
    let denied = agent.control().endpoint("denied").unwrap();
    assert!(
        matches!(&denied.state, EndpointState::Failed { code: Some(c), .. } if c == "ERR_NGROK_316"),
        "{:?}",
        denied.state
    );
    assert_eq!(
        agent.control().endpoint("ok").unwrap().state,
        EndpointState::Online
    );

    let api = Api::of(&agent);
    let (status, body) = api
        .call(
            Method::POST,
            "/api/endpoints",
            Some(json!({"name": "x", "url": "https://x.site2.example.com", "upstream": {"url": "1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.to_string().contains("ERR_NGROK_316"), "{body}");
    agent.shutdown().await;
}

#[tokio::test]
async fn requests_are_captured_and_replayed() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin::http().await;
    let mut cfg = config(&edge, &dir, &edge.authtoken);
    cfg.endpoints = vec![endpoint(
        "web",
        "https://web.example.com",
        &origin.to_string(),
    )];
    let agent = start(cfg, &["web"]).await;
    settled(&agent).await;

    let req = Request::post("/sha256")
        .body(Full::new(Bytes::from_static(b"captured body")))
        .unwrap();
    let reply = edge.http().send("web.example.com", req).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    let api = Api::of(&agent);
    let (status, list) = api
        .call(Method::GET, "/api/requests/http?limit=10", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{list}");
    let first = &requests[0];
    assert_eq!(first["tunnel_name"], "web");
    assert_eq!(first["request"]["method"], "POST");
    assert_eq!(first["response"]["status_code"], 200);
    let id = first["id"].as_str().unwrap().to_owned();

    let (status, one) = api
        .call(Method::GET, &format!("/api/requests/http/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], id.as_str());

    let (status, _) = api
        .call(Method::POST, "/api/requests/http", Some(json!({"id": id})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = api.call(Method::GET, "/api/requests/http", None).await;
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{list}");
    assert_eq!(requests[0]["request"]["method"], "POST");
    assert_eq!(requests[0]["response"]["status_code"], 200);

    let (_, filtered) = api
        .call(Method::GET, "/api/requests/http?tunnel_name=other", None)
        .await;
    assert_eq!(filtered["requests"].as_array().unwrap().len(), 0);
    let (status, _) = api.call(Method::DELETE, "/api/requests/http", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = api.call(Method::GET, "/api/requests/http", None).await;
    assert_eq!(list["requests"].as_array().unwrap().len(), 0);
    assert_eq!(
        agent
            .control()
            .endpoint("web")
            .unwrap()
            .counters
            .http_requests,
        1
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn the_local_api_refuses_foreign_host_headers() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start(config(&edge, &dir, &edge.authtoken), &[]).await;
    let visitor = HttpVisitor::plain(agent.local_api_addr().unwrap());
    let evil = visitor
        .get("evil.example.com", "/api/status")
        .await
        .unwrap();
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    let ok = visitor.get("127.0.0.1:4040", "/api/status").await.unwrap();
    assert_eq!(ok.status, StatusCode::OK);
    agent.shutdown().await;
}

async fn session_id(edge: &TestEdge) -> String {
    edge.eventually("an agent session", |e| !e.sessions().is_empty())
        .await;
    edge.server.edge().sessions()[0].id.clone()
}

#[tokio::test]
async fn remote_stop_and_restart_end_the_agent_when_remote_management_is_on() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start(config(&edge, &dir, &edge.authtoken), &[]).await;
    let id = session_id(&edge).await;
    edge.server.edge().stop_agent(&id).await.unwrap();
    assert_eq!(
        timeout(STEP_TIMEOUT, agent.wait()).await.unwrap(),
        Exit::Stopped
    );
    agent.shutdown().await;

    let edge = TestEdge::start().await;
    let agent = start(config(&edge, &dir, &edge.authtoken), &[]).await;
    let id = session_id(&edge).await;
    edge.server.edge().restart_agent(&id).await.unwrap();
    assert_eq!(
        timeout(STEP_TIMEOUT, agent.wait()).await.unwrap(),
        Exit::Restart
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn remote_commands_are_refused_when_remote_management_is_off() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&edge, &dir, &edge.authtoken);
    cfg.agent.remote_management = Some(false);
    let agent = start(cfg, &[]).await;
    let id = session_id(&edge).await;
    for result in [
        edge.server.edge().stop_agent(&id).await,
        edge.server.edge().restart_agent(&id).await,
    ] {
        assert!(
            matches!(&result, Err(warren_edge::CommandError::Refused(t)) if t.contains("remote management is disabled")),
            "{result:?}"
        );
    }
    assert!(
        timeout(Duration::from_millis(500), agent.wait())
            .await
            .is_err(),
        "the agent kept running"
    );
    agent.shutdown().await;
}

async fn update(edge: &TestEdge, id: &str) -> Result<(), warren_edge::CommandError> {
    edge.server
        .edge()
        .session(id)
        .unwrap()
        .command(warren_edge::agent::AgentCommand::Update {
            version: "1.2.3".into(),
            permit_major_version: false,
        })
        .await
}

#[tokio::test]
async fn update_runs_the_configured_command_or_says_it_is_not_supported() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();

    let agent = start(config(&edge, &dir, &edge.authtoken), &[]).await;
    let id = session_id(&edge).await;
    let err = update(&edge, &id).await.unwrap_err();
    assert!(
        format!("{err:?}").contains("no agent.update_command"),
        "{err:?}"
    );
    agent.shutdown().await;

    let edge = TestEdge::start().await;
    let mut cfg = config(&edge, &dir, &edge.authtoken);
    cfg.agent.update_command =
        Some("echo \"cannot fetch $WARREN_UPDATE_VERSION\" >&2; exit 3".into());
    let agent = start(cfg, &[]).await;
    let id = session_id(&edge).await;
    let err = update(&edge, &id).await.unwrap_err();
    assert!(format!("{err:?}").contains("cannot fetch 1.2.3"), "{err:?}");
    agent.shutdown().await;

    let edge = TestEdge::start().await;
    let marker = dir.path().join("updated");
    let mut cfg = config(&edge, &dir, &edge.authtoken);
    cfg.agent.update_command = Some(format!(
        "echo \"$WARREN_UPDATE_VERSION\" > '{}'",
        marker.display()
    ));
    let agent = start(cfg, &[]).await;
    let id = session_id(&edge).await;
    update(&edge, &id).await.unwrap();
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "1.2.3");
    assert_eq!(
        timeout(STEP_TIMEOUT, agent.wait()).await.unwrap(),
        Exit::Restart
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn reload_touches_only_what_changed() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin::http().await;
    let up = origin.to_string();
    let mut cfg = config(&edge, &dir, &edge.authtoken);
    cfg.endpoints = vec![
        endpoint("keep", "https://keep.example.com", &up),
        endpoint("change", "https://change1.example.com", &up),
        endpoint("drop", "https://drop.example.com", &up),
    ];
    let agent = Agent::start(AgentOptions {
        config: cfg.clone(),
        start_all: true,
        ..AgentOptions::default()
    })
    .await
    .unwrap();
    settled(&agent).await;
    let keep_id = agent.control().endpoint("keep").unwrap().id.unwrap();
    for host in [
        "keep.example.com",
        "change1.example.com",
        "drop.example.com",
    ] {
        assert_eq!(status_of(&edge, host).await, StatusCode::OK, "{host}");
    }

    let mut next = cfg.clone();
    next.endpoints = vec![
        endpoint("keep", "https://keep.example.com", &up),
        endpoint("change", "https://change2.example.com", &up),
        endpoint("add", "https://add.example.com", &up),
    ];
    let summary = agent.reload(next).await.unwrap();
    assert_eq!(summary.added, ["add"]);
    assert_eq!(summary.removed, ["drop"]);
    assert_eq!(summary.changed, ["change"]);
    assert!(!summary.agent_changed);
    settled(&agent).await;
    assert_eq!(
        agent.control().endpoint("keep").unwrap().id.unwrap(),
        keep_id,
        "untouched"
    );
    for (host, want) in [
        ("keep.example.com", StatusCode::OK),
        ("change2.example.com", StatusCode::OK),
        ("add.example.com", StatusCode::OK),
        ("change1.example.com", StatusCode::NOT_FOUND),
        ("drop.example.com", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(status_of(&edge, host).await, want, "{host}");
    }
    agent.shutdown().await;
}

#[tokio::test]
async fn after_an_edge_restart_the_same_urls_answer() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin::http().await;
    let mut cfg = config(&edge, &dir, &edge.authtoken);
    cfg.endpoints = vec![endpoint("web", "https://", &origin.to_string())];
    let agent = start(cfg, &["web"]).await;
    settled(&agent).await;
    let url = agent.control().endpoint("web").unwrap().public_url.unwrap();
    let host = host_of(&url);
    assert_eq!(status_of(&edge, &host).await, StatusCode::OK);

    let edge = edge.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = edge.http().get(&host, "/").await
            && r.status == StatusCode::OK
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not come back within the backoff cap"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        agent.control().endpoint("web").unwrap().public_url.unwrap(),
        url
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn a_refused_credential_ends_the_agent() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(AgentOptions {
        config: config(&edge, &dir, "definitely-not-a-token"),
        ..AgentOptions::default()
    })
    .await
    .unwrap();
    match timeout(STEP_TIMEOUT, agent.wait()).await.unwrap() {
        Exit::Fatal(reason) => assert!(reason.contains("ERR_NGROK_10"), "{reason}"),
        other => panic!("expected a fatal exit, got {other:?}"),
    }
    let _: Option<SocketAddr> = agent.local_api_addr();
}
