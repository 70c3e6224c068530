//! TCP endpoints (one listener per endpoint) and the byte pipe shared with TLS passthrough.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::tunnel::Tunnel;
use crate::{Edge, VisitorAddrs};

/// Copy buffer size for each direction of a piped connection.
const PIPE_BUFFER: usize = 64 * 1024;

/// Serves a TCP endpoint's listener until the tunnel goes away or the edge stops visitors.
pub(crate) fn spawn_endpoint(edge: Edge, listener: TcpListener, tunnel: Arc<Tunnel>) {
    tokio::spawn(async move {
        let stop = tunnel.gone.clone();
        super::accept_loop(&edge, listener, Some(stop), |tcp, addrs| {
            pipe(edge.clone(), tunnel.clone(), tcp, addrs, Bytes::new())
        })
        .await;
    });
}

/// Opens a proxy stream to `tunnel`'s agent and copies bytes both ways until both sides close.
/// `prefix` is sent first (bytes already read from the visitor, such as a ClientHello). A visitor
/// an `endpoints` IP restriction refuses is closed without a byte.
pub(crate) async fn pipe<V>(
    edge: Edge,
    tunnel: Arc<Tunnel>,
    mut visitor: V,
    addrs: VisitorAddrs,
    prefix: Bytes,
) where
    V: AsyncRead + AsyncWrite + Unpin,
{
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
    if !prefix.is_empty() && stream.write_all(&prefix).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional_with_sizes(
        &mut visitor,
        &mut stream,
        PIPE_BUFFER,
        PIPE_BUFFER,
    )
    .await;
}
