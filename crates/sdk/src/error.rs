//! The SDK's error types. Each says whose fault a failure is and whether retrying can help:
//! [`ConnectError::is_fatal`] is what the reconnect loop asks before giving up.

use std::io;

use warren_proto::ErrCode;

/// An error text from the edge split into message and `ERR_NGROK_…` code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeError {
    /// The human message.
    pub message: String,
    /// The code (`ERR_NGROK_316`), when the edge sent one.
    pub code: Option<String>,
}

impl EdgeError {
    /// Splits an `Error` text the way the official SDKs do.
    pub fn parse(text: &str) -> EdgeError {
        let (message, code) = warren_proto::parse_error(text);
        EdgeError {
            message,
            code: code.map(|c| c.to_string()),
        }
    }

    /// Whether the code is `code`.
    pub fn is(&self, code: ErrCode) -> bool {
        self.code.as_deref() == Some(code.to_string().as_str())
    }
}

impl std::fmt::Display for EdgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} ({code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why connecting to the edge failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The builder was given something unusable (server address, CA file).
    #[error("invalid session configuration: {0}")]
    Config(String),
    /// TCP connect failed.
    #[error("cannot reach the edge at {addr}: {source}")]
    Dial {
        /// The address dialed.
        addr: String,
        /// The error.
        source: io::Error,
    },
    /// The TLS handshake failed (wrong CA, wrong name, not a Warren edge).
    #[error("TLS handshake with the edge failed: {0}")]
    Tls(io::Error),
    /// Dial, TLS and authentication together took longer than the connect timeout.
    #[error("connecting to the edge timed out")]
    Timeout,
    /// The session broke during the handshake.
    #[error("session failed during connect: {0}")]
    Session(String),
    /// The edge refused authentication.
    #[error("authentication failed: {0}")]
    Auth(EdgeError),
    /// The session was closed by the application.
    #[error("the session was closed")]
    Closed,
}

/// Auth refusals that no retry can fix: the credential itself is bad.
const FATAL_AUTH_CODES: [ErrCode; 4] = [
    ErrCode::AUTHTOKEN_MALFORMED,
    ErrCode::AUTHTOKEN_INVALID,
    ErrCode::CREDENTIAL_REVOKED,
    ErrCode(4018), // authtoken missing
];

impl ConnectError {
    /// The `ERR_NGROK_…` code, when the edge gave one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            ConnectError::Auth(e) => e.code.as_deref(),
            _ => None,
        }
    }

    /// Whether retrying cannot help: the edge said the credential is invalid, or the
    /// configuration is unusable.
    pub fn is_fatal(&self) -> bool {
        match self {
            ConnectError::Config(_) | ConnectError::Closed => true,
            ConnectError::Auth(e) => FATAL_AUTH_CODES.iter().any(|c| e.is(*c)),
            _ => false,
        }
    }
}

/// Why an endpoint could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ListenError {
    /// The endpoint definition is unusable (bad URL, bad option).
    #[error("invalid endpoint: {0}")]
    Invalid(String),
    /// The edge refused the bind (ACL, name taken, not reserved…).
    #[error("the edge refused the endpoint: {0}")]
    Edge(EdgeError),
    /// The session is closed for good.
    #[error("the session is closed: {0}")]
    SessionClosed(String),
}

impl ListenError {
    /// The `ERR_NGROK_…` code, when the edge gave one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            ListenError::Edge(e) => e.code.as_deref(),
            _ => None,
        }
    }
}

/// Why a listener stopped yielding connections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenerClosed {
    /// The application closed it.
    #[error("the listener was closed")]
    Local,
    /// The edge stopped the endpoint (StopTunnel), or refused it on a rebind.
    #[error("the edge stopped the endpoint: {0}")]
    Edge(EdgeError),
    /// The session is closed for good.
    #[error("the session is closed: {0}")]
    SessionClosed(String),
}
