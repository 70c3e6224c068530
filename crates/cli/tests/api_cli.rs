//! `warren api` (the real binary) against an in-process edge's REST API: create a service user
//! and a scoped authtoken, list and get them as tables and JSON, delete, errors, and the online
//! agents.

mod support;

use std::process::Command;
use support::{ok_json, ok_text, warren_api};
use warren_testkit::TestEdge;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_users_and_scoped_authtokens_from_the_command_line() {
    let edge = TestEdge::start().await;
    let user = ok_json(
        &edge,
        &["service-users", "create", "--name", "site1 gateway"],
    );
    let user_id = user["id"].as_str().unwrap().to_owned();
    assert!(user_id.starts_with("service_"), "{user}");

    let cred = ok_json(
        &edge,
        &[
            "credentials",
            "create",
            "--acl",
            "bind:*.site1.example.com",
            "--owner-id",
            &user_id,
            "--description",
            "cam1",
        ],
    );
    let cred_id = cred["id"].as_str().unwrap().to_owned();
    assert!(
        cred["token"].as_str().is_some_and(|t| !t.is_empty()),
        "token shown on create"
    );
    assert_eq!(cred["acl"][0], "bind:*.site1.example.com");

    let table = ok_text(&edge, &["credentials", "list"]);
    let line = table
        .lines()
        .find(|l| l.starts_with(&cred_id))
        .expect("listed");
    assert!(
        line.contains("bind:*.site1.example.com") && line.contains(&user_id),
        "{table}"
    );
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");

    let got = ok_json(&edge, &["credentials", "get", &cred_id]);
    assert!(got["token"].is_null(), "token never shown again: {got}");

    let updated = ok_json(
        &edge,
        &[
            "credentials",
            "update",
            &cred_id,
            "--description",
            "cam1 (rotated)",
        ],
    );
    assert_eq!(updated["description"], "cam1 (rotated)");

    assert_eq!(
        ok_text(&edge, &["credentials", "delete", &cred_id]).trim(),
        "done"
    );
    let gone = warren_api(&edge, &["credentials", "get", &cred_id]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("404"),
        "{gone:?}"
    );

    let bad = warren_api(&edge, &["credentials", "get", "ak_123"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("ERR_NGROK_227"),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_agents_and_missing_key() {
    let edge = TestEdge::start().await;
    let _agent = edge.agent(&edge.authtoken).await.unwrap();
    let sessions = ok_json(&edge, &["tunnel-sessions", "list"]);
    assert_eq!(
        sessions["tunnel_sessions"].as_array().unwrap().len(),
        1,
        "{sessions}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["api", "credentials", "list"])
        .env_remove("WARREN_API_KEY")
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("warren-test-no-config"),
        )
        .env_remove("WARREN_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API key"));
}
