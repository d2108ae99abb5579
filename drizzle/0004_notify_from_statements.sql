-- The dispatchers' wake-up moves from a trigger on every deliveries insert into the statements that queue
-- work due now (Send, when a delivery goes to a dispatched channel; status events; replays). Every NOTIFY
-- serialises commits briefly, and most Sends (in-app only) have nothing for a dispatcher to do.
DROP TRIGGER IF EXISTS deliveries_inserted ON deliveries;
--> statement-breakpoint
DROP FUNCTION IF EXISTS herald_notify_deliveries();
