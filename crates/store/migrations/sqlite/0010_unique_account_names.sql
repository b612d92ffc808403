-- Account names are unique (the CLI finds an account by its name). Accounts that shared a name
-- keep it with their id appended; the oldest keeps it as it was.
UPDATE accounts SET name = name || ' (' || id || ')'
WHERE id NOT IN (SELECT MIN(id) FROM accounts GROUP BY name);
CREATE UNIQUE INDEX accounts_name ON accounts (name);
