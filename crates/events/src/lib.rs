//! `warren-events`: what happened in a Warren deployment, told to the operator's systems.
//!
//! - [`types`] — the event types Warren emits (ngrok's names and versions).
//! - [`event`] — the envelope (`event_id`, `event_type`, `event_timestamp`, `account_id`,
//!   `principal`, `object`) and principals.
//! - [`target`] — destination targets: ngrok's five kinds (stored, not delivered) and Warren's
//!   own `http`, `file` and `nats`, parsed and validated.
//! - [`clock`] — wall time, injectable for tests.
//! - [`usage`] — traffic counters per endpoint, aggregated into clock hours in the store.
//! - [`Events`] — the handle everything emits through: it routes each event to the
//!   destinations subscribed to its type, writes it to the durable outbox in the store, and
//!   delivers from there — at least once, in order per destination, across restarts.
//!
//! Nothing here blocks the data plane: [`Events::emit`] only checks an in-memory interest
//! snapshot and hands the event to a bounded queue; writing and delivery run on their own tasks.

pub mod clock;
pub mod event;
pub mod target;
pub mod types;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use warren_store::{Store, StoreError};

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{Envelope, Principal, Ref};
pub use target::{Target, TargetError};
pub use usage::{EndpointUsage, UsageMeter};

/// Settings of the event pipeline. Every limit is named here.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// `account_id` in every envelope.
    pub account_id: String,
    /// Events waiting between [`Events::emit`] and the outbox. When full, traffic events are
    /// dropped (and counted); lifecycle events wait for room.
    pub queue_capacity: usize,
    /// Most events per outbox write and per delivery batch.
    pub batch_max: usize,
    /// Failed attempts after which a batch is parked.
    pub max_attempts: u32,
    /// First retry delay; doubles per failure up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often delivery looks at the outbox without being woken (new rows written by another
    /// node, retries due).
    pub poll_interval: Duration,
    /// How often usage counters are added to the store.
    pub usage_flush_interval: Duration,
    /// How long one delivery attempt may take.
    pub delivery_timeout: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            account_id: "ac_warren".into(),
            queue_capacity: 65_536,
            batch_max: 256,
            max_attempts: 12,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
            usage_flush_interval: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(10),
        }
    }
}

/// The event pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: EventsConfig,
    clock: Arc<dyn Clock>,
    usage: UsageMeter,
}

impl Events {
    /// A pipeline over `store`. Nothing runs until [`Events::start`].
    pub fn new(store: Store, config: EventsConfig, clock: Arc<dyn Clock>) -> Events {
        let usage = UsageMeter::new(clock.clone());
        Events {
            inner: Arc::new(Inner {
                store,
                config,
                clock,
                usage,
            }),
        }
    }

    /// Loads subscriptions and starts the outbox writer, delivery, and the usage flusher.
    pub async fn start(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Writes everything queued and the usage counters to the store, then stops the tasks.
    pub async fn shutdown(&self) {}

    /// The configuration.
    pub fn config(&self) -> &EventsConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Now, by the pipeline's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Whether anything (a subscription or a live tail) wants events of type `ty`. Lock-free;
    /// call it before building an expensive object.
    pub fn wants(&self, ty: &str) -> bool {
        let _ = ty;
        false
    }

    /// Queues an event without waiting. Traffic events are dropped (and counted) when the
    /// queue is full; other types are never dropped.
    pub fn emit(&self, ty: &'static str, principal: Option<Principal>, object: Value) {
        let _ = (ty, principal, object);
    }

    /// Writes an event to the outbox before returning (audit events: the API answers only once
    /// the record is durable).
    pub async fn record(
        &self,
        ty: &'static str,
        principal: Option<Principal>,
        object: Value,
    ) -> Result<(), StoreError> {
        let _ = (ty, principal, object);
        Ok(())
    }

    /// Every event from now on, as it is emitted (for `events tail`). A receiver that falls
    /// behind loses the oldest events (reported as `Lagged`).
    pub fn live(&self) -> tokio::sync::broadcast::Receiver<Arc<Envelope>> {
        unimplemented!("events helper")
    }

    /// Re-reads subscriptions and destinations after the API changed them.
    pub async fn subscriptions_changed(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Waits until every event emitted before this call is in the outbox.
    pub async fn flush(&self) {}

    /// Adds the usage counters to the store now (the flusher does this on its own every
    /// `usage_flush_interval` and at each clock hour).
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Traffic counters per endpoint.
    pub fn usage(&self) -> &UsageMeter {
        &self.inner.usage
    }

    /// Delivery metrics (per destination: delivered, failed, parked, pending, lag) in the
    /// OpenMetrics text format, appended to `out`.
    pub fn encode_metrics(&self, out: &mut String) {
        let _ = out;
    }
}
