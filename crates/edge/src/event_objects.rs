//! The `object` of the events the data plane emits (ngrok-surface.md §2.10): agent sessions
//! starting and stopping, HTTP requests completing, TCP/TLS connections closing.
//!
//! Only builds JSON; deciding whether anything wants an event (and emitting it) is the
//! caller's job, so nothing here runs unless an event will be sent.

use std::net::SocketAddr;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warren_events::Events;

use crate::agent::AgentSession;
use crate::tunnel::Tunnel;

/// RFC 3339, UTC, whole seconds (as the API writes session times).
pub(crate) fn rfc3339_seconds(t: OffsetDateTime) -> String {
    rfc3339(t.replace_nanosecond(0).unwrap_or(t))
}

/// RFC 3339, UTC, with fractional seconds when there are any (traffic timestamps).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// An IP address as events show it (IPv4-mapped IPv6 as plain IPv4).
fn ip(addr: SocketAddr) -> String {
    addr.ip().to_canonical().to_string()
}

/// `agent_session_start.v0` (`stopped` is `None`) or `agent_session_stop.v0` (`stopped` is
/// when, `error` why).
pub(crate) fn agent_session(
    events: &Events,
    session: &AgentSession,
    stopped_at: Option<OffsetDateTime>,
    error: Option<&str>,
) -> Value {
    let mut object = json!({
        "session": {
            "id": session.id,
            "uri": events.uri(&format!("/tunnel_sessions/{}", session.id)),
        },
        "credential": {
            "id": session.credential_id,
            "uri": events.uri(&format!("/credentials/{}", session.credential_id)),
        },
        "agent_ip": ip(session.remote_addr),
        "ingress_server_ip": ip(session.ingress_addr),
        "region": crate::REGION,
        "ingress_hostname": session.ingress_hostname,
        "user_agent": session.info.user_agent,
        "metadata": session.info.metadata,
        "os": session.info.os,
        "arch": session.info.arch,
        "transport": "muxado",
        "started_at": rfc3339_seconds(session.started_at),
        "error": error.unwrap_or_default(),
    });
    if let (Some(at), Some(map)) = (stopped_at, object.as_object_mut()) {
        map.insert("stopped_at".into(), Value::String(rfc3339_seconds(at)));
    }
    object
}

/// The `endpoint` reference of a traffic event.
fn endpoint(tunnel: &Tunnel) -> Value {
    json!({"id": tunnel.endpoint_id(), "url": tunnel.url})
}

/// What is known about a visitor connection when it starts.
#[derive(Clone, Debug)]
pub(crate) struct ConnInfo {
    pub(crate) client: SocketAddr,
    pub(crate) server: SocketAddr,
    /// The Host (HTTP) or SNI (TLS); empty for TCP.
    pub(crate) server_name: String,
    pub(crate) start: OffsetDateTime,
}

impl ConnInfo {
    fn to_json(&self) -> Map<String, Value> {
        let mut conn = Map::new();
        conn.insert("client_ip".into(), ip(self.client).into());
        conn.insert("server_ip".into(), ip(self.server).into());
        conn.insert("server_name".into(), self.server_name.clone().into());
        conn.insert("server_port".into(), self.server.port().into());
        conn.insert("start_ts".into(), rfc3339(self.start).into());
        conn
    }
}

/// `tcp_connection_closed.v0`.
pub(crate) fn tcp_connection_closed(
    tunnel: &Tunnel,
    conn: &ConnInfo,
    end: OffsetDateTime,
    bytes_in: u64,
    bytes_out: u64,
) -> Value {
    let mut c = conn.to_json();
    c.insert("end_ts".into(), rfc3339(end).into());
    c.insert("bytes_in".into(), bytes_in.into());
    c.insert("bytes_out".into(), bytes_out.into());
    json!({"conn": c, "endpoint": endpoint(tunnel)})
}

/// The request half of `http_request_complete.v0`, captured before the request is forwarded.
#[derive(Debug)]
pub(crate) struct HttpRequestInfo {
    pub(crate) method: String,
    pub(crate) scheme: &'static str,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) user_agent: String,
    pub(crate) version: &'static str,
    /// Header names (capitalized) to their values (lowercased), as ngrok shows them.
    pub(crate) headers: Map<String, Value>,
}

impl HttpRequestInfo {
    /// Captures what the event needs from a request head.
    pub(crate) fn capture(
        head: &http::request::Parts,
        scheme: &'static str,
        host: &str,
    ) -> HttpRequestInfo {
        let mut headers = Map::new();
        for (name, value) in &head.headers {
            let key = capitalize(name.as_str());
            let value = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
            match headers.get_mut(&key) {
                Some(Value::Array(values)) => values.push(Value::String(value)),
                _ => {
                    headers.insert(key, Value::Array(vec![Value::String(value)]));
                }
            }
        }
        HttpRequestInfo {
            method: head.method.as_str().to_ascii_lowercase(),
            scheme,
            host: host.to_owned(),
            path: head.uri.path().to_owned(),
            query: head.uri.query().unwrap_or_default().to_owned(),
            user_agent: head
                .headers
                .get(http::header::USER_AGENT)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
            version: version(head.version),
            headers,
        }
    }
}

/// The response half of `http_request_complete.v0`.
#[derive(Debug)]
pub(crate) struct HttpResponseInfo {
    pub(crate) status: u16,
    pub(crate) body_length: u64,
    pub(crate) first_byte: OffsetDateTime,
    pub(crate) last_byte: OffsetDateTime,
}

/// `http_request_complete.v0`.
pub(crate) fn http_request_complete(
    tunnel: &Tunnel,
    conn: &ConnInfo,
    request: &HttpRequestInfo,
    request_body_length: u64,
    response: &HttpResponseInfo,
) -> Value {
    let raw = if request.query.is_empty() {
        request.path.clone()
    } else {
        format!("{}?{}", request.path, request.query)
    };
    json!({
        "conn": conn.to_json(),
        "http": {
            "request": {
                "method": request.method,
                "url": {
                    "host": request.host,
                    "path": request.path,
                    "query": request.query,
                    "raw": raw,
                    "scheme": request.scheme,
                },
                "user_agent": request.user_agent,
                "body_length": request_body_length,
                "version": request.version,
                "headers": request.headers,
            },
            "response": {
                "status_code": response.status,
                "body_length": response.body_length,
                "first_byte_ts": rfc3339(response.first_byte),
                "last_byte_ts": rfc3339(response.last_byte),
            },
        },
        "endpoint": endpoint(tunnel),
    })
}

/// `content-type` → `Content-Type`.
fn capitalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-';
    }
    out
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_capitalized_and_times_are_rfc3339() {
        assert_eq!(capitalize("content-type"), "Content-Type");
        assert_eq!(capitalize("x-forwarded-for"), "X-Forwarded-For");
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_250_000_000).unwrap();
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.25Z");
        assert_eq!(rfc3339_seconds(t), "2023-11-14T22:13:20Z");
    }
}
