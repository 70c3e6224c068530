//! Pipeline metrics, written by hand in the OpenMetrics text format (no `# EOF`: the caller
//! appends other families).
//!
//! - `warren_event_deliveries_total{destination}` — events the destination acknowledged.
//! - `warren_event_delivery_failures_total{destination}` — failed delivery attempts (batches).
//! - `warren_events_parked_total{destination}` — events parked after `max_attempts` failures.
//! - `warren_event_delivery_lag_seconds{destination}` — age of the oldest pending event (as
//!   last read by the worker), 0 when none.
//! - `warren_events_emitted_total{type}` — events built for a subscription or live tail, by type.
//! - `warren_events_dropped_total` — traffic events dropped because the queue was full.
//!
//! Label sets are bounded: destinations are those with a running worker, types a closed set.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Inner, lock, types};

/// Counters not tied to one destination.
pub(crate) struct Counters {
    /// Per known event type; types outside the set are not counted.
    emitted: HashMap<String, AtomicU64>,
    pub(crate) dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            emitted: types::all()
                .into_iter()
                .map(|t| (t, AtomicU64::new(0)))
                .collect(),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn emitted(&self, ty: &str) {
        if let Some(c) = self.emitted.get(ty) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds since `oldest` (Unix seconds; 0 = nothing pending).
fn lag(oldest: i64, now: i64) -> u64 {
    if oldest == 0 {
        0
    } else {
        u64::try_from(now - oldest).unwrap_or(0)
    }
}

pub(crate) fn encode(inner: &Inner, out: &mut String) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut dests: Vec<(String, [u64; 4])> = lock(&inner.destinations)
        .iter()
        .map(|(id, s)| {
            (
                id.clone(),
                [
                    s.delivered.load(Ordering::Relaxed),
                    s.failures.load(Ordering::Relaxed),
                    s.parked.load(Ordering::Relaxed),
                    lag(s.oldest_pending.load(Ordering::Relaxed), now),
                ],
            )
        })
        .collect();
    dests.sort();
    let families: [(&str, &str, &str, usize); 4] = [
        (
            "warren_event_deliveries",
            "counter",
            "Events acknowledged by the destination.",
            0,
        ),
        (
            "warren_event_delivery_failures",
            "counter",
            "Failed delivery attempts (batches).",
            1,
        ),
        (
            "warren_events_parked",
            "counter",
            "Events parked after too many failed attempts.",
            2,
        ),
        (
            "warren_event_delivery_lag_seconds",
            "gauge",
            "Age of the oldest pending event, 0 when none.",
            3,
        ),
    ];
    for (name, kind, help, idx) in families {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "# HELP {name} {help}");
        let sample = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_owned()
        };
        for (id, values) in &dests {
            let _ = writeln!(
                out,
                "{sample}{{destination=\"{}\"}} {}",
                label(id),
                values[idx]
            );
        }
    }
    let _ = writeln!(out, "# TYPE warren_events_emitted counter");
    let _ = writeln!(
        out,
        "# HELP warren_events_emitted Events emitted to a subscription or live tail, by type."
    );
    let mut emitted: Vec<(&String, u64)> = inner
        .metrics
        .emitted
        .iter()
        .map(|(t, c)| (t, c.load(Ordering::Relaxed)))
        .collect();
    emitted.sort();
    for (ty, n) in emitted {
        let _ = writeln!(
            out,
            "warren_events_emitted_total{{type=\"{}\"}} {n}",
            label(ty)
        );
    }
    let _ = writeln!(out, "# TYPE warren_events_dropped counter");
    let _ = writeln!(
        out,
        "# HELP warren_events_dropped Traffic events dropped because the event queue was full."
    );
    let _ = writeln!(
        out,
        "warren_events_dropped_total {}",
        inner.metrics.dropped.load(Ordering::Relaxed)
    );
}
