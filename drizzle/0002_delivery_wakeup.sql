-- Wakes the dispatchers (LISTEN herald_deliveries) when deliveries are inserted, in the same transaction as
-- the Send: the notification is sent once the transaction commits, never before. One notification per
-- statement; PostgreSQL also folds identical notifications of one transaction into one.
CREATE FUNCTION herald_notify_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('herald_deliveries', '');
  RETURN NULL;
END;
$$;
--> statement-breakpoint
CREATE TRIGGER deliveries_inserted AFTER INSERT ON deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION herald_notify_deliveries();
