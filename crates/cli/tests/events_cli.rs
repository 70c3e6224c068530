//! `warren api` (the real binary) for event export against an in-process edge: destinations
//! from the target flags, subscriptions and their sources, `usage`, and `events tail` printing a
//! live event.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::{ok_json, ok_text, warren_api, warren_api_command};
use warren_testkit::{STEP_TIMEOUT, TestEdge};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_subscriptions_sources_and_usage() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let dest = ok_json(
        &edge,
        &[
            "event-destinations",
            "create",
            "--file-path",
            path.to_str().unwrap(),
            "--description",
            "local file",
        ],
    );
    let dest_id = dest["id"].as_str().unwrap().to_owned();
    assert!(dest_id.starts_with("ed_"), "{dest}");
    assert_eq!(dest["format"], "json");
    assert_eq!(dest["delivery"]["delivered"], true, "{dest}");

    let hook = ok_json(
        &edge,
        &[
            "event-destinations",
            "create",
            "--http-url",
            "http://127.0.0.1:9/hook",
            "--http-secret",
            "shh",
        ],
    );
    assert!(!hook.to_string().contains("shh"), "{hook}");
    let missing = warren_api(&edge, &["event-destinations", "create"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("needs a target"));

    let sub = ok_json(
        &edge,
        &[
            "event-subscriptions",
            "create",
            "--source",
            "agent_session_start.v0",
            "--source",
            "agent_session_stop.v0",
            "--destination-id",
            &dest_id,
        ],
    );
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    assert_eq!(sub["sources"].as_array().unwrap().len(), 2, "{sub}");
    assert_eq!(sub["destinations"][0]["id"], dest_id.as_str());

    let table = ok_text(&edge, &["event-subscriptions", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&sub_id) && l.contains(&dest_id)),
        "{table}"
    );

    let added = ok_json(
        &edge,
        &[
            "event-sources",
            "add",
            &sub_id,
            "tunnel_credential_created.v0",
        ],
    );
    assert_eq!(added["type"], "tunnel_credential_created.v0");
    let sources = ok_text(&edge, &["event-sources", "list", &sub_id]);
    assert!(sources.starts_with("TYPE"), "{sources}");
    assert_eq!(sources.lines().count(), 4, "{sources}");
    let one = ok_json(
        &edge,
        &["event-sources", "get", &sub_id, "agent_session_stop.v0"],
    );
    assert_eq!(one["type"], "agent_session_stop.v0");
    assert_eq!(
        ok_text(
            &edge,
            &["event-sources", "delete", &sub_id, "agent_session_stop.v0"]
        )
        .trim(),
        "done"
    );
    let bad = warren_api(&edge, &["event-sources", "add", &sub_id, "nope.v0"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ERR_NGROK_238"));

    let in_use = warren_api(&edge, &["event-destinations", "delete", &dest_id]);
    assert_eq!(in_use.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&in_use.stderr).contains("409"));

    let requeued = ok_json(&edge, &["event-destinations", "requeue", &dest_id]);
    assert_eq!(requeued["requeued"], 0);

    let usage = ok_text(&edge, &["usage"]);
    assert!(usage.starts_with("usage from "), "{usage}");
    assert!(usage.contains("ENDPOINT"), "{usage}");
    assert!(usage.contains("total: 0 active endpoint hours"), "{usage}");
    let usage = ok_json(
        &edge,
        &[
            "usage",
            "--start",
            "2026-01-01T00:00:00+01:00",
            "--end",
            "2026-01-02T00:00:00Z",
        ],
    );
    assert_eq!(usage["start"], "2025-12-31T23:00:00Z");
    let bad = warren_api(&edge, &["usage", "--start", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1));

    ok_text(&edge, &["event-subscriptions", "delete", &sub_id]);
    ok_text(&edge, &["event-destinations", "delete", &dest_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_prints_live_events() {
    let edge = TestEdge::start().await;
    let mut child = warren_api_command(
        &edge,
        &[
            "events",
            "tail",
            "--json",
            "--type",
            "tunnel_credential_created.v0",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("warren runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // The tail may not be connected yet: create credentials until one shows up.
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let mut created = Vec::new();
    let line = loop {
        let out = ok_json(&edge, &["credentials", "create", "--description", "tailed"]);
        created.push(out["id"].as_str().unwrap().to_owned());
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(line)) => break line,
            Ok(None) => panic!("tail exited"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "no event printed"),
        }
    };
    child.kill().unwrap();
    let _ = child.wait();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event_type"], "tunnel_credential_created.v0");
    assert!(
        created
            .iter()
            .any(|id| event["object"]["id"] == id.as_str()),
        "{event}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_reconnects_after_a_restart() {
    let edge = TestEdge::start().await;
    let mut child = warren_api_command(
        &edge,
        &["events", "tail", "--type", "tunnel_credential_created.v0"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("warren runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Connected: an event shows up.
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        ok_json(&edge, &["credentials", "create", "--description", "before"]);
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(_)) => break,
            Ok(None) => panic!("tail exited"),
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "no event printed"),
        }
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {}
    // Shutting down ends the open stream (the restart would hang otherwise); the tail
    // reconnects to the new server on the same address.
    let edge = tokio::time::timeout(STEP_TIMEOUT, edge.restart())
        .await
        .expect("the server shuts down with a tail connected");
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let line = loop {
        let out = ok_json(&edge, &["credentials", "create", "--description", "after"]);
        assert!(out["id"].is_string());
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(line)) => break line,
            Ok(None) => panic!("tail exited"),
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "no event printed after the restart"
            ),
        }
    };
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        line.contains(" tunnel_credential_created.v0 cr_") && line.contains(" by ak_"),
        "{line}"
    );
}
