//! `/tunnel_sessions`, `/tunnels` and `/endpoints` driven by the official `ngrok-api` client
//! against live agents — the official `ngrok` SDK and Warren's SDK: what the edge shows, remote
//! stop/restart/update and the agent's answers, id errors, paging, endpoints that go away with
//! their listener, and cloud endpoints refused.

use std::collections::HashSet;

use futures::TryStreamExt;
use http::{Method, StatusCode};
use ngrok::prelude::*;
use ngrok_api::types::{EndpointCreate, EndpointList, FilteredPaging, Paging};
use serde_json::Value;
use tokio::time::timeout;
use warren_model::ids::IdPrefix;
use warren_testkit::{STEP_TIMEOUT, TestEdge};

/// The credential id behind `token`.
async fn credential_id(edge: &TestEdge, token: &str) -> String {
    edge.server
        .edge()
        .store()
        .credential_by_token(token)
        .await
        .unwrap()
        .expect("token known")
        .id
}

/// The `ERR_NGROK_…` code and message of an API error.
fn api_error(err: ngrok_api::Error) -> (String, String) {
    match err {
        ngrok_api::Error::Ngrok(e) => (e.error_code, e.msg),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A well-formed id with `prefix` that names nothing.
fn unknown_id(prefix: IdPrefix) -> String {
    warren_model::ids::new_id(prefix, 1_700_000_000, &mut rand::thread_rng())
}

/// Sends `method path` to the API with the admin key; returns the status and the JSON body.
async fn raw(edge: &TestEdge, method: Method, path: &str) -> (StatusCode, Value) {
    raw_with(edge, method, path, "").await
}

/// [`raw`] with a JSON request body (none when empty).
async fn raw_with(edge: &TestEdge, method: Method, path: &str, json: &str) -> (StatusCode, Value) {
    edge.api_request(method, path, json).await
}

/// `GET /endpoints` parsed into the official client's type. (The Rust client's own
/// `endpoints().list()` cannot send its request: it puts `Vec` fields into a query string.)
async fn endpoints(edge: &TestEdge) -> EndpointList {
    let (status, body) = raw(edge, Method::GET, "/endpoints").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).expect("the official client's EndpointList parses")
}

#[tokio::test]
async fn tunnel_sessions_show_live_agents_and_relay_commands() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let other_token = edge.credential(&[]).await;

    // The official SDK, with agent metadata and a stop handler.
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut builder = edge.sdk(&edge.authtoken);
    builder.metadata("dev-17").handle_stop_command(move |_| {
        let tx = stopped_tx.clone();
        async move {
            let _ = tx.send(());
            Ok(())
        }
    });
    let _official = timeout(STEP_TIMEOUT, builder.connect())
        .await
        .unwrap()
        .unwrap();
    // Warren's SDK, no command handlers.
    let _warren = edge
        .warren(&other_token)
        .metadata("kiosk-3")
        .connect()
        .await
        .unwrap();

    let sessions: Vec<_> = api
        .tunnel_sessions()
        .list(FilteredPaging::default())
        .tunnel_sessions()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let official_cr = credential_id(&edge, &edge.authtoken).await;
    let warren_cr = credential_id(&edge, &other_token).await;
    let official = sessions
        .iter()
        .find(|s| s.metadata == "dev-17")
        .expect("the official agent is listed");
    let warren = sessions
        .iter()
        .find(|s| s.metadata == "kiosk-3")
        .expect("the Warren agent is listed");
    for (session, cr) in [(official, &official_cr), (warren, &warren_cr)] {
        assert!(session.id.starts_with("ts_"), "{session:?}");
        assert_eq!(&session.credential.id, cr);
        assert_eq!(
            session.credential.uri,
            format!("{}/credentials/{cr}", edge.api_url())
        );
        assert_eq!(session.ip, "127.0.0.1");
        assert_eq!(session.os, std::env::consts::OS);
        assert!(!session.agent_version.is_empty(), "{session:?}");
        assert_eq!(session.transport, "ngrok/2");
        assert!(session.started_at.ends_with('Z'), "{session:?}");
        assert_eq!(
            session.uri,
            format!("{}/tunnel_sessions/{}", edge.api_url(), session.id)
        );
    }

    let got = api.tunnel_sessions().get(&official.id).await.unwrap();
    assert_eq!(
        (got.id.as_str(), got.metadata.as_str()),
        (official.id.as_str(), "dev-17")
    );

    // Stop reaches the official agent's handler and answers 204.
    api.tunnel_sessions().stop(&official.id).await.unwrap();
    timeout(STEP_TIMEOUT, stopped_rx.recv())
        .await
        .expect("the stop handler ran in time")
        .expect("the stop handler ran");

    // An agent without a handler refuses, and its own words reach the caller.
    let (code, msg) = api_error(api.tunnel_sessions().restart(&warren.id).await.unwrap_err());
    assert_eq!(code, "ERR_NGROK_90101");
    assert!(msg.contains("has not defined a callback"), "{msg}");
    let (code, msg) = api_error(
        api.tunnel_sessions()
            .update(&official.id)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "ERR_NGROK_90101");
    assert!(msg.contains("callback"), "{msg}");
    let (status, body) = raw(
        &edge,
        Method::POST,
        &format!("/tunnel_sessions/{}/restart", warren.id),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Unknown and malformed ids.
    let missing = unknown_id(IdPrefix::TunnelSession);
    let (code, _) = api_error(api.tunnel_sessions().get(&missing).await.unwrap_err());
    assert_eq!(code, "ERR_NGROK_404");
    let (code, _) = api_error(api.tunnel_sessions().stop(&missing).await.unwrap_err());
    assert_eq!(code, "ERR_NGROK_404");
    let (code, _) = api_error(api.tunnel_sessions().get(&official_cr).await.unwrap_err());
    assert_eq!(code, "ERR_NGROK_227");
    let (status, body) = raw(&edge, Method::GET, &format!("/tunnel_sessions/{missing}")).await;
    assert_eq!(
        (status, body["status_code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(404))
    );
}

#[tokio::test]
async fn tunnels_and_endpoints_follow_bound_listeners() {
    let edge = TestEdge::start_api().await;
    let api = edge.api();
    let official = edge.agent(&edge.authtoken).await.unwrap();
    let warren = edge.warren(&edge.authtoken).connect().await.unwrap();
    let session_of = |id: &str| -> String {
        edge.server
            .edge()
            .sessions()
            .into_iter()
            .find(|s| s.tunnel(id).is_some())
            .expect("tunnel has a session")
            .id
            .clone()
    };

    let mut http = official
        .http_endpoint()
        .domain("dev17.example.com")
        .forwards_to("http://localhost:3000")
        .metadata("web")
        .listen()
        .await
        .unwrap();
    let tcp = warren
        .tcp_endpoint()
        .forwards_to("localhost:22")
        .metadata("ssh")
        .listen()
        .await
        .unwrap();
    let http_url = http.url().to_owned();
    let tcp_url = tcp.url();
    assert!(
        http_url.starts_with("https://dev17.example.com"),
        "{http_url}"
    );
    assert!(tcp_url.starts_with("tcp://"), "{tcp_url}");
    let http_id = http.id().to_owned();
    let tcp_id = tcp.id();
    let http_ep = format!("ep_{}", http_id.trim_start_matches("tn_"));

    // Tunnels.
    let tunnels: Vec<_> = api
        .tunnels()
        .list(Paging::default())
        .tunnels()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(tunnels.len(), 2, "{tunnels:?}");
    let t = tunnels
        .iter()
        .find(|t| t.id == http_id)
        .expect("http tunnel");
    assert_eq!(
        (t.public_url.as_str(), t.proto.as_str()),
        (http_url.as_str(), "https")
    );
    assert_eq!(t.forwards_to, "http://localhost:3000");
    assert_eq!(t.metadata, "web");
    assert_eq!(t.tunnel_session.id, session_of(&http_id));
    assert_eq!(
        t.endpoint.as_ref().map(|e| e.id.as_str()),
        Some(http_ep.as_str())
    );
    let t = tunnels.iter().find(|t| t.id == tcp_id).expect("tcp tunnel");
    assert_eq!(
        (
            t.public_url.as_str(),
            t.proto.as_str(),
            t.forwards_to.as_str()
        ),
        (tcp_url.as_str(), "tcp", "localhost:22")
    );
    assert_eq!(t.tunnel_session.id, session_of(&tcp_id));
    let got = api.tunnels().get(&tcp_id).await.unwrap();
    assert_eq!(got.public_url, tcp_url);

    // Endpoints.
    let list = endpoints(&edge).await;
    assert_eq!(list.endpoints.len(), 2, "{list:?}");
    assert_eq!(list.uri, format!("{}/endpoints", edge.api_url()));
    assert!(list.next_page_uri.is_none());
    let e = list
        .endpoints
        .iter()
        .find(|e| e.id == http_ep)
        .expect("http endpoint");
    assert_eq!(
        (e.url.as_str(), e.public_url.as_str(), e.proto.as_str()),
        (http_url.as_str(), http_url.as_str(), "https")
    );
    assert_eq!(
        (e.scheme.as_str(), e.host.as_str()),
        ("https", "dev17.example.com")
    );
    assert_eq!(e.hostport, format!("dev17.example.com:{}", e.port));
    assert_eq!(e.r#type, "agent");
    assert_eq!(e.upstream_url, "http://localhost:3000");
    assert_eq!(e.metadata, "web");
    assert_eq!(e.bindings.as_deref(), Some(&["public".to_owned()][..]));
    assert_eq!(
        e.tunnel.as_ref().map(|t| t.id.as_str()),
        Some(http_id.as_str())
    );
    assert_eq!(
        e.tunnel_session.as_ref().map(|t| t.id.clone()),
        Some(session_of(&http_id))
    );
    let cr = credential_id(&edge, &edge.authtoken).await;
    assert_eq!(
        e.principal.as_ref().map(|p| p.id.as_str()),
        Some(cr.as_str())
    );
    let e = list
        .endpoints
        .iter()
        .find(|e| e.tunnel.as_ref().is_some_and(|t| t.id == tcp_id))
        .expect("tcp endpoint");
    assert_eq!(
        (e.url.as_str(), e.proto.as_str(), e.scheme.as_str()),
        (tcp_url.as_str(), "tcp", "tcp")
    );
    assert_eq!(e.upstream_url, "localhost:22");
    assert_eq!(
        tcp_url,
        format!("tcp://{}:{}", e.host, e.port),
        "host and port come from the URL"
    );
    let got = api.endpoints().get(&http_ep).await.unwrap();
    assert_eq!(got.url, http_url);

    // Cloud endpoints are refused with a Warren code; agent endpoints are read-only.
    let create = EndpointCreate {
        url: "https://cloud.example.com".into(),
        r#type: "cloud".into(),
        traffic_policy: "on_http_request: []".into(),
        ..EndpointCreate::default()
    };
    let (code, msg) = api_error(api.endpoints().create(&create).await.unwrap_err());
    assert_eq!(code, "ERR_NGROK_90007");
    assert!(msg.contains("not supported by Warren"), "{msg}");
    let (status, body) = raw(&edge, Method::DELETE, &format!("/endpoints/{http_ep}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (code, _) = api_error(api.endpoints().get(&http_id).await.unwrap_err());
    assert_eq!(code, "ERR_NGROK_227");

    // Closing the listeners takes them off both lists.
    http.close().await.unwrap();
    tcp.close().await;
    let tunnels = api
        .tunnels()
        .list(Paging::default())
        .pages()
        .await
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert!(tunnels[0].tunnels.is_empty(), "{tunnels:?}");
    assert!(endpoints(&edge).await.endpoints.is_empty());
    let (code, _) = api_error(api.tunnels().get(&http_id).await.unwrap_err());
    assert_eq!(code, "ERR_NGROK_404");
    let (code, _) = api_error(api.endpoints().get(&http_ep).await.unwrap_err());
    assert_eq!(code, "ERR_NGROK_404");
}

#[tokio::test]
async fn session_lists_page_with_next_page_uri() {
    let edge = TestEdge::start_api().await;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(edge.warren(&edge.authtoken).connect().await.unwrap());
    }
    let pages: Vec<_> = edge
        .api()
        .tunnel_sessions()
        .list(FilteredPaging {
            limit: Some("1".into()),
            ..FilteredPaging::default()
        })
        .pages()
        .await
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|p| p.tunnel_sessions.len() == 1));
    assert!(pages[..2].iter().all(|p| p.next_page_uri.is_some()));
    assert!(pages[2].next_page_uri.is_none());
    let ids: Vec<_> = pages
        .iter()
        .map(|p| p.tunnel_sessions[0].id.clone())
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let next = pages[0].next_page_uri.as_deref().unwrap();
    assert_eq!(
        next,
        format!(
            "{}/tunnel_sessions?before_id={}&limit=1",
            edge.api_url(),
            ids[0]
        )
    );

    let (status, body) = raw(&edge, Method::GET, "/tunnel_sessions?limit=0").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_NGROK_233"))
    );
}

#[tokio::test]
async fn update_carries_the_requested_version_to_the_agent() {
    let edge = TestEdge::start_api().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _agent = edge
        .warren(&edge.authtoken)
        .handle_update(move |version, permit_major| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((version, permit_major));
                Ok(())
            }
        })
        .connect()
        .await
        .unwrap();
    let id = edge.server.edge().sessions()[0].id.clone();
    let path = format!("/tunnel_sessions/{id}/update");

    let (status, body) = raw_with(&edge, Method::POST, &path, r#"{"version":"3.2.0"}"#).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let got = timeout(STEP_TIMEOUT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(got, ("3.2.0".to_owned(), false));

    // The official client's body (`{"id"}`) asks for the latest version.
    edge.api().tunnel_sessions().update(&id).await.unwrap();
    let got = timeout(STEP_TIMEOUT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(got, (String::new(), false));

    let (status, body) = raw_with(&edge, Method::POST, &path, r#"{"force":true}"#).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_NGROK_214"))
    );
    let (status, body) = raw_with(
        &edge,
        Method::POST,
        &format!("/tunnel_sessions/{id}/stop"),
        r#"{"version":"1"}"#,
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ERR_NGROK_214"))
    );
}
