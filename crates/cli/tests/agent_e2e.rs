//! The real `warren` binary against an in-process edge: `warren http` with flags, `warren start`
//! with a config file and environment variables, SIGHUP reload by difference, remote Stop and
//! Restart (re-exec), SIGTERM, and a refused credential. The tests block on the child process
//! (its output, its exit), so they run on a multi-threaded runtime to keep the edge serving.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;
use warren_testkit::{STEP_TIMEOUT, TestEdge, origin};

/// A running `warren` process whose stdout lines are collected.
struct Warren {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Warren {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Warren {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
        cmd.args(args)
            .env_remove("WARREN_AUTHTOKEN")
            .env_remove("NGROK_AUTHTOKEN")
            .env_remove("WARREN_CONNECT_URL")
            .env_remove("WARREN_CONNECT_CAS")
            .env_remove("WARREN_CONFIG")
            .env("HOME", std::env::temp_dir())
            .env(
                "XDG_CONFIG_HOME",
                std::env::temp_dir().join("warren-test-no-config"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("warren starts");
        let (tx, rx) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Warren {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {needle:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    fn exit_code(&mut self) -> i32 {
        let deadline = std::time::Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(std::time::Instant::now() < deadline, "warren did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until_status(edge: &TestEdge, host: &str, want: StatusCode) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(r) = edge.http().get(host, "/").await
            && r.status == want
        {
            return;
        }
        assert!(Instant::now() < deadline, "{host} never answered {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_ca(edge: &TestEdge, dir: &Path) -> String {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &edge.ca_pem).unwrap();
    ca.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warren_http_with_flags_serves_and_exits_cleanly_on_sigterm() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&edge, dir.path());
    let origin = origin::http().await;
    let mut warren = Warren::spawn(
        &[
            "http",
            &origin.to_string(),
            "--url",
            "https://cli.example.com",
            "--authtoken",
            &edge.authtoken,
            "--connect-url",
            &edge.agent_addr(),
            "--connect-cas",
            &ca,
            "--metadata",
            "cli-test",
            "--web-addr",
            "false",
            "--log",
            "stdout",
            "--log-format",
            "json",
        ],
        &[],
    );
    let line = warren.wait_line("cli.example.com");
    assert!(line.starts_with('{'), "a JSON log line: {line}");
    until_status(&edge, "cli.example.com", StatusCode::OK).await;
    assert_eq!(edge.server.edge().sessions()[0].info.metadata, "cli-test");
    // The authtoken never reaches the logs.
    assert!(warren.seen.iter().all(|l| !l.contains(&edge.authtoken)));

    warren.signal("TERM");
    assert_eq!(warren.exit_code(), 0);
    until_status(&edge, "cli.example.com", StatusCode::NOT_FOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warren_start_reads_config_and_env_and_reloads_on_sighup() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&edge, dir.path());
    let origin = origin::http().await;
    let config = dir.path().join("agent.yml");
    let write = |names: &[&str]| {
        let mut text = String::from(
            "version: 3\nagent:\n  console_ui: false\n  web_addr: false\nendpoints:\n",
        );
        for n in names {
            text.push_str(&format!(
                "  - name: {n}\n    url: https://{n}.example.com\n    upstream:\n      url: http://{origin}\n"
            ));
        }
        std::fs::write(&config, text).unwrap();
    };
    write(&["one", "two"]);
    let config_arg = config.display().to_string();
    let mut warren = Warren::spawn(
        &["start", "--all", "--config", &config_arg, "--log", "stdout"],
        &[
            ("WARREN_AUTHTOKEN", &edge.authtoken),
            ("WARREN_CONNECT_URL", &edge.agent_addr()),
            ("WARREN_CONNECT_CAS", &ca),
        ],
    );
    until_status(&edge, "one.example.com", StatusCode::OK).await;
    until_status(&edge, "two.example.com", StatusCode::OK).await;
    let one_id = edge.server.edge().sessions()[0]
        .tunnels()
        .into_iter()
        .find(|t| t.url.contains("one.example.com"))
        .unwrap()
        .id
        .clone();

    write(&["one", "three"]);
    warren.signal("HUP");
    until_status(&edge, "three.example.com", StatusCode::OK).await;
    until_status(&edge, "two.example.com", StatusCode::NOT_FOUND).await;
    let still = edge.server.edge().sessions()[0]
        .tunnels()
        .into_iter()
        .any(|t| t.id == one_id);
    assert!(still, "the unchanged endpoint was not restarted");

    // A broken file on reload is reported and the agent keeps running as it was.
    std::fs::write(&config, "version: 3\nagent:\n  bogus_key: 1\n").unwrap();
    warren.signal("HUP");
    warren.wait_line("bogus_key");
    until_status(&edge, "one.example.com", StatusCode::OK).await;

    warren.signal("INT");
    assert_eq!(warren.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_restart_re_executes_and_remote_stop_exits() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&edge, dir.path());
    let origin = origin::http().await;
    let mut warren = Warren::spawn(
        &[
            "http",
            &origin.to_string(),
            "--url",
            "https://remote.example.com",
            "--web-addr",
            "false",
            "--log",
            "stdout",
        ],
        &[
            ("WARREN_AUTHTOKEN", &edge.authtoken),
            ("WARREN_CONNECT_URL", &edge.agent_addr()),
            ("WARREN_CONNECT_CAS", &ca),
        ],
    );
    until_status(&edge, "remote.example.com", StatusCode::OK).await;
    let first = edge.server.edge().sessions()[0].id.clone();
    edge.server.edge().restart_agent(&first).await.unwrap();
    // The same process (exec keeps the pid) comes back as a new session serving the same URL.
    edge.eventually("a new session", |e| {
        e.sessions().iter().any(|s| s.id != first)
    })
    .await;
    until_status(&edge, "remote.example.com", StatusCode::OK).await;
    assert!(
        warren.child.try_wait().unwrap().is_none(),
        "still running after the restart"
    );

    let second = edge
        .server
        .edge()
        .sessions()
        .into_iter()
        .find(|s| s.id != first)
        .unwrap()
        .id
        .clone();
    edge.server.edge().stop_agent(&second).await.unwrap();
    assert_eq!(warren.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_authtoken_exits_with_an_error() {
    let edge = TestEdge::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&edge, dir.path());
    let mut warren = Warren::spawn(
        &[
            "tcp",
            "22",
            "--authtoken",
            "not-a-real-token",
            "--connect-url",
            &edge.agent_addr(),
            "--connect-cas",
            &ca,
            "--web-addr",
            "false",
            "--log",
            "stdout",
        ],
        &[],
    );
    assert_eq!(warren.exit_code(), 1);
    warren.wait_line("ERR_NGROK_10");
}
