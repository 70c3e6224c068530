//! Edge lifecycle with the official ngrok SDK as the agent: the drain order on shutdown and
//! agents coming back after an edge restart with the same URLs.

use http::StatusCode;
use ngrok::prelude::*;
use tokio::net::TcpStream;
use tokio::time::timeout;
use url::Url;
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin};

async fn agent(edge: &TestEdge) -> ngrok::Session {
    edge.agent(&edge.authtoken).await.expect("agent connects")
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_before_goaway() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = agent(&edge).await;
    let _fwd = session
        .http_endpoint()
        .domain("drain.example.com")
        .listen_and_forward(Url::parse(&format!("http://{origin}")).unwrap())
        .await
        .unwrap();
    let visitor = edge.http();
    let http_addr = edge.http_addr();
    // A request that is still in flight when the drain starts.
    let slow = tokio::spawn({
        let visitor = visitor.clone();
        async move { visitor.get("drain.example.com", "/slow?ms=1500").await }
    });
    edge.eventually("the slow request reached the agent", |e| {
        e.sessions()
            .iter()
            .flat_map(|s| s.tunnels())
            .any(|t| t.connections() > 0)
    })
    .await;
    let TestEdge { server, .. } = edge;
    let shutdown = tokio::spawn(server.shutdown());

    // The in-flight request completes: GOAWAY (which makes the SDK kill its streams) comes last.
    let reply = timeout(STEP_TIMEOUT, slow).await.unwrap().unwrap().unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "slow done");
    timeout(STEP_TIMEOUT, shutdown).await.unwrap().unwrap();
    // And no new visitors are taken.
    assert!(TcpStream::connect(http_addr).await.is_err());
}

#[tokio::test]
async fn agents_come_back_after_an_edge_restart_with_the_same_urls() {
    let edge = TestEdge::start().await;
    let origin = origin::http().await;
    let session = agent(&edge).await;
    let generated = session
        .http_endpoint()
        .listen_and_forward(Url::parse(&format!("http://{origin}")).unwrap())
        .await
        .unwrap();
    let host = Url::parse(generated.url())
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();

    let edge = edge.restart().await;
    edge.eventually("the agent rebound after the restart", |e| {
        e.sessions().iter().any(|s| !s.tunnels().is_empty())
    })
    .await;
    let urls: Vec<String> = edge.server.edge().sessions()[0]
        .tunnels()
        .iter()
        .map(|t| t.url.clone())
        .collect();
    assert_eq!(urls, vec![generated.url().to_owned()]);
    let reply = edge.http().get(&host, "/after-restart").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
}
