-- Reserved domains and reserved TCP addresses. `seq` orders rows by insertion (lists are
-- newest first; ids only order by second). created_at is Unix seconds, UTC.

CREATE TABLE reserved_domains (
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                    TEXT   NOT NULL UNIQUE,
    domain                TEXT   NOT NULL UNIQUE, -- normalized: lowercase, `*.` prefix for wildcards
    region                TEXT   NOT NULL DEFAULT '',
    description           TEXT   NOT NULL DEFAULT '',
    metadata              TEXT   NOT NULL DEFAULT '',
    cert_authority        TEXT,                   -- certificate_management_policy, NULL = none
    cert_private_key_type TEXT,
    created_at            BIGINT NOT NULL
);

CREATE TABLE reserved_addrs (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT   NOT NULL UNIQUE,
    addr        TEXT   NOT NULL,                  -- `<base domain>:<port>` as assigned
    port        BIGINT NOT NULL UNIQUE CHECK (port BETWEEN 1 AND 65535),
    region      TEXT   NOT NULL DEFAULT '',
    description TEXT   NOT NULL DEFAULT '',
    metadata    TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
