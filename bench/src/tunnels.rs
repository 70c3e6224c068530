//! The paths under test, each from a visitor on 127.0.0.1 to the same origins:
//!
//! - direct: the origins themselves;
//! - Warren: `warrend` (release binary, its own process and data directory) plus the bench's
//!   agent process (official ngrok SDK) over the TLS agent link;
//! - Warren with Warren's own agent: `warrend` plus the `warren` binary running a v3 config file
//!   (see [`crate::warren_agent`]), with the request inspector off, or on for an extra
//!   HTTP-only row;
//! - rathole: `rathole` server and client processes over its TLS or Noise transport;
//! - bore: `bore server` and one `bore local` per forwarded port (bore does not encrypt).
//!
//! Each start returns once a probe has gone through every forwarded port end to end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use tokio::process::Command;

use crate::procs::{Proc, free_addr, retry};
use crate::{agent, warren_agent};

/// How long a tunnel gets to carry its first probe.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The host name of the Warren HTTP endpoint under test.
pub const HTTP_DOMAIN: &str = "bench.localhost";

/// The origins' addresses.
#[derive(Clone, Copy, Debug)]
pub struct Origins {
    pub http: SocketAddr,
    pub stream: SocketAddr,
}

/// A path visitors take to the origins, and the processes that carry it.
pub struct Tunnel {
    /// The name in the report, e.g. `rathole (noise)`.
    pub name: String,
    /// Forwards to the stream origin.
    pub stream: SocketAddr,
    /// Forwards raw TCP to the HTTP origin.
    pub http_tcp: SocketAddr,
    /// Warren's public HTTP port and the Host header that routes to the HTTP origin.
    pub http_routed: Option<(SocketAddr, String)>,
    /// Server-side processes (CPU counted as "server").
    pub servers: Vec<Proc>,
    /// Client-side processes, the agent or its equivalent (CPU counted as "client").
    pub clients: Vec<Proc>,
    /// The agent's binary when `clients[0]` is a Warren agent: its footprint (binary size,
    /// resident memory) is reported.
    pub agent_binary: Option<PathBuf>,
    /// Measure only the HTTP endpoint (Host routing): the path differs from another row's only
    /// there (the agent's request inspector).
    pub only_http_endpoint: bool,
    /// Kept until the tunnel stops.
    _dir: Option<tempfile::TempDir>,
}

impl Tunnel {
    /// The origins themselves.
    pub fn direct(origins: Origins) -> Tunnel {
        Tunnel {
            name: "direct".into(),
            stream: origins.stream,
            http_tcp: origins.http,
            http_routed: None,
            servers: Vec::new(),
            clients: Vec::new(),
            agent_binary: None,
            only_http_endpoint: false,
            _dir: None,
        }
    }

    /// Process ids of (servers, clients).
    pub fn pids(&self) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
        let pids = |procs: &[Proc]| procs.iter().map(Proc::pid).collect::<anyhow::Result<_>>();
        Ok((pids(&self.servers)?, pids(&self.clients)?))
    }

    /// Waits until a stream download and an HTTP request go through every forwarded port.
    async fn probe(&self) -> anyhow::Result<()> {
        let stream = self.stream;
        retry(&format!("{} stream port", self.name), READY_TIMEOUT, || {
            crate::throughput::probe(stream)
        })
        .await?;
        let http = self.http_tcp;
        retry(
            &format!("{} HTTP over TCP", self.name),
            READY_TIMEOUT,
            || crate::load::probe(http, None),
        )
        .await?;
        if let Some((addr, host)) = &self.http_routed {
            retry(
                &format!("{} HTTP endpoint", self.name),
                READY_TIMEOUT,
                || crate::load::probe(*addr, Some(host)),
            )
            .await?;
        }
        Ok(())
    }

    /// Kills every process of the tunnel.
    pub async fn stop(self) {
        for proc in self.clients.into_iter().chain(self.servers) {
            proc.stop().await;
        }
    }
}

/// A random token of `len` letters and digits.
pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A `warrend` process on loopback ports with a fresh data directory and a provisioned
/// authtoken.
pub struct Warrend {
    pub proc: Proc,
    /// How agents reach it.
    pub edge: agent::Edge,
    /// Public HTTP listener.
    pub http_addr: SocketAddr,
    /// The REST API listener.
    pub api_addr: SocketAddr,
    /// The bootstrap admin API key (`Authorization: Bearer …` on the REST API).
    pub admin_api_key: String,
    pub dir: tempfile::TempDir,
}

/// Starts `bin` as warrend and waits until its agent listener accepts. `max_sessions` raises the
/// edge's limit of concurrent agent sessions per authtoken (its default otherwise).
pub async fn start_warrend(
    bin: &Path,
    logs: &Path,
    max_sessions: Option<usize>,
) -> anyhow::Result<Warrend> {
    start_warrend_with(bin, logs, max_sessions, None).await
}

/// [`start_warrend`] on the database at `database_url` (`--database-url`; an empty store, so
/// the bootstrap credential and admin API key come from the environment) instead of SQLite in
/// the data directory.
pub async fn start_warrend_with(
    bin: &Path,
    logs: &Path,
    max_sessions: Option<usize>,
    database_url: Option<&str>,
) -> anyhow::Result<Warrend> {
    let dir = tempfile::Builder::new().prefix("warren-bench-").tempdir()?;
    let (agent_addr, http_addr, https_addr, api_addr) =
        (free_addr()?, free_addr()?, free_addr()?, free_addr()?);
    let authtoken = random_token(40);
    let admin_api_key = random_token(40);
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args(["--agent-addr", &agent_addr.to_string()])
        .args(["--http-addr", &http_addr.to_string()])
        .args(["--https-addr", &https_addr.to_string()])
        .args(["--api-addr", &api_addr.to_string()])
        .args(["--tcp-ports", "0", "--tcp-bind-ip", "127.0.0.1"])
        .env("WARREN_AUTHTOKEN", &authtoken)
        .env("WARREN_ADMIN_API_KEY", &admin_api_key)
        .env("WARREN_LOG", "warn");
    if let Some(url) = database_url {
        cmd.arg("--database-url").arg(url);
    }
    if let Some(max) = max_sessions {
        cmd.env("WARREN_MAX_SESSIONS_PER_CREDENTIAL", max.to_string());
    }
    let mut proc = Proc::spawn("warrend", cmd, &logs.join("warrend.log"))?;
    proc.drain_stdout();
    retry("warrend agent listener", READY_TIMEOUT, || async {
        tokio::net::TcpStream::connect(agent_addr).await?;
        Ok(())
    })
    .await?;
    let ca_pem =
        std::fs::read_to_string(dir.path().join("ca.pem")).context("reading warrend's ca.pem")?;
    Ok(Warrend {
        proc,
        edge: agent::Edge {
            agent_addr,
            ca_pem,
            authtoken,
            nodelay: false,
        },
        http_addr,
        api_addr,
        admin_api_key,
        dir,
    })
}

/// Warren: warrend plus the bench's agent process with three forwarding endpoints.
/// With `nodelay` the agent dials its link with `TCP_NODELAY` (see [`agent::Edge::nodelay`]).
pub async fn warren(
    warrend: &Path,
    origins: Origins,
    logs: &Path,
    nodelay: bool,
) -> anyhow::Result<Tunnel> {
    let server = start_warrend(warrend, logs, None).await?;
    let ca_file = server.dir.path().join("ca.pem");
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("agent")
        .args(["--server-addr", &server.edge.agent_addr.to_string()])
        .arg("--ca")
        .arg(&ca_file)
        .args(["--stream-origin", &origins.stream.to_string()])
        .args(["--http-origin", &origins.http.to_string()])
        .args(["--domain", HTTP_DOMAIN])
        .env("WARREN_BENCH_AUTHTOKEN", &server.edge.authtoken);
    if nodelay {
        cmd.arg("--nodelay");
    }
    let mut agent = Proc::spawn("agent", cmd, &logs.join("agent.log"))?;
    let stream = agent::tcp_url_addr(&agent.line("stream ").await?)?;
    let http_tcp = agent::tcp_url_addr(&agent.line("http-tcp ").await?)?;
    agent.line("http ").await?;
    agent.line("ready").await?;
    agent.drain_stdout();
    let tunnel = Tunnel {
        name: if nodelay {
            "warren+nodelay agent"
        } else {
            "warren"
        }
        .into(),
        stream,
        http_tcp,
        http_routed: Some((server.http_addr, HTTP_DOMAIN.to_owned())),
        servers: vec![server.proc],
        clients: vec![agent],
        agent_binary: Some(std::env::current_exe()?),
        only_http_endpoint: false,
        _dir: Some(server.dir),
    };
    tunnel.probe().await?;
    Ok(tunnel)
}

/// Warren with Warren's own agent: warrend plus `warren start --all --config FILE` (the `agent`
/// binary) with the same three endpoints as [`warren`]'s SDK agent. With `inspect` the agent's
/// request inspector captures the HTTP endpoint's exchanges and only that endpoint is measured.
pub async fn warren_agent(
    warrend: &Path,
    agent: &Path,
    origins: Origins,
    logs: &Path,
    inspect: bool,
) -> anyhow::Result<Tunnel> {
    let server = start_warrend(warrend, logs, None).await?;
    let web_addr = free_addr()?;
    let config = server.dir.path().join("warren-agent.yml");
    let text = warren_agent::AgentConfig {
        authtoken: &server.edge.authtoken,
        connect_url: server.edge.agent_addr,
        connect_cas: &server.dir.path().join("ca.pem"),
        web_addr,
        inspect,
        origins,
        domain: HTTP_DOMAIN,
    }
    .to_yaml();
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    let mut cmd = Command::new(agent);
    cmd.args(["start", "--all", "--config"]).arg(&config);
    // Settings from the environment win over the config file: none of the caller's may leak in.
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("WARREN_") || name_str.starts_with("NGROK_") {
            cmd.env_remove(&name);
        }
    }
    let (name, log) = if inspect {
        ("warren (warren agent + inspector)", "warren-agent-inspect")
    } else {
        ("warren (warren agent)", "warren-agent")
    };
    let mut proc = Proc::spawn(log, cmd, &logs.join(format!("{log}.log")))?;
    proc.drain_stdout();
    let endpoints = warren_agent::wait_online(&mut proc, web_addr, READY_TIMEOUT).await?;
    let [stream, http_tcp, _] = &endpoints.urls;
    let tunnel = Tunnel {
        name: name.into(),
        stream: agent::tcp_url_addr(stream)?,
        http_tcp: agent::tcp_url_addr(http_tcp)?,
        http_routed: Some((server.http_addr, HTTP_DOMAIN.to_owned())),
        servers: vec![server.proc],
        clients: vec![proc],
        agent_binary: Some(agent.to_owned()),
        only_http_endpoint: inspect,
        _dir: Some(server.dir),
    };
    tunnel.probe().await?;
    Ok(tunnel)
}

/// rathole's encrypted transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RatholeTransport {
    /// TLS (rathole's `tls` feature, native-tls/OpenSSL); certificates made with the `openssl` CLI.
    Tls,
    /// Noise protocol (Noise_NK_25519_ChaChaPoly_BLAKE2s), rathole's built-in alternative.
    Noise,
}

/// rathole: a server and a client process forwarding two services.
pub async fn rathole(
    bin: &Path,
    transport: RatholeTransport,
    origins: Origins,
    logs: &Path,
) -> anyhow::Result<Tunnel> {
    let dir = tempfile::Builder::new()
        .prefix("rathole-bench-")
        .tempdir()?;
    let (control, stream, http_tcp) = (free_addr()?, free_addr()?, free_addr()?);
    let token = random_token(32);
    let (server_transport, client_transport, name) = match transport {
        RatholeTransport::Noise => {
            let (private, public) = rathole_keypair(bin).await?;
            (
                format!(
                    "type = \"noise\"\n[server.transport.noise]\nlocal_private_key = \"{private}\"\n"
                ),
                format!(
                    "type = \"noise\"\n[client.transport.noise]\nremote_public_key = \"{public}\"\n"
                ),
                "rathole (noise)",
            )
        }
        RatholeTransport::Tls => {
            let (pkcs12, cert) = self_signed_pkcs12(dir.path()).await?;
            (
                format!(
                    "type = \"tls\"\n[server.transport.tls]\npkcs12 = \"{}\"\npkcs12_password = \"bench\"\n",
                    pkcs12.display()
                ),
                format!(
                    "type = \"tls\"\n[client.transport.tls]\ntrusted_root = \"{}\"\nhostname = \"localhost\"\n",
                    cert.display()
                ),
                "rathole (tls)",
            )
        }
    };
    let server_toml = format!(
        "[server]\nbind_addr = \"{control}\"\n\
         [server.transport]\n{server_transport}\
         [server.services.stream]\ntoken = \"{token}\"\nbind_addr = \"{stream}\"\n\
         [server.services.http]\ntoken = \"{token}\"\nbind_addr = \"{http_tcp}\"\n"
    );
    let client_toml = format!(
        "[client]\nremote_addr = \"{control}\"\n\
         [client.transport]\n{client_transport}\
         [client.services.stream]\ntoken = \"{token}\"\nlocal_addr = \"{}\"\n\
         [client.services.http]\ntoken = \"{token}\"\nlocal_addr = \"{}\"\n",
        origins.stream, origins.http
    );
    let server_file = dir.path().join("server.toml");
    let client_file = dir.path().join("client.toml");
    std::fs::write(&server_file, server_toml)?;
    std::fs::write(&client_file, client_toml)?;
    let quiet = |mut cmd: Command| {
        cmd.env("RUST_LOG", "warn");
        cmd
    };
    let mut server_cmd = Command::new(bin);
    server_cmd.arg("--server").arg(&server_file);
    let mut server = Proc::spawn(
        "rathole-server",
        quiet(server_cmd),
        &logs.join("rathole-server.log"),
    )?;
    server.drain_stdout();
    retry("rathole control port", READY_TIMEOUT, || async {
        tokio::net::TcpStream::connect(control).await?;
        Ok(())
    })
    .await?;
    let mut client_cmd = Command::new(bin);
    client_cmd.arg("--client").arg(&client_file);
    let mut client = Proc::spawn(
        "rathole-client",
        quiet(client_cmd),
        &logs.join("rathole-client.log"),
    )?;
    client.drain_stdout();
    let tunnel = Tunnel {
        name: name.into(),
        stream,
        http_tcp,
        http_routed: None,
        servers: vec![server],
        clients: vec![client],
        agent_binary: None,
        only_http_endpoint: false,
        _dir: Some(dir),
    };
    tunnel.probe().await?;
    Ok(tunnel)
}

/// `rathole --genkey`: (private, public) Noise keys in base64.
async fn rathole_keypair(bin: &Path) -> anyhow::Result<(String, String)> {
    let out = Command::new(bin).arg("--genkey").output().await?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Private Key:\n<base64>\n\nPublic Key:\n<base64>\n"
    let mut keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.ends_with(':'));
    match (keys.next(), keys.next()) {
        (Some(private), Some(public)) => Ok((private.to_owned(), public.to_owned())),
        _ => bail!("unexpected `rathole --genkey` output: {text}"),
    }
}

/// A self-signed certificate for `localhost` as PKCS#12 (for rathole's server) and PEM (for its
/// client), made with the `openssl` CLI.
async fn self_signed_pkcs12(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    let pkcs12 = dir.join("identity.pfx");
    let run = |args: Vec<String>| async move {
        let out = Command::new("openssl").args(&args).output().await?;
        if !out.status.success() {
            bail!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        anyhow::Ok(())
    };
    let path = |p: &Path| p.display().to_string();
    run(vec![
        "req".into(),
        "-x509".into(),
        "-newkey".into(),
        "ec".into(),
        "-pkeyopt".into(),
        "ec_paramgen_curve:prime256v1".into(),
        "-nodes".into(),
        "-days".into(),
        "2".into(),
        "-subj".into(),
        "/CN=localhost".into(),
        "-addext".into(),
        "subjectAltName=DNS:localhost,IP:127.0.0.1".into(),
        "-keyout".into(),
        path(&key),
        "-out".into(),
        path(&cert),
    ])
    .await?;
    run(vec![
        "pkcs12".into(),
        "-export".into(),
        "-inkey".into(),
        path(&key),
        "-in".into(),
        path(&cert),
        "-out".into(),
        path(&pkcs12),
        "-passout".into(),
        "pass:bench".into(),
    ])
    .await?;
    Ok((pkcs12, cert))
}

/// bore's control port, fixed in bore.
const BORE_CONTROL_PORT: u16 = 7835;

/// bore: `bore server` and one `bore local` per forwarded port. No encryption.
pub async fn bore(bin: &Path, origins: Origins, logs: &Path) -> anyhow::Result<Tunnel> {
    if std::net::TcpListener::bind(("127.0.0.1", BORE_CONTROL_PORT)).is_err() {
        bail!("bore's fixed control port {BORE_CONTROL_PORT} is taken");
    }
    let mut server_cmd = Command::new(bin);
    server_cmd
        .args(["server", "--bind-addr", "127.0.0.1"])
        .env("RUST_LOG", "warn");
    let mut server = Proc::spawn("bore-server", server_cmd, &logs.join("bore-server.log"))?;
    server.drain_stdout();
    retry("bore control port", READY_TIMEOUT, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", BORE_CONTROL_PORT)).await?;
        Ok(())
    })
    .await?;
    let mut clients = Vec::new();
    let mut ports = Vec::new();
    for (name, origin) in [("stream", origins.stream), ("http", origins.http)] {
        let remote = free_addr()?;
        let mut cmd = Command::new(bin);
        cmd.args(["local", &origin.port().to_string()])
            .args(["--local-host", "127.0.0.1", "--to", "127.0.0.1"])
            .args(["--port", &remote.port().to_string()])
            .env("RUST_LOG", "warn");
        let mut client = Proc::spawn(
            &format!("bore-local-{name}"),
            cmd,
            &logs.join(format!("bore-local-{name}.log")),
        )?;
        client.drain_stdout();
        clients.push(client);
        ports.push(remote);
    }
    let tunnel = Tunnel {
        name: "bore (no encryption)".into(),
        stream: ports[0],
        http_tcp: ports[1],
        http_routed: None,
        servers: vec![server],
        clients,
        agent_binary: None,
        only_http_endpoint: false,
        _dir: None,
    };
    tunnel.probe().await?;
    Ok(tunnel)
}
