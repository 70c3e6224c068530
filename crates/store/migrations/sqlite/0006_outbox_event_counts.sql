-- An outbox row may carry a run of events of one type for one destination: `payload` holds
-- their envelopes as JSON lines (one per line, in order) and `events` says how many. Rows
-- written before this migration hold exactly one event.
ALTER TABLE event_outbox ADD COLUMN events INTEGER NOT NULL DEFAULT 1;

-- Delivery reads a destination's head by (seq, events) to cut a batch at an event count: the
-- index covers that without touching payloads.
DROP INDEX event_outbox_by_destination;
CREATE INDEX event_outbox_by_destination ON event_outbox (destination_id, parked, seq, events);
