//! [`Stream`], one multiplexed byte pipe as tokio `AsyncRead + AsyncWrite`.
//!
//! Owns the handle's contract: writes never exceed the peer's window (they wait for
//! WNDINC), `poll_shutdown` sends FIN, dropping an unfinished stream sends
//! RST(StreamCancelled). The buffers and windows live in [`crate::state`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::frame::ErrorCode;
use crate::state::Shared;

/// One stream of a [`crate::Session`].
///
/// * Reads return buffered bytes, then EOF (0) after the peer's FIN. A peer RST makes
///   reads and writes fail with `io::ErrorKind::ConnectionReset`; the end of the session
///   makes them fail with `ConnectionAborted` (after any buffered bytes were read).
/// * Writes are copied into DATA frames of at most [`crate::MAX_WRITE_FRAME`] bytes and
///   never exceed the peer's window: `poll_write` is pending until WNDINC arrives, or
///   while the session's write queue is full. `poll_flush` hands nothing extra to the
///   socket (the session's IO task writes as soon as it can); on a stream not yet
///   announced it sends an empty SYN frame.
/// * `poll_shutdown` sends FIN (half close); reading goes on until the peer's FIN.
/// * Drop frees the stream. If we had not sent FIN, or left unread bytes from a peer that
///   had not sent FIN, an RST(StreamCancelled) follows whatever was already written.
pub struct Stream {
    shared: Arc<Shared>,
    id: u32,
}

impl Stream {
    pub(crate) fn new(shared: Arc<Shared>, id: u32) -> Stream {
        Stream { shared, id }
    }

    /// The stream id (odd = opened by the client, even = by the server).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends RST(`code`) (unless the stream is already reset) and drops the stream.
    pub fn reset(self, code: ErrorCode) {
        self.shared.with(|st| st.reset_local(self.id, code));
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("id", &self.id).finish()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.shared.with(|st| st.release(self.id));
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let id = self.id;
        self.shared.with(|st| st.poll_read(id, cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let id = self.id;
        self.shared.with(|st| st.poll_write(id, cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        Poll::Ready(self.shared.with(|st| st.flush(id)))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        Poll::Ready(self.shared.with(|st| st.shutdown(id)))
    }
}
