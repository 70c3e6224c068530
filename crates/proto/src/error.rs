//! [`ProtoError`]: what can go wrong while decoding agent input in this crate.
//!
//! Every variant is the agent's fault (malformed or unsupported input); none is worth a retry with
//! the same bytes. [`ProtoError::code`] picks the `ERR_NGROK_` code to put on the wire.

use crate::err_code::ErrCode;

/// An error decoding or validating protocol input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The RPC body grew past its limit before the JSON value was complete.
    #[error("RPC body exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was hit.
        limit: usize,
    },
    /// The RPC body nests objects/arrays deeper than allowed.
    #[error("RPC body nests deeper than {limit} levels")]
    TooDeep {
        /// The limit that was hit.
        limit: usize,
    },
    /// The RPC body does not start with `{`.
    #[error("RPC body is not a JSON object")]
    NotAnObject,
    /// A byte that cannot appear at this position of a JSON document.
    #[error("invalid JSON at byte {offset}")]
    Syntax {
        /// Offset of the offending byte from the start of the body.
        offset: usize,
    },
    /// Non-whitespace bytes after the complete RPC body.
    #[error("unexpected data after the RPC body")]
    TrailingData,
    /// The body is not valid JSON, or not the expected message shape.
    #[error("invalid message: {0}")]
    Json(#[from] serde_json::Error),
    /// `Bind.Opts` does not fit the endpoint protocol (bad field type, bad base64, bad ProxyProto).
    #[error("invalid bind options: {0}")]
    InvalidOpts(#[source] serde_json::Error),
    /// `Opts.URL` (or `Opts.Addr`) could not be understood.
    #[error("invalid endpoint URL {url:?}: {reason}")]
    InvalidUrl {
        /// The text as sent.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `Bind.Proto` the edge does not serve.
    #[error("unsupported endpoint protocol {0:?}")]
    UnsupportedProto(String),
    /// A proxy header length prefix that is negative or larger than
    /// [`crate::msg::MAX_PROXY_HEADER`].
    #[error("proxy header length {0} out of range")]
    ProxyHeaderLength(i64),
}

impl ProtoError {
    /// The code to send to the agent with this error (see [`crate::encode_error`]).
    pub fn code(&self) -> ErrCode {
        match self {
            ProtoError::InvalidOpts(_) | ProtoError::InvalidUrl { .. } => {
                ErrCode::INVALID_BIND_OPTS
            }
            ProtoError::UnsupportedProto(_) => ErrCode::UNSUPPORTED_PROTO,
            ProtoError::TooLarge { .. }
            | ProtoError::TooDeep { .. }
            | ProtoError::NotAnObject
            | ProtoError::Syntax { .. }
            | ProtoError::TrailingData
            | ProtoError::Json(_)
            | ProtoError::ProxyHeaderLength(_) => ErrCode::MALFORMED_REQUEST,
        }
    }
}
