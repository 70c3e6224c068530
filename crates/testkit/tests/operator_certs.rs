//! Operator-supplied certificates: a wildcard certificate for public HTTPS and a certificate for
//! the agent listener replace the ones the generated CA would issue.

use bytes::Bytes;
use http::StatusCode;
use ngrok::prelude::*;
use tokio::time::timeout;
use url::Url;
use warren_testkit::client::HttpVisitor;
use warren_testkit::{STEP_TIMEOUT, TestEdge, ca_and_leaf, origin};

#[tokio::test]
async fn operator_certificates_serve_agents_and_visitors() {
    let (public_ca, public_chain, public_key) = ca_and_leaf(&["*.example.com"]);
    let (agent_ca, agent_chain, agent_key) = ca_and_leaf(&["127.0.0.1", "edge.example.com"]);
    let files = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let public = (
        path("public.pem", &public_chain),
        path("public.key", &public_key),
    );
    let agent = (
        path("agent.pem", &agent_chain),
        path("agent.key", &agent_key),
    );
    let edge = TestEdge::start_with(|config| {
        config.edge.public_cert = Some(public);
        config.edge.agent_cert = Some(agent);
    })
    .await;

    // The agent trusts the operator's agent CA, not the generated one.
    let mut builder = ngrok::Session::builder();
    builder
        .authtoken(edge.authtoken.clone())
        .server_addr(edge.agent_addr())
        .unwrap()
        .ca_cert(Bytes::from(agent_ca));
    let session = timeout(STEP_TIMEOUT, builder.connect())
        .await
        .unwrap()
        .unwrap();
    let origin = origin::http().await;
    let _fwd = session
        .http_endpoint()
        .domain("shop.example.com")
        .listen_and_forward(Url::parse(&format!("http://{origin}")).unwrap())
        .await
        .unwrap();

    // Visitors see the operator's wildcard certificate.
    let reply = HttpVisitor::tls(edge.https_addr(), &public_ca)
        .get("shop.example.com", "/")
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    // The generated CA is not what public HTTPS presents any more.
    assert!(edge.https().get("shop.example.com", "/").await.is_err());
}
