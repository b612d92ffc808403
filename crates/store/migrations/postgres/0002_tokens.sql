-- Token engine: one token state per connector, the history of every call to a provider, and
-- the pending authorization-code flows. Times are milliseconds since the epoch.

-- The access token and the current (possibly rotated) refresh token of a connector, derived from
-- the credentials of `credentials_version`; `version` is bumped at every grant so a stale 401
-- cannot throw away a newer token. The lease makes one grant at a time across nodes.
CREATE TABLE token_state (
    connector_id          TEXT PRIMARY KEY REFERENCES connectors(id) ON DELETE CASCADE,
    credentials_version   BIGINT NOT NULL,
    version               BIGINT NOT NULL,
    access_sealed         BYTEA,
    access_expires_at     BIGINT,
    refresh_at            BIGINT,
    refresh_sealed        BYTEA,
    instance_url          TEXT,
    scope                 TEXT,
    issued_at             BIGINT,
    last_grant_at         BIGINT,
    last_error            TEXT,
    lease_owner           TEXT,
    lease_until           BIGINT,
    backoff_until         BIGINT,
    consecutive_failures  BIGINT NOT NULL DEFAULT 0,
    updated_at            BIGINT NOT NULL
);

-- Ids are `his_` + UUIDv7, so ordering by id is ordering by time (and a stable cursor).
CREATE TABLE history (
    id                 TEXT PRIMARY KEY,
    connector_id       TEXT NOT NULL REFERENCES connectors(id) ON DELETE CASCADE,
    account_id         TEXT NOT NULL,
    at                 BIGINT NOT NULL,
    kind               TEXT NOT NULL,
    grant_type         TEXT,
    outcome            TEXT NOT NULL,
    http_status        BIGINT,
    error              TEXT,
    error_description  TEXT,
    cause              TEXT,
    fix                TEXT,
    duration_ms        BIGINT NOT NULL,
    excerpt            TEXT
);
CREATE INDEX history_by_connector ON history (connector_id, id);

-- Pending authorization-code flows, keyed by the SHA-256 of `state` (single use).
CREATE TABLE oauth_states (
    state_hash       TEXT PRIMARY KEY,
    connector_id     TEXT NOT NULL REFERENCES connectors(id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL,
    connector_name   TEXT NOT NULL,
    verifier_sealed  BYTEA NOT NULL,
    redirect_uri     TEXT NOT NULL,
    expires_at       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
