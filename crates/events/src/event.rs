//! The event envelope ngrok defines (ngrok-surface.md §2.10).

use serde::Serialize;
use serde_json::Value;

/// A reference to an API resource: `{id, uri}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ref {
    pub id: String,
    pub uri: String,
}

/// Who acted (audit events); `None` for traffic and agent events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The acting user or service user (`usr_…`/`bot_…`), empty when the API key has no owner.
    pub id: String,
    /// The user's name or email, empty when unknown.
    pub subject: String,
    /// `API`.
    pub source: String,
    /// The API key that acted.
    pub credential: Option<Ref>,
}

/// One event as delivered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// `ev_…`.
    pub event_id: String,
    pub event_type: String,
    /// RFC 3339, UTC, whole seconds.
    pub event_timestamp: String,
    pub account_id: String,
    pub principal: Option<Principal>,
    pub object: Value,
}
