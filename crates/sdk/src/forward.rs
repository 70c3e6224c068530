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

/// The 502 an HTTP visitor sees when the device's upstream is down.
pub(crate) fn bad_gateway(upstream: &Upstream, e: &io::Error) -> String {
    let e = e
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<!DOCTYPE html><title>502 Bad Gateway</title><h1>502 Bad Gateway</h1>\
         <p>The agent could not reach the upstream {upstream}: {e}</p>\n"
    );
    format!(
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
