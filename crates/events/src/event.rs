//! The event envelope ngrok defines (ngrok-surface.md §2.10).

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

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
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    /// `ev_…`.
    pub event_id: String,
    pub event_type: String,
    /// RFC 3339, UTC, whole seconds.
    pub event_timestamp: String,
    pub account_id: String,
    pub principal: Option<Principal>,
    /// The event's object, serialised once when the event is emitted (delivery and the live
    /// tail copy the text; nothing re-walks a JSON tree per event).
    pub object: Box<RawValue>,
}

impl Envelope {
    /// The object as a JSON value (for tests and tools; delivery never parses it).
    pub fn object_value(&self) -> Value {
        serde_json::from_str(self.object.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Envelope) -> bool {
        self.event_id == other.event_id
            && self.event_type == other.event_type
            && self.event_timestamp == other.event_timestamp
            && self.account_id == other.account_id
            && self.principal == other.principal
            && self.object.get() == other.object.get()
    }
}
