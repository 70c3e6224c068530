//! `warren-testkit`: an in-process end-to-end harness. Starts a whole `warrend` on 127.0.0.1 port
//! 0 with a temporary data directory, SQLite file and generated CA, plus origins (an HTTP origin,
//! a TCP echo) and clients (plain HTTP with a Host header, HTTPS with SNI trusting the edge's CA).
//! Test-only: never linked into release binaries.
//!
//! # Layout
//!
//! - [`TestEdge`] — the server, its addresses, the first authtoken, extra credentials.
//! - [`origin`] — upstream services an agent forwards to.
//! - [`client`] — visitors.
//! - [`relay`] — a TCP relay between agent and edge that can cut or silently drop traffic.

pub mod client;
pub mod origin;
pub mod pg;
pub mod raw;
pub mod relay;
pub mod webhook;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Once;
use std::time::Duration;

use warren_store::NewCredential;
use warrend::config::{Bootstrap, Config};

/// Upper bound for any single step a test waits on.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running edge for one test.
pub struct TestEdge {
    pub server: warrend::Server,
    /// The first authtoken (unrestricted).
    pub authtoken: String,
    /// The admin API key created on first start.
    pub api_key: String,
    /// The CA agents and visitors trust (PEM).
    pub ca_pem: String,
    pub config: Config,
    dir: tempfile::TempDir,
    /// The PostgreSQL schema this edge's store lives in, dropped with the edge.
    pg: Option<pg::TestSchema>,
}

impl TestEdge {
    /// Starts an edge with defaults.
    pub async fn start() -> TestEdge {
        TestEdge::start_with(|_| {}).await
    }

    /// Starts an edge after `adjust` changes the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestEdge {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::ephemeral(dir.path(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        config.bootstrap = Bootstrap::default();
        config.edge.drain_timeout = Duration::from_secs(5);
        config.edge.require_reservations = false;
        adjust(&mut config);
        let server = warrend::start(config.clone()).await.expect("edge starts");
        let created = server
            .created
            .as_ref()
            .expect("first start creates credentials");
        let authtoken = created.authtoken.clone();
        let api_key = created.admin_api_key.clone();
        let ca_pem = server.edge().ca_pem().to_owned();
        TestEdge {
            server,
            authtoken,
            api_key,
            ca_pem,
            config,
            dir,
            pg: None,
        }
    }

    /// Starts an edge whose store is PostgreSQL when `WARREN_TEST_DATABASE_URL` is set (a fresh
    /// schema, dropped with the edge) and SQLite otherwise: the API suites run on both backends.
    pub async fn start_api() -> TestEdge {
        TestEdge::start_api_with(|_| {}).await
    }

    /// [`TestEdge::start_api`] after `adjust` changes the configuration.
    pub async fn start_api_with(adjust: impl FnOnce(&mut Config)) -> TestEdge {
        let pg = pg::TestSchema::create().await;
        let url = pg.as_ref().map(|p| p.url.clone());
        let mut edge = TestEdge::start_with(|c| {
            if let Some(url) = url {
                c.database_url = url;
            }
            adjust(c)
        })
        .await;
        edge.pg = pg;
        edge
    }

    /// Restarts the server on the same data directory and the same ports.
    pub async fn restart(self) -> TestEdge {
        let TestEdge {
            server,
            authtoken,
            api_key,
            ca_pem,
            mut config,
            dir,
            pg,
        } = self;
        config.agent_addr = server.agent_addr;
        config.http_addr = server.http_addr;
        config.https_addr = server.https_addr;
        config.api_addr = server.api_addr;
        server.shutdown().await;
        let server = warrend::start(config.clone()).await.expect("edge restarts");
        TestEdge {
            server,
            authtoken,
            api_key,
            ca_pem,
            config,
            dir,
            pg,
        }
    }

    /// The address agents dial, as `127.0.0.1:port` (the certificate has an IP SAN for it).
    pub fn agent_addr(&self) -> String {
        self.server.agent_addr.to_string()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.server.http_addr
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.server.https_addr
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Creates another authtoken with `acl` rules; returns the token.
    pub async fn credential(&self, acl: &[&str]) -> String {
        let (_, token) = self
            .server
            .edge()
            .store()
            .create_credential(NewCredential {
                description: "test".into(),
                metadata: String::new(),
                acl: acl.iter().map(|s| s.to_string()).collect(),
                owner_id: None,
            })
            .await
            .expect("credential created");
        token
    }

    /// An official ngrok SDK session builder pointed at this edge with `token` and its CA.
    pub fn sdk(&self, token: &str) -> ngrok::session::SessionBuilder {
        let mut builder = ngrok::Session::builder();
        builder
            .authtoken(token)
            .server_addr(self.agent_addr())
            .expect("valid server address")
            .ca_cert(bytes::Bytes::from(self.ca_pem.clone()));
        builder
    }

    /// A Warren SDK session builder pointed at this edge with `token` and its CA, with short
    /// reconnect delays so tests do not wait on the production backoff.
    pub fn warren(&self, token: &str) -> warren::SessionBuilder {
        warren::Session::builder()
            .server_addr(self.agent_addr())
            .ca_cert(self.ca_pem.clone())
            .authtoken(token)
            .backoff(warren::Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(500),
            })
    }

    /// Connects the official ngrok SDK to this edge with `token`.
    pub async fn agent(&self, token: &str) -> Result<ngrok::Session, ngrok::session::ConnectError> {
        tokio::time::timeout(STEP_TIMEOUT, self.sdk(token).connect())
            .await
            .expect("connect does not hang")
    }

    /// The REST API's base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.api_addr)
    }

    /// The official `ngrok-api` client pointed at this edge's REST API with the admin API key.
    pub fn api(&self) -> ngrok_api::Client {
        self.api_with_key(&self.api_key)
    }

    /// The official `ngrok-api` client with another API key.
    pub fn api_with_key(&self, key: &str) -> ngrok_api::Client {
        let mut builder = ngrok_api::ClientBuilder::new(key.to_owned());
        builder.api_url(url::Url::parse(&self.api_url()).expect("API URL"));
        builder.build()
    }

    /// Sends `method path` to the REST API with the admin key and `json` as the body (none when
    /// empty); returns the status and the JSON reply (`null` when the body is not JSON).
    pub async fn api_request(
        &self,
        method: http::Method,
        path: &str,
        json: &str,
    ) -> (http::StatusCode, serde_json::Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.api_key))
            .header("ngrok-version", "2");
        if !json.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(
                json.to_owned(),
            )))
            .expect("a valid request");
        let reply = client::HttpVisitor::plain(self.server.api_addr)
            .send("localhost", req)
            .await
            .expect("the API answers");
        let body = serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
        (reply.status, body)
    }

    /// A plain-HTTP visitor for this edge.
    pub fn http(&self) -> client::HttpVisitor {
        client::HttpVisitor::plain(self.http_addr())
    }

    /// An HTTPS visitor for this edge (SNI = the request's host, trusting the edge CA).
    pub fn https(&self) -> client::HttpVisitor {
        client::HttpVisitor::tls(self.https_addr(), &self.ca_pem)
    }

    /// Waits until `check` holds, polling; panics after [`STEP_TIMEOUT`].
    pub async fn eventually(&self, what: &str, mut check: impl FnMut(&warren_edge::Edge) -> bool) {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        while !check(self.server.edge()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The `ERR_NGROK_…` code of an error from the official API client (panics on anything else,
/// such as a transport error).
pub fn api_error_code(e: ngrok_api::Error) -> String {
    match e {
        ngrok_api::Error::Ngrok(e) => e.error_code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Logs to the test output when `WARREN_LOG` is set.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

/// A rustls client configuration trusting only `ca_pem`.
pub fn client_tls(ca_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA accepted");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A throwaway CA and a leaf for `names` signed by it, as PEM: `(ca, leaf_chain, leaf_key)`.
pub fn ca_and_leaf(names: &[&str]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "operator test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = rcgen::CertificateParams::new(names)
        .expect("params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf");
    (
        ca.pem(),
        format!("{}{}", leaf.pem(), ca.pem()),
        leaf_key.serialize_pem(),
    )
}

/// A range of `len` consecutive TCP ports that are free right now on every interface, for tests
/// that need a small, exhaustible edge port range. It lies below the kernel's ephemeral range
/// (outgoing connections never take these ports) and above the edges' default range, and starts
/// at a random port so tests running side by side rarely pick the same one.
pub fn free_port_range(len: u16) -> warren_edge::PortRange {
    use rand::Rng;
    const LOW: u16 = 21_000;
    const HIGH: u16 = 32_000;
    for _ in 0..1_000 {
        let first = rand::thread_rng().gen_range(LOW..HIGH - len);
        let all_free = (first..first + len).all(|port| {
            std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).is_ok()
        });
        if all_free {
            return warren_edge::PortRange {
                first,
                last: first + len - 1,
            };
        }
    }
    panic!("no {len} consecutive free ports in {LOW}-{HIGH}");
}
