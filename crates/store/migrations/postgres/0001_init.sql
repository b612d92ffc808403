-- Accounts, their API keys (hashed), and connectors. Times are milliseconds since the epoch.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);

-- One row per connector; the account's default callback is the row named '@default'
-- (a name the API cannot create), so deliveries reference every destination the same way.
CREATE TABLE connectors (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name                      TEXT NOT NULL,
    kind                      TEXT NOT NULL,
    url                       TEXT NOT NULL,
    events                    TEXT NOT NULL,
    origins                   TEXT NOT NULL,
    owner                     TEXT,
    settings                  TEXT NOT NULL,
    flow                      TEXT,
    status                    TEXT NOT NULL,
    warnings                  TEXT NOT NULL,
    key_sealed                BYTEA NOT NULL,
    signing_sealed            BYTEA NOT NULL,
    prev_signing_sealed       BYTEA,
    prev_signing_until        BIGINT,
    credentials_version       BIGINT NOT NULL,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    UNIQUE (account_id, name)
);
