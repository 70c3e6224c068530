//! Observability end to end, through `warrend` as operators run it: official `ngrok` SDK agents,
//! the REST API, a webhook receiver, `/metrics`, `/usage`, and `warrend` restarts in between.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use ngrok::prelude::*;
use serde_json::{Value, json};
use time::macros::datetime;
use warren_events::ManualClock;
use warren_testkit::webhook::Receiver;
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin};

const SECRET: &str = "whsec-test-secret";

/// Creates an `http` destination for `receiver` and a subscription of `types` to it; returns the
/// destination id.
async fn subscribe_webhook(edge: &TestEdge, receiver: &Receiver, types: &[&str]) -> String {
    let (status, dest) = edge
        .api_request(
            Method::POST,
            "/event_destinations",
            &json!({
                "description": "test webhook",
                "format": "json",
                "target": {"http": {"url": receiver.url(), "secret": SECRET}},
            })
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dest}");
    let dest_id = dest["id"].as_str().unwrap().to_owned();
    let sources: Vec<Value> = types.iter().map(|t| json!({ "type": t })).collect();
    let (status, sub) = edge
        .api_request(
            Method::POST,
            "/event_subscriptions",
            &json!({"sources": sources, "destination_ids": [dest_id]}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    dest_id
}

async fn create_credential(edge: &TestEdge, description: &str) -> (String, String) {
    let (status, cred) = edge
        .api_request(
            Method::POST,
            "/credentials",
            &json!({ "description": description }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cred}");
    (
        cred["id"].as_str().unwrap().to_owned(),
        cred["token"].as_str().unwrap().to_owned(),
    )
}

fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_type"] == ty).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_session_start_and_stop_reach_a_webhook_when_a_credential_is_revoked() {
    let edge = TestEdge::start_api().await;
    let receiver = Receiver::start(SECRET).await;
    subscribe_webhook(
        &edge,
        &receiver,
        &["agent_session_start.v0", "agent_session_stop.v0"],
    )
    .await;
    let (cred_id, token) = create_credential(&edge, "device 1").await;
    let session = edge.agent(&token).await.unwrap();
    let _fwd = session
        .http_endpoint()
        .listen_and_forward(format!("http://{}", origin::http().await).parse().unwrap())
        .await
        .unwrap();
    receiver
        .wait_for("the start event", STEP_TIMEOUT, |events| {
            !of_type(events, "agent_session_start.v0").is_empty()
        })
        .await;

    let (status, _) = edge
        .api_request(Method::DELETE, &format!("/credentials/{cred_id}"), "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    receiver
        .wait_for("the stop event", STEP_TIMEOUT, |events| {
            !of_type(events, "agent_session_stop.v0").is_empty()
        })
        .await;

    let events = receiver.events();
    let start = of_type(&events, "agent_session_start.v0")[0];
    let stop = of_type(&events, "agent_session_stop.v0")[0];
    for event in [start, stop] {
        assert!(
            event["event_id"].as_str().unwrap().starts_with("ev_"),
            "{event}"
        );
        assert!(
            event["event_timestamp"].as_str().unwrap().ends_with('Z'),
            "{event}"
        );
        assert!(event["account_id"].is_string(), "{event}");
        assert!(event["principal"].is_null(), "{event}");
        assert_eq!(
            event["object"]["credential"]["id"],
            cred_id.as_str(),
            "{event}"
        );
        assert_eq!(event["object"]["transport"], "muxado", "{event}");
    }
    let session_id = start["object"]["session"]["id"].as_str().unwrap();
    assert!(session_id.starts_with("ts_"), "{start}");
    assert_eq!(stop["object"]["session"]["id"], session_id);
    assert_eq!(
        start["object"]["session"]["uri"],
        format!("{}/tunnel_sessions/{session_id}", edge.api_url())
    );
    assert_eq!(start["object"]["error"], "");
    assert_eq!(stop["object"]["error"], "credential revoked", "{stop}");
    assert!(stop["object"]["stopped_at"].is_string(), "{stop}");
    assert_eq!(receiver.bad_signatures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_is_down_gets_every_event_after_it_returns_across_a_restart() {
    let edge = TestEdge::start_api_with(|c| {
        c.events.backoff_base = Duration::from_millis(20);
        c.events.backoff_max = Duration::from_millis(200);
        c.events.max_attempts = 10_000;
        c.events.poll_interval = Duration::from_millis(100);
    })
    .await;
    let receiver = Receiver::start(SECRET).await;
    receiver.set_down(true);
    subscribe_webhook(&edge, &receiver, &["tunnel_credential_created.v0"]).await;

    let mut created = Vec::new();
    for i in 0..20 {
        created.push(
            create_credential(&edge, &format!("before restart {i}"))
                .await
                .0,
        );
    }
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    while receiver.refused() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery attempt"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let edge = edge.restart().await;
    for i in 0..5 {
        created.push(
            create_credential(&edge, &format!("after restart {i}"))
                .await
                .0,
        );
    }
    receiver.set_down(false);
    receiver
        .wait_for("every event", STEP_TIMEOUT, |events| {
            let ids: HashSet<&str> = events
                .iter()
                .filter_map(|e| e["object"]["id"].as_str())
                .collect();
            created.iter().all(|c| ids.contains(c.as_str()))
        })
        .await;

    // At least once, in order: the first arrival of each event follows creation order, and no
    // event arrived that was not created.
    let events = receiver.events();
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for event in &events {
        assert_eq!(event["event_type"], "tunnel_credential_created.v0");
        assert!(
            event["object"]["token"].is_null(),
            "no secret in events: {event}"
        );
        let id = event["event_id"].as_str().unwrap().to_owned();
        if seen.insert(id) {
            order.push(event["object"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(order, created, "each event once, in order");
    assert!(receiver.refused() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_an_hour_only_where_traffic_flowed_and_survives_a_restart() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-28 10:05 UTC)));
    let edge = {
        let clock = clock.clone();
        TestEdge::start_api_with(move |c| {
            c.clock = clock;
            c.events.usage_flush_interval = Duration::from_secs(3600);
        })
        .await
    };
    let events = edge.server.edge().events().unwrap().clone();
    let origin = origin::http().await;
    let session = edge.agent(&edge.authtoken).await.unwrap();
    let busy = session
        .http_endpoint()
        .domain("busy.example.com")
        .listen_and_forward(format!("http://{origin}").parse().unwrap())
        .await
        .unwrap();
    let _idle = session
        .http_endpoint()
        .domain("idle.example.com")
        .listen_and_forward(format!("http://{origin}").parse().unwrap())
        .await
        .unwrap();

    // 10:xx — traffic; 11:xx — none; 12:xx — traffic.
    let reply = edge
        .http()
        .get("busy.example.com", "/bytes?n=1000")
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    events.flush_usage().await.unwrap();
    clock.advance(time::Duration::hours(1));
    events.flush_usage().await.unwrap();
    clock.advance(time::Duration::hours(1));
    let reply = edge
        .http()
        .get("busy.example.com", "/bytes?n=500")
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    events.flush_usage().await.unwrap();

    let check = |usage: &Value| {
        let endpoints = usage["endpoints"].as_array().expect("endpoints");
        let busy_row = endpoints
            .iter()
            .find(|e| e["endpoint"] == busy.url())
            .unwrap_or_else(|| panic!("busy endpoint missing: {usage}"));
        assert_eq!(busy_row["active_hours"], 2, "{usage}");
        assert_eq!(busy_row["requests"], 2, "{usage}");
        assert!(busy_row["bytes_out"].as_u64().unwrap() >= 1500, "{usage}");
        assert!(busy_row["bytes_in"].as_u64().unwrap() > 0, "{usage}");
        assert!(
            endpoints
                .iter()
                .filter(|e| e["endpoint"] != busy.url())
                .all(|e| e["active_hours"] == 0),
            "idle endpoints are never active: {usage}"
        );
        assert_eq!(usage["totals"]["active_endpoint_hours"], 2, "{usage}");
        let credentials = usage["credentials"].as_array().unwrap();
        assert_eq!(credentials.len(), 1, "{usage}");
        assert_eq!(credentials[0]["active_endpoint_hours"], 2, "{usage}");
    };
    let path = "/usage?start=2026-11-28T00:00:00Z&end=2026-11-29T00:00:00Z";
    let (status, usage) = edge.api_request(Method::GET, path, "").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    check(&usage);
    // Only the 11:00–12:00 hour: the endpoint was online but idle.
    let (status, quiet) = edge
        .api_request(
            Method::GET,
            "/usage?start=2026-11-28T11:00:00Z&end=2026-11-28T12:00:00Z",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quiet}");
    assert_eq!(quiet["totals"]["active_endpoint_hours"], 0, "{quiet}");

    drop(session);
    let edge = edge.restart().await;
    let (status, usage) = edge.api_request(Method::GET, path, "").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    check(&usage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_while_traffic_flows() {
    let edge = TestEdge::start_api().await;
    let scrape = || async {
        let reply = warren_testkit::client::HttpVisitor::plain(edge.server.api_addr)
            .get("localhost", "/metrics")
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        reply.text()
    };
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let before = scrape().await;
    assert!(before.trim_end().ends_with("# EOF"), "{before}");
    assert_eq!(value(&before, "warren_agents_online"), 0.0, "{before}");

    let session = edge.agent(&edge.authtoken).await.unwrap();
    let _fwd = session
        .http_endpoint()
        .domain("metrics.example.com")
        .listen_and_forward(format!("http://{}", origin::http().await).parse().unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        let reply = edge
            .http()
            .get("metrics.example.com", "/bytes?n=2000")
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK);
    }
    let _ = edge.http().get("nobody.example.com", "/").await.unwrap();
    let after = scrape().await;
    assert_eq!(value(&after, "warren_agents_online"), 1.0, "{after}");
    assert!(
        value(&after, "warren_http_requests_total{status_class=\"2xx\"}") >= 3.0,
        "{after}"
    );
    assert!(
        value(&after, "warren_http_requests_total{status_class=\"4xx\"}") >= 1.0,
        "{after}"
    );
    assert!(value(&after, "warren_bytes_out_total") >= 6000.0, "{after}");
    assert!(
        after.contains("warren_heartbeat_latency_seconds"),
        "{after}"
    );
}
