//! Upstream services the agent forwards to, each on 127.0.0.1 port 0, each ending with its task.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("origin binds")
}

/// An HTTP/1.1 + h2c origin:
/// - `GET /bytes?n=N`: N deterministic bytes (`i % 251`);
/// - `POST /sha256`: the hex SHA-256 and length of the request body;
/// - `GET /slow?ms=N`: waits N milliseconds (at most 10 s), then answers `slow done`;
/// - `/ws`: a WebSocket echo;
/// - anything else: `hello from origin` plus one `name: value` line per request header, and the
///   method and path.
pub async fn http() -> SocketAddr {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(handle);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

async fn handle(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/ws" {
        return Ok(websocket(&mut req));
    }
    if path == "/slow" {
        let ms: u64 = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
            .min(10_000);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        return Ok(Response::new(Full::new(Bytes::from_static(b"slow done"))));
    }
    if path == "/bytes" {
        let n: usize = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return Ok(Response::new(Full::new(Bytes::from(pattern(n)))));
    }
    if path == "/sha256" {
        let body = match req.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                let mut resp = Response::new(Full::new(Bytes::from_static(b"body failed")));
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                return Ok(resp);
            }
        };
        let text = format!("{} {}", crate::sha256_hex(&body), body.len());
        return Ok(Response::new(Full::new(Bytes::from(text))));
    }
    let mut text = format!("hello from origin\n{} {}\n", req.method(), req.uri());
    for (name, value) in req.headers() {
        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
    }
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// Deterministic test bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn websocket(req: &mut Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"not a websocket request")));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                if ws.send(msg).await.is_err() {
                    break;
                }
            } else if msg.is_close() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A TCP echo origin: every byte comes back, then FIN after the peer's FIN.
pub async fn tcp_echo() -> SocketAddr {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A TCP origin that reads up to 108 bytes (a PROXY v1 header fits), answers with what it read,
/// and closes. Used to see the PROXY protocol header the agent passes on.
pub async fn tcp_first_bytes() -> SocketAddr {
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 108];
                let n = tcp.read(&mut buf).await.unwrap_or(0);
                let _ = tcp.write_all(&buf[..n]).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

/// A TLS origin with its own CA (not the edge's): answers every connection with
/// `tls origin <sni>\n` and closes. Returns its address and its CA in PEM.
pub async fn tls_origin(name: &str) -> (SocketAddr, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "origin test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("").to_owned();
                let _ = tls
                    .write_all(format!("tls origin {sni}\n").as_bytes())
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, ca.pem())
}
