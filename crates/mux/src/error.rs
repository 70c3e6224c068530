//! The session-level error type and the internal, cloneable close reason behind it.
//!
//! Owns how "why did the session end" is reported: once to [`crate::Session::closed`]
//! callers as an [`Error`], and to every stream as an `io::Error`. It must not decide
//! when a session ends.

use std::io;

use crate::frame::ErrorCode;

/// Errors from [`crate::Session`] operations and the reason a session ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session was closed locally ([`crate::Session::close`], [`crate::Session::go_away`],
    /// or the last `Session` handle was dropped).
    #[error("session closed")]
    SessionClosed,
    /// The peer sent GOAWAY.
    #[error("remote went away: {code}: {debug:?}")]
    RemoteGoneAway {
        /// The peer's reason.
        code: ErrorCode,
        /// The peer's debug text (lossy UTF-8, bounded by [`crate::MAX_GOAWAY_DEBUG`]).
        debug: String,
    },
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    PeerEof,
    /// The peer broke the protocol; we sent GOAWAY and closed.
    #[error("protocol violation by peer: {0}")]
    Protocol(String),
    /// [`crate::Config::max_local_streams`] (or the id space) is used up.
    #[error("no more local streams can be opened")]
    StreamsExhausted,
    /// No heartbeat echo arrived within the tolerance.
    #[error("heartbeat timed out")]
    HeartbeatTimeout,
    /// The first frame of a typed stream would not fit the stream window.
    #[error("first frame of {len} bytes exceeds the stream window of {window}")]
    FirstFrameTooLarge {
        /// Type prefix plus payload length.
        len: usize,
        /// The window in force.
        window: u32,
    },
    /// The transport failed.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
}

/// Why a session ended; cloneable so every waiter gets its own [`Error`].
#[derive(Clone, Debug)]
pub(crate) enum CloseReason {
    Local,
    RemoteGoAway { code: ErrorCode, debug: String },
    PeerEof,
    Protocol(String),
    Io(io::ErrorKind, String),
    HeartbeatTimeout,
}

impl CloseReason {
    pub(crate) fn to_error(&self) -> Error {
        match self {
            CloseReason::Local => Error::SessionClosed,
            CloseReason::RemoteGoAway { code, debug } => Error::RemoteGoneAway {
                code: *code,
                debug: debug.clone(),
            },
            CloseReason::PeerEof => Error::PeerEof,
            CloseReason::Protocol(s) => Error::Protocol(s.clone()),
            CloseReason::Io(kind, msg) => Error::Io(io::Error::new(*kind, msg.clone())),
            CloseReason::HeartbeatTimeout => Error::HeartbeatTimeout,
        }
    }

    /// What stream reads and writes report once the session is over.
    pub(crate) fn to_io(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            self.to_error().to_string(),
        )
    }

    pub(crate) fn from_io(e: &io::Error) -> CloseReason {
        CloseReason::Io(e.kind(), e.to_string())
    }
}
