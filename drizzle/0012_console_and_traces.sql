-- Two nullable columns without defaults: a catalog change, no table rewrite. The indexes this migration's
-- snapshot declares (notifications_created, notifications_user_created, deliveries_created,
-- delivery_attempts_started) are built after the migrations with CREATE INDEX CONCURRENTLY
-- (src/store/online-indexes.ts), so the tables stay writable while they build.
ALTER TABLE "delivery_attempts" ADD COLUMN "channel" text;--> statement-breakpoint
ALTER TABLE "notifications" ADD COLUMN "trace_parent" text;
