//! TCP endpoints (one listener per endpoint) and the byte pipe shared with TLS passthrough.
//!
//! The pipe counts the visitor's bytes as they move (metrics and usage) and, when wanted,
//! emits `tcp_connection_closed.v0` once both sides are done.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use warren_events::types::TCP_CONNECTION_CLOSED;

use super::metered::Counted;
use crate::event_objects::ConnInfo;
use crate::tunnel::Tunnel;
use crate::{Edge, VisitorAddrs};

/// Copy buffer size for each direction of a piped connection.
const PIPE_BUFFER: usize = 64 * 1024;

/// Serves a TCP endpoint's listener until the tunnel goes away or the edge stops visitors.
pub(crate) fn spawn_endpoint(edge: Edge, listener: TcpListener, tunnel: Arc<Tunnel>) {
    tokio::spawn(async move {
        let stop = tunnel.gone.clone();
        super::accept_loop(&edge, listener, Some(stop), |tcp, addrs| {
            pipe(
                edge.clone(),
                tunnel.clone(),
                tcp,
                addrs,
                Bytes::new(),
                String::new(),
            )
        })
        .await;
    });
}

/// Opens a proxy stream to `tunnel`'s agent and copies bytes both ways until both sides close.
/// `prefix` is sent first (bytes already read from the visitor, such as a ClientHello). A visitor
/// an `endpoints` IP restriction refuses is closed without a byte. `server_name` is the SNI of
/// a TLS passthrough connection (empty for TCP).
pub(crate) async fn pipe<V>(
    edge: Edge,
    tunnel: Arc<Tunnel>,
    visitor: V,
    addrs: VisitorAddrs,
    prefix: Bytes,
    server_name: String,
) where
    V: AsyncRead + AsyncWrite + Unpin,
{
    let started = edge.events().map(|events| events.now());
    if !crate::ip_restrictions::visitor_admitted(&edge, addrs).await {
        return;
    }
    let mut stream = match tunnel.connect(addrs.remote, addrs.local).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(tunnel = %tunnel.id, %error, "visitor connection dropped");
            return;
        }
    };
    let mut visitor = Counted::new(visitor, tunnel.clone());
    // Bytes already read from the visitor (a ClientHello) are its traffic too.
    let prefix_len = prefix.len() as u64;
    tunnel.meter.bytes_in(prefix_len);
    if prefix.is_empty() || stream.write_all(&prefix).await.is_ok() {
        let _ = tokio::io::copy_bidirectional_with_sizes(
            &mut visitor,
            &mut stream,
            PIPE_BUFFER,
            PIPE_BUFFER,
        )
        .await;
    }
    let (Some(events), Some(start)) = (edge.events(), started) else {
        return;
    };
    if !events.wants(TCP_CONNECTION_CLOSED) {
        return;
    }
    let conn = ConnInfo {
        client: addrs.remote,
        server: addrs.local,
        server_name,
        start,
    };
    let object = crate::event_objects::tcp_connection_closed(
        &tunnel,
        &conn,
        events.now(),
        prefix_len + visitor.bytes_in(),
        visitor.bytes_out(),
    );
    events.emit(TCP_CONNECTION_CLOSED, None, object);
}
