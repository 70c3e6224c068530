//! Event export: the `event_destinations`, `event_subscriptions` (with their sources and
//! destinations) and `event_outbox` tables.
//!
//! The outbox holds one row per (event, destination): an event for two destinations is two
//! rows, so each destination is delivered, retried and parked on its own, in `seq` order.
//! A row leaves the outbox when its destination acknowledged it; after too many failures it
//! is *parked* (kept, visible, skipped by delivery) until an operator requeues it.
//!
//! Targets are stored as the JSON text the API validated; this module does not look inside.
//!
//! A destination that a subscription names cannot be deleted ([`DestinationDelete::InUse`]:
//! the foreign key decides, so a concurrent subscription write cannot slip past a check);
//! deleting one takes its outbox rows along. Subscriptions naming destinations that do not
//! exist are [`StoreError::Invalid`] with field `destination_ids`. Repeated sources or
//! destinations in one list are dropped (the first is kept); each list holds at most
//! [`MAX_SUBSCRIPTION_LIST`] entries.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;
use warren_model::ids::IdPrefix;

use crate::common;
use crate::reservations::{delete_by_id, list_page};
use crate::{Store, StoreError};

/// Most sources, and most destinations, one subscription may name.
pub const MAX_SUBSCRIPTION_LIST: usize = 1_000;
/// Most outbox rows one `INSERT` writes (four binds each: far under SQLite's 32,766 and
/// PostgreSQL's 65,535 bind limits). Measured on SQLite, 1,000-row statements cost about three
/// times as much per row as 200-row ones; below ~100 the per-statement overhead shows again.
pub const OUTBOX_ROWS_PER_STATEMENT: usize = 200;
/// Most ids or seqs one `IN (…)` list holds.
const IDS_PER_STATEMENT: usize = 500;
/// How many times [`Store::enqueue_events`] writes before giving up when destinations keep
/// disappearing under it (each retry drops the rows of the vanished ones).
const ENQUEUE_ATTEMPTS: usize = 3;

/// A stored event destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDestination {
    /// `ed_…`.
    pub id: String,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// `json`.
    pub format: String,
    /// The `target` object, JSON text.
    pub target: String,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

/// What the caller supplies to create a destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEventDestination {
    /// Description, at most 255 bytes.
    pub description: String,
    /// Metadata, at most 4096 bytes.
    pub metadata: String,
    /// `json`.
    pub format: String,
    /// The `target` object, JSON text (validated by the caller).
    pub target: String,
}

/// Changes to a destination; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventDestinationUpdate {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
    /// New format.
    pub format: Option<String>,
    /// New target, JSON text.
    pub target: Option<String>,
}

/// Outcome of deleting a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationDelete {
    /// Deleted, with its outbox rows.
    Deleted,
    /// There was no such destination.
    NotFound,
    /// A subscription still names it.
    InUse,
}

/// A stored event subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSubscription {
    /// `esb_…`.
    pub id: String,
    /// Human-readable description.
    pub description: String,
    /// Machine-readable metadata.
    pub metadata: String,
    /// Event types (`agent_session_start.v0`, …), in the order added.
    pub sources: Vec<String>,
    /// Destination ids (`ed_…`), in the order given.
    pub destination_ids: Vec<String>,
    /// When it was created (whole seconds, UTC).
    pub created_at: OffsetDateTime,
}

/// What the caller supplies to create a subscription. Every destination must exist
/// ([`StoreError::Invalid`] with field `destination_ids` otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEventSubscription {
    /// Description, at most 255 bytes.
    pub description: String,
    /// Metadata, at most 4096 bytes.
    pub metadata: String,
    /// Event types; repeats are dropped (first kept).
    pub sources: Vec<String>,
    /// Destination ids; repeats are dropped (first kept).
    pub destination_ids: Vec<String>,
}

/// Changes to a subscription; `None` leaves a field as it is; lists replace the old list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSubscriptionUpdate {
    /// New description.
    pub description: Option<String>,
    /// New metadata.
    pub metadata: Option<String>,
    /// New event types (replace the old list).
    pub sources: Option<Vec<String>>,
    /// New destination ids (replace the old list).
    pub destination_ids: Option<Vec<String>>,
}

/// Events to put in the outbox for each of `destination_ids`: one envelope, or a run of
/// envelopes of one type written as one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxEvent {
    /// The event type (`http_request_complete.v0`, …) of every envelope in `payload`.
    pub event_type: String,
    /// The event envelopes as JSON lines: one JSON text per line, `\n` between them, no
    /// trailing newline.
    pub payload: String,
    /// How many envelopes `payload` holds (at least 1).
    pub events: u32,
    /// The destinations to deliver it to, in this order.
    pub destination_ids: Vec<String>,
}

/// One outbox row: an event, or a run of events of one type, waiting for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Insertion order (per destination, delivery order).
    pub seq: i64,
    /// The destination (`ed_…`).
    pub destination_id: String,
    /// The event type of every envelope in `payload`.
    pub event_type: String,
    /// The event envelopes as JSON lines (see [`NewOutboxEvent::payload`]).
    pub payload: String,
    /// How many envelopes `payload` holds.
    pub events: u32,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub next_attempt_at: OffsetDateTime,
    /// When the row was written.
    pub created_at: OffsetDateTime,
    /// The last delivery error, empty if none.
    pub last_error: String,
}

/// Outbox counts for one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Events waiting for delivery (not parked).
    pub pending: u64,
    /// Events parked after too many failures.
    pub parked: u64,
    /// When the oldest pending row was written.
    pub oldest_pending_at: Option<OffsetDateTime>,
    /// The last error of the newest failed or parked row, empty if none.
    pub last_error: String,
}

const DESTINATION_COLUMNS: &str =
    "SELECT id, description, metadata, format, target, created_at FROM event_destinations";
const SUBSCRIPTION_COLUMNS: &str =
    "SELECT id, description, metadata, created_at FROM event_subscriptions";
const OUTBOX_COLUMNS: &str = "SELECT seq, destination_id, event_type, payload, events, \
     attempts, next_attempt_at, created_at, last_error FROM event_outbox";

#[derive(sqlx::FromRow)]
struct DestinationRow {
    id: String,
    description: String,
    metadata: String,
    format: String,
    target: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: String,
    description: String,
    metadata: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    destination_id: String,
    event_type: String,
    payload: String,
    events: i64,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
    last_error: String,
}

/// A stored Unix time, or [`StoreError::Corrupt`] naming the row and column.
fn time_of(
    table: &'static str,
    id: &str,
    column: &str,
    secs: i64,
) -> Result<OffsetDateTime, StoreError> {
    common::unix_to_time(secs).ok_or_else(|| StoreError::Corrupt {
        table,
        id: id.to_owned(),
        reason: format!("{column} out of range"),
    })
}

impl DestinationRow {
    fn into_destination(self) -> Result<EventDestination, StoreError> {
        Ok(EventDestination {
            created_at: time_of(
                "event_destinations",
                &self.id,
                "created_at",
                self.created_at,
            )?,
            id: self.id,
            description: self.description,
            metadata: self.metadata,
            format: self.format,
            target: self.target,
        })
    }
}

impl OutboxRow {
    fn into_entry(self) -> Result<OutboxEntry, StoreError> {
        let id = self.seq.to_string();
        Ok(OutboxEntry {
            next_attempt_at: time_of("event_outbox", &id, "next_attempt_at", self.next_attempt_at)?,
            created_at: time_of("event_outbox", &id, "created_at", self.created_at)?,
            attempts: u32::try_from(self.attempts.max(0)).unwrap_or(u32::MAX),
            events: u32::try_from(self.events.max(1)).unwrap_or(u32::MAX),
            seq: self.seq,
            destination_id: self.destination_id,
            event_type: self.event_type,
            payload: self.payload,
            last_error: self.last_error,
        })
    }
}

/// `$first, $first+1, …` — `count` placeholders.
fn placeholders(first: usize, count: usize) -> String {
    let mut out = String::with_capacity(count * 6);
    for n in first..first + count {
        if n > first {
            out.push_str(", ");
        }
        out.push('$');
        out.push_str(&n.to_string());
    }
    out
}

/// `items` without repeats, first occurrence kept.
fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

/// A list field of a subscription, deduplicated and within [`MAX_SUBSCRIPTION_LIST`].
fn check_list(field: &'static str, items: Vec<String>) -> Result<Vec<String>, StoreError> {
    let items = dedup(items);
    if items.len() > MAX_SUBSCRIPTION_LIST {
        return Err(StoreError::Invalid {
            field,
            reason: format!(
                "{field} names {} entries; at most {MAX_SUBSCRIPTION_LIST} are allowed",
                items.len()
            ),
        });
    }
    Ok(items)
}

fn check_text(description: Option<&str>, metadata: Option<&str>) -> Result<(), StoreError> {
    common::check_description_and_metadata(description.unwrap_or(""), metadata.unwrap_or(""))
}

fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// A list position as stored.
fn position(index: usize) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

/// `INSERT` of the source rows of subscription `$1`: `(type, position)` pairs from `$2` on.
fn sources_insert(count: usize) -> String {
    let values: Vec<String> = (0..count)
        .map(|i| format!("($1, ${}, ${})", 2 + 2 * i, 3 + 2 * i))
        .collect();
    format!(
        "INSERT INTO event_subscription_sources (subscription_id, type, position) VALUES {}",
        values.join(", ")
    )
}

/// `INSERT` of the destination rows of subscription `$1`: `(destination_id, position)` pairs
/// from `$2` on.
fn destinations_insert(count: usize) -> String {
    let values: Vec<String> = (0..count)
        .map(|i| format!("($1, ${}, ${})", 2 + 2 * i, 3 + 2 * i))
        .collect();
    format!(
        "INSERT INTO event_subscription_destinations (subscription_id, destination_id, position) \
         VALUES {}",
        values.join(", ")
    )
}

/// Runs `$sql` (built by [`sources_insert`] / [`destinations_insert`]) for `$items` of
/// subscription `$id` on `$conn`, when there are any.
macro_rules! insert_list {
    ($conn:expr, $sql:expr, $id:expr, $items:expr) => {
        if !$items.is_empty() {
            let sql = $sql($items.len());
            let mut query = sqlx::query(&sql).persistent(false).bind($id);
            for (i, item) in $items.iter().enumerate() {
                query = query.bind(item).bind(position(i));
            }
            query.execute($conn).await?;
        }
    };
}

/// A (subscription id, list item) row of a subscription's sources or destinations.
type Link = (String, String);

/// One outbox row to write: destination, event type, payload.
type NewRow<'a> = (&'a str, &'a str, &'a str, i64);

impl Store {
    /// Creates a destination (`ed_…`).
    pub async fn create_event_destination(
        &self,
        new: NewEventDestination,
    ) -> Result<EventDestination, StoreError> {
        common::check_description_and_metadata(&new.description, &new.metadata)?;
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::EventDestination, now);
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO event_destinations \
                 (id, description, metadata, format, target, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(&new.description)
            .bind(&new.metadata)
            .bind(&new.format)
            .bind(&new.target)
            .bind(now)
            .execute(pool)
            .await?;
        });
        tracing::debug!(%id, "event destination created");
        Ok(EventDestination {
            id,
            description: new.description,
            metadata: new.metadata,
            format: new.format,
            target: new.target,
            created_at,
        })
    }

    /// One destination.
    pub async fn event_destination(
        &self,
        id: &str,
    ) -> Result<Option<EventDestination>, StoreError> {
        let sql = format!("{DESTINATION_COLUMNS} WHERE id = $1");
        let row: Option<DestinationRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(DestinationRow::into_destination).transpose()
    }

    /// A page of destinations, newest first, older than `before_id` when given.
    pub async fn list_event_destinations(
        &self,
        before_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventDestination>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(0);
        list_page::<DestinationRow>(
            self,
            "event_destinations",
            DESTINATION_COLUMNS,
            before_id,
            limit,
        )
        .await?
        .into_iter()
        .map(DestinationRow::into_destination)
        .collect()
    }

    /// Every destination (for delivery), oldest first.
    pub async fn all_event_destinations(&self) -> Result<Vec<EventDestination>, StoreError> {
        let sql = format!("{DESTINATION_COLUMNS} ORDER BY seq");
        let rows: Vec<DestinationRow> =
            with_pool!(self, |pool| { sqlx::query_as(&sql).fetch_all(pool).await? });
        rows.into_iter()
            .map(DestinationRow::into_destination)
            .collect()
    }

    /// Updates a destination; `None` when it does not exist.
    pub async fn update_event_destination(
        &self,
        id: &str,
        update: EventDestinationUpdate,
    ) -> Result<Option<EventDestination>, StoreError> {
        check_text(update.description.as_deref(), update.metadata.as_deref())?;
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE event_destinations SET description = COALESCE($2, description), \
                 metadata = COALESCE($3, metadata), format = COALESCE($4, format), \
                 target = COALESCE($5, target) WHERE id = $1",
            )
            .bind(id)
            .bind(update.description.as_deref())
            .bind(update.metadata.as_deref())
            .bind(update.format.as_deref())
            .bind(update.target.as_deref())
            .execute(pool)
            .await?;
        });
        self.event_destination(id).await
    }

    /// Deletes a destination and its outbox rows, unless a subscription names it.
    ///
    /// The foreign key from `event_subscription_destinations` decides (so a subscription
    /// updated at the same moment cannot slip past a check); the outbox rows go with the
    /// destination in the same statement (`ON DELETE CASCADE`).
    pub async fn delete_event_destination(
        &self,
        id: &str,
    ) -> Result<DestinationDelete, StoreError> {
        match delete_by_id(self, "event_destinations", id).await {
            Ok(true) => {
                tracing::debug!(%id, "event destination deleted");
                Ok(DestinationDelete::Deleted)
            }
            Ok(false) => Ok(DestinationDelete::NotFound),
            Err(StoreError::Database(e)) if is_foreign_key_violation(&e) => {
                Ok(DestinationDelete::InUse)
            }
            Err(other) => Err(other),
        }
    }

    /// The ids among `ids` that name no destination, in the order given.
    async fn missing_destinations(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let existing = self
            .existing_destinations(ids.iter().map(String::as_str))
            .await?;
        Ok(ids
            .iter()
            .filter(|id| !existing.contains(id.as_str()))
            .cloned()
            .collect())
    }

    /// The ids among `ids` that name a destination.
    async fn existing_destinations<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<HashSet<String>, StoreError> {
        let wanted: Vec<&str> = ids.collect::<HashSet<_>>().into_iter().collect();
        let mut found = HashSet::with_capacity(wanted.len());
        for chunk in wanted.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id FROM event_destinations WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let ids: Vec<String> = with_pool!(self, |pool| {
                let mut query = sqlx::query_scalar(&sql).persistent(false);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            found.extend(ids);
        }
        Ok(found)
    }

    /// The error for a subscription write the foreign key refused: names the missing
    /// destinations when they can still be told.
    async fn unknown_destinations(&self, ids: &[String], err: sqlx::Error) -> StoreError {
        if !is_foreign_key_violation(&err) {
            return StoreError::Database(err);
        }
        let reason = match self.missing_destinations(ids).await {
            Ok(missing) if !missing.is_empty() => {
                format!("no event destination has the id {}", missing.join(", "))
            }
            _ => "an event destination this names does not exist".to_owned(),
        };
        StoreError::Invalid {
            field: "destination_ids",
            reason,
        }
    }

    /// Creates a subscription (`esb_…`).
    pub async fn create_event_subscription(
        &self,
        new: NewEventSubscription,
    ) -> Result<EventSubscription, StoreError> {
        common::check_description_and_metadata(&new.description, &new.metadata)?;
        let sources = check_list("sources", new.sources)?;
        let destination_ids = check_list("destination_ids", new.destination_ids)?;
        let (created_at, now) = common::now();
        let id = common::new_id(IdPrefix::EventSubscription, now);
        let written: Result<(), sqlx::Error> = with_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO event_subscriptions (id, description, metadata, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&id)
                .bind(&new.description)
                .bind(&new.metadata)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                insert_list!(&mut *tx, sources_insert, &id, sources);
                insert_list!(&mut *tx, destinations_insert, &id, destination_ids);
                tx.commit().await
            }
            .await
        });
        if let Err(e) = written {
            return Err(self.unknown_destinations(&destination_ids, e).await);
        }
        tracing::debug!(%id, "event subscription created");
        Ok(EventSubscription {
            id,
            description: new.description,
            metadata: new.metadata,
            sources,
            destination_ids,
            created_at,
        })
    }

    /// Sources and destination ids of the subscriptions `ids` (every subscription when
    /// `None`), each list in position order. Two queries per [`IDS_PER_STATEMENT`] ids.
    async fn subscription_lists(
        &self,
        ids: Option<&[String]>,
    ) -> Result<HashMap<String, (Vec<String>, Vec<String>)>, StoreError> {
        let mut lists: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
        let chunks: Vec<Option<&[String]>> = match ids {
            None => vec![None],
            Some(ids) => ids.chunks(IDS_PER_STATEMENT).map(Some).collect(),
        };
        for chunk in chunks {
            let filter = match chunk {
                Some(chunk) => format!(
                    "WHERE subscription_id IN ({})",
                    placeholders(1, chunk.len())
                ),
                None => String::new(),
            };
            let sources_sql = format!(
                "SELECT subscription_id, type FROM event_subscription_sources {filter} \
                 ORDER BY position"
            );
            let destinations_sql = format!(
                "SELECT subscription_id, destination_id FROM event_subscription_destinations \
                 {filter} ORDER BY position"
            );
            let (sources, destinations): (Vec<Link>, Vec<Link>) = with_pool!(self, |pool| {
                let mut sources = sqlx::query_as(&sources_sql).persistent(chunk.is_none());
                let mut destinations =
                    sqlx::query_as(&destinations_sql).persistent(chunk.is_none());
                for id in chunk.unwrap_or_default() {
                    sources = sources.bind(id);
                    destinations = destinations.bind(id);
                }
                (
                    sources.fetch_all(pool).await?,
                    destinations.fetch_all(pool).await?,
                )
            });
            for (id, source) in sources {
                lists.entry(id).or_default().0.push(source);
            }
            for (id, destination) in destinations {
                lists.entry(id).or_default().1.push(destination);
            }
        }
        Ok(lists)
    }

    /// Subscriptions of `rows`, in the same order, with their lists (`all`: the rows are every
    /// subscription, so the lists are loaded without an id filter).
    async fn subscriptions_of(
        &self,
        rows: Vec<SubscriptionRow>,
        all: bool,
    ) -> Result<Vec<EventSubscription>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut lists = self
            .subscription_lists(if all { None } else { Some(&ids) })
            .await?;
        rows.into_iter()
            .map(|row| {
                let (sources, destination_ids) = lists.remove(&row.id).unwrap_or_default();
                Ok(EventSubscription {
                    created_at: time_of(
                        "event_subscriptions",
                        &row.id,
                        "created_at",
                        row.created_at,
                    )?,
                    id: row.id,
                    description: row.description,
                    metadata: row.metadata,
                    sources,
                    destination_ids,
                })
            })
            .collect()
    }

    /// One subscription.
    pub async fn event_subscription(
        &self,
        id: &str,
    ) -> Result<Option<EventSubscription>, StoreError> {
        let sql = format!("{SUBSCRIPTION_COLUMNS} WHERE id = $1");
        let row: Option<SubscriptionRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(self.subscriptions_of(vec![row], false).await?.pop())
    }

    /// A page of subscriptions, newest first, older than `before_id` when given.
    pub async fn list_event_subscriptions(
        &self,
        before_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventSubscription>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let rows = list_page::<SubscriptionRow>(
            self,
            "event_subscriptions",
            SUBSCRIPTION_COLUMNS,
            before_id,
            limit,
        )
        .await?;
        self.subscriptions_of(rows, false).await
    }

    /// Every subscription (for routing events), oldest first.
    pub async fn all_event_subscriptions(&self) -> Result<Vec<EventSubscription>, StoreError> {
        let sql = format!("{SUBSCRIPTION_COLUMNS} ORDER BY seq");
        let rows: Vec<SubscriptionRow> =
            with_pool!(self, |pool| { sqlx::query_as(&sql).fetch_all(pool).await? });
        self.subscriptions_of(rows, true).await
    }

    /// Updates a subscription; `None` when it does not exist. New lists replace the old ones
    /// in one transaction.
    pub async fn update_event_subscription(
        &self,
        id: &str,
        update: EventSubscriptionUpdate,
    ) -> Result<Option<EventSubscription>, StoreError> {
        check_text(update.description.as_deref(), update.metadata.as_deref())?;
        let sources = update
            .sources
            .map(|s| check_list("sources", s))
            .transpose()?;
        let destination_ids = update
            .destination_ids
            .map(|d| check_list("destination_ids", d))
            .transpose()?;
        let written: Result<bool, sqlx::Error> = with_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE event_subscriptions SET description = COALESCE($2, description), \
                     metadata = COALESCE($3, metadata) WHERE id = $1",
                )
                .bind(id)
                .bind(update.description.as_deref())
                .bind(update.metadata.as_deref())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Ok(false);
                }
                if let Some(sources) = &sources {
                    sqlx::query(
                        "DELETE FROM event_subscription_sources WHERE subscription_id = $1",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    insert_list!(&mut *tx, sources_insert, id, sources);
                }
                if let Some(destination_ids) = &destination_ids {
                    sqlx::query(
                        "DELETE FROM event_subscription_destinations WHERE subscription_id = $1",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    insert_list!(&mut *tx, destinations_insert, id, destination_ids);
                }
                tx.commit().await?;
                Ok(true)
            }
            .await
        });
        match written {
            Ok(true) => self.event_subscription(id).await,
            Ok(false) => Ok(None),
            Err(e) => Err(self
                .unknown_destinations(destination_ids.as_deref().unwrap_or_default(), e)
                .await),
        }
    }

    /// Deletes a subscription; `false` when it did not exist.
    pub async fn delete_event_subscription(&self, id: &str) -> Result<bool, StoreError> {
        delete_by_id(self, "event_subscriptions", id).await
    }

    /// Writes `events` to the outbox in one transaction (one row per destination), in order.
    ///
    /// Rows get increasing `seq`s in the order of `events`, and within an event in the order
    /// of its `destination_ids`. They are written by multi-row `INSERT`s of up to
    /// [`OUTBOX_ROWS_PER_STATEMENT`] rows. Rows for a destination deleted meanwhile (the
    /// foreign key refuses them) are dropped and the rest written again, so one vanished
    /// destination cannot block the others.
    pub async fn enqueue_events(
        &self,
        events: &[NewOutboxEvent],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut rows: Vec<NewRow<'_>> = events
            .iter()
            .flat_map(|e| {
                e.destination_ids.iter().map(move |d| {
                    (
                        d.as_str(),
                        e.event_type.as_str(),
                        e.payload.as_str(),
                        i64::from(e.events.max(1)),
                    )
                })
            })
            .collect();
        let now = now.unix_timestamp();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if rows.is_empty() {
                return Ok(());
            }
            match self.insert_outbox_rows(&rows, now).await {
                Ok(()) => return Ok(()),
                Err(e) if is_foreign_key_violation(&e) && attempt < ENQUEUE_ATTEMPTS => {
                    let existing = self.existing_destinations(rows.iter().map(|r| r.0)).await?;
                    let before = rows.len();
                    rows.retain(|r| existing.contains(r.0));
                    tracing::debug!(
                        dropped = before - rows.len(),
                        "outbox rows for deleted event destinations dropped"
                    );
                }
                Err(e) => return Err(StoreError::Database(e)),
            }
        }
    }

    /// Inserts `rows` in one transaction, in order.
    async fn insert_outbox_rows(&self, rows: &[NewRow<'_>], now: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(OUTBOX_ROWS_PER_STATEMENT) {
                let sql = outbox_insert(chunk.len());
                // Full chunks share one SQL text: worth caching. Shorter ones vary.
                let mut query = sqlx::query(&sql)
                    .persistent(chunk.len() == OUTBOX_ROWS_PER_STATEMENT)
                    .bind(now);
                for (destination, event_type, payload, events) in chunk {
                    query = query
                        .bind(*destination)
                        .bind(*event_type)
                        .bind(*payload)
                        .bind(*events);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await
        })
    }

    /// The oldest unparked rows of `destination_id`, oldest first (whatever their
    /// `next_attempt_at`: the caller keeps order by waiting for the head), holding at most
    /// `limit` events together — except that the first row is returned whatever its count.
    pub async fn outbox_pending(
        &self,
        destination_id: &str,
        limit: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_rows(destination_id, false, limit).await
    }

    async fn outbox_rows(
        &self,
        destination_id: &str,
        parked: bool,
        limit: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        // The running event count comes from the covering index alone; payloads are read only
        // for the rows returned.
        let sql = format!(
            "{OUTBOX_COLUMNS} WHERE seq IN (\
               SELECT seq FROM (\
                 SELECT seq, events, \
                   SUM(events) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS upto \
                 FROM event_outbox WHERE destination_id = $1 AND parked = $2 \
                 ORDER BY seq LIMIT $3\
               ) AS head WHERE upto <= $3 OR upto = events\
             ) ORDER BY seq"
        );
        let rows: Vec<OutboxRow> = with_pool!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(destination_id)
                .bind(parked)
                .bind(limit.max(0))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(OutboxRow::into_entry).collect()
    }

    /// Runs `head` (an `UPDATE`/`DELETE` whose own binds are `text` as `$1` and `secs` as the
    /// next, when given) with `WHERE seq IN (…)` over `seqs`, in chunks, in one transaction.
    async fn on_seqs(
        &self,
        head: &str,
        text: Option<&str>,
        secs: Option<i64>,
        seqs: &[i64],
    ) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let first = 1 + usize::from(text.is_some()) + usize::from(secs.is_some());
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in seqs.chunks(IDS_PER_STATEMENT) {
                let sql = format!("{head} WHERE seq IN ({})", placeholders(first, chunk.len()));
                let mut query = sqlx::query(&sql).persistent(false);
                if let Some(text) = text {
                    query = query.bind(text);
                }
                if let Some(secs) = secs {
                    query = query.bind(secs);
                }
                for seq in chunk {
                    query = query.bind(*seq);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Removes delivered rows.
    pub async fn outbox_delivered(&self, seqs: &[i64]) -> Result<(), StoreError> {
        self.on_seqs("DELETE FROM event_outbox", None, None, seqs)
            .await
    }

    /// Records a failed attempt on `seqs`: attempts + 1, the error, the next attempt time.
    pub async fn outbox_failed(
        &self,
        seqs: &[i64],
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.on_seqs(
            "UPDATE event_outbox SET attempts = attempts + 1, last_error = $1, \
             next_attempt_at = $2",
            Some(error),
            Some(next_attempt_at.unix_timestamp()),
            seqs,
        )
        .await
    }

    /// Parks `seqs` with `error`: kept, counted, skipped by delivery. Parking counts as the
    /// last failed attempt (attempts + 1).
    pub async fn outbox_park(&self, seqs: &[i64], error: &str) -> Result<(), StoreError> {
        self.on_seqs(
            "UPDATE event_outbox SET parked = TRUE, attempts = attempts + 1, last_error = $1",
            Some(error),
            None,
            seqs,
        )
        .await
    }

    /// Parked rows of `destination_id`, oldest first, holding at most `limit` events together
    /// (the first row whatever its count), as [`Store::outbox_pending`].
    pub async fn outbox_parked(
        &self,
        destination_id: &str,
        limit: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_rows(destination_id, true, limit).await
    }

    /// Puts every parked row of `destination_id` back in line (attempts reset); returns how
    /// many events they hold.
    ///
    /// Requeued rows are as new: no attempts, no error, due at once (their `next_attempt_at`
    /// becomes their `created_at`). They keep their `seq`, so they go out before anything
    /// written after them.
    pub async fn outbox_requeue_parked(&self, destination_id: &str) -> Result<u64, StoreError> {
        let counts: Vec<(i64,)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE event_outbox SET parked = FALSE, attempts = 0, last_error = '', \
                 next_attempt_at = created_at WHERE destination_id = $1 AND parked = TRUE \
                 RETURNING events",
            )
            .bind(destination_id)
            .fetch_all(pool)
            .await?
        });
        Ok(counts
            .iter()
            .map(|(n,)| u64::try_from(*n).unwrap_or(0))
            .sum())
    }

    /// Pending and parked counts of `destination_id`.
    pub async fn outbox_stats(&self, destination_id: &str) -> Result<OutboxStats, StoreError> {
        let (pending, parked, oldest, last_error): (i64, i64, Option<i64>, Option<String>) =
            with_pool!(self, |pool| {
                sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(events) FILTER (WHERE NOT parked), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(events) FILTER (WHERE parked), 0) AS BIGINT), \
                     MIN(created_at) FILTER (WHERE NOT parked), \
                     (SELECT last_error FROM event_outbox WHERE destination_id = $1 \
                      AND last_error <> '' ORDER BY seq DESC LIMIT 1) \
                     FROM event_outbox WHERE destination_id = $1",
                )
                .bind(destination_id)
                .fetch_one(pool)
                .await?
            });
        Ok(OutboxStats {
            pending: u64::try_from(pending).unwrap_or(0),
            parked: u64::try_from(parked).unwrap_or(0),
            oldest_pending_at: oldest
                .map(|secs| time_of("event_outbox", destination_id, "created_at", secs))
                .transpose()?,
            last_error: last_error.unwrap_or_default(),
        })
    }
}

/// `INSERT` of `count` outbox rows: `now` is `$1`, then (destination, type, payload, events)
/// quadruples.
fn outbox_insert(count: usize) -> String {
    let mut sql = String::with_capacity(120 + count * 40);
    sql.push_str(
        "INSERT INTO event_outbox \
         (destination_id, event_type, payload, events, created_at, next_attempt_at) VALUES ",
    );
    for i in 0..count {
        if i > 0 {
            sql.push_str(", ");
        }
        let n = 2 + 4 * i;
        sql.push_str(&format!(
            "(${n}, ${}, ${}, ${}, $1, $1)",
            n + 1,
            n + 2,
            n + 3
        ));
    }
    sql
}
