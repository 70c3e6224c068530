//! Event export: the `event_destinations`, `event_subscriptions` (with their sources and
//! destinations) and `event_outbox` tables.
//!
//! The outbox holds one row per (event, destination): an event for two destinations is two
//! rows, so each destination is delivered, retried and parked on its own, in `seq` order.
//! A row leaves the outbox when its destination acknowledged it; after too many failures it
//! is *parked* (kept, visible, skipped by delivery) until an operator requeues it.
//!
//! Targets are stored as the JSON text the API validated; this module does not look inside.

use time::OffsetDateTime;

use crate::{Store, StoreError};

/// A stored event destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDestination {
    /// `ed_…`.
    pub id: String,
    pub description: String,
    pub metadata: String,
    /// `json`.
    pub format: String,
    /// The `target` object, JSON text.
    pub target: String,
    pub created_at: OffsetDateTime,
}

/// What the caller supplies to create a destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEventDestination {
    pub description: String,
    pub metadata: String,
    pub format: String,
    pub target: String,
}

/// Changes to a destination; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventDestinationUpdate {
    pub description: Option<String>,
    pub metadata: Option<String>,
    pub format: Option<String>,
    pub target: Option<String>,
}

/// Outcome of deleting a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationDelete {
    Deleted,
    NotFound,
    /// A subscription still names it.
    InUse,
}

/// A stored event subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSubscription {
    /// `esb_…`.
    pub id: String,
    pub description: String,
    pub metadata: String,
    /// Event types (`agent_session_start.v0`, …), in the order added.
    pub sources: Vec<String>,
    /// Destination ids (`ed_…`), in the order given.
    pub destination_ids: Vec<String>,
    pub created_at: OffsetDateTime,
}

/// What the caller supplies to create a subscription. Every destination must exist
/// ([`StoreError::Invalid`] with field `destination_ids` otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEventSubscription {
    pub description: String,
    pub metadata: String,
    pub sources: Vec<String>,
    pub destination_ids: Vec<String>,
}

/// Changes to a subscription; `None` leaves a field as it is; lists replace the old list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSubscriptionUpdate {
    pub description: Option<String>,
    pub metadata: Option<String>,
    pub sources: Option<Vec<String>>,
    pub destination_ids: Option<Vec<String>>,
}

/// One event to put in the outbox for each of `destination_ids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxEvent {
    pub event_type: String,
    /// The event envelope, JSON text.
    pub payload: String,
    pub destination_ids: Vec<String>,
}

/// One outbox row: an event waiting for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Insertion order (per destination, delivery order).
    pub seq: i64,
    pub destination_id: String,
    pub event_type: String,
    pub payload: String,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    /// The last delivery error, empty if none.
    pub last_error: String,
}

/// Outbox counts for one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Rows waiting for delivery (not parked).
    pub pending: u64,
    /// Rows parked after too many failures.
    pub parked: u64,
    /// When the oldest pending row was written.
    pub oldest_pending_at: Option<OffsetDateTime>,
    /// The last error of the newest failed or parked row, empty if none.
    pub last_error: String,
}

impl Store {
    /// Creates a destination (`ed_…`).
    pub async fn create_event_destination(
        &self,
        new: NewEventDestination,
    ) -> Result<EventDestination, StoreError> {
        let _ = new;
        unimplemented!("store helper")
    }

    /// One destination.
    pub async fn event_destination(&self, id: &str) -> Result<Option<EventDestination>, StoreError> {
        let _ = id;
        unimplemented!("store helper")
    }

    /// A page of destinations, newest first, older than `before_id` when given.
    pub async fn list_event_destinations(
        &self,
        before_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventDestination>, StoreError> {
        let _ = (before_id, limit);
        unimplemented!("store helper")
    }

    /// Every destination (for delivery), oldest first.
    pub async fn all_event_destinations(&self) -> Result<Vec<EventDestination>, StoreError> {
        unimplemented!("store helper")
    }

    /// Updates a destination; `None` when it does not exist.
    pub async fn update_event_destination(
        &self,
        id: &str,
        update: EventDestinationUpdate,
    ) -> Result<Option<EventDestination>, StoreError> {
        let _ = (id, update);
        unimplemented!("store helper")
    }

    /// Deletes a destination and its outbox rows, unless a subscription names it.
    pub async fn delete_event_destination(&self, id: &str) -> Result<DestinationDelete, StoreError> {
        let _ = id;
        unimplemented!("store helper")
    }

    /// Creates a subscription (`esb_…`).
    pub async fn create_event_subscription(
        &self,
        new: NewEventSubscription,
    ) -> Result<EventSubscription, StoreError> {
        let _ = new;
        unimplemented!("store helper")
    }

    /// One subscription.
    pub async fn event_subscription(
        &self,
        id: &str,
    ) -> Result<Option<EventSubscription>, StoreError> {
        let _ = id;
        unimplemented!("store helper")
    }

    /// A page of subscriptions, newest first, older than `before_id` when given.
    pub async fn list_event_subscriptions(
        &self,
        before_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventSubscription>, StoreError> {
        let _ = (before_id, limit);
        unimplemented!("store helper")
    }

    /// Every subscription (for routing events), oldest first.
    pub async fn all_event_subscriptions(&self) -> Result<Vec<EventSubscription>, StoreError> {
        unimplemented!("store helper")
    }

    /// Updates a subscription; `None` when it does not exist.
    pub async fn update_event_subscription(
        &self,
        id: &str,
        update: EventSubscriptionUpdate,
    ) -> Result<Option<EventSubscription>, StoreError> {
        let _ = (id, update);
        unimplemented!("store helper")
    }

    /// Deletes a subscription; `false` when it did not exist.
    pub async fn delete_event_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let _ = id;
        unimplemented!("store helper")
    }

    /// Writes `events` to the outbox in one transaction (one row per destination), in order.
    pub async fn enqueue_events(
        &self,
        events: &[NewOutboxEvent],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let _ = (events, now);
        unimplemented!("store helper")
    }

    /// Up to `limit` unparked rows of `destination_id`, oldest first (whatever their
    /// `next_attempt_at`: the caller keeps order by waiting for the head).
    pub async fn outbox_pending(
        &self,
        destination_id: &str,
        limit: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let _ = (destination_id, limit);
        unimplemented!("store helper")
    }

    /// Removes delivered rows.
    pub async fn outbox_delivered(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let _ = seqs;
        unimplemented!("store helper")
    }

    /// Records a failed attempt on `seqs`: attempts + 1, the error, the next attempt time.
    pub async fn outbox_failed(
        &self,
        seqs: &[i64],
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let _ = (seqs, error, next_attempt_at);
        unimplemented!("store helper")
    }

    /// Parks `seqs` with `error`: kept, counted, skipped by delivery.
    pub async fn outbox_park(&self, seqs: &[i64], error: &str) -> Result<(), StoreError> {
        let _ = (seqs, error);
        unimplemented!("store helper")
    }

    /// Parked rows of `destination_id`, oldest first.
    pub async fn outbox_parked(
        &self,
        destination_id: &str,
        limit: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let _ = (destination_id, limit);
        unimplemented!("store helper")
    }

    /// Puts every parked row of `destination_id` back in line (attempts reset); returns how many.
    pub async fn outbox_requeue_parked(&self, destination_id: &str) -> Result<u64, StoreError> {
        let _ = destination_id;
        unimplemented!("store helper")
    }

    /// Pending and parked counts of `destination_id`.
    pub async fn outbox_stats(&self, destination_id: &str) -> Result<OutboxStats, StoreError> {
        let _ = destination_id;
        unimplemented!("store helper")
    }
}
