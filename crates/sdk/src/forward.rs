//! Forwarding one visitor connection to an upstream on the device: a byte pipe in both
//! directions, with the half-closes passed through. An HTTP endpoint whose upstream cannot be
//! reached answers the visitor with a 502 instead of a silent close.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, copy_bidirectional};

use crate::listener::Conn;
use crate::upstream::Upstream;

/// Forwards `conn` to `upstream` until both directions end. Returns the bytes copied
/// (visitor → upstream, upstream → visitor).
pub async fn forward(conn: Conn, upstream: &Upstream) -> io::Result<(u64, u64)> {
    let http = matches!(conn.proto(), "http" | "https");
    forward_stream(conn, http, upstream).await
}

/// [`forward`] for any byte stream (a [`Conn`] wrapped by the caller, e.g. to count bytes).
/// `http` = answer with a 502 when the upstream cannot be reached.
pub async fn forward_stream<IO>(
    mut io: IO,
    http: bool,
    upstream: &Upstream,
) -> io::Result<(u64, u64)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut up = match upstream.dial().await {
        Ok(up) => up,
        Err(e) => {
            if http {
                let _ = io.write_all(bad_gateway(upstream, &e).as_bytes()).await;
                let _ = io.shutdown().await;
            }
            return Err(e);
        }
    };
    copy_bidirectional(&mut io, &mut up).await
}

/// ngrok's error code for "the agent could not reach the upstream"; sent in the
/// `ngrok-error-code` header and the page of a 502.
pub const UPSTREAM_UNREACHABLE: &str = "ERR_NGROK_8012";

/// The HTML page of the 502 an HTTP visitor gets when the device's upstream cannot be reached
/// or fails before answering; `detail` is escaped.
pub fn bad_gateway_page(detail: &str) -> String {
    let detail = detail
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!DOCTYPE html><title>502 Bad Gateway</title><h1>502 Bad Gateway</h1>\
         <p>{detail}</p><p>{UPSTREAM_UNREACHABLE}</p>\n"
    )
}

/// The whole HTTP/1.1 502 response written on a raw connection.
fn bad_gateway(upstream: &Upstream, e: &io::Error) -> String {
    let body = bad_gateway_page(&format!(
        "The agent could not reach the upstream {upstream}: {e}"
    ));
    format!(
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html; charset=utf-8\r\n\
         ngrok-error-code: {UPSTREAM_UNREACHABLE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
