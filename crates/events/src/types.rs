//! The event types Warren emits, by their ngrok names (`<name>.v<version>`).

/// An agent session authenticated.
pub const AGENT_SESSION_START: &str = "agent_session_start.v0";
/// An agent session ended; `object.error` says why.
pub const AGENT_SESSION_STOP: &str = "agent_session_stop.v0";
/// An HTTP request through an endpoint completed.
pub const HTTP_REQUEST_COMPLETE: &str = "http_request_complete.v0";
/// A TCP or TLS connection through an endpoint closed.
pub const TCP_CONNECTION_CLOSED: &str = "tcp_connection_closed.v0";

/// The resources whose changes are audit events, by event-name stem (`<stem>_created.v0`,
/// `_updated.v0`, `_deleted.v0`). `service_user` is Warren's addition.
pub const AUDIT_STEMS: &[&str] = &[
    "api_key",
    "tunnel_credential",
    "event_destination",
    "event_subscription",
    "ip_policy",
    "ip_policy_rule",
    "ip_restriction",
    "tcp_address",
    "domain",
    "service_user",
];

/// Traffic events: high volume, dropped rather than stall the data plane.
pub fn is_traffic(ty: &str) -> bool {
    ty == HTTP_REQUEST_COMPLETE || ty == TCP_CONNECTION_CLOSED
}

/// Whether `ty` is an event type a subscription may name.
pub fn is_known(ty: &str) -> bool {
    if matches!(
        ty,
        AGENT_SESSION_START | AGENT_SESSION_STOP | HTTP_REQUEST_COMPLETE | TCP_CONNECTION_CLOSED
    ) {
        return true;
    }
    let Some(name) = ty.strip_suffix(".v0") else {
        return false;
    };
    ["_created", "_updated", "_deleted"].iter().any(|action| {
        name.strip_suffix(action)
            .is_some_and(|stem| AUDIT_STEMS.contains(&stem))
    })
}

/// Every type a subscription may name.
pub fn all() -> Vec<String> {
    let mut all: Vec<String> = [
        AGENT_SESSION_START,
        AGENT_SESSION_STOP,
        HTTP_REQUEST_COMPLETE,
        TCP_CONNECTION_CLOSED,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for stem in AUDIT_STEMS {
        for action in ["created", "updated", "deleted"] {
            all.push(format!("{stem}_{action}.v0"));
        }
    }
    all
}

/// The audit event type for `action` (`created`, `updated`, `deleted`) on `stem`, as a static
/// string (types are a closed set, so each is interned once).
pub fn audit(stem: &str, action: &str) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let name = format!("{stem}_{action}.v0");
    debug_assert!(is_known(&name), "unknown audit type {name}");
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .expect("names lock");
    if let Some(s) = names.get(&name) {
        return s;
    }
    let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
    names.insert(name, leaked);
    leaked
}
