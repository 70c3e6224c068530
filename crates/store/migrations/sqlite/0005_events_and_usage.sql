-- Event export and usage accounting. `seq` orders rows by insertion; times are Unix seconds,
-- UTC.
--
-- Destinations say where events go (`target` is the JSON text the API validated);
-- subscriptions say which event types go to which destinations. A destination that a
-- subscription still names cannot be deleted (the foreign key refuses it, and the API answers
-- 409); deleting a destination deletes its outbox rows.

CREATE TABLE event_destinations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    metadata    TEXT    NOT NULL DEFAULT '',
    format      TEXT    NOT NULL,
    target      TEXT    NOT NULL,                   -- JSON text
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE event_subscriptions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    metadata    TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;

-- The event types of a subscription, in the order added.
CREATE TABLE event_subscription_sources (
    subscription_id TEXT    NOT NULL REFERENCES event_subscriptions (id) ON DELETE CASCADE,
    type            TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, type)
) STRICT;

-- The destinations of a subscription, in the order given. Not cascading on the destination
-- side: a named destination cannot be deleted.
CREATE TABLE event_subscription_destinations (
    subscription_id TEXT    NOT NULL REFERENCES event_subscriptions (id) ON DELETE CASCADE,
    destination_id  TEXT    NOT NULL REFERENCES event_destinations (id),
    position        INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, destination_id)
) STRICT;

CREATE INDEX event_subscription_destinations_by_destination
    ON event_subscription_destinations (destination_id);

-- One row per (event, destination) awaiting delivery; `seq` is the delivery order. Parked rows
-- (too many failures) stay until requeued or their destination is deleted.
CREATE TABLE event_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    destination_id  TEXT    NOT NULL REFERENCES event_destinations (id) ON DELETE CASCADE,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,               -- the event envelope, JSON text
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    parked          INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX event_outbox_by_destination ON event_outbox (destination_id, parked, seq);

-- Traffic per clock hour (`hour` = Unix seconds of its start), endpoint URL and credential.
-- Rows only ever grow: each flush adds its deltas.
CREATE TABLE usage_hours (
    hour          INTEGER NOT NULL,
    endpoint      TEXT    NOT NULL,
    credential_id TEXT    NOT NULL,
    bytes_in      INTEGER NOT NULL DEFAULT 0,
    bytes_out     INTEGER NOT NULL DEFAULT 0,
    requests      INTEGER NOT NULL DEFAULT 0,
    connections   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, endpoint, credential_id)
) STRICT;
