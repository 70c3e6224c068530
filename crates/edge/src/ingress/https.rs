//! The public HTTPS port: TLS passthrough by SNI for `tls` endpoints, TLS termination (certificate
//! chosen by SNI) and HTTP for everything else.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use warren_proto::client_hello::parse_sni;

use super::http::Scheme;
use super::prefixed::Prefixed;
use crate::tunnel::Proto;
use crate::{Edge, VisitorAddrs};

pub(crate) async fn serve(edge: Edge, listener: TcpListener) {
    let edge2 = edge.clone();
    super::accept_loop(&edge, listener, None, move |tcp, addrs| {
        handle(edge2.clone(), tcp, addrs)
    })
    .await;
}

/// Reads the ClientHello (bounded in size and time), then passes through or terminates.
async fn handle(edge: Edge, mut tcp: TcpStream, addrs: VisitorAddrs) {
    let mut hello = BytesMut::with_capacity(2048);
    let read_hello = async {
        loop {
            if tcp.read_buf(&mut hello).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            match parse_sni(&hello) {
                Ok(None) => continue,
                Ok(Some(sni)) => return Ok(sni),
                Err(error) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        error.to_string(),
                    ));
                }
            }
        }
    };
    let sni = match timeout(edge.config().visitor_header_timeout, read_hello).await {
        Ok(Ok(sni)) => sni,
        Ok(Err(error)) => {
            tracing::debug!(remote = %addrs.remote, %error, "not a TLS ClientHello");
            return;
        }
        Err(_) => {
            tracing::debug!(remote = %addrs.remote, "ClientHello timed out");
            return;
        }
    };
    let passthrough = sni
        .as_deref()
        .and_then(|name| edge.routes().host(name).cloned())
        .filter(|tunnel| tunnel.proto == Proto::Tls);
    if let Some(tunnel) = passthrough {
        let server_name = sni.unwrap_or_default();
        super::tcp::pipe(edge, tunnel, tcp, addrs, hello.freeze(), server_name).await;
        return;
    }
    let header_timeout = edge.config().visitor_header_timeout;
    let config = Arc::clone(
        edge.inner()
            .public_tls
            .get()
            .expect("public TLS is configured"),
    );
    let accept = TlsAcceptor::from(config).accept(Prefixed::new(hello.freeze(), tcp));
    match timeout(header_timeout, accept).await {
        Ok(Ok(tls)) => super::http::serve_connection(edge, tls, addrs, Scheme::Https).await,
        Ok(Err(error)) => {
            tracing::debug!(remote = %addrs.remote, %error, "visitor TLS handshake failed")
        }
        Err(_) => tracing::debug!(remote = %addrs.remote, "visitor TLS handshake timed out"),
    }
}
