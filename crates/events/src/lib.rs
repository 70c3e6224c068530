//! `warren-events`: what happened in a Warren deployment, told to the operator's systems.
//!
//! # Layout
//!
//! - [`types`] — the event types Warren emits (ngrok's names and versions).
//! - [`event`] — the envelope (`event_id`, `event_type`, `event_timestamp`, `account_id`,
//!   `principal`, `object`) and principals.
//! - [`target`] — destination targets: ngrok's five kinds (stored, not delivered) and Warren's
//!   own `http`, `file` and `nats`, parsed and validated.
//! - [`clock`] — wall time, injectable for tests.
//! - [`timestamp`] — event times as RFC 3339 text.
//! - [`usage`] — traffic counters per endpoint, aggregated into clock hours in the store.
//! - `outbox` (private) — the pending batch emitters append to, and the writer task that
//!   stores it as outbox rows.
//! - `deliver` (private) — one worker per delivered destination: outbox → sink, with retries.
//! - `sink` (private) — the `http`, `file` and `nats` sinks.
//! - `metrics` (private) — delivery counters and their OpenMetrics text.
//! - [`Events`] — the handle everything emits through: it routes each event to the
//!   destinations subscribed to its type, writes it to the durable outbox in the store, and
//!   delivers from there — at least once, in order per destination, across restarts.
//!
//! Nothing here blocks the data plane: [`Events::emit`] checks an in-memory interest snapshot,
//! serialises the event and appends its text to the pending batch under a short lock; writing
//! and delivery run on their own tasks.
//!
//! # Queue
//!
//! The pending batch between [`Events::emit`] and the writer has a counted capacity: while
//! `queue_capacity` events are waiting, traffic events ([`types::is_traffic`]) are dropped and
//! counted; every other type (agent sessions, audit) is queued past the cap — they are few
//! (one per agent session or API change), must not be lost, and going through the same batch
//! keeps emission order.
//!
//! # Time
//!
//! Envelope timestamps and usage hours come from the injected [`Clock`]. Outbox bookkeeping
//! (row times, retry schedule, lag) uses real time, so a frozen test clock never stalls
//! delivery.

pub mod clock;
mod deliver;
pub mod event;
mod metrics;
mod outbox;
mod sink;
pub mod target;
pub mod timestamp;
pub mod types;
pub mod usage;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warren_model::ids::{IdPrefix, new_id};
use warren_store::events::NewOutboxEvent;
use warren_store::{Store, StoreError};

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{Envelope, Principal, Ref};
pub use target::{Target, TargetError};
pub use usage::{EndpointUsage, UsageMeter};

use crate::deliver::DestinationState;

/// Events kept for live tail receivers; a receiver further behind loses the oldest.
pub const LIVE_CAPACITY: usize = 1024;

/// How long [`Events::shutdown`] waits for queued events to reach the outbox (a store that
/// is down must not hang shutdown forever).
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings of the event pipeline. Every limit is named here.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// `account_id` in every envelope.
    pub account_id: String,
    /// The REST API's public base URL (no trailing `/`), for the `uri` of references inside
    /// event objects. The server sets it once the API address is known.
    pub api_url: String,
    /// Events waiting between [`Events::emit`] and the outbox. When full, traffic events are
    /// dropped (and counted); lifecycle events are queued past it (see the crate docs).
    pub queue_capacity: usize,
    /// Most events per outbox write, per outbox row and per delivery batch.
    pub batch_max: usize,
    /// How long the outbox writer waits for more events after the first of a write (a
    /// flush or a full batch ends the wait early): bounds how long an event waits before it
    /// is durable, and lets a busy data plane's events share rows and transactions.
    pub write_linger: Duration,
    /// Failed attempts after which a batch is parked.
    pub max_attempts: u32,
    /// First retry delay; doubles per failure up to `backoff_max`.
    pub backoff_base: Duration,
    /// Longest retry delay.
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
            api_url: "http://localhost:9000".into(),
            queue_capacity: 65_536,
            batch_max: 256,
            write_linger: Duration::from_millis(10),
            max_attempts: 12,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
            usage_flush_interval: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(10),
        }
    }
}

/// Delivery state of one destination, as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStatus {
    /// Whether Warren delivers to the destination's target kind (`http`, `file`, `nats`).
    pub delivered: bool,
    /// Events waiting for delivery.
    pub pending: u64,
    /// Events parked after too many failed attempts (see [`Events::requeue_parked`]).
    pub parked: u64,
    /// When the oldest pending event entered the outbox.
    pub oldest_pending_at: Option<OffsetDateTime>,
    /// The last delivery error, empty if none.
    pub last_error: String,
}

/// The event pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

/// Which delivered destinations want each event type; replaced whole on every change.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    by_type: HashMap<String, Arc<[String]>>,
}

/// The envelope of [`Envelope`] around a borrowed, not yet serialised object: what `emit`
/// serialises (same fields, same order).
#[derive(Serialize)]
struct EnvelopeRef<'a, T: Serialize> {
    event_id: &'a str,
    event_type: &'a str,
    event_timestamp: &'a str,
    account_id: &'a str,
    principal: Option<&'a Principal>,
    object: &'a T,
}

thread_local! {
    /// Each thread's buffer for serialising an event before it is appended to the batch.
    static EMIT_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A running delivery worker.
struct Worker {
    /// The stored target it delivers to (a change restarts the worker).
    target: String,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: EventsConfig,
    clock: Arc<dyn Clock>,
    usage: UsageMeter,
    /// The routing snapshot read by `wants`/`emit` without locks.
    routes: ArcSwap<Routes>,
    /// Live tail.
    live: broadcast::Sender<Arc<Envelope>>,
    /// Set once a live tail was ever opened (until then `wants` never touches `live`).
    live_opened: AtomicBool,
    /// What emitters handed over and the writer has not taken (see the crate docs on its
    /// capacity).
    pub(crate) pending: Mutex<outbox::Pending>,
    /// Events in `pending` (a mirror for metrics and shutdown logs).
    pub(crate) queued: AtomicUsize,
    /// Wakes the writer: a batch's first event, a full batch, a flush.
    pub(crate) writer_wake: tokio::sync::Notify,
    /// Delivery state (wake-up, counters) per delivered destination with a worker.
    pub(crate) destinations: Mutex<HashMap<String, Arc<DestinationState>>>,
    /// Running workers; the async lock serialises `subscriptions_changed`.
    workers: tokio::sync::Mutex<HashMap<String, Worker>>,
    pub(crate) metrics: metrics::Counters,
    /// Stops every task.
    pub(crate) cancel: CancellationToken,
    /// The writer and the usage flusher.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    started: AtomicBool,
    /// Set by `shutdown`: emit and record stop queueing.
    closed: AtomicBool,
    /// Serialises usage flushes.
    usage_flush: tokio::sync::Mutex<()>,
}

impl Inner {
    /// Wakes the worker of each of `ids` that runs here.
    pub(crate) fn wake(&self, ids: impl IntoIterator<Item = impl AsRef<str>>) {
        let dests = lock(&self.destinations);
        for id in ids {
            if let Some(state) = dests.get(id.as_ref()) {
                state.notify.notify_one();
            }
        }
    }
}

/// A new `ev_…` id for an event happening at `now`.
fn new_event_id(now: OffsetDateTime) -> String {
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    new_id(IdPrefix::Event, secs, &mut rand::thread_rng())
}

/// Locks a std mutex, ignoring poisoning: every critical section here is a single map
/// operation that cannot leave the data half-updated.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Events {
    /// A pipeline over `store`. Nothing runs until [`Events::start`].
    pub fn new(store: Store, config: EventsConfig, clock: Arc<dyn Clock>) -> Events {
        let usage = UsageMeter::new(clock.clone());
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        Events {
            inner: Arc::new(Inner {
                store,
                config,
                clock,
                usage,
                routes: ArcSwap::from_pointee(Routes::default()),
                live,
                live_opened: AtomicBool::new(false),
                pending: Mutex::new(outbox::Pending::default()),
                queued: AtomicUsize::new(0),
                writer_wake: tokio::sync::Notify::new(),
                destinations: Mutex::new(HashMap::new()),
                workers: tokio::sync::Mutex::new(HashMap::new()),
                metrics: metrics::Counters::new(),
                cancel: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
                started: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                usage_flush: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Loads subscriptions and starts the outbox writer, delivery, and the usage flusher.
    /// Calling it again does nothing.
    pub async fn start(&self) -> Result<(), StoreError> {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let writer = tokio::spawn(outbox::run_writer(self.inner.clone()));
        let flusher = tokio::spawn(run_usage_flusher(self.clone()));
        lock(&self.inner.tasks).extend([writer, flusher]);
        self.subscriptions_changed().await
    }

    /// Writes everything queued and the usage counters to the store, then stops the tasks
    /// (a delivery attempt in flight is finished and recorded first, within
    /// `delivery_timeout`). Events emitted afterwards are ignored.
    pub async fn shutdown(&self) {
        if !self.inner.started.load(Ordering::SeqCst) || self.inner.closed.load(Ordering::SeqCst) {
            self.inner.closed.store(true, Ordering::SeqCst);
            return;
        }
        let flushed = tokio::time::timeout(SHUTDOWN_FLUSH_TIMEOUT, async {
            self.flush().await;
            self.inner.closed.store(true, Ordering::SeqCst);
            // Anything emitted between the flush and `closed` is still written here.
            self.flush().await;
        })
        .await;
        self.inner.closed.store(true, Ordering::SeqCst);
        if flushed.is_err() {
            tracing::error!(
                queued = self.inner.queued.load(Ordering::Relaxed),
                "the outbox did not accept queued events in time; stopping without them"
            );
        }
        if let Err(e) = self.flush_usage().await {
            tracing::error!(error = %e, "usage counters could not be written at shutdown");
        }
        self.inner.cancel.cancel();
        let workers: Vec<Worker> = self
            .inner
            .workers
            .lock()
            .await
            .drain()
            .map(|(_, w)| w)
            .collect();
        for worker in workers {
            worker.cancel.cancel();
            let _ = worker.task.await;
        }
        let tasks: Vec<JoinHandle<()>> = lock(&self.inner.tasks).drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
        lock(&self.inner.destinations).clear();
    }

    /// The configuration.
    pub fn config(&self) -> &EventsConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The absolute API URL of `path` (`/credentials/cr_…`), for references in event objects.
    pub fn uri(&self, path: &str) -> String {
        format!("{}{path}", self.inner.config.api_url)
    }

    /// Now, by the pipeline's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Whether anything (a subscription or a live tail) wants events of type `ty`. Lock-free;
    /// call it before building an expensive object.
    pub fn wants(&self, ty: &str) -> bool {
        self.inner.routes.load().by_type.contains_key(ty) || self.has_live()
    }

    /// Whether a live tail receiver exists. Lock-free until the first [`Events::live`] call;
    /// after that it asks the broadcast channel (a short uncontended lock).
    fn has_live(&self) -> bool {
        self.inner.live_opened.load(Ordering::Relaxed) && self.inner.live.receiver_count() > 0
    }

    /// The destinations subscribed to `ty`, or `None` when none is.
    fn routed(&self, ty: &str) -> Option<Arc<[String]>> {
        self.inner.routes.load().by_type.get(ty).cloned()
    }

    /// Builds the envelope of an event happening now.
    fn envelope(
        &self,
        ty: &'static str,
        principal: Option<Principal>,
        object: Box<RawValue>,
    ) -> Envelope {
        let now = self.inner.clock.now().to_offset(time::UtcOffset::UTC);
        let event_timestamp = timestamp::whole_seconds(now);
        Envelope {
            event_id: new_event_id(now),
            event_type: ty.to_owned(),
            event_timestamp,
            account_id: self.inner.config.account_id.clone(),
            principal,
            object,
        }
    }

    /// Sends to live tail receivers, if any.
    fn tell_live(&self, envelope: &Arc<Envelope>) {
        if self.has_live() {
            let _ = self.inner.live.send(envelope.clone());
        }
    }

    /// Queues an event without waiting. Traffic events are dropped (and counted) when the
    /// queue is full; other types are never dropped. `object` is serialised here, once, with
    /// its envelope (an object that cannot be — a map with non-string keys — is logged and
    /// dropped).
    pub fn emit(&self, ty: &'static str, principal: Option<Principal>, object: impl Serialize) {
        if self.inner.closed.load(Ordering::Relaxed) || !self.wants(ty) {
            return;
        }
        let now = self.inner.clock.now().to_offset(time::UtcOffset::UTC);
        let event_id = new_event_id(now);
        let event_timestamp = timestamp::whole_seconds(now);
        self.inner.metrics.emitted(ty);
        if self.has_live() {
            match serde_json::value::to_raw_value(&object) {
                Ok(raw) => {
                    let envelope = Envelope {
                        event_id: event_id.clone(),
                        event_type: ty.to_owned(),
                        event_timestamp: event_timestamp.clone(),
                        account_id: self.inner.config.account_id.clone(),
                        principal: principal.clone(),
                        object: raw,
                    };
                    let _ = self.inner.live.send(Arc::new(envelope));
                }
                Err(e) => {
                    tracing::error!(event_type = ty, error = %e, "event object cannot be serialised; dropped");
                    self.inner.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let Some(destinations) = self.routed(ty) else {
            return;
        };
        let envelope = EnvelopeRef {
            event_id: &event_id,
            event_type: ty,
            event_timestamp: &event_timestamp,
            account_id: &self.inner.config.account_id,
            principal: principal.as_ref(),
            object: &object,
        };
        EMIT_BUFFER.with_borrow_mut(|buffer| {
            buffer.clear();
            let text = serde_json::to_writer(&mut *buffer, &envelope)
                .map_err(|e| e.to_string())
                .and_then(|()| std::str::from_utf8(buffer).map_err(|e| e.to_string()));
            match text {
                Ok(text) => self.append(ty, text, &destinations),
                Err(e) => {
                    tracing::error!(event_type = ty, error = %e, "event cannot be serialised; dropped");
                    self.inner.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    /// Appends one serialised event to the pending batch (or drops it, counted, when it is a
    /// traffic event and the batch is at `queue_capacity`), waking the writer for the batch's
    /// first event and when it fills up.
    fn append(&self, ty: &'static str, json: &str, destinations: &[String]) {
        let config = &self.inner.config;
        let run_max = u32::try_from(config.batch_max.max(1)).unwrap_or(u32::MAX);
        let mut pending = lock(&self.inner.pending);
        let before = pending.batch.events;
        if before >= config.queue_capacity && types::is_traffic(ty) {
            drop(pending);
            self.inner.metrics.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.batch.add(ty, json, destinations, run_max);
        self.inner.queued.store(before + 1, Ordering::Relaxed);
        drop(pending);
        if before == 0 || before + 1 == config.batch_max {
            self.inner.writer_wake.notify_one();
        }
    }

    /// Writes an event to the outbox before returning (audit events: the API answers only once
    /// the record is durable). It does not wait for the queue, so it may reach the outbox
    /// before events [`Events::emit`]ted just earlier.
    pub async fn record(
        &self,
        ty: &'static str,
        principal: Option<Principal>,
        object: impl Serialize,
    ) -> Result<(), StoreError> {
        if !self.wants(ty) {
            return Ok(());
        }
        let object = serde_json::value::to_raw_value(&object).map_err(|e| StoreError::Invalid {
            field: "object",
            reason: format!("event cannot be serialised: {e}"),
        })?;
        let envelope = Arc::new(self.envelope(ty, principal, object));
        self.inner.metrics.emitted(ty);
        self.tell_live(&envelope);
        let Some(destinations) = self.routed(ty) else {
            return Ok(());
        };
        let payload = serde_json::to_string(&*envelope).map_err(|e| StoreError::Invalid {
            field: "object",
            reason: format!("event cannot be serialised: {e}"),
        })?;
        let row = NewOutboxEvent {
            event_type: ty.to_owned(),
            payload,
            events: 1,
            destination_ids: destinations.to_vec(),
        };
        self.inner
            .store
            .enqueue_events(std::slice::from_ref(&row), OffsetDateTime::now_utc())
            .await?;
        self.inner.wake(destinations.iter());
        Ok(())
    }

    /// Every event from now on, as it is emitted (for `events tail`). A receiver that falls
    /// behind loses the oldest events (reported as `Lagged`).
    pub fn live(&self) -> broadcast::Receiver<Arc<Envelope>> {
        let rx = self.inner.live.subscribe();
        self.inner.live_opened.store(true, Ordering::Relaxed);
        rx
    }

    /// Re-reads subscriptions and destinations after the API changed them, and starts or
    /// stops delivery workers to match.
    pub async fn subscriptions_changed(&self) -> Result<(), StoreError> {
        // Held throughout so concurrent reloads apply in order.
        let mut workers = self.inner.workers.lock().await;
        let destinations = self.inner.store.all_event_destinations().await?;
        let subscriptions = self.inner.store.all_event_subscriptions().await?;

        let mut delivered: HashMap<String, (Target, String)> = HashMap::new();
        for dest in destinations {
            let parsed = serde_json::from_str::<Value>(&dest.target)
                .map_err(|e| e.to_string())
                .and_then(|v| Target::parse(&v).map_err(|e| e.to_string()));
            match parsed {
                Ok(target) if target.is_delivered() => {
                    delivered.insert(dest.id, (target, dest.target));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(destination = %dest.id, error = %e, "stored event target is unusable; not delivering to it");
                }
            }
        }

        let mut by_type: HashMap<String, Vec<String>> = HashMap::new();
        for sub in &subscriptions {
            for ty in &sub.sources {
                for dest in &sub.destination_ids {
                    if !delivered.contains_key(dest) {
                        continue;
                    }
                    let list = by_type.entry(ty.clone()).or_default();
                    if !list.contains(dest) {
                        list.push(dest.clone());
                    }
                }
            }
        }
        self.inner.routes.store(Arc::new(Routes {
            by_type: by_type
                .into_iter()
                .map(|(ty, list)| (ty, Arc::from(list)))
                .collect(),
        }));

        if !self.inner.started.load(Ordering::SeqCst) || self.inner.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Stop workers of destinations gone, no longer delivered, or with a changed target.
        let stale: Vec<String> = workers
            .iter()
            .filter(|(id, w)| {
                delivered
                    .get(*id)
                    .is_none_or(|(_, stored)| *stored != w.target)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let current: HashSet<&String> = delivered.keys().collect();
        for id in stale {
            if let Some(worker) = workers.remove(&id) {
                // Aborted, not drained: an API call must not wait on a slow destination. An
                // attempt cut short is sent again (at least once).
                worker.cancel.cancel();
                worker.task.abort();
                let _ = worker.task.await;
            }
            if !current.contains(&id) {
                lock(&self.inner.destinations).remove(&id);
            }
        }
        for (id, (target, stored)) in delivered {
            if workers.contains_key(&id) {
                continue;
            }
            let state = lock(&self.inner.destinations)
                .entry(id.clone())
                .or_insert_with(|| Arc::new(DestinationState::default()))
                .clone();
            let cancel = self.inner.cancel.child_token();
            let task = tokio::spawn(deliver::run_worker(
                self.inner.clone(),
                id.clone(),
                target,
                state,
                cancel.clone(),
            ));
            workers.insert(
                id,
                Worker {
                    target: stored,
                    cancel,
                    task,
                },
            );
        }
        Ok(())
    }

    /// Waits until every event emitted before this call is in the outbox.
    pub async fn flush(&self) {
        if !self.inner.started.load(Ordering::SeqCst) || self.inner.cancel.is_cancelled() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.inner.pending);
            if pending.stopped {
                return;
            }
            pending.flushes.push(tx);
        }
        self.inner.writer_wake.notify_one();
        // An error means the writer stopped (cancelled) before answering.
        let _ = rx.await;
    }

    /// Adds the usage counters to the store now (the flusher does this on its own every
    /// `usage_flush_interval` and at each clock hour). On failure the counters keep what
    /// could not be written.
    pub async fn flush_usage(&self) -> Result<(), StoreError> {
        let _serial = self.inner.usage_flush.lock().await;
        let taken = self.inner.usage.take();
        if taken.deltas.is_empty() {
            self.inner.usage.prune();
            return Ok(());
        }
        match self.inner.store.add_usage(&taken.deltas).await {
            Ok(()) => {
                drop(taken);
                self.inner.usage.prune();
                Ok(())
            }
            Err(e) => {
                taken.give_back();
                Err(e)
            }
        }
    }

    /// Traffic counters per endpoint.
    pub fn usage(&self) -> &UsageMeter {
        &self.inner.usage
    }

    /// Puts the parked events of `destination_id` back in line and wakes its worker; returns
    /// how many were requeued.
    pub async fn requeue_parked(&self, destination_id: &str) -> Result<u64, StoreError> {
        let n = self
            .inner
            .store
            .outbox_requeue_parked(destination_id)
            .await?;
        self.inner.wake([destination_id]);
        Ok(n)
    }

    /// Delivery state of a destination: whether Warren delivers to its kind, pending and
    /// parked counts, the oldest pending event, the last error. A destination that does not
    /// exist reads as not delivered with empty counts.
    pub async fn destination_status(&self, id: &str) -> Result<DeliveryStatus, StoreError> {
        let delivered = match self.inner.store.event_destination(id).await? {
            Some(dest) => serde_json::from_str::<Value>(&dest.target)
                .ok()
                .and_then(|v| Target::parse(&v).ok())
                .is_some_and(|t| t.is_delivered()),
            None => false,
        };
        let stats = self.inner.store.outbox_stats(id).await?;
        Ok(DeliveryStatus {
            delivered,
            pending: stats.pending,
            parked: stats.parked,
            oldest_pending_at: stats.oldest_pending_at,
            last_error: stats.last_error,
        })
    }

    /// Delivery metrics (per destination: delivered, failed, parked, lag; emitted per type;
    /// dropped) in the OpenMetrics text format, appended to `out`.
    pub fn encode_metrics(&self, out: &mut String) {
        metrics::encode(&self.inner, out);
    }
}

/// Adds usage counters to the store every `usage_flush_interval` and right after each hour
/// boundary of the pipeline's clock.
async fn run_usage_flusher(events: Events) {
    let cancel = events.inner.cancel.clone();
    let interval = events
        .inner
        .config
        .usage_flush_interval
        .max(Duration::from_millis(10));
    loop {
        let now = events.inner.clock.now();
        let into_hour = u64::try_from(now.unix_timestamp().rem_euclid(3600)).unwrap_or(0);
        let to_boundary = Duration::from_secs(3600 - into_hour)
            .saturating_sub(Duration::from_nanos(u64::from(now.nanosecond())))
            + Duration::from_millis(1);
        tokio::select! {
            _ = cancel.cancelled() => return,
            // At least a second to the boundary: a frozen test clock just before an hour
            // must not turn this into a busy loop.
            _ = tokio::time::sleep(interval.min(to_boundary.max(Duration::from_secs(1)))) => {}
        }
        if let Err(e) = events.flush_usage().await {
            tracing::warn!(error = %e, "usage counters could not be written; kept for the next flush");
        }
    }
}
