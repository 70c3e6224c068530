//! The `usage_hours` table: traffic per clock hour, per endpoint and credential.
//!
//! Rows are added to, never rewritten: [`Store::add_usage`] adds deltas to the row of their
//! (hour, endpoint, credential), creating it when needed, so several flushes within one hour —
//! or several nodes — sum up. An endpoint is *active* in an hour when its row for that hour has
//! `bytes_out > 0` (traffic flowed out of it toward visitors).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::{Store, StoreError};

/// Seconds in an hour; every stored `hour` is a multiple.
pub const SECONDS_PER_HOUR: i64 = 3600;
/// Most rows one upsert statement writes (seven binds each).
const ROWS_PER_STATEMENT: usize = 500;

/// Traffic of one endpoint and credential within one clock hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageHour {
    /// Start of the clock hour (UTC, minutes and seconds zero).
    pub hour: i64,
    /// The endpoint's public URL (stable across reconnects; the endpoint's identity here).
    pub endpoint: String,
    /// The credential (`cr_…`) whose agent served it.
    pub credential_id: String,
    /// Bytes from visitors toward the agent.
    pub bytes_in: u64,
    /// Bytes from the agent toward visitors.
    pub bytes_out: u64,
    /// HTTP requests completed.
    pub requests: u64,
    /// Visitor connections handed to the agent.
    pub connections: u64,
}

/// `column = column + excluded.column`, saturating at `i64::MAX` instead of overflowing.
/// (`excluded` values are never negative, so the subtraction cannot overflow.)
fn saturating_add(column: &str) -> String {
    format!(
        "{column} = CASE WHEN usage_hours.{column} > {max} - excluded.{column} THEN {max} \
         ELSE usage_hours.{column} + excluded.{column} END",
        max = i64::MAX
    )
}

/// The upsert of `count` rows, binds `$1…$7` per row.
fn upsert(count: usize) -> String {
    let values: Vec<String> = (0..count)
        .map(|i| {
            let n = 1 + 7 * i;
            format!(
                "(${n}, ${}, ${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5,
                n + 6
            )
        })
        .collect();
    let updates: Vec<String> = ["bytes_in", "bytes_out", "requests", "connections"]
        .into_iter()
        .map(saturating_add)
        .collect();
    format!(
        "INSERT INTO usage_hours \
         (hour, endpoint, credential_id, bytes_in, bytes_out, requests, connections) \
         VALUES {} ON CONFLICT (hour, endpoint, credential_id) DO UPDATE SET {}",
        values.join(", "),
        updates.join(", ")
    )
}

/// A counter as stored: saturated at `i64::MAX`.
fn stored(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored counter read back (a negative one, written by hand, reads as zero).
fn counter(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Per-row counters, summed (saturating) per key before writing.
#[derive(Default, Clone, Copy)]
struct Counters {
    bytes_in: u64,
    bytes_out: u64,
    requests: u64,
    connections: u64,
}

#[derive(sqlx::FromRow)]
struct UsageRow {
    hour: i64,
    endpoint: String,
    credential_id: String,
    bytes_in: i64,
    bytes_out: i64,
    requests: i64,
    connections: i64,
}

impl Store {
    /// Adds each delta to its (hour, endpoint, credential) row, in one transaction. `hour` of
    /// every delta must be the start of a clock hour as Unix seconds.
    ///
    /// Deltas for the same row are summed first (one statement may not touch a row twice);
    /// rows are written in key order, so concurrent writers (several nodes) lock them in the
    /// same order. Counters saturate at `i64::MAX`.
    pub async fn add_usage(&self, deltas: &[UsageHour]) -> Result<(), StoreError> {
        let mut merged: BTreeMap<(i64, &str, &str), Counters> = BTreeMap::new();
        for delta in deltas {
            if delta.hour.rem_euclid(SECONDS_PER_HOUR) != 0 {
                return Err(StoreError::Invalid {
                    field: "hour",
                    reason: format!(
                        "{} is not the start of a clock hour (a multiple of {SECONDS_PER_HOUR})",
                        delta.hour
                    ),
                });
            }
            let row = merged
                .entry((delta.hour, &delta.endpoint, &delta.credential_id))
                .or_default();
            row.bytes_in = row.bytes_in.saturating_add(delta.bytes_in);
            row.bytes_out = row.bytes_out.saturating_add(delta.bytes_out);
            row.requests = row.requests.saturating_add(delta.requests);
            row.connections = row.connections.saturating_add(delta.connections);
        }
        if merged.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = merged.into_iter().collect();
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = upsert(chunk.len());
                let mut query = sqlx::query(&sql).persistent(chunk.len() == 1);
                for ((hour, endpoint, credential_id), c) in chunk {
                    query = query
                        .bind(*hour)
                        .bind(*endpoint)
                        .bind(*credential_id)
                        .bind(stored(c.bytes_in))
                        .bind(stored(c.bytes_out))
                        .bind(stored(c.requests))
                        .bind(stored(c.connections));
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every row whose hour starts in `[start, end)`, ordered by hour, endpoint, credential.
    pub async fn usage_between(
        &self,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<Vec<UsageHour>, StoreError> {
        let rows: Vec<UsageRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT hour, endpoint, credential_id, bytes_in, bytes_out, requests, \
                 connections FROM usage_hours WHERE hour >= $1 AND hour < $2 \
                 ORDER BY hour, endpoint, credential_id",
            )
            .bind(start.unix_timestamp())
            .bind(end.unix_timestamp())
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| UsageHour {
                hour: r.hour,
                endpoint: r.endpoint,
                credential_id: r.credential_id,
                bytes_in: counter(r.bytes_in),
                bytes_out: counter(r.bytes_out),
                requests: counter(r.requests),
                connections: counter(r.connections),
            })
            .collect())
    }
}
