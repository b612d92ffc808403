-- Diagnoses carry their code. A connector keeps the diagnosis that moved it out of `active`
-- (JSON {"code","cause","fix"}, NULL while active or when only its status is known: it then
-- shows its status's generic diagnosis, as rows written before this migration do); a history
-- entry keeps its diagnosis's code beside the cause and fix it had (NULL before: read back as
-- `unclassified`).
ALTER TABLE connectors ADD COLUMN status_diagnosis TEXT;
ALTER TABLE history ADD COLUMN diagnosis_code TEXT;
