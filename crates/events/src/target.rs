//! Destination targets: exactly one kind per destination.
//!
//! ngrok's five kinds (`firehose`, `kinesis`, `cloudwatch_logs`, `datadog`,
//! `azure_logs_ingestion`) are validated and stored so ngrok configurations carry over, but
//! Warren does not deliver to them. Warren's own kinds are delivered: `http` (a webhook, JSON
//! batches signed with HMAC-SHA256), `file` (JSON lines with size-based rotation) and `nats`
//! (one subject per event type; JetStream when a stream captures the subject).

use serde_json::Value;

/// A parsed, validated target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One of ngrok's cloud kinds, kept as given: stored, listed, not delivered.
    Cloud { kind: &'static str, config: Value },
    /// `{"http": {"url", "secret"}}`.
    Http { url: String, secret: String },
    /// `{"file": {"path", "max_bytes"?, "max_files"?}}`.
    File {
        path: String,
        max_bytes: u64,
        max_files: u32,
    },
    /// `{"nats": {"url", "subject"}}`.
    Nats { url: String, subject: String },
}

/// Why a target is refused; `code` is the ngrok error code the API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct TargetError {
    /// `ERR_NGROK_236` (invalid target), `ERR_NGROK_240` (invalid auth) or `ERR_NGROK_5107`
    /// (neither role nor creds).
    pub code: &'static str,
    pub msg: String,
}

impl Target {
    /// Parses and validates the API's `target` object.
    pub fn parse(value: &Value) -> Result<Target, TargetError> {
        let _ = value;
        unimplemented!("events helper")
    }

    /// The `target` object as the API shows it: all five ngrok keys (unused ones `null`) plus
    /// Warren's key in use.
    pub fn to_json(&self) -> Value {
        unimplemented!("events helper")
    }

    /// Whether Warren delivers to this target.
    pub fn is_delivered(&self) -> bool {
        !matches!(self, Target::Cloud { .. })
    }
}
