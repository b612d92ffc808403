-- Connectors keep whether their key arrived line-wrapped as a flag in their settings, instead
-- of the connector test searching the stored warnings' wording; rows written before carry it
-- only in that wording.
UPDATE connectors
SET settings = json_set(settings, '$.key_line_wrapped', json('true'))
WHERE instr(settings, 'the key contains line breaks') > 0;
