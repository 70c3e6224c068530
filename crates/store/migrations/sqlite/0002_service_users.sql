-- Service users (ngrok's "bot users"): machine accounts that own credentials and API keys.
-- The id is always `service_…`; the API shows the same body as `bot_…` on /bot_users.
-- created_at is Unix seconds, UTC; active is 0 or 1.

CREATE TABLE service_users (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
) STRICT;
