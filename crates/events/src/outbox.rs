//! The outbox writer: drains the emit queue in batches into the store's outbox (one
//! `enqueue_events` transaction per batch) and wakes the workers of the destinations concerned.
//!
//! It never delivers anything and never drops an event it received: a failed store write is
//! retried with backoff until it succeeds or the pipeline is cancelled.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use warren_store::events::NewOutboxEvent;

use crate::{Inner, Queued};

/// First delay after a failed outbox write.
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest delay between outbox write attempts.
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs until the queue closes or the pipeline is cancelled.
pub(crate) async fn run_writer(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let batch_max = inner.config.batch_max.max(1);
    loop {
        let first = tokio::select! {
            biased;
            msg = rx.recv() => msg,
            _ = inner.cancel.cancelled() => None,
        };
        let Some(first) = first else { return };
        let mut events: Vec<NewOutboxEvent> = Vec::new();
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        let mut targets: BTreeSet<String> = BTreeSet::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Queued::Event {
                    envelope,
                    destinations,
                } => {
                    inner.queued.fetch_sub(1, Ordering::Relaxed);
                    match serde_json::to_string(&*envelope) {
                        Ok(payload) => {
                            targets.extend(destinations.iter().cloned());
                            events.push(NewOutboxEvent {
                                event_type: envelope.event_type.clone(),
                                payload,
                                destination_ids: destinations.to_vec(),
                            });
                        }
                        Err(e) => {
                            tracing::error!(event_type = %envelope.event_type, error = %e, "event cannot be serialised; dropped");
                        }
                    }
                }
                Queued::Flush(tx) => waiting.push(tx),
            }
            if events.len() < batch_max {
                next = rx.try_recv().ok();
            }
        }
        if !events.is_empty() {
            write(&inner, &events).await;
            inner.wake(targets.iter());
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
