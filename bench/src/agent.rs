//! The Warren agent: the official `ngrok` SDK (the same crate device fleets embed) connecting to
//! `warrend` with `server_addr` + `ca_cert`. Two uses:
//!
//! - `warren-bench agent` runs as its own process, like a device would: one session with three
//!   forwarding endpoints (a TCP endpoint to the stream origin, a TCP endpoint to the HTTP
//!   origin, an HTTP endpoint on a fixed domain to the HTTP origin). It prints one
//!   `NAME URL` line per endpoint, then `ready`, and forwards until killed.
//! - [`connect`] opens idle sessions from the bench process itself for the memory step.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use ngrok::prelude::*;
use url::Url;

/// Where an agent connects and how it authenticates.
#[derive(Clone, Debug)]
pub struct Edge {
    /// `127.0.0.1:PORT` of warrend's agent listener (its certificate has an IP SAN for it).
    pub agent_addr: SocketAddr,
    /// The CA that signed the agent listener's certificate (PEM).
    pub ca_pem: String,
    pub authtoken: String,
    /// Dial the agent link with `TCP_NODELAY` (the SDK's default connector leaves Nagle on).
    pub nodelay: bool,
}

/// Opens one authenticated agent session.
pub async fn connect(edge: &Edge) -> anyhow::Result<ngrok::Session> {
    let mut builder = ngrok::Session::builder();
    builder
        .authtoken(edge.authtoken.clone())
        .server_addr(edge.agent_addr.to_string())?
        .ca_cert(Bytes::from(edge.ca_pem.clone()));
    if edge.nodelay {
        builder.connector(connect_nodelay);
    }
    Ok(builder.connect().await?)
}

/// The SDK's `default_connect` (TCP, then TLS with the SDK's configuration) plus `TCP_NODELAY`.
async fn connect_nodelay(
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    _: Option<ngrok::tunnel::AcceptError>,
) -> Result<Box<dyn ngrok::session::IoStream>, ngrok::session::ConnectError> {
    use ngrok::session::ConnectError;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(ConnectError::Tcp)?;
    tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
    let name = rustls::pki_types::ServerName::try_from(host)
        .map_err(|e| ConnectError::Tcp(std::io::Error::other(e)))?;
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(ConnectError::Tls)?;
    Ok(Box::new(tls))
}

/// The agent process: binds the three endpoints, prints their URLs, forwards until killed.
pub async fn run(
    edge: Edge,
    stream_origin: SocketAddr,
    http_origin: SocketAddr,
    domain: String,
) -> anyhow::Result<()> {
    let session = connect(&edge).await.context("agent session")?;
    let stream = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{stream_origin}"))?)
        .await?;
    let http_tcp = session
        .tcp_endpoint()
        .listen_and_forward(Url::parse(&format!("tcp://{http_origin}"))?)
        .await?;
    let http = session
        .http_endpoint()
        .domain(domain)
        .listen_and_forward(Url::parse(&format!("http://{http_origin}"))?)
        .await?;
    println!("stream {}", stream.url());
    println!("http-tcp {}", http_tcp.url());
    println!("http {}", http.url());
    println!("ready");
    futures::future::pending::<()>().await;
    drop((stream, http_tcp, http, session));
    Ok(())
}

/// The loopback address of a `tcp://HOST:PORT` endpoint URL (the host is the edge's domain,
/// `localhost` here; the port is what matters).
pub fn tcp_url_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let port = Url::parse(url)?
        .port()
        .with_context(|| format!("no port in {url}"))?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}
