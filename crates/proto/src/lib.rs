//! warren-proto: the wire contract between agents and the edge, with no IO.
//!
//! Everything here is pure: byte slices and serde values in, byte vectors and typed messages out.
//! The muxado framing and the typed-stream prefix belong to `warren-mux`; sockets, TLS sessions,
//! timeouts and routing belong to `warren-edge`. The facts behind every spelling are in
//! `docs/agent-protocol.md` (section numbers below refer to it).
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`stream_type`] | the 4-byte stream type numbers (§3) and [`StreamType`] |
//! | [`msg`] | every RPC, command and proxy-stream message as serde structs with the exact key spellings (§6), and typed read-only views of `Bind.Opts` ([`msg::opts`]) |
//! | [`rpc`] | the compile-time binding of request → response → stream type ([`Rpc`], [`Command`]) and [`RpcReader`], the incremental parser for the unframed JSON body of an RPC (§5) |
//! | [`err_code`] | `ERR_NGROK_nnn` codes and the `"message\n\nERR_NGROK_nnn"` error text (§7.1) |
//! | [`error`] | [`ProtoError`], this crate's error type |
//! | [`proxy_protocol`] | PROXY protocol v1/v2 headers prepended to proxied connections (§8.1) |
//! | [`client_hello`] | SNI extraction from a TLS ClientHello, for routing TLS passthrough on a shared port |

pub mod client_hello;
pub mod err_code;
pub mod error;
pub mod msg;
pub mod proxy_protocol;
pub mod rpc;
pub mod stream_type;

mod serde_util;

pub use err_code::{ErrCode, encode_error, parse_error};
pub use error::ProtoError;
pub use rpc::{Command, MAX_RPC_BODY, MAX_RPC_DEPTH, NoReply, Rpc, RpcReader, RpcResponse};
pub use stream_type::StreamType;
