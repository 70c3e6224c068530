//! `GET /usage` (Warren extension): traffic and active endpoint hours over a time range, per
//! endpoint, per credential, and in total (ngrok-surface.md §7).
//!
//! An endpoint is *active* in a clock hour when traffic flowed out of it (`bytes_out > 0`) in
//! that hour; idle hours are not counted. The range is widened to whole clock hours: from the
//! hour `start` falls in to the end of the hour `end` falls in. Query:
//! - `start`, `end`: RFC 3339; default from the first day of the current month (00:00 UTC) to
//!   now; `start` must be before `end`, and the span at most [`MAX_SPAN_DAYS`] days;
//! - `credential_id`, `endpoint`: keep only that credential's / endpoint's rows.
//!
//! Order is deterministic: endpoints by URL then credential, credentials by id.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, Time, UtcOffset};
use warren_store::usage::UsageHour;

use crate::ApiState;
use crate::rest::{self, ApiError, ApiResult, code};

/// Longest range one request may cover.
pub const MAX_SPAN_DAYS: i64 = 400;

/// The route.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/usage", get(usage))
}

/// The parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    start: OffsetDateTime,
    end: OffsetDateTime,
    credential_id: Option<String>,
    endpoint: Option<String>,
}

fn parse_time(name: &str, value: &str) -> ApiResult<OffsetDateTime> {
    OffsetDateTime::parse(value.trim(), &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .map_err(|e| {
            ApiError::invalid(format!(
                "{name}: \"{value}\" is not an RFC 3339 time (like 2026-01-01T00:00:00Z): {e}"
            ))
        })
}

/// 00:00 UTC on the first day of `now`'s month.
fn month_start(now: OffsetDateTime) -> OffsetDateTime {
    let now = now.to_offset(UtcOffset::UTC);
    now.replace_day(1)
        .unwrap_or(now)
        .replace_time(Time::MIDNIGHT)
}

fn parse_query(query: Option<&str>, now: OffsetDateTime) -> ApiResult<Query> {
    let (mut start, mut end, mut credential_id, mut endpoint) = (None, None, None, None);
    for (k, v) in rest::query_pairs(query) {
        match k.as_str() {
            "start" => start = Some(parse_time("start", &v)?),
            "end" => end = Some(parse_time("end", &v)?),
            "credential_id" => credential_id = Some(v).filter(|v| !v.is_empty()),
            "endpoint" => endpoint = Some(v).filter(|v| !v.is_empty()),
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    code::UNKNOWN_QUERY_PARAM,
                    format!(
                        "Unknown query parameter `{other}`; /usage takes start, end, credential_id and endpoint."
                    ),
                ));
            }
        }
    }
    let end = end.unwrap_or(now);
    let start = start.unwrap_or_else(|| month_start(now));
    if start >= end {
        return Err(ApiError::invalid(format!(
            "start ({}) must be before end ({})",
            rest::timestamp(start),
            rest::timestamp(end)
        )));
    }
    if end - start > Duration::days(MAX_SPAN_DAYS) {
        return Err(ApiError::invalid(format!(
            "the range from start to end spans more than {MAX_SPAN_DAYS} days"
        )));
    }
    Ok(Query {
        start,
        end,
        credential_id,
        endpoint,
    })
}

/// Start of the clock hour `t` falls in.
fn hour_floor(t: OffsetDateTime) -> OffsetDateTime {
    let secs = t.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(secs - secs.rem_euclid(3600)).unwrap_or(t)
}

/// End of the clock hour `t` falls in (`t` itself when it starts an hour).
fn hour_ceil(t: OffsetDateTime) -> OffsetDateTime {
    let floor = hour_floor(t);
    if floor == t && t.nanosecond() == 0 {
        t
    } else {
        floor + Duration::hours(1)
    }
}

/// Counters summed over rows.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
struct Traffic {
    bytes_in: u64,
    bytes_out: u64,
    requests: u64,
    connections: u64,
}

impl Traffic {
    fn add(&mut self, row: &UsageHour) {
        self.bytes_in = self.bytes_in.saturating_add(row.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(row.bytes_out);
        self.requests = self.requests.saturating_add(row.requests);
        self.connections = self.connections.saturating_add(row.connections);
    }
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct EndpointUsage {
    endpoint: String,
    credential_id: String,
    active_hours: u64,
    #[serde(flatten)]
    traffic: Traffic,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct CredentialUsage {
    credential_id: String,
    active_endpoint_hours: u64,
    #[serde(flatten)]
    traffic: Traffic,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Totals {
    active_endpoint_hours: u64,
    #[serde(flatten)]
    traffic: Traffic,
}

/// An (hour, endpoint) pair: the unit of active endpoint hours.
type HourOfEndpoint<'a> = (i64, &'a str);

/// The report over `rows` (already filtered).
fn report(rows: &[UsageHour]) -> (Vec<EndpointUsage>, Vec<CredentialUsage>, Totals) {
    let mut endpoints: BTreeMap<(&str, &str), (u64, Traffic)> = BTreeMap::new();
    let mut credentials: BTreeMap<&str, (BTreeSet<HourOfEndpoint>, Traffic)> = BTreeMap::new();
    let mut active: BTreeSet<HourOfEndpoint> = BTreeSet::new();
    let mut total = Traffic::default();
    for row in rows {
        let is_active = row.bytes_out > 0;
        let e = endpoints
            .entry((row.endpoint.as_str(), row.credential_id.as_str()))
            .or_default();
        e.0 += u64::from(is_active);
        e.1.add(row);
        let c = credentials.entry(row.credential_id.as_str()).or_default();
        if is_active {
            c.0.insert((row.hour, row.endpoint.as_str()));
            active.insert((row.hour, row.endpoint.as_str()));
        }
        c.1.add(row);
        total.add(row);
    }
    let endpoints = endpoints
        .into_iter()
        .map(
            |((endpoint, credential_id), (active_hours, traffic))| EndpointUsage {
                endpoint: endpoint.to_owned(),
                credential_id: credential_id.to_owned(),
                active_hours,
                traffic,
            },
        )
        .collect();
    let credentials = credentials
        .into_iter()
        .map(|(credential_id, (hours, traffic))| CredentialUsage {
            credential_id: credential_id.to_owned(),
            active_endpoint_hours: hours.len() as u64,
            traffic,
        })
        .collect();
    let totals = Totals {
        active_endpoint_hours: active.len() as u64,
        traffic: total,
    };
    (endpoints, credentials, totals)
}

async fn usage(State(state): State<ApiState>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let now = match state.edge().events() {
        Some(events) => events.now(),
        None => OffsetDateTime::now_utc(),
    };
    let q = parse_query(query.as_deref(), now)?;
    let rows = state
        .store()
        .usage_between(hour_floor(q.start), hour_ceil(q.end))
        .await?;
    let rows: Vec<UsageHour> = rows
        .into_iter()
        .filter(|r| {
            q.credential_id
                .as_deref()
                .is_none_or(|c| r.credential_id == c)
                && q.endpoint.as_deref().is_none_or(|e| r.endpoint == e)
        })
        .collect();
    let (endpoints, credentials, totals) = report(&rows);
    Ok(rest::ok(serde_json::json!({
        "uri": state.uri("/usage"),
        "start": rest::timestamp(q.start),
        "end": rest::timestamp(q.end),
        "endpoints": endpoints,
        "credentials": credentials,
        "totals": totals,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn row(hour: i64, endpoint: &str, cred: &str, bytes_out: u64) -> UsageHour {
        UsageHour {
            hour,
            endpoint: endpoint.into(),
            credential_id: cred.into(),
            bytes_in: 1,
            bytes_out,
            requests: 2,
            connections: 3,
        }
    }

    #[test]
    fn query_defaults_and_limits() {
        let now = datetime!(2026-03-17 10:20:30 UTC);
        let q = parse_query(None, now).unwrap();
        assert_eq!(q.start, datetime!(2026-03-01 0:00 UTC));
        assert_eq!(q.end, now);
        let q = parse_query(
            Some("start=2026-01-01T00:00:00%2B02:00&end=2026-01-02T00:00:00Z&credential_id=cr_1"),
            now,
        )
        .unwrap();
        assert_eq!(q.start, datetime!(2025-12-31 22:00 UTC));
        assert_eq!(q.credential_id.as_deref(), Some("cr_1"));
        for bad in [
            "start=yesterday",
            "start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            "start=2024-01-01T00:00:00Z&end=2026-01-01T00:00:00Z",
        ] {
            assert_eq!(
                parse_query(Some(bad), now).unwrap_err().code,
                code::INVALID_VALUE,
                "{bad}"
            );
        }
        assert_eq!(
            parse_query(Some("x=1"), now).unwrap_err().code,
            code::UNKNOWN_QUERY_PARAM
        );
    }

    #[test]
    fn hours_round_outward() {
        let t = datetime!(2026-01-01 10:20 UTC);
        assert_eq!(hour_floor(t), datetime!(2026-01-01 10:00 UTC));
        assert_eq!(hour_ceil(t), datetime!(2026-01-01 11:00 UTC));
        let whole = datetime!(2026-01-01 10:00 UTC);
        assert_eq!(hour_ceil(whole), whole);
    }

    #[test]
    fn active_hours_need_outgoing_bytes() {
        let rows = vec![
            row(0, "https://a", "cr_1", 10),
            row(0, "https://a", "cr_2", 5),
            row(3600, "https://a", "cr_1", 0),
            row(3600, "https://b", "cr_1", 7),
        ];
        let (endpoints, credentials, totals) = report(&rows);
        assert_eq!(endpoints.len(), 3);
        assert_eq!(endpoints[0].endpoint, "https://a");
        assert_eq!(endpoints[0].credential_id, "cr_1");
        assert_eq!(endpoints[0].active_hours, 1);
        assert_eq!(endpoints[0].traffic.requests, 4);
        assert_eq!(credentials[0].credential_id, "cr_1");
        assert_eq!(credentials[0].active_endpoint_hours, 2);
        assert_eq!(credentials[1].active_endpoint_hours, 1);
        // https://a in hour 0 counts once although two credentials served it.
        assert_eq!(totals.active_endpoint_hours, 2);
        assert_eq!(totals.traffic.bytes_out, 22);
    }
}
