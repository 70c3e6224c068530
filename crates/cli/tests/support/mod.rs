//! Running the real `warren api` binary against a test edge, shared by the CLI suites.

#![allow(dead_code)] // each suite uses some of these

use std::process::{Command, Output};

use serde_json::Value;
use warren_testkit::TestEdge;

/// `warren api ARGS…` configured for `edge` (key and URL from the environment, no config file).
pub fn warren_api_command(edge: &TestEdge, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
    cmd.arg("api")
        .args(args)
        .env("WARREN_API_KEY", &edge.api_key)
        .env("WARREN_API_URL", edge.api_url())
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("warren-test-no-config"),
        )
        .env_remove("WARREN_CONFIG");
    cmd
}

/// Runs `warren api ARGS…` to completion.
pub fn warren_api(edge: &TestEdge, args: &[&str]) -> Output {
    warren_api_command(edge, args)
        .output()
        .expect("warren runs")
}

/// Runs `warren api ARGS… --json`, which must succeed, and parses its output.
pub fn ok_json(edge: &TestEdge, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = warren_api(edge, &all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// Runs `warren api ARGS…`, which must succeed, and returns its output.
pub fn ok_text(edge: &TestEdge, args: &[&str]) -> String {
    let out = warren_api(edge, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
