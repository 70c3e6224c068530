//! The `warrend` binary as an operator runs it: first start prints the credentials and the agent
//! command once, `warrend ca` prints the CA, provisioned secrets work, and SIGTERM drains and exits.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WARREND: &str = env!("CARGO_BIN_EXE_warrend");
const LIMIT: Duration = Duration::from_secs(30);

/// A warrend process on loopback port 0 with JSON logs.
struct Running {
    child: Child,
    /// The agent listener address, from the "listening" log line.
    agents: String,
    stdout: JoinHandle<String>,
}

fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(WARREND)
        .args(["--data-dir", dir.to_str().unwrap(), "--log-format", "json"])
        .args(["--agent-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--https-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"])
        .args(["--tcp-ports", "0", "--tcp-bind-ip", "127.0.0.1"])
        .env_remove("WARREN_ADMIN_API_KEY")
        .env_remove("WARREN_AUTHTOKEN")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("warrend starts");
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        let mut sent = false;
        for line in stderr.lines().map_while(Result::ok) {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if !sent && json["fields"]["message"] == "warrend is listening" {
                let _ = tx.send(json["fields"]["agents"].as_str().unwrap_or("").to_owned());
                sent = true;
            }
        }
    });
    let agents = rx
        .recv_timeout(LIMIT)
        .expect("warrend reports its listeners");
    Running {
        child,
        agents,
        stdout,
    }
}

impl Running {
    /// Sends SIGTERM, waits for the exit, returns the exit status and everything printed on stdout.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "warrend did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.stdout.join().unwrap())
    }
}

#[test]
fn first_start_announces_credentials_once_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &[]);
    let agents = running.agents.clone();
    let (status, stdout) = running.terminate();
    assert!(status.success(), "{status:?}");
    assert!(stdout.contains("admin API key: "), "{stdout}");
    assert!(
        stdout.contains(&format!("server_addr=\"{agents}\"")),
        "{stdout}"
    );
    assert!(stdout.contains("--connect-cas"), "{stdout}");
    let token = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("authtoken:"))
        .expect("the authtoken is printed")
        .trim()
        .to_owned();
    assert!(token.len() >= 40, "{token}");

    // No secret is stored in clear.
    let db = std::fs::read(dir.path().join("warren.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));

    // A second start on the same store announces nothing.
    let (status, stdout) = start(dir.path(), &[]).terminate();
    assert!(status.success());
    assert!(!stdout.contains("authtoken"), "{stdout}");

    // `warrend ca` prints the CA the edge uses.
    let out = Command::new(WARREND)
        .args(["--data-dir", dir.path().to_str().unwrap(), "ca"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), pem);
}

#[test]
fn provisioned_authtoken_connects_the_official_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let token = "provisioned-token-for-a-fleet-0123456789";
    let running = start(
        dir.path(),
        &[
            ("WARREN_AUTHTOKEN", token),
            ("WARREN_ADMIN_API_KEY", "provisioned-admin-key-0123456789"),
        ],
    );
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut builder = ngrok::Session::builder();
        builder
            .authtoken(token)
            .server_addr(running.agents.clone())
            .unwrap()
            .ca_cert(bytes::Bytes::from(ca));
        let session = tokio::time::timeout(LIMIT, builder.connect())
            .await
            .unwrap();
        assert!(session.is_ok(), "the provisioned token authenticates");
    });
    let (status, stdout) = running.terminate();
    assert!(status.success());
    assert!(
        !stdout.contains(token),
        "provisioned secrets are not echoed: {stdout}"
    );
}

#[test]
fn bad_settings_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warren.toml");
    std::fs::write(&file, "http_adr = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(WARREND)
        .args(["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `http_adr`"), "{err}");

    let out = Command::new(WARREND)
        .args(["--tcp-ports", "30000-20000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid port range"));
}
