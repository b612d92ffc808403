-- History retention removes Idempotency-Keys by age, oldest first.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
