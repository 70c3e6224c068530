-- IP policies, their allow/deny rules, and IP restrictions (which policies guard the agent
-- listener, the API, the public endpoints or the dashboard). `seq` orders rows by insertion;
-- created_at is Unix seconds, UTC.
--
-- Deleting a policy deletes its rules; a policy that a restriction still names cannot be
-- deleted (the foreign key refuses it, and the API answers 409).

CREATE TABLE ip_policies (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    metadata    TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE ip_policy_rules (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    ip_policy_id TEXT    NOT NULL REFERENCES ip_policies (id) ON DELETE CASCADE,
    cidr         TEXT    NOT NULL,                  -- normalized: host bits cleared
    action       TEXT    NOT NULL CHECK (action IN ('allow', 'deny')),
    description  TEXT    NOT NULL DEFAULT '',
    metadata     TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL
);

CREATE INDEX ip_policy_rules_by_policy ON ip_policy_rules (ip_policy_id);

CREATE TABLE ip_restrictions (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL CHECK (type IN ('agent', 'api', 'endpoints', 'dashboard')),
    enforced    BOOLEAN NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    metadata    TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

-- The policies of a restriction, in the order given.
CREATE TABLE ip_restriction_policies (
    ip_restriction_id TEXT    NOT NULL REFERENCES ip_restrictions (id) ON DELETE CASCADE,
    ip_policy_id      TEXT    NOT NULL REFERENCES ip_policies (id),
    position          BIGINT NOT NULL,
    PRIMARY KEY (ip_restriction_id, ip_policy_id)
);

CREATE INDEX ip_restriction_policies_by_policy ON ip_restriction_policies (ip_policy_id);
