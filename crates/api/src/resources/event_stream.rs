//! `GET /event_stream` (Warren extension): every event as it is emitted, as Server-Sent Events.
//!
//! The stream carries every event the pipeline emits, whether or not a subscription wants it
//! (it is a live tail, not a delivery: nothing is stored for it, and a client that falls behind
//! loses events). Wire format:
//! - each event: `event: <event_type>`, `id: <event_id>`, `data: <envelope JSON>`, blank line;
//! - a `: keepalive` comment at once and every [`KEEPALIVE`];
//! - when the client fell behind: `event: lagged`, `data: {"missed": n}`, and the stream goes on.
//!
//! Query: `types=a.v0,b.v0` (repeatable) keeps only those types; each must be a known type.
//! At most [`MAX_STREAMS`] streams are open at once (more → 429). Streams end when the API
//! shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use warren_events::Envelope;

use crate::ApiState;
use crate::rest::{self, ApiError, ApiResult, code};

/// Interval of the `: keepalive` comments.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// Most `/event_stream` connections open at once.
pub const MAX_STREAMS: usize = 64;

/// Most types one `types` filter may name.
const MAX_TYPES: usize = 256;

/// The route.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/event_stream", get(stream))
}

/// The `types` filter of the query (empty = every type). Other parameters → 231; an unknown
/// type → 400 naming it.
fn parse_query(query: Option<&str>) -> ApiResult<Vec<String>> {
    let mut types: Vec<String> = Vec::new();
    for (k, v) in rest::query_pairs(query) {
        if k != "types" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code::UNKNOWN_QUERY_PARAM,
                format!("Unknown query parameter `{k}`; /event_stream takes `types`."),
            ));
        }
        for ty in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !warren_events::types::is_known(ty) {
                return Err(ApiError::invalid(format!(
                    "types: \"{ty}\" is not an event type (e.g. agent_session_start.v0, tunnel_credential_created.v0)."
                )));
            }
            if !types.iter().any(|t| t == ty) {
                types.push(ty.to_owned());
            }
            if types.len() > MAX_TYPES {
                return Err(ApiError::invalid("types: too many event types"));
            }
        }
    }
    Ok(types)
}

/// One event as an SSE message.
fn message(envelope: &Envelope) -> Bytes {
    let data = serde_json::to_string(envelope).unwrap_or_else(|_| "null".into());
    // Types and ids are plain tokens; strip line breaks anyway so a frame cannot be split.
    let clean = |s: &str| s.replace(['\r', '\n'], "");
    Bytes::from(format!(
        "event: {}\nid: {}\ndata: {data}\n\n",
        clean(&envelope.event_type),
        clean(&envelope.event_id)
    ))
}

/// What one open stream holds.
struct Tail {
    rx: tokio::sync::broadcast::Receiver<Arc<Envelope>>,
    types: Vec<String>,
    keepalive: tokio::time::Interval,
    closing: tokio::sync::watch::Receiver<bool>,
    /// Held for the stream's life: one of [`MAX_STREAMS`].
    _permit: tokio::sync::OwnedSemaphorePermit,
}

async fn next_chunk(tail: &mut Tail) -> Option<Bytes> {
    loop {
        if *tail.closing.borrow() {
            return None;
        }
        tokio::select! {
            _ = tail.keepalive.tick() => return Some(Bytes::from_static(b": keepalive\n\n")),
            changed = tail.closing.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            received = tail.rx.recv() => match received {
                Ok(envelope) => {
                    if tail.types.is_empty() || tail.types.iter().any(|t| *t == envelope.event_type) {
                        return Some(message(&envelope));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    return Some(Bytes::from(format!(
                        "event: lagged\ndata: {{\"missed\":{missed}}}\n\n"
                    )));
                }
                Err(RecvError::Closed) => return None,
            },
        }
    }
}

async fn stream(State(state): State<ApiState>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let types = parse_query(query.as_deref())?;
    let Some(events) = state.edge().events() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::EVENTS_UNAVAILABLE,
            "The event pipeline is not running on this server.",
        ));
    };
    let Ok(permit) = state.streams().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::TOO_MANY_STREAMS,
            format!(
                "At most {MAX_STREAMS} event streams may be open at once; close one and retry."
            ),
        ));
    };
    let tail = Tail {
        rx: events.live(),
        types,
        keepalive: tokio::time::interval(KEEPALIVE),
        closing: state.closing(),
        _permit: permit,
    };
    let body = futures::stream::unfold(tail, |mut tail| async move {
        next_chunk(&mut tail)
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), tail))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filters() {
        assert!(parse_query(None).unwrap().is_empty());
        assert_eq!(
            parse_query(Some(
                "types=agent_session_start.v0,agent_session_stop.v0&types=agent_session_start.v0"
            ))
            .unwrap(),
            vec!["agent_session_start.v0", "agent_session_stop.v0"]
        );
        let bad = parse_query(Some("types=nope.v0")).unwrap_err();
        assert_eq!(bad.code, code::INVALID_VALUE);
        assert!(bad.msg.contains("nope.v0"));
        assert_eq!(
            parse_query(Some("x=1")).unwrap_err().code,
            code::UNKNOWN_QUERY_PARAM
        );
    }

    #[test]
    fn messages_are_single_frames() {
        let env = Envelope {
            event_id: "ev_1".into(),
            event_type: "agent_session_start.v0".into(),
            event_timestamp: "2026-01-01T00:00:00Z".into(),
            account_id: "ac_1".into(),
            principal: None,
            object: serde_json::value::to_raw_value(&serde_json::json!({"text": "a\nb"})).unwrap(),
        };
        let text = String::from_utf8(message(&env).to_vec()).unwrap();
        assert!(text.starts_with("event: agent_session_start.v0\nid: ev_1\ndata: {"));
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.matches('\n').count(), 4);
    }
}
