-- Accounts, their API keys (hashed), and connectors. Times are milliseconds since the epoch.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL
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
    key_sealed                BLOB NOT NULL,
    signing_sealed            BLOB NOT NULL,
    prev_signing_sealed       BLOB,
    prev_signing_until        INTEGER,
    credentials_version       INTEGER NOT NULL,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    UNIQUE (account_id, name)
);
