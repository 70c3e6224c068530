//! The `http` sink: a webhook. Each batch is one `POST` of a JSON array of envelopes, signed
//! with `Warren-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>` when
//! the destination has a secret. A 2xx answer acknowledges the batch; anything else fails it.
//!
//! One HTTP/1.1 connection per destination is kept between batches while the receiver keeps it
//! open. `https://` uses rustls with the operating system's root certificates.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use warren_store::events::OutboxEntry;

/// Most response-body bytes read (and quoted in errors, in part) per delivery.
const RESPONSE_BODY_MAX: usize = 64 * 1024;
/// Response-body bytes quoted in a failure reason.
const ERROR_EXCERPT_LEN: usize = 200;

pub(crate) struct HttpSink {
    url: String,
    secret: String,
    /// The open connection, if any.
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl HttpSink {
    pub(crate) fn new(url: &str, secret: &str) -> HttpSink {
        HttpSink {
            url: url.to_owned(),
            secret: secret.to_owned(),
            conn: None,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.conn = None;
    }

    pub(crate) async fn deliver(&mut self, rows: &[OutboxEntry]) -> Result<(), String> {
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| format!("invalid webhook URL: {e}"))?;
        let mut body =
            Vec::with_capacity(rows.iter().map(|r| r.payload.len() + 1).sum::<usize>() + 2);
        body.push(b'[');
        for (i, event) in super::each_event(rows).enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(event.as_bytes());
        }
        body.push(b']');
        let events = super::event_count(rows);
        let body = Bytes::from(body);

        // A kept-alive connection the receiver closed while idle fails before any answer; that
        // is no delivery failure, so the batch is sent once more on a fresh connection.
        let kept = self.conn.take().filter(|c| !c.is_closed());
        let reused = kept.is_some();
        let (conn, response) = match self.send(&uri, kept, events, body.clone()).await {
            Ok(ok) => ok,
            Err(e) if reused => {
                tracing::debug!(error = %e, "kept-alive webhook connection failed; reconnecting");
                self.send(&uri, None, events, body).await?
            }
            Err(e) => return Err(e),
        };
        let status = response.status();
        let (excerpt, complete) = read_body(response.into_body()).await;
        if complete && !conn.is_closed() {
            self.conn = Some(conn);
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {status}: {excerpt}"))
        }
    }

    /// Sends one request on `conn` (or a new connection); the connection is taken out of
    /// `self` while in use, so an abandoned attempt leaves no half-used connection behind.
    async fn send(
        &self,
        uri: &Uri,
        conn: Option<SendRequest<Full<Bytes>>>,
        count: usize,
        body: Bytes,
    ) -> Result<
        (
            SendRequest<Full<Bytes>>,
            hyper::Response<hyper::body::Incoming>,
        ),
        String,
    > {
        let mut conn = match conn {
            Some(c) => c,
            None => connect(uri).await?,
        };
        conn.ready()
            .await
            .map_err(|e| format!("webhook connection failed: {e}"))?;
        let request = build_request(uri, &self.secret, count, body)?;
        let response = conn
            .send_request(request)
            .await
            .map_err(|e| format!("webhook request failed: {e}"))?;
        Ok((conn, response))
    }
}

fn build_request(
    uri: &Uri,
    secret: &str,
    count: usize,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let host = match (uri.host(), uri.port_u16()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return Err("webhook URL has no host".into()),
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("warren/", env!("CARGO_PKG_VERSION")),
        )
        .header("Warren-Event-Count", count.to_string());
    if !secret.is_empty() {
        builder = builder.header("Warren-Signature", signature(secret, unix_now(), &body));
    }
    builder
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the webhook request: {e}"))
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
pub(crate) fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Reads up to [`RESPONSE_BODY_MAX`] bytes; returns an excerpt and whether the body ended
/// (only then can the connection carry the next request).
async fn read_body(mut body: hyper::body::Incoming) -> (String, bool) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > RESPONSE_BODY_MAX {
                        return (excerpt(&buf), false);
                    }
                }
            }
            Some(Err(_)) => return (excerpt(&buf), false),
        }
    }
    (excerpt(&buf), true)
}

fn excerpt(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(&buf[..buf.len().min(ERROR_EXCERPT_LEN)]);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

async fn connect(uri: &Uri) -> Result<SendRequest<Full<Bytes>>, String> {
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("webhook URL must be http:// or https://".into()),
    };
    let host = uri
        .host()
        .ok_or("webhook URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if tls {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("invalid TLS server name {host}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(tls_config()?);
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
        handshake(stream).await
    } else {
        handshake(tcp).await
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "webhook connection ended");
        }
    });
    Ok(sender)
}

/// The rustls client configuration, built once: the OS root certificates, ring.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no root certificates found on this system for https webhooks".into());
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}
