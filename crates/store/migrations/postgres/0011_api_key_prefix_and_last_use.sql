-- An API key's first characters, to recognise it by (the key itself is only kept hashed), and
-- when it was last used; keys made before have neither.
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
