-- Notifications. Endpoints are rows of `connectors` (kind 'notification', named '@notify:<id>',
-- their `events` the types they take) and their notifications are events and deliveries like
-- any other, so no table of their own. `failing_since` (ms) is set by the first node whose
-- circuit breaker for the connector opens and cleared by the first success after it: the one
-- `connector.failing` and the one `connector.recovered` of that episode, whichever node sees it.
ALTER TABLE connectors ADD COLUMN failing_since BIGINT;
