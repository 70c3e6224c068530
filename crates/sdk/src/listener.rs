//! Listeners and connections: what an application gets back from a bound endpoint.
//!
//! A [`Listener`] yields one [`Conn`] per visitor connection the edge forwards. It survives
//! reconnects of the session (the endpoint is bound again with the same id, so its URL stays);
//! it ends when the application closes it, the edge stops the endpoint, or the session closes
//! for good. Dropping a listener unbinds the endpoint.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use warren_mux::Stream;

use crate::endpoint::BindSpec;
use crate::error::ListenerClosed;
use crate::prefixed::Prefixed;
use crate::session::Session;

/// Visitor connections waiting for [`Listener::accept`] before new ones wait in the edge.
pub const LISTENER_BACKLOG: usize = 128;

/// The session's record of one endpoint, shared with its [`Listener`].
pub(crate) struct Slot {
    /// Registry key (stable across rebinds; the edge id may only appear after the first bind).
    pub key: u64,
    /// What to bind.
    pub spec: BindSpec,
    /// The result of the latest successful bind.
    pub bound: Mutex<Option<Bound>>,
    /// Serializes binds of this endpoint (a listen racing a reconnect binds once).
    pub bind_lock: tokio::sync::Mutex<()>,
    /// Where proxy streams go.
    pub conns: mpsc::Sender<Conn>,
    /// Set once, when the listener ends.
    pub closed: watch::Sender<Option<ListenerClosed>>,
}

/// What the edge answered to the latest bind.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    /// Session generation this bind happened on.
    pub generation: u64,
    /// The endpoint id.
    pub id: String,
    /// The public URL.
    pub url: String,
    /// The rebind token.
    pub token: String,
    /// The `Opts` the edge echoed (sent back verbatim on a rebind).
    pub opts: serde_json::Value,
}

impl Slot {
    pub(crate) fn close(&self, why: ListenerClosed) {
        self.closed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(why);
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    pub(crate) fn bound(&self) -> Option<Bound> {
        self.bound.lock().expect("slot lock").clone()
    }
}

/// A bound endpoint. Accept visitor connections with [`Listener::accept`].
pub struct Listener {
    session: Session,
    slot: Arc<Slot>,
    rx: mpsc::Receiver<Conn>,
    closed: watch::Receiver<Option<ListenerClosed>>,
    unbound: bool,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("id", &self.id())
            .field("url", &self.url())
            .finish()
    }
}

impl Listener {
    pub(crate) fn new(session: Session, slot: Arc<Slot>, rx: mpsc::Receiver<Conn>) -> Listener {
        let closed = slot.closed.subscribe();
        Listener {
            session,
            slot,
            rx,
            closed,
            unbound: false,
        }
    }

    /// The endpoint id the edge assigned (stable across reconnects).
    pub fn id(&self) -> String {
        self.slot.bound().map(|b| b.id).unwrap_or_default()
    }

    /// The public URL (`https://cam1.site1.example.com`, `tcp://edge.example.com:20001`).
    pub fn url(&self) -> String {
        self.slot.bound().map(|b| b.url).unwrap_or_default()
    }

    /// `https`, `http`, `tcp` or `tls`.
    pub fn proto(&self) -> &str {
        &self.slot.spec.proto
    }

    /// Metadata sent with the bind.
    pub fn metadata(&self) -> &str {
        &self.slot.spec.metadata
    }

    /// Waits for the next visitor connection. Errors once the listener has ended, saying why.
    pub async fn accept(&mut self) -> Result<Conn, ListenerClosed> {
        loop {
            if let Some(why) = self.closed.borrow_and_update().clone() {
                return Err(why);
            }
            tokio::select! {
                biased;
                conn = self.rx.recv() => match conn {
                    Some(conn) => return Ok(conn),
                    None => return Err(ListenerClosed::Local),
                },
                changed = self.closed.changed() => {
                    if changed.is_err() {
                        return Err(ListenerClosed::Local);
                    }
                }
            }
        }
    }

    /// Unbinds the endpoint at the edge (its URL stops answering) and ends the listener.
    pub async fn close(mut self) {
        self.unbound = true;
        self.session.unbind(&self.slot).await;
    }

    /// Accepts connections and forwards each to `upstream` until the listener ends; returns why
    /// it ended.
    pub async fn forward(mut self, upstream: crate::Upstream) -> ListenerClosed {
        let upstream = Arc::new(upstream);
        loop {
            match self.accept().await {
                Ok(conn) => {
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        if let Err(e) = crate::forward::forward(conn, &upstream).await {
                            tracing::debug!(error = %e, %upstream, "forwarding ended with an error");
                        }
                    });
                }
                Err(why) => return why,
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if self.unbound {
            return;
        }
        let session = self.session.clone();
        let slot = self.slot.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { session.unbind(&slot).await });
            }
            Err(_) => session.forget(&slot),
        }
    }
}

/// One visitor connection forwarded by the edge: a byte stream plus who the visitor is.
pub struct Conn {
    /// The proxy stream, with the bytes read past the proxy header put back in front.
    io: Prefixed<Stream>,
    remote_addr: SocketAddr,
    proto: String,
    endpoint_id: String,
    passthrough_tls: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("remote_addr", &self.remote_addr)
            .field("proto", &self.proto)
            .field("endpoint_id", &self.endpoint_id)
            .finish()
    }
}

impl Conn {
    pub(crate) fn new(
        stream: Stream,
        prefix: Bytes,
        header: &warren_proto::msg::ProxyHeader,
    ) -> Conn {
        let remote_addr = header
            .client_addr
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        Conn {
            io: Prefixed::new(prefix, stream),
            remote_addr,
            proto: header.proto.clone(),
            endpoint_id: header.id.clone(),
            passthrough_tls: header.passthrough_tls,
        }
    }

    /// The visitor's address as the edge saw it (`0.0.0.0:0` if the edge sent none).
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The endpoint's protocol (`https`, `http`, `tcp`, `tls`).
    pub fn proto(&self) -> &str {
        &self.proto
    }

    /// The endpoint id.
    pub fn endpoint_id(&self) -> &str {
        &self.endpoint_id
    }

    /// Whether the bytes are an un-terminated TLS stream (a `tls` endpoint).
    pub fn passthrough_tls(&self) -> bool {
        self.passthrough_tls
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
