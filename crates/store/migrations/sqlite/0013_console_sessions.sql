-- The console's sessions: a browser's login with an API key, kept here so that any node serves
-- it. The cookie carries a random token; only its SHA-256 is kept. Revoking the key ends its
-- sessions (the cascade). `last_seen_at` (ms) drives the idle expiry.
CREATE TABLE console_sessions (
    token_hash    TEXT PRIMARY KEY,
    key_hash      TEXT NOT NULL REFERENCES api_keys(key_hash) ON DELETE CASCADE,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);
CREATE INDEX console_sessions_key ON console_sessions (key_hash);
CREATE INDEX console_sessions_seen ON console_sessions (last_seen_at);
