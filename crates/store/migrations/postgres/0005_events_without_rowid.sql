-- SQLite only (its events table becomes WITHOUT ROWID): PostgreSQL's heap and primary key
-- stay as they are.
SELECT 1;
