-- Authtokens and API keys. Tokens are never stored: token_hash is the lowercase hex
-- SHA-256 of the whole token. created_at is Unix seconds, UTC.

CREATE TABLE credentials (
    id          TEXT   NOT NULL PRIMARY KEY,
    token_hash  TEXT   NOT NULL UNIQUE,
    description TEXT   NOT NULL DEFAULT '',
    metadata    TEXT   NOT NULL DEFAULT '',
    acl         TEXT   NOT NULL DEFAULT '[]', -- JSON array of rule strings
    owner_id    TEXT,
    created_at  BIGINT NOT NULL
);

CREATE INDEX credentials_owner_id ON credentials (owner_id);

CREATE TABLE api_keys (
    id          TEXT   NOT NULL PRIMARY KEY,
    token_hash  TEXT   NOT NULL UNIQUE,
    description TEXT   NOT NULL DEFAULT '',
    metadata    TEXT   NOT NULL DEFAULT '',
    owner_id    TEXT,
    created_at  BIGINT NOT NULL
);

CREATE INDEX api_keys_owner_id ON api_keys (owner_id);
