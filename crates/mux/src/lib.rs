//! Warren's muxado implementation: the stream multiplexer under every agent session.
//!
//! Speaks the byte-level protocol of docs/agent-protocol.md §2–§4 (muxado framing,
//! 4-byte typed stream prefixes, the heartbeat echo) so the official ngrok agent SDKs
//! and Warren's own agent can talk to the edge. One [`Session`] wraps one transport
//! (TLS or plain TCP, anything `AsyncRead + AsyncWrite`) and hands out [`Stream`]s,
//! each a flow-controlled, half-closable byte pipe.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`frame`] | the pure codec: headers, the four frame types, flags, error codes, validation |
//! | `chunks` | a stream's byte queue: large payloads by reference, small ones coalesced |
//! | `flow` | per-stream window accounting (send window, receive credit, WNDINC batching) |
//! | `state` | the session state machine under one lock: streams, ids, limits, output scheduling |
//! | `driver` | the single IO task per session: reads and dispatches frames, writes batched output |
//! | `session` | [`Session`], the public handle: open, accept, GOAWAY, close |
//! | `stream` | [`Stream`], the public `AsyncRead + AsyncWrite` handle |
//! | [`typed`] | the 4-byte big-endian stream type prefix |
//! | [`heartbeat`] | the heartbeat echo responder and the active heartbeat requester |
//! | `error` | [`Error`], the session-level error type |
//!
//! # Costs
//!
//! One spawned task per session (plus one per active [`heartbeat::start`]). Buffers are
//! allocated when traffic needs them and released when the session is idle, so an idle
//! session costs a few KiB on top of its transport. Limits that protect the edge from a
//! hostile peer are the `pub const`s below and the fields of [`Config`].

mod chunks;
mod driver;
mod error;
mod flow;
mod session;
mod state;
mod stream;

pub mod frame;
pub mod heartbeat;
pub mod typed;

use std::time::Duration;

pub use error::Error;
pub use frame::{ErrorCode, MAX_FRAME_LEN};
pub use session::Session;
pub use stream::Stream;

/// Per-stream window in each direction (§2.4: no negotiation, both sides assume 256 KiB).
pub const DEFAULT_WINDOW: u32 = 0x40000;

/// Default cap on concurrent streams opened by the remote (the Rust SDK's own total limit).
pub const DEFAULT_MAX_STREAMS: usize = 512;

/// Default cap on concurrent streams a server opens: the ngrok Rust SDK kills its whole
/// session when its 512-stream total is exceeded, so the edge stays well below (§2.5).
pub const DEFAULT_MAX_LOCAL_STREAMS: usize = 400;

/// Default number of remote-opened streams waiting for `accept` (Go muxado's value).
pub const DEFAULT_ACCEPT_BACKLOG: usize = 128;

/// Default bound on stream payload queued for the socket across all streams of a session.
pub const DEFAULT_WRITE_QUEUE_BYTES: usize = 1 << 20;

/// Largest DATA frame produced from one `poll_write`: bigger writes are split, so streams
/// sharing a session interleave at this granularity.
pub const MAX_WRITE_FRAME: usize = 32 * 1024;

/// How many bytes of frames the IO task gathers per socket write.
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Control frames (RSTs for unknown or refused streams, GOAWAY) that may wait for the
/// socket before the IO task stops reading: a peer that floods us with frames needing a
/// reply while not reading ours gets backpressure instead of unbounded memory.
pub const MAX_PENDING_CONTROL: usize = 256;

/// Smallest read buffer; an idle session's buffer shrinks to this.
pub const MIN_READ_BUF: usize = 512;

/// Largest read buffer used for ordinary reads (a single larger frame still gets room).
pub const MAX_READ_BUF: usize = 64 * 1024;

/// DATA payloads shorter than this are copied out of the read buffer and coalesced with
/// their neighbours, so small unread payloads never pin a large receive allocation and
/// one-byte frames cost about one byte each; longer ones are kept by reference.
pub const COPY_PAYLOAD_BELOW: usize = 8 * 1024;

/// A session's IO buffers are freed after this long without IO (one timer per period
/// while busy; none while idle).
pub const IDLE_RELEASE_AFTER: Duration = Duration::from_secs(1);

/// How long a session that sent GOAWAY waits for the socket to take it before closing.
pub const GOAWAY_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest GOAWAY debug text kept from a peer (and sent by us).
pub const MAX_GOAWAY_DEBUG: usize = 1024;

/// How many recently reset stream ids are remembered, so frames racing our RST are
/// dropped quietly instead of answered with another RST.
pub const RECENT_RESETS: usize = 64;

/// How far below the highest remote stream id a never-seen id may still be opened: peers
/// (the Rust SDK included) may send the SYNs of concurrently opened streams out of order.
pub const REMOTE_ID_REORDER_WINDOW: u32 = 128;

/// Which end of the connection this session is; decides stream id parity (§2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The agent: opens odd ids 3, 5, 7, …
    Client,
    /// The edge: opens even ids 2, 4, 6, …
    Server,
}

/// Session limits and settings. Build with [`Config::server`] or [`Config::client`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Which end we are (id parity).
    pub role: Role,
    /// Per-stream window in each direction; both ends must agree (default [`DEFAULT_WINDOW`]).
    pub window: u32,
    /// Largest accepted frame body (DATA above the window is a violation anyway; also bounds
    /// GOAWAY debug text). Default: `window`. Clamped to [`MAX_FRAME_LEN`].
    pub max_frame_body: usize,
    /// Concurrent streams opened by the remote; a SYN beyond it is refused with
    /// RST(StreamRefused) and the session keeps working.
    pub max_streams: usize,
    /// Concurrent streams we open; `open` beyond it fails with [`Error::StreamsExhausted`].
    pub max_local_streams: usize,
    /// Remote-opened streams not yet accepted; beyond it RST(AcceptQueueFull).
    pub accept_backlog: usize,
    /// Bound on stream payload queued for the socket across all streams (backpressure).
    pub write_queue_bytes: usize,
}

impl Config {
    /// Defaults for the edge side of an agent session.
    pub fn server() -> Config {
        Config {
            role: Role::Server,
            window: DEFAULT_WINDOW,
            max_frame_body: DEFAULT_WINDOW as usize,
            max_streams: DEFAULT_MAX_STREAMS,
            max_local_streams: DEFAULT_MAX_LOCAL_STREAMS,
            accept_backlog: DEFAULT_ACCEPT_BACKLOG,
            write_queue_bytes: DEFAULT_WRITE_QUEUE_BYTES,
        }
    }

    /// Defaults for the agent side.
    pub fn client() -> Config {
        Config {
            role: Role::Client,
            max_local_streams: DEFAULT_MAX_STREAMS,
            ..Config::server()
        }
    }

    /// Clamps values that would make the session unusable (a window below 4 bytes, a frame
    /// limit outside 8..=[`MAX_FRAME_LEN`], a zero write queue).
    pub(crate) fn normalized(mut self) -> Config {
        self.window = self.window.clamp(4, flow::MAX_SEND_WINDOW);
        self.max_frame_body = self
            .max_frame_body
            .clamp(frame::GOAWAY_MIN_LEN, MAX_FRAME_LEN);
        self.write_queue_bytes = self.write_queue_bytes.max(1);
        self
    }
}
