-- Nothing looks deliveries up by event: the index cost an insert per delivery for no reader.
DROP INDEX IF EXISTS deliveries_event;
