//! The OpenAPI document cannot drift: the committed `openapi.json` equals what the code
//! generates (regenerate with `WARREN_BLESS=1 cargo test -p warren-api --test openapi`), and
//! every route it documents is served (answers neither "unknown path" nor 405).

use http::{Method, Request};
use http_body_util::Full;
use serde_json::Value;
use warren_api::openapi;
use warren_testkit::TestEdge;
use warren_testkit::client::HttpVisitor;

#[test]
fn the_committed_document_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = serde_json::to_string_pretty(&openapi::document()).unwrap() + "\n";
    if std::env::var_os("WARREN_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `WARREN_BLESS=1 cargo test -p warren-api --test openapi` and commit it",
        path.display()
    );
}

/// A well-formed id for the collection at the start of `path`.
fn sample_id(path: &str) -> String {
    let prefix = match path.split('/').nth(1).unwrap_or("") {
        "service_users" => "service",
        "bot_users" => "bot",
        "credentials" => "cr",
        "api_keys" => "ak",
        "reserved_domains" => "rd",
        "reserved_addrs" => "ra",
        "tunnel_sessions" => "ts",
        "tunnels" => "tn",
        "endpoints" => "ep",
        "ip_policies" => "ipp",
        "ip_policy_rules" => "ipr",
        "ip_restrictions" => "ipx",
        "event_destinations" => "ed",
        "event_subscriptions" => "esb",
        other => panic!("no id prefix for /{other}"),
    };
    format!("{prefix}_2ZtG0eUkU4FJmHzRCTP4TgbBqfZ")
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let edge = TestEdge::start_api().await;
    let visitor = HttpVisitor::plain(edge.server.api_addr);
    for route in openapi::routes() {
        let mut path = if route.path.contains("{id}") {
            route.path.replace("{id}", &sample_id(route.path))
        } else {
            route.path.to_owned()
        };
        path = path.replace("{type}", "agent_session_start.v0");
        if path == "/event_stream" {
            // A valid stream never ends; a refused filter shows the route exists.
            path.push_str("?types=not_a_type.v0");
        }
        let method: Method = route.method.to_uppercase().parse().unwrap();
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&path)
            .header("authorization", format!("Bearer {}", edge.api_key))
            .header("ngrok-version", "2");
        let body = if route.request.is_some() {
            req = req.header("content-type", "application/json");
            bytes::Bytes::from_static(b"{}")
        } else {
            bytes::Bytes::new()
        };
        let reply = visitor
            .send("localhost", req.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let json: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        assert_ne!(
            reply.status.as_u16(),
            405,
            "{method} {path} is documented but not routed"
        );
        assert_ne!(
            json["msg"].as_str(),
            Some(warren_api::rest::UNKNOWN_PATH),
            "{method} {path} is documented but not routed"
        );
    }
}
