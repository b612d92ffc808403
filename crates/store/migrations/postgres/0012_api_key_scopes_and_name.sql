-- What an API key may do (its scopes, comma-separated: ingest, read, admin) and a name to tell
-- it by. Every key made before could do everything, so it becomes admin.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_keys ADD COLUMN name TEXT;
