//! The pending batch and the outbox writer.
//!
//! [`Events::emit`](crate::Events::emit) serialises an event and appends its JSON text to the
//! shared [`Pending`] batch under a short lock: no per-event allocation or task wake-up on
//! the data plane. The writer task takes the whole batch at once — after lingering
//! `write_linger` so a busy data plane's events share one write — and stores it in one
//! `enqueue_events` transaction, one row per run of same-type events per destination, then
//! wakes the workers of the destinations concerned.
//!
//! It never delivers anything and never drops an event it took: a failed store write is
//! retried with backoff until it succeeds or the pipeline is cancelled.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::time::Instant;
use warren_store::events::NewOutboxEvent;

use crate::{Inner, lock};

/// First delay after a failed outbox write.
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest delay between outbox write attempts.
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Events gathered per destination into runs: consecutive events of one type for one
/// destination share a row (JSON lines), so a busy data plane costs the store a row per run,
/// not per event. Per-destination order is kept: a destination's runs are rows in the order
/// they were opened, and each run only ever grows at its end.
#[derive(Default)]
pub(crate) struct Batch {
    /// Rows to write, each for a single destination.
    rows: Vec<NewOutboxEvent>,
    /// Each destination's open run: its index in `rows`.
    open: HashMap<String, usize>,
    /// Events gathered.
    pub(crate) events: usize,
}

impl Batch {
    /// Adds one serialised envelope for each of `destinations`; a run holds at most `run_max`.
    pub(crate) fn add(
        &mut self,
        event_type: &str,
        json: &str,
        destinations: &[String],
        run_max: u32,
    ) {
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

/// What emitters have handed over and the writer has not taken yet.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) batch: Batch,
    /// Flushes waiting for everything before them to be stored.
    pub(crate) flushes: Vec<oneshot::Sender<()>>,
    /// Set when the writer has stopped: nothing will answer a flush any more.
    pub(crate) stopped: bool,
}

impl Pending {
    /// Whether the writer should stop lingering and write now.
    fn due(&self, batch_max: usize) -> bool {
        self.batch.events >= batch_max || !self.flushes.is_empty()
    }
}

/// Runs until the pipeline is cancelled; then marks [`Pending`] stopped and lets waiting
/// flushes go (their senders dropped).
pub(crate) async fn run_writer(inner: Arc<Inner>) {
    write_batches(&inner).await;
    let mut pending = lock(&inner.pending);
    pending.stopped = true;
    pending.flushes.clear();
}

async fn write_batches(inner: &Inner) {
    let batch_max = inner.config.batch_max.max(1);
    loop {
        tokio::select! {
            biased;
            _ = inner.cancel.cancelled() => return,
            _ = inner.writer_wake.notified() => {}
        }
        // Linger so that a busy data plane's events share the write, unless the batch is
        // full or a flush waits. Emitters wake the writer only for their batch's first event,
        // when it fills up, and for flushes.
        let deadline = Instant::now() + inner.config.write_linger;
        loop {
            if lock(&inner.pending).due(batch_max) {
                break;
            }
            tokio::select! {
                biased;
                _ = inner.cancel.cancelled() => break,
                _ = inner.writer_wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let (batch, flushes) = {
            let mut pending = lock(&inner.pending);
            inner.queued.store(0, Ordering::Relaxed);
            (
                std::mem::take(&mut pending.batch),
                std::mem::take(&mut pending.flushes),
            )
        };
        if !batch.rows.is_empty() {
            write(inner, &batch.rows).await;
            inner.wake(batch.open.keys());
        }
        for tx in flushes {
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
