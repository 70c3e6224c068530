//! [`Session`], the public handle on one muxado connection.
//!
//! Owns the user-facing operations (open, accept, GOAWAY, close, observe the end) and the
//! session's lifetime: the IO task runs until the peer leaves, the transport fails, or the
//! last `Session` clone is dropped. It holds no protocol logic of its own; each call is
//! one short critical section in [`crate::state`].

use std::future::poll_fn;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::driver::Driver;
use crate::error::CloseReason;
use crate::frame::ErrorCode;
use crate::state::Shared;
use crate::typed::TYPE_PREFIX_LEN;
use crate::{Config, Error, Stream};

/// Closes the session when the last [`Session`] clone goes away.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.close(CloseReason::Local);
    }
}

/// A muxado session over one transport. Cheap to clone; all clones share the session,
/// which is closed (without GOAWAY) when the last clone is dropped. [`Stream`]s do not keep
/// the session alive.
#[derive(Clone)]
pub struct Session {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.shared().cfg.role)
            .field("streams", &self.stream_count())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Session {
    /// Starts a session on `io`, spawning its IO task on the current tokio runtime.
    ///
    /// Panics if called outside a tokio runtime.
    pub fn new<T: AsyncRead + AsyncWrite + Send + 'static>(io: T, config: Config) -> Session {
        let shared = Arc::new(Shared::new(config));
        tokio::spawn(Driver::new(io, shared.clone()));
        Session {
            owner: Arc::new(Owner { shared }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.owner.shared
    }

    /// Opens a raw stream. Its SYN travels with the first write (or as an empty SYN frame
    /// if the stream is flushed or shut down first). Fails immediately with
    /// [`Error::StreamsExhausted`] at [`Config::max_local_streams`].
    pub async fn open(&self) -> Result<Stream, Error> {
        let shared = self.shared();
        let id = shared.with(|st| st.open_local())?;
        Ok(Stream::new(shared.clone(), id))
    }

    /// Opens a typed stream: one SYN DATA frame carrying the 4-byte big-endian `ty` and
    /// `first` (which may be empty and must fit, with the prefix, in one window).
    /// Waits while the session's write queue is full.
    pub async fn open_typed(&self, ty: u32, first: &[u8]) -> Result<Stream, Error> {
        open_typed(self.shared(), ty, first).await
    }

    /// Next stream opened by the peer. Errors once the session is over.
    pub async fn accept(&self) -> Result<Stream, Error> {
        let shared = self.shared();
        let (id, _) = poll_fn(|cx| shared.with(|st| st.poll_accept(cx, false))).await?;
        Ok(Stream::new(shared.clone(), id))
    }

    /// Next stream opened by the peer together with its 4-byte type, however the type
    /// bytes were split across frames. A stream whose type has not fully arrived does not
    /// hold up streams behind it; one closed before sending its type is dropped.
    pub async fn accept_typed(&self) -> Result<(u32, Stream), Error> {
        let shared = self.shared();
        let (id, ty) = poll_fn(|cx| shared.with(|st| st.poll_accept(cx, true))).await?;
        Ok((ty.expect("typed accept"), Stream::new(shared.clone(), id)))
    }

    /// Sends GOAWAY(last remote stream id, `code`, `debug`) and closes the connection as
    /// soon as it is written (at most [`crate::GOAWAY_FLUSH_TIMEOUT`]). Every stream fails
    /// from now on. No-op if the session is already over.
    pub fn go_away(&self, code: ErrorCode, debug: &str) {
        self.shared().go_away(code, debug);
    }

    /// Tears the session down without GOAWAY. Every stream fails from now on.
    pub fn close(&self) {
        self.shared().close(CloseReason::Local);
    }

    /// Resolves when the session has ended, with the reason: [`Error::PeerEof`],
    /// [`Error::RemoteGoneAway`], [`Error::Protocol`], [`Error::Io`],
    /// [`Error::HeartbeatTimeout`] or [`Error::SessionClosed`] (closed locally).
    pub async fn closed(&self) -> Error {
        let shared = self.shared();
        poll_fn(|cx| shared.with(|st| st.poll_closed(cx))).await
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.shared().lock().closed.is_some()
    }

    /// Live streams in both directions (including ones waiting to be accepted).
    pub fn stream_count(&self) -> usize {
        self.shared().lock().stream_count()
    }
}

/// [`Session::open_typed`] without needing a `Session` handle (the heartbeat task uses it
/// so that it does not keep the session alive).
pub(crate) async fn open_typed(
    shared: &Arc<Shared>,
    ty: u32,
    first: &[u8],
) -> Result<Stream, Error> {
    let len = TYPE_PREFIX_LEN + first.len();
    if len > (shared.cfg.window as usize).min(crate::MAX_FRAME_LEN) {
        return Err(Error::FirstFrameTooLarge {
            len,
            window: shared.cfg.window,
        });
    }
    poll_fn(|cx| shared.with(|st| st.poll_capacity(cx))).await?;
    let mut buf = BytesMut::with_capacity(len);
    buf.put_u32(ty);
    buf.put_slice(first);
    let id = shared.with(|st| st.open_with(buf.freeze()))?;
    Ok(Stream::new(shared.clone(), id))
}
