//! Visitors: HTTP/1.1 and HTTP/2 requests to the edge's public ports with a chosen Host/SNI.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::STEP_TIMEOUT;

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends requests to one public port.
#[derive(Clone)]
pub struct HttpVisitor {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    h2: bool,
}

impl HttpVisitor {
    /// Plain HTTP/1.1.
    pub fn plain(addr: SocketAddr) -> HttpVisitor {
        HttpVisitor {
            addr,
            tls: None,
            h2: false,
        }
    }

    /// HTTPS trusting `ca_pem`, offering HTTP/1.1.
    pub fn tls(addr: SocketAddr, ca_pem: &str) -> HttpVisitor {
        HttpVisitor {
            addr,
            tls: Some(Arc::new(crate::client_tls(ca_pem, &[b"http/1.1"]))),
            h2: false,
        }
    }

    /// HTTPS with ALPN `h2`, speaking HTTP/2.
    pub fn h2(addr: SocketAddr, ca_pem: &str) -> HttpVisitor {
        HttpVisitor {
            addr,
            tls: Some(Arc::new(crate::client_tls(ca_pem, &[b"h2"]))),
            h2: true,
        }
    }

    /// `GET http(s)://host{path}` on a fresh connection.
    pub async fn get(&self, host: &str, path: &str) -> anyhow::Result<Reply> {
        self.send(host, Request::get(path).body(Full::new(Bytes::new()))?)
            .await
    }

    /// Sends `req` (its URI is the path) to `host` on a fresh connection.
    pub async fn send(&self, host: &str, mut req: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        let fut = async {
            let tcp = TcpStream::connect(self.addr).await?;
            if self.h2 {
                let uri = format!(
                    "https://{host}{}",
                    req.uri().path_and_query().map_or("/", |p| p.as_str())
                );
                *req.uri_mut() = uri.parse()?;
                let tls = self.connect_tls(tcp, host).await?;
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                        .await?;
                tokio::spawn(conn);
                return collect(sender.send_request(req).await?).await;
            }
            req.headers_mut().insert(http::header::HOST, host.parse()?);
            match &self.tls {
                Some(_) => {
                    let tls = self.connect_tls(tcp, host).await?;
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
                    tokio::spawn(conn);
                    collect(sender.send_request(req).await?).await
                }
                None => {
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                    tokio::spawn(conn);
                    collect(sender.send_request(req).await?).await
                }
            }
        };
        tokio::time::timeout(STEP_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow::anyhow!("request to {host} timed out"))?
    }

    /// A TLS connection to the public port with SNI `host` (for passthrough tests the caller
    /// supplies the origin's CA in its own config via [`tls_with`]).
    pub async fn connect_tls(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> anyhow::Result<TlsStream<TcpStream>> {
        let config = self
            .tls
            .clone()
            .ok_or_else(|| anyhow::anyhow!("not a TLS visitor"))?;
        tls_with(config, tcp, host).await
    }
}

/// A TLS client handshake with `config` and SNI `host`.
pub async fn tls_with(
    config: Arc<rustls::ClientConfig>,
    tcp: TcpStream,
    host: &str,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_owned())?;
    Ok(TlsConnector::from(config).connect(name, tcp).await?)
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> anyhow::Result<Reply> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let version = resp.version();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
        version,
    })
}
