-- Event export and usage accounting. `seq` orders rows by insertion; times are Unix seconds,
-- UTC.
--
-- Destinations say where events go (`target` is the JSON text the API validated);
-- subscriptions say which event types go to which destinations. A destination that a
-- subscription still names cannot be deleted (the foreign key refuses it, and the API answers
-- 409); deleting a destination deletes its outbox rows.

CREATE TABLE event_destinations (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    metadata    TEXT    NOT NULL DEFAULT '',
    format      TEXT    NOT NULL,
    target      TEXT    NOT NULL,                   -- JSON text
    created_at  BIGINT NOT NULL
);

CREATE TABLE event_subscriptions (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    metadata    TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- The event types of a subscription, in the order added.
CREATE TABLE event_subscription_sources (
    subscription_id TEXT    NOT NULL REFERENCES event_subscriptions (id) ON DELETE CASCADE,
    type            TEXT    NOT NULL,
    position        BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, type)
);

-- The destinations of a subscription, in the order given. Not cascading on the destination
-- side: a named destination cannot be deleted.
CREATE TABLE event_subscription_destinations (
    subscription_id TEXT    NOT NULL REFERENCES event_subscriptions (id) ON DELETE CASCADE,
    destination_id  TEXT    NOT NULL REFERENCES event_destinations (id),
    position        BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, destination_id)
);

CREATE INDEX event_subscription_destinations_by_destination
    ON event_subscription_destinations (destination_id);

-- One row per (event, destination) awaiting delivery; `seq` is the delivery order. Parked rows
-- (too many failures) stay until requeued or their destination is deleted.
CREATE TABLE event_outbox (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination_id  TEXT    NOT NULL REFERENCES event_destinations (id) ON DELETE CASCADE,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,               -- the event envelope, JSON text
    created_at      BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    parked          BOOLEAN NOT NULL DEFAULT FALSE,
    last_error      TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX event_outbox_by_destination ON event_outbox (destination_id, parked, seq);

-- Traffic per clock hour (`hour` = Unix seconds of its start), endpoint URL and credential.
-- Rows only ever grow: each flush adds its deltas. Byte-order collation so listings sort the
-- same as on SQLite.
CREATE TABLE usage_hours (
    hour          BIGINT NOT NULL,
    endpoint      TEXT   COLLATE "C" NOT NULL,
    credential_id TEXT   COLLATE "C" NOT NULL,
    bytes_in      BIGINT NOT NULL DEFAULT 0,
    bytes_out     BIGINT NOT NULL DEFAULT 0,
    requests      BIGINT NOT NULL DEFAULT 0,
    connections   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, endpoint, credential_id)
);
