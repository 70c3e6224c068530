//! Public ingress: the listeners visitors reach, and the pieces they share.
//!
//! - [`http`] — plain HTTP (HTTP/1.1 and h2c) and the HTTP proxy pipeline used by HTTPS too:
//!   route by Host → open a proxy stream → HTTP/1.1 to the agent → response back.
//! - [`https`] — reads the ClientHello, passes TLS through untouched when the SNI names a `tls`
//!   endpoint, otherwise terminates TLS (certificate by SNI, ALPN h2/http1.1) and serves HTTP.
//! - [`tcp`] — one listener per TCP endpoint, bytes copied both ways.
//! - [`pages`] — the error pages visitors see, each with a stable error code.
//! - `metered` — counting wrappers: visitor bytes reach the tunnel's meter as they move.
//!
//! Every visitor connection takes a slot from the edge-wide visitor limit and is tracked so a
//! drain can wait for it.

pub mod activity;
pub mod http;
pub mod https;
mod metered;
pub mod pages;
pub mod prefixed;
pub mod tcp;

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::{Edge, VisitorAddrs};

/// Accepts visitor connections on `listener` until the edge stops taking visitors, running
/// `handle` for each within the visitor limit. `stop` ends this listener early (a TCP endpoint
/// that was unbound).
pub(crate) async fn accept_loop<F, Fut>(
    edge: &Edge,
    listener: TcpListener,
    stop: Option<tokio_util::sync::CancellationToken>,
    handle: F,
) where
    F: Fn(TcpStream, VisitorAddrs) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let inner = edge.inner();
    let stop = stop.unwrap_or_default();
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        let (tcp, remote) = tokio::select! {
            _ = inner.visitors_stop.cancelled() => return,
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, %local, "visitor accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = inner.visitor_slots.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "visitor connection limit reached; connection closed");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let fut = handle(tcp, VisitorAddrs { remote, local });
        inner.visitors.spawn(async move {
            fut.await;
            drop(slot);
        });
    }
}
