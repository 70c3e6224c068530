//! The `object` of the events the data plane emits (ngrok-surface.md §2.10): agent sessions
//! starting and stopping, HTTP requests completing, TCP/TLS connections closing.
//!
//! Only builds JSON; deciding whether anything wants an event (and emitting it) is the
//! caller's job, so nothing here runs unless an event will be sent.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use time::OffsetDateTime;
use warren_events::Events;
use warren_events::timestamp::{Rfc3339, whole_seconds};

use crate::agent::AgentSession;
use crate::tunnel::Tunnel;

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
        "started_at": whole_seconds(session.started_at),
        "error": error.unwrap_or_default(),
    });
    if let (Some(at), Some(map)) = (stopped_at, object.as_object_mut()) {
        map.insert("stopped_at".into(), Value::String(whole_seconds(at)));
    }
    object
}

// Traffic events are built per request or connection while traffic flows, so their objects
// are plain structs serialised straight into the event's JSON text: no JSON tree, no
// intermediate strings for addresses and timestamps.

/// The `endpoint` reference of a traffic event.
#[derive(Serialize)]
struct EndpointRef<'a> {
    id: String,
    url: &'a str,
}

impl<'a> EndpointRef<'a> {
    fn of(tunnel: &'a Tunnel) -> EndpointRef<'a> {
        EndpointRef {
            id: tunnel.endpoint_id(),
            url: &tunnel.url,
        }
    }
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

/// The `conn` object; the end fields only in `tcp_connection_closed.v0`.
#[derive(Serialize)]
struct ConnObject<'a> {
    client_ip: IpAddr,
    server_ip: IpAddr,
    server_name: &'a str,
    server_port: u16,
    start_ts: Rfc3339,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_ts: Option<Rfc3339>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_out: Option<u64>,
}

impl ConnInfo {
    fn object(&self) -> ConnObject<'_> {
        ConnObject {
            client_ip: self.client.ip().to_canonical(),
            server_ip: self.server.ip().to_canonical(),
            server_name: &self.server_name,
            server_port: self.server.port(),
            start_ts: Rfc3339(self.start),
            end_ts: None,
            bytes_in: None,
            bytes_out: None,
        }
    }
}

/// The object of `tcp_connection_closed.v0`.
#[derive(Serialize)]
pub(crate) struct TcpConnectionClosed<'a> {
    conn: ConnObject<'a>,
    endpoint: EndpointRef<'a>,
}

/// `tcp_connection_closed.v0`.
pub(crate) fn tcp_connection_closed<'a>(
    tunnel: &'a Tunnel,
    conn: &'a ConnInfo,
    end: OffsetDateTime,
    bytes_in: u64,
    bytes_out: u64,
) -> TcpConnectionClosed<'a> {
    TcpConnectionClosed {
        conn: ConnObject {
            end_ts: Some(Rfc3339(end)),
            bytes_in: Some(bytes_in),
            bytes_out: Some(bytes_out),
            ..conn.object()
        },
        endpoint: EndpointRef::of(tunnel),
    }
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
    /// Header names (capitalized) with their values (lowercased), sorted by name, a
    /// repeated header's values in arrival order.
    pub(crate) headers: Vec<(String, String)>,
}

impl HttpRequestInfo {
    /// Captures what the event needs from a request head.
    pub(crate) fn capture(
        head: &http::request::Parts,
        scheme: &'static str,
        host: &str,
    ) -> HttpRequestInfo {
        let mut headers: Vec<(String, String)> = head
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    capitalize(name.as_str()),
                    String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase(),
                )
            })
            .collect();
        // Stable: values of one name keep their order.
        headers.sort_by(|a, b| a.0.cmp(&b.0));
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

/// Sorted `(name, value)` pairs as ngrok shows headers: `{"Name": ["value", …], …}`.
struct Headers<'a>(&'a [(String, String)]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for group in self.0.chunk_by(|a, b| a.0 == b.0) {
            map.serialize_entry(&group[0].0, &HeaderValues(group))?;
        }
        map.end()
    }
}

/// The values of one header name.
struct HeaderValues<'a>(&'a [(String, String)]);

impl Serialize for HeaderValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(_, value)| value))
    }
}

/// `path?query`, or `path` when there is no query.
struct RawUrl<'a> {
    path: &'a str,
    query: &'a str,
}

impl fmt::Display for RawUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path)?;
        if !self.query.is_empty() {
            f.write_str("?")?;
            f.write_str(self.query)?;
        }
        Ok(())
    }
}

impl Serialize for RawUrl<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The response half of `http_request_complete.v0`.
#[derive(Debug, Serialize)]
pub(crate) struct HttpResponseInfo {
    #[serde(rename = "status_code")]
    pub(crate) status: u16,
    pub(crate) body_length: u64,
    #[serde(rename = "first_byte_ts", serialize_with = "timestamp")]
    pub(crate) first_byte: OffsetDateTime,
    #[serde(rename = "last_byte_ts", serialize_with = "timestamp")]
    pub(crate) last_byte: OffsetDateTime,
}

fn timestamp<S: Serializer>(t: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    Rfc3339(*t).serialize(serializer)
}

/// The object of `http_request_complete.v0`.
#[derive(Serialize)]
pub(crate) struct HttpRequestComplete<'a> {
    conn: ConnObject<'a>,
    http: HttpObject<'a>,
    endpoint: EndpointRef<'a>,
}

#[derive(Serialize)]
struct HttpObject<'a> {
    request: RequestObject<'a>,
    response: &'a HttpResponseInfo,
}

#[derive(Serialize)]
struct RequestObject<'a> {
    method: &'a str,
    url: UrlObject<'a>,
    user_agent: &'a str,
    body_length: u64,
    version: &'a str,
    headers: Headers<'a>,
}

#[derive(Serialize)]
struct UrlObject<'a> {
    host: &'a str,
    path: &'a str,
    query: &'a str,
    raw: RawUrl<'a>,
    scheme: &'a str,
}

/// `http_request_complete.v0`.
pub(crate) fn http_request_complete<'a>(
    tunnel: &'a Tunnel,
    conn: &'a ConnInfo,
    request: &'a HttpRequestInfo,
    request_body_length: u64,
    response: &'a HttpResponseInfo,
) -> HttpRequestComplete<'a> {
    HttpRequestComplete {
        conn: conn.object(),
        http: HttpObject {
            request: RequestObject {
                method: &request.method,
                url: UrlObject {
                    host: &request.host,
                    path: &request.path,
                    query: &request.query,
                    raw: RawUrl {
                        path: &request.path,
                        query: &request.query,
                    },
                    scheme: request.scheme,
                },
                user_agent: &request.user_agent,
                body_length: request_body_length,
                version: request.version,
                headers: Headers(&request.headers),
            },
            response,
        },
        endpoint: EndpointRef::of(tunnel),
    }
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
    fn header_names_are_capitalized() {
        assert_eq!(capitalize("content-type"), "Content-Type");
        assert_eq!(capitalize("x-forwarded-for"), "X-Forwarded-For");
    }

    #[test]
    fn headers_group_repeated_names_in_order() {
        let pairs: Vec<(String, String)> = [("Accept", "a"), ("Via", "1"), ("Via", "2")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            serde_json::to_value(Headers(&pairs)).unwrap(),
            json!({"Accept": ["a"], "Via": ["1", "2"]})
        );
        assert_eq!(serde_json::to_string(&Headers(&[])).unwrap(), "{}");
    }
}
