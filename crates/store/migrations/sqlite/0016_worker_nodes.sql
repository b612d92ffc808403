-- The delivery engines running on this database, each with its last heartbeat (ms; on
-- PostgreSQL the database's clock). A connector's max_per_second and max_concurrency are shared
-- among the nodes seen recently, so that together they hold to them. A node that stops deletes
-- its row; one that dies stops counting once its heartbeat is old.
CREATE TABLE worker_nodes (
    id          TEXT PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
