-- Service users (ngrok's "bot users"): machine accounts that own credentials and API keys.
-- The id is always `service_…`; the API shows the same body as `bot_…` on /bot_users.
-- created_at is Unix seconds, UTC.

CREATE TABLE service_users (
    id          TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  BIGINT  NOT NULL
);

-- Lists page by `id` (time-ordered base62, where byte order is creation order): compare ids
-- bytewise whatever the database's default collation is, as SQLite does.
ALTER TABLE credentials ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE api_keys ALTER COLUMN id TYPE TEXT COLLATE "C";
