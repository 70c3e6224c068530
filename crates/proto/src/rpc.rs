//! RPC mechanics (§5): which request goes with which response and stream type, and how to read an
//! RPC body that arrives with no length prefix and no end marker.
//!
//! [`Rpc`] (agent → edge) and [`Command`] (edge → agent) tie each request type to its stream type
//! and response type at compile time, so a dispatcher written against them cannot drift from the
//! table in §3. [`RpcReader`] buffers the bytes of one stream until exactly one complete JSON
//! object has arrived, in time linear in the body size, and bounds the body by [`MAX_RPC_BODY`].
//! Nothing here owns a stream or a timer: the caller feeds bytes and enforces the read deadline.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ProtoError;
use crate::msg::{
    Auth, AuthResp, Bind, BindResp, CommandResp, PatchTunnelState, PatchTunnelStateResp, Restart,
    SrvInfo, SrvInfoResp, StartTunnelWithLabel, StartTunnelWithLabelResp, Stop, StopTunnel, Unbind,
    UnbindResp, Update,
};
use crate::stream_type;

/// Largest RPC body [`RpcReader`] buffers by default: 64 KiB. An `Auth` is under 1 KiB; a `Bind`
/// carrying a traffic policy and certificates is a few KiB.
pub const MAX_RPC_BODY: usize = 64 * 1024;

/// Deepest nesting of objects/arrays [`RpcReader`] accepts. Real bodies nest at most 4 levels
/// (`Bind.Opts.BasicAuth.credentials[]`); the bound keeps the parser's recursion small.
pub const MAX_RPC_DEPTH: usize = 32;

/// A response to an RPC or command: it can carry, and be built from, an `Error` text.
pub trait RpcResponse: Serialize + DeserializeOwned {
    /// A response that refuses the request with `error` (see [`crate::encode_error`]).
    fn failure(error: String) -> Self;
    /// The `Error` text, if non-empty.
    fn error(&self) -> Option<&str>;
}

/// An agent → edge request, bound to its stream type and response.
pub trait Rpc: Serialize + DeserializeOwned {
    /// The stream type the agent opens for this request.
    const STREAM_TYPE: u32;
    /// What the edge writes back (followed by FIN).
    type Response: RpcResponse;
}

/// An edge → agent command, bound to its stream type and reply.
pub trait Command: Serialize + DeserializeOwned {
    /// The stream type the edge opens for this command.
    const STREAM_TYPE: u32;
    /// Whether the agent writes a reply before its FIN.
    const EXPECTS_REPLY: bool;
    /// What the agent writes back; [`NoReply`] when it writes nothing.
    type Response: Serialize + DeserializeOwned;
}

/// The response type of a command the agent does not answer ([`StopTunnel`]). It has no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoReply {}

macro_rules! error_response {
    ($($ty:ty),* $(,)?) => {$(
        impl RpcResponse for $ty {
            // Some responses have no field but `error`; the update is for the others.
            #[allow(clippy::needless_update)]
            fn failure(error: String) -> Self {
                Self { error, ..Default::default() }
            }
            fn error(&self) -> Option<&str> {
                Some(self.error.as_str()).filter(|e| !e.is_empty())
            }
        }
    )*};
}
error_response!(
    AuthResp,
    BindResp,
    UnbindResp,
    StartTunnelWithLabelResp,
    SrvInfoResp,
    PatchTunnelStateResp,
    CommandResp,
);

macro_rules! rpc {
    ($($req:ty => $resp:ty, $st:expr;)*) => {$(
        impl Rpc for $req {
            const STREAM_TYPE: u32 = $st;
            type Response = $resp;
        }
    )*};
}
rpc! {
    Auth => AuthResp, stream_type::AUTH;
    Bind => BindResp, stream_type::BIND;
    Unbind => UnbindResp, stream_type::UNBIND;
    StartTunnelWithLabel => StartTunnelWithLabelResp, stream_type::START_TUNNEL_WITH_LABEL;
    SrvInfo => SrvInfoResp, stream_type::SRV_INFO;
    PatchTunnelState => PatchTunnelStateResp, stream_type::PATCH_TUNNEL_STATE;
}

macro_rules! command {
    ($($req:ty => $resp:ty, $st:expr, $reply:expr;)*) => {$(
        impl Command for $req {
            const STREAM_TYPE: u32 = $st;
            const EXPECTS_REPLY: bool = $reply;
            type Response = $resp;
        }
    )*};
}
command! {
    Restart => CommandResp, stream_type::RESTART, true;
    Stop => CommandResp, stream_type::STOP, true;
    Update => CommandResp, stream_type::UPDATE, true;
    StopTunnel => NoReply, stream_type::STOP_TUNNEL, false;
}

// ---------------------------------------------------------------------------------------------
// RpcReader
// ---------------------------------------------------------------------------------------------

/// Where the scanner is in the JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Before the opening `{` (only whitespace seen).
    Start,
    /// Inside the object, outside any string.
    Structure,
    /// Inside a string.
    Str,
    /// Right after a backslash in a string.
    Escape,
    /// Inside `\uXXXX`, with this many hex digits still to come.
    Unicode(u8),
    /// The top-level object has closed.
    Done,
}

/// Incremental reader for one RPC body: a single JSON object with no length prefix, no newline
/// and no FIN, split across any number of frames.
///
/// Feed each frame's payload to [`push`](Self::push) (or [`push_as`](Self::push_as)); it returns
/// `Ok(None)` until the top-level object closes, then the parsed value, once. A small scanner
/// tracks strings and nesting, so each byte is looked at once and the full parse runs once:
/// linear even when the body arrives one byte per frame. Obvious garbage (a byte that can never
/// appear outside a string, a mismatched bracket) is rejected at once; anything subtler is caught
/// by the final parse. Trailing whitespace (Go's newline) is accepted, any other trailing byte is
/// [`ProtoError::TrailingData`]. After any error the reader is spent: drop it with the stream.
#[derive(Debug, Clone)]
pub struct RpcReader {
    /// Bytes of the body so far, up to and including the closing `}`.
    buf: Vec<u8>,
    /// Maximum length of `buf`.
    limit: usize,
    /// Scanner state.
    lex: Lex,
    /// Closing bytes (`}` / `]`) expected, innermost last; its length is the nesting depth.
    closers: Vec<u8>,
}

impl Default for RpcReader {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcReader {
    /// A reader bounded by [`MAX_RPC_BODY`].
    pub fn new() -> Self {
        Self::with_limit(MAX_RPC_BODY)
    }

    /// A reader bounded by `limit` bytes (leading whitespace included).
    pub fn with_limit(limit: usize) -> Self {
        RpcReader {
            buf: Vec::new(),
            limit,
            lex: Lex::Start,
            closers: Vec::new(),
        }
    }

    /// Bytes buffered so far.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the complete object has been seen (and returned).
    pub fn is_complete(&self) -> bool {
        self.lex == Lex::Done
    }

    /// Feeds bytes; returns the body as a JSON object once it is complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<serde_json::Value>, ProtoError> {
        self.push_as(bytes)
    }

    /// Feeds bytes; returns the body deserialized as `T` once it is complete.
    ///
    /// After the value has been returned, further whitespace is ignored (`Ok(None)`) and anything
    /// else is [`ProtoError::TrailingData`].
    pub fn push_as<T: DeserializeOwned>(&mut self, bytes: &[u8]) -> Result<Option<T>, ProtoError> {
        if self.lex == Lex::Done {
            return trailing(bytes).map(|()| None);
        }
        let room = self.limit.saturating_sub(self.buf.len());
        let window = &bytes[..bytes.len().min(room)];
        let start = self.buf.len();
        match self.scan(window, start)? {
            Some(end) => {
                self.buf.extend_from_slice(&window[..=end]);
                trailing(&bytes[end + 1..])?;
                Ok(Some(serde_json::from_slice(&self.buf)?))
            }
            None if window.len() < bytes.len() => Err(ProtoError::TooLarge { limit: self.limit }),
            None => {
                self.buf.extend_from_slice(window);
                Ok(None)
            }
        }
    }

    /// Runs the scanner over `bytes` (which start at body offset `base`); returns the index in
    /// `bytes` of the byte that closed the top-level object, if it is there.
    fn scan(&mut self, bytes: &[u8], base: usize) -> Result<Option<usize>, ProtoError> {
        for (i, &b) in bytes.iter().enumerate() {
            let syntax = || ProtoError::Syntax { offset: base + i };
            self.lex = match self.lex {
                Lex::Start if is_ws(b) => Lex::Start,
                Lex::Start if b == b'{' => {
                    self.closers.push(b'}');
                    Lex::Structure
                }
                Lex::Start => return Err(ProtoError::NotAnObject),
                Lex::Structure => match b {
                    b'"' => Lex::Str,
                    b'{' | b'[' => {
                        if self.closers.len() >= MAX_RPC_DEPTH {
                            return Err(ProtoError::TooDeep {
                                limit: MAX_RPC_DEPTH,
                            });
                        }
                        self.closers.push(if b == b'{' { b'}' } else { b']' });
                        Lex::Structure
                    }
                    b'}' | b']' => {
                        if self.closers.pop() != Some(b) {
                            return Err(syntax());
                        }
                        if self.closers.is_empty() {
                            self.lex = Lex::Done;
                            return Ok(Some(i));
                        }
                        Lex::Structure
                    }
                    b',' | b':' | b'-' | b'+' | b'.' | b'0'..=b'9' => Lex::Structure,
                    // Letters of true, false, null and exponents.
                    b'a' | b'e' | b'E' | b'f' | b'l' | b'n' | b'r' | b's' | b't' | b'u' => {
                        Lex::Structure
                    }
                    _ if is_ws(b) => Lex::Structure,
                    _ => return Err(syntax()),
                },
                Lex::Str => match b {
                    b'"' => Lex::Structure,
                    b'\\' => Lex::Escape,
                    0x00..=0x1F => return Err(syntax()),
                    _ => Lex::Str,
                },
                Lex::Escape => match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Lex::Str,
                    b'u' => Lex::Unicode(4),
                    _ => return Err(syntax()),
                },
                Lex::Unicode(left) if b.is_ascii_hexdigit() => match left {
                    1 => Lex::Str,
                    n => Lex::Unicode(n - 1),
                },
                Lex::Unicode(_) => return Err(syntax()),
                Lex::Done => unreachable!("scan stops at Done"),
            };
        }
        Ok(None)
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn trailing(bytes: &[u8]) -> Result<(), ProtoError> {
    if bytes.iter().all(|&b| is_ws(b)) {
        Ok(())
    } else {
        Err(ProtoError::TrailingData)
    }
}

#[cfg(test)]
mod tests;
