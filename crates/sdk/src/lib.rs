#![doc = include_str!("../README.md")]
//!
//! # Layout
//! - [`Session`] / [`SessionBuilder`] (`session.rs`): connect, authenticate, serve the edge's
//!   streams, reconnect with [`Backoff`].
//! - Endpoint builders (`endpoint.rs`): [`HttpEndpointBuilder`], [`TcpEndpointBuilder`],
//!   [`TlsEndpointBuilder`].
//! - [`Listener`] and [`Conn`] (`listener.rs`): visitor connections of a bound endpoint.
//! - [`forward()`] and [`Upstream`] (`forward.rs`, `upstream.rs`): piping connections to a
//!   local service.
//! - [`tls`]: the TLS client configurations.
//!
//! The wire itself (frames, messages) lives in `warren-mux` and `warren-proto` and is not part
//! of this crate's API.

mod backoff;
mod endpoint;
mod error;
mod forward;
mod listener;
mod prefixed;
mod session;
pub mod tls;
mod upstream;

pub use backoff::{Backoff, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF};
pub use endpoint::{
    HttpEndpointBuilder, ProxyProto, TcpEndpointBuilder, TlsEndpointBuilder, UpstreamProtocol,
};
pub use error::{ConnectError, EdgeError, ListenError, ListenerClosed};
pub use forward::{UPSTREAM_UNREACHABLE, bad_gateway_page, forward, forward_stream};
pub use listener::{Conn, LISTENER_BACKLOG, Listener};
pub use prefixed::Prefixed;
pub use session::{
    AgentCommand, CommandHandler, DEFAULT_CONNECT_TIMEOUT, DEFAULT_SERVER_ADDR, MAX_COMMAND_BODY,
    NO_HANDLER, RPC_TIMEOUT, STREAM_HEADER_TIMEOUT, Session, SessionBuilder, SessionState,
};
pub use upstream::{UPSTREAM_DIAL_TIMEOUT, Upstream, UpstreamError, UpstreamIo, UpstreamScheme};
