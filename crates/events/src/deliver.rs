//! Delivery: one worker task per delivered destination, reading that destination's outbox rows
//! in order and handing them to its sink.
//!
//! At least once: a row leaves the outbox only after the sink acknowledged it. In order: the
//! worker always sends the oldest unparked rows and waits for the head's retry time rather than
//! skipping ahead. A batch that failed `max_attempts` times is parked, and delivery goes on with
//! the rows after it. Retry times are real time (not the pipeline's clock, which tests freeze).
//! Workers are independent tasks, so a slow destination delays nobody else.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use warren_store::events::OutboxEntry;

use crate::Inner;
use crate::sink::Sink;
use crate::target::Target;

/// Longest error text kept with a failed row.
const ERROR_MAX_LEN: usize = 512;

/// What the rest of the pipeline shares with one destination's worker.
#[derive(Debug, Default)]
pub(crate) struct DestinationState {
    /// Wakes the worker: new rows, requeued rows.
    pub(crate) notify: Notify,
    /// Events acknowledged by the destination.
    pub(crate) delivered: AtomicU64,
    /// Failed delivery attempts (batches).
    pub(crate) failures: AtomicU64,
    /// Events parked.
    pub(crate) parked: AtomicU64,
    /// When the oldest pending event entered the outbox (Unix seconds, real time) as last
    /// read by the worker; 0 when none. The lag metric is its age at scrape time.
    pub(crate) oldest_pending: AtomicI64,
}

/// The delay before retry number `attempts` (1 = first retry): `base · 2^(attempts-1)`, capped
/// at `max`, then jittered to 75–125 % (still capped).
pub(crate) fn backoff(base: Duration, max: Duration, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let factor = rand::thread_rng().gen_range(0.75..=1.25);
    raw.mul_f64(factor).min(max)
}

/// Runs until `cancel`.
pub(crate) async fn run_worker(
    inner: Arc<Inner>,
    id: String,
    target: Target,
    state: Arc<DestinationState>,
    cancel: CancellationToken,
) {
    let sink = Sink::new(&target, &inner.config);
    work(&inner, &id, sink, &state, &cancel).await;
    state.oldest_pending.store(0, Ordering::Relaxed);
}

/// The worker loop. `cancel` is honoured between attempts, never during one: an attempt in
/// flight (bounded by `delivery_timeout`) finishes and is recorded, so a clean shutdown does not
/// leave delivered rows behind to be sent again.
async fn work(
    inner: &Inner,
    id: &str,
    mut sink: Sink,
    state: &DestinationState,
    cancel: &CancellationToken,
) {
    let config = &inner.config;
    let limit = i64::try_from(config.batch_max.max(1)).unwrap_or(i64::MAX);
    let wait = |timeout: Duration| async move {
        tokio::select! {
            _ = state.notify.notified() => {}
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(timeout) => {}
        }
    };
    while !cancel.is_cancelled() {
        let rows = match inner.store.outbox_pending(id, limit).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(destination = %id, error = %e, "reading the outbox failed");
                wait(config.poll_interval).await;
                continue;
            }
        };
        let now = OffsetDateTime::now_utc();
        let Some(head) = rows.first() else {
            state.oldest_pending.store(0, Ordering::Relaxed);
            wait(config.poll_interval).await;
            continue;
        };
        state
            .oldest_pending
            .store(head.created_at.unix_timestamp(), Ordering::Relaxed);
        if head.next_attempt_at > now {
            let until = (head.next_attempt_at - now)
                .try_into()
                .unwrap_or(Duration::ZERO);
            // A wake-up (requeue) re-reads; new rows wait behind the head anyway.
            wait(until).await;
            continue;
        }
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let outcome = match tokio::time::timeout(config.delivery_timeout, sink.deliver(&rows)).await
        {
            Ok(result) => result,
            Err(_) => {
                sink.reset();
                Err(format!(
                    "delivery timed out after {:?}",
                    config.delivery_timeout
                ))
            }
        };
        match outcome {
            Ok(()) => {
                if let Err(e) = inner.store.outbox_delivered(&seqs).await {
                    // The destination has the events; they will be sent again (at least once).
                    tracing::warn!(destination = %id, error = %e, "marking events delivered failed");
                    wait(config.poll_interval).await;
                    continue;
                }
                state
                    .delivered
                    .fetch_add(crate::sink::event_count(&rows) as u64, Ordering::Relaxed);
            }
            Err(error) => {
                if !failed(inner, id, state, &rows, &seqs, truncate(error)).await {
                    wait(config.poll_interval).await;
                }
            }
        }
    }
}

/// Records a failed attempt on a batch, or parks it after `max_attempts`; `false` when the
/// store could not record it.
async fn failed(
    inner: &Inner,
    id: &str,
    state: &DestinationState,
    rows: &[OutboxEntry],
    seqs: &[i64],
    error: String,
) -> bool {
    let config = &inner.config;
    state.failures.fetch_add(1, Ordering::Relaxed);
    let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
    let result = if attempts >= config.max_attempts.max(1) {
        let events = crate::sink::event_count(rows);
        tracing::warn!(destination = %id, events, attempts, error = %error, "delivery failed too often; parking events");
        let r = inner.store.outbox_park(seqs, &error).await;
        if r.is_ok() {
            state.parked.fetch_add(events as u64, Ordering::Relaxed);
        }
        r
    } else {
        let delay = backoff(config.backoff_base, config.backoff_max, attempts);
        tracing::debug!(destination = %id, events = crate::sink::event_count(rows), attempts, ?delay, error = %error, "delivery failed; will retry");
        let next = OffsetDateTime::now_utc() + delay;
        inner.store.outbox_failed(seqs, &error, next).await
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(destination = %id, error = %e, "recording a delivery failure failed");
            false
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > ERROR_MAX_LEN {
        let mut cut = ERROR_MAX_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempts in 1..=4u32 {
            let nominal = base * (1 << (attempts - 1));
            for _ in 0..50 {
                let d = backoff(base, max, attempts);
                assert!(
                    d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25),
                    "{d:?}"
                );
            }
        }
        for attempts in [6, 20, 40, u32::MAX] {
            let d = backoff(base, max, attempts);
            assert!(d <= max && d >= max.mul_f64(0.75), "{attempts}: {d:?}");
        }
    }
}
