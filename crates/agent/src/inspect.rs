//! Request inspection: the HTTP forwarder that captures each exchange of an HTTP endpoint into a
//! bounded in-memory ring, and replay of a captured request.
//!
//! # Layout
//! - This file: the ring ([`Inspector`]) and what it holds ([`Capture`] and its parts), with the
//!   ngrok-shaped JSON the local API serves ([`Capture::to_json`]).
//! - `forward.rs`: [`serve_http`], one visitor connection served with hyper and forwarded to the
//!   upstream request by request, each exchange captured while its bodies stream; and
//!   [`replay`].
//!
//! The ring is bounded by bytes ([`Inspector::new`]) and by count ([`MAX_CAPTURES`]); each body
//! keeps at most [`MAX_CAPTURED_BODY`] bytes, so a capture never buffers a whole body. This
//! module must not decide which endpoints are inspected (the supervisor does, by passing an
//! [`Inspector`] or not) and must not speak to controllers (the local API reads the ring).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::watch;

mod forward;

pub use forward::{
    HEADER_READ_TIMEOUT, HttpForward, PROXY_HEADER_TIMEOUT, REPLAY_TIMEOUT, ReplayError,
    UPSTREAM_UNREACHABLE, replay, serve_http,
};

/// Default size of the capture ring (`inspect_db_size: 0` or unset).
pub const DEFAULT_CAPTURE_BYTES: usize = 10 * 1024 * 1024;

/// Most captures the ring holds, whatever their size.
pub const MAX_CAPTURES: usize = 10_000;

/// Most bytes of each body (request and response) a capture keeps; the rest streams through
/// uncaptured and the body is marked truncated.
pub const MAX_CAPTURED_BODY: usize = 64 * 1024;

/// Bytes a capture is charged beyond its raw request and response, for its fixed fields.
const CAPTURE_OVERHEAD: usize = 512;

/// The capture ring shared by every inspected endpoint of an agent.
///
/// Captures are kept oldest first and evicted oldest first when either bound is hit. Ids are 16
/// hex digits, like ngrok's (`548fb5c700000002`): a random prefix per ring, then a counter.
#[derive(Debug)]
pub struct Inspector {
    /// A handle on itself, so exchanges that outlive a borrow (replay) can record into it.
    me: Weak<Inspector>,
    /// Most bytes the ring holds (sum of [`Capture::size`]).
    max_bytes: usize,
    /// Most captures the ring holds.
    max_count: usize,
    /// The random first half of every id.
    id_prefix: u32,
    /// The counter behind the second half of ids; the next one hands out this value plus one.
    next_id: AtomicU32,
    /// The captures, oldest first, and their total size.
    ring: Mutex<Ring>,
    /// How many exchanges have been recorded so far (kept or not), for watchers.
    recorded: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Ring {
    captures: VecDeque<Arc<Capture>>,
    bytes: usize,
}

impl Inspector {
    /// A ring holding at most `max_bytes` of captures and at most [`MAX_CAPTURES`] of them.
    pub fn new(max_bytes: usize) -> Arc<Inspector> {
        Inspector::with_limits(max_bytes, MAX_CAPTURES)
    }

    /// A ring with both bounds chosen by the caller (tests, small devices).
    pub fn with_limits(max_bytes: usize, max_count: usize) -> Arc<Inspector> {
        Arc::new_cyclic(|me| Inspector {
            me: me.clone(),
            max_bytes,
            max_count,
            id_prefix: rand::random(),
            next_id: AtomicU32::new(0),
            ring: Mutex::new(Ring::default()),
            recorded: watch::Sender::new(0),
        })
    }

    /// The most recent captures first, at most `limit`, only those of `tunnel_name` when given.
    pub fn list(&self, limit: usize, tunnel_name: Option<&str>) -> Vec<Arc<Capture>> {
        let ring = self.lock();
        ring.captures
            .iter()
            .rev()
            .filter(|c| tunnel_name.is_none_or(|name| c.tunnel_name == name))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The `n` most recent captures, newest first (the status view).
    pub fn recent(&self, n: usize) -> Vec<Arc<Capture>> {
        self.list(n, None)
    }

    /// One capture by id.
    pub fn get(&self, id: &str) -> Option<Arc<Capture>> {
        let ring = self.lock();
        ring.captures.iter().rev().find(|c| c.id == id).cloned()
    }

    /// Forgets every capture.
    pub fn clear(&self) {
        let mut ring = self.lock();
        ring.captures.clear();
        ring.bytes = 0;
    }

    /// How many captures the ring holds.
    pub fn len(&self) -> usize {
        self.lock().captures.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held (sum of [`Capture::size`]).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The number of exchanges recorded so far (kept or not); it changes after each one, so a
    /// status view can redraw and a test can wait for a capture.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    /// A fresh id.
    fn next_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        format!("{:08x}{n:08x}", self.id_prefix)
    }

    /// Adds a capture, evicting the oldest ones past either bound. A capture larger than the
    /// whole ring is not kept.
    fn push(&self, capture: Capture) {
        self.store(capture);
        self.recorded.send_modify(|n| *n += 1);
    }

    fn store(&self, capture: Capture) {
        let size = capture.size();
        if size > self.max_bytes || self.max_count == 0 {
            tracing::debug!(id = %capture.id, size, "capture larger than the ring, not kept");
            return;
        }
        let mut ring = self.lock();
        ring.bytes += size;
        ring.captures.push_back(Arc::new(capture));
        while ring.bytes > self.max_bytes || ring.captures.len() > self.max_count {
            match ring.captures.pop_front() {
                Some(old) => ring.bytes = ring.bytes.saturating_sub(old.size()),
                None => {
                    ring.bytes = 0;
                    break;
                }
            }
        }
    }

    /// The owning handle (always there while `&self` is: rings are only built in an `Arc`).
    fn handle(&self) -> Option<Arc<Inspector>> {
        self.me.upgrade()
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic elsewhere while holding the lock leaves the ring consistent enough to read.
        self.ring
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One captured HTTP exchange.
#[derive(Debug, Clone)]
pub struct Capture {
    /// 16 hex digits, unique within the ring.
    pub id: String,
    /// The endpoint (tunnel) name the request arrived on.
    pub tunnel_name: String,
    /// The visitor's address as the edge reported it.
    pub remote_addr: SocketAddr,
    /// When the request arrived.
    pub start: SystemTime,
    /// From the request's arrival to the end of the response body (or the failure).
    pub duration: Duration,
    /// The request as the visitor sent it.
    pub request: CapturedRequest,
    /// The response the visitor got; `None` when the exchange ended before any response.
    pub response: Option<CapturedResponse>,
}

/// The request half of a [`Capture`].
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// `GET`, `POST`, …
    pub method: http::Method,
    /// The request target as received: path and query (`/a?b=1`), or the whole URI when it has
    /// no path (authority form).
    pub uri: String,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub proto: &'static str,
    /// The headers in arrival order (grouped by name).
    pub headers: HeaderMap,
    /// The body, or its first [`MAX_CAPTURED_BODY`] bytes.
    pub body: CapturedBody,
    /// Request line, headers and captured body, as HTTP/1.1 text.
    pub raw: Bytes,
}

/// The response half of a [`Capture`].
#[derive(Debug, Clone)]
pub struct CapturedResponse {
    /// `200`.
    pub status_code: u16,
    /// `200 OK`.
    pub status: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub proto: &'static str,
    /// The headers in arrival order (grouped by name).
    pub headers: HeaderMap,
    /// The body, or its first [`MAX_CAPTURED_BODY`] bytes.
    pub body: CapturedBody,
    /// Status line, headers and captured body, as HTTP/1.1 text.
    pub raw: Bytes,
}

/// A captured body.
#[derive(Debug, Clone, Default)]
pub struct CapturedBody {
    /// The captured bytes (a view into the exchange's `raw`).
    pub data: Bytes,
    /// Bytes that went through, captured or not.
    pub len: u64,
    /// Whether `data` stops short of `len` because of [`MAX_CAPTURED_BODY`].
    pub truncated: bool,
    /// Whether the body reached its end (not cut by an error or a dropped connection).
    pub complete: bool,
}

impl CapturedBody {
    /// Whether `data` is the whole body (what replay needs).
    pub fn is_whole(&self) -> bool {
        self.complete && !self.truncated
    }
}

impl Capture {
    /// Bytes this capture is charged in the ring.
    pub fn size(&self) -> usize {
        fn headers(h: &HeaderMap) -> usize {
            h.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum()
        }
        let request =
            self.request.raw.len() + headers(&self.request.headers) + self.request.uri.len();
        let response = self
            .response
            .as_ref()
            .map_or(0, |r| r.raw.len() + headers(&r.headers) + r.status.len());
        CAPTURE_OVERHEAD + self.id.len() + self.tunnel_name.len() + request + response
    }

    /// The capture in the shape of ngrok's agent API (`/api/requests/http/<id>`).
    pub fn to_json(&self) -> Value {
        let start = time::OffsetDateTime::from(self.start)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let b64 = base64::engine::general_purpose::STANDARD;
        let response = match &self.response {
            None => Value::Null,
            Some(r) => json!({
                "status": r.status,
                "status_code": r.status_code,
                "proto": r.proto,
                "headers": headers_json(&r.headers),
                "raw": b64.encode(&r.raw),
            }),
        };
        json!({
            "uri": format!("/api/requests/http/{}", self.id),
            "id": self.id,
            "tunnel_name": self.tunnel_name,
            "remote_addr": self.remote_addr.ip().to_string(),
            "start": start,
            "duration": u64::try_from(self.duration.as_nanos()).unwrap_or(u64::MAX),
            "request": {
                "method": self.request.method.as_str(),
                "proto": self.request.proto,
                "headers": headers_json(&self.request.headers),
                "uri": self.request.uri,
                "raw": b64.encode(&self.request.raw),
            },
            "response": response,
        })
    }
}

/// `{"Content-Type": ["text/plain"], …}` with Go's canonical names, as ngrok shows them.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let values = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        map.insert(canonical_name(name.as_str()), Value::Array(values));
    }
    Value::Object(map)
}

/// Go's canonical header name: `content-type` → `Content-Type`.
fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// `HTTP/1.1` for a version.
fn proto_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Head text (`first line`, headers, blank line) followed by the body; returns the raw bytes and
/// the body as a view into them.
fn raw_message(first_line: &str, headers: &HeaderMap, body: &[u8]) -> (Bytes, Bytes) {
    let mut raw = Vec::with_capacity(first_line.len() + 256 + body.len());
    raw.extend_from_slice(first_line.as_bytes());
    raw.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        raw.extend_from_slice(canonical_name(name.as_str()).as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    let head_len = raw.len();
    raw.extend_from_slice(body);
    let raw = Bytes::from(raw);
    let body = raw.slice(head_len..);
    (raw, body)
}

#[cfg(test)]
mod tests;
