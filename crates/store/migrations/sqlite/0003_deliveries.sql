-- Delivery engine: events as ingested, one delivery per (event, destination), every attempt.
-- Times are milliseconds since the epoch. No foreign key to connectors: deleting a connector
-- must leave its history readable (its pending deliveries are failed, not erased).

CREATE TABLE events (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL,
    name                TEXT NOT NULL,
    origin              TEXT NOT NULL,
    package_id          TEXT NOT NULL,
    -- OneSpan's callback body, built once at ingest: every attempt sends (and signs) these bytes.
    payload             TEXT NOT NULL,
    created_at          INTEGER NOT NULL
);

-- The answer given to a request that carried an Idempotency-Key, replayed for the same body.
CREATE TABLE idempotency_keys (
    account_id          TEXT NOT NULL,
    idem_key            TEXT NOT NULL,
    request_hash        TEXT NOT NULL,
    response            TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);

-- status: pending | held | delivered | failed. A claimed delivery stays 'pending' with a
-- lease_token and next_attempt_at pushed to the lease's end, so a crashed node's claims
-- simply become due again. order_key is the packageId when the connector orders per package.
CREATE TABLE deliveries (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    account_id          TEXT NOT NULL,
    event_id            TEXT NOT NULL,
    event_name          TEXT NOT NULL,
    connector_id        TEXT NOT NULL,
    connector_name      TEXT NOT NULL,
    package_id          TEXT NOT NULL,
    order_key           TEXT,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER,
    lease_token         TEXT,
    last_error          TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- The claim's scan reads only this index (covering): skipping the due deliveries of connectors
-- it leaves out (saturated, backing off) costs no table lookups.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, seq, connector_id, order_key) WHERE status = 'pending';
CREATE INDEX deliveries_connector ON deliveries (connector_id, status);
CREATE INDEX deliveries_ordered ON deliveries (connector_id, order_key, seq) WHERE order_key IS NOT NULL;
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_account ON deliveries (account_id, seq);

-- One row per HTTP try (and per token failure that kept a try from happening).
CREATE TABLE attempts (
    id                  INTEGER PRIMARY KEY,
    delivery_id         TEXT NOT NULL,
    at                  INTEGER NOT NULL,
    status_code         INTEGER,
    duration_ms         INTEGER NOT NULL,
    response_excerpt    TEXT,
    error               TEXT,
    diagnosis           TEXT,
    refreshed           INTEGER NOT NULL
);

CREATE INDEX attempts_delivery ON attempts (delivery_id, id);
