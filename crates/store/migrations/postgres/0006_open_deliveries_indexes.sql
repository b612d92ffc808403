-- Nearly every delivery ends 'delivered', and is then read only through the account's history.
-- The indexes that find deliveries by status leave those out: `deliveries_connector` (a
-- connector's pending, held and failed deliveries) no longer moves every delivered row to a
-- new place, and `deliveries_open` answers the API's status filter (pending, held, failed) from
-- the open deliveries instead of scanning the account's whole history. A query uses them by
-- carrying the term `status <> 'delivered'` itself.
DROP INDEX deliveries_connector;
CREATE INDEX deliveries_connector ON deliveries (connector_id, status) WHERE status <> 'delivered';
CREATE INDEX deliveries_open ON deliveries (account_id, status, seq) WHERE status <> 'delivered';
