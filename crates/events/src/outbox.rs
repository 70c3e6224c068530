//! The outbox writer: drains the emit queue in batches into the store's outbox (one
//! `enqueue_events` transaction per batch, one row per run of same-type events per
//! destination) and wakes the workers of the destinations concerned.
//!
//! It never delivers anything and never drops an event it received: a failed store write is
//! retried with backoff until it succeeds or the pipeline is cancelled.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use warren_store::events::NewOutboxEvent;

use crate::{Inner, Queued};

/// First delay after a failed outbox write.
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest delay between outbox write attempts.
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

/// One write's worth of events, gathered per destination into runs: consecutive events of one
/// type for one destination share a row (JSON lines), so a busy data plane costs the store a row
/// per run, not per event. Per-destination order is kept: a destination's runs are rows in
/// the order they were opened, and each run only ever grows at its end.
#[derive(Default)]
struct Batch {
    /// Rows to write, each for a single destination.
    rows: Vec<NewOutboxEvent>,
    /// Each destination's open run: its index in `rows`.
    open: HashMap<String, usize>,
    /// Events gathered.
    events: usize,
}

impl Batch {
    /// Adds one serialised envelope for each of `destinations`.
    fn add(&mut self, event_type: &str, json: &str, destinations: &[String], run_max: u32) {
        self.events += 1;
        for dest in destinations {
            if let Some(&i) = self.open.get(dest) {
                let run = &mut self.rows[i];
                if run.event_type == event_type && run.events < run_max {
                    run.payload.push('\n');
                    run.payload.push_str(json);
                    run.events += 1;
                    continue;
                }
            }
            self.open.insert(dest.clone(), self.rows.len());
            self.rows.push(NewOutboxEvent {
                event_type: event_type.to_owned(),
                payload: json.to_owned(),
                events: 1,
                destination_ids: vec![dest.clone()],
            });
        }
    }
}

/// Runs until the queue closes or the pipeline is cancelled.
pub(crate) async fn run_writer(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let batch_max = inner.config.batch_max.max(1);
    let run_max = u32::try_from(batch_max).unwrap_or(u32::MAX);
    let linger = inner.config.write_linger;
    let mut json: Vec<u8> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            msg = rx.recv() => msg,
            _ = inner.cancel.cancelled() => None,
        };
        let Some(first) = first else { return };
        let deadline = Instant::now() + linger;
        let mut batch = Batch::default();
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        let mut next = Some(first);
        // Gather until the batch is full, a flush is asked for, or `linger` has passed since
        // the first event: under load a write carries many events; when idle, one event
        // waits at most `linger`.
        loop {
            while let Some(msg) = next.take() {
                match msg {
                    Queued::Event {
                        envelope,
                        destinations,
                    } => {
                        inner.queued.fetch_sub(1, Ordering::Relaxed);
                        json.clear();
                        let serialised = serde_json::to_writer(&mut json, &*envelope)
                            .map_err(|e| e.to_string())
                            .and_then(|()| std::str::from_utf8(&json).map_err(|e| e.to_string()));
                        match serialised {
                            Ok(text) => {
                                batch.add(&envelope.event_type, text, &destinations, run_max)
                            }
                            Err(e) => {
                                tracing::error!(event_type = %envelope.event_type, error = %e, "event cannot be serialised; dropped");
                            }
                        }
                    }
                    Queued::Flush(tx) => waiting.push(tx),
                }
                if batch.events < batch_max {
                    next = rx.try_recv().ok();
                }
            }
            if batch.events >= batch_max || !waiting.is_empty() || Instant::now() >= deadline {
                break;
            }
            // Not woken per event while lingering: emitters only touch the queue, and what
            // they queued is drained once the linger ends (or a flush is asked for).
            tokio::select! {
                biased;
                _ = inner.cancel.cancelled() => {}
                _ = inner.flush_wanted.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            next = rx.try_recv().ok();
            if next.is_none() {
                break;
            }
        }
        if !batch.rows.is_empty() {
            write(&inner, &batch.rows).await;
            inner.wake(batch.open.keys());
        }
        for tx in waiting {
            let _ = tx.send(());
        }
    }
}

/// Writes one batch, retrying until it is stored or the pipeline is cancelled.
async fn write(inner: &Inner, events: &[NewOutboxEvent]) {
    let mut delay = WRITE_RETRY_FIRST;
    loop {
        match inner
            .store
            .enqueue_events(events, OffsetDateTime::now_utc())
            .await
        {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(events = events.len(), error = %e, "writing events to the outbox failed; retrying");
            }
        }
        tokio::select! {
            _ = inner.cancel.cancelled() => {
                tracing::error!(events = events.len(), "pipeline stopped before the outbox accepted these events; they are lost");
                return;
            }
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(WRITE_RETRY_MAX);
    }
}
