-- The governance review and the keep-alive need to know how old a connector's credentials and
-- signing secret are, and the org's "expire refresh token if not used for N days" policy.
-- `credentials_changed_at` (ms) is set on registration and on every key change (wherever
-- `credentials_version` is bumped); `signing_secret_changed_at` on registration and rotation.
-- Rows from before get their creation time, or their last rotation (a rotated-out secret
-- signs for 24 h after it, so the rotation was 24 h before `prev_signing_until`).
ALTER TABLE connectors ADD COLUMN credentials_changed_at BIGINT;
ALTER TABLE connectors ADD COLUMN signing_secret_changed_at BIGINT;
ALTER TABLE connectors ADD COLUMN refresh_token_idle_days BIGINT;
UPDATE connectors SET credentials_changed_at = created_at,
    signing_secret_changed_at = COALESCE(prev_signing_until - 86400000, created_at);
