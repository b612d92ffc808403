-- Connectors keep whether their key arrived line-wrapped as a flag in their settings, instead
-- of the connector test searching the stored warnings' wording; rows written before carry it
-- only in that wording.
UPDATE connectors
SET settings = (settings::jsonb || '{"key_line_wrapped": true}'::jsonb)::text
WHERE position('the key contains line breaks' in settings) > 0;
