ALTER TABLE "delivery_attempts" ADD COLUMN "channel" text;--> statement-breakpoint
ALTER TABLE "notifications" ADD COLUMN "trace_parent" text;--> statement-breakpoint
CREATE INDEX "deliveries_created" ON "deliveries" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "delivery_attempts_started" ON "delivery_attempts" USING btree ("started_at");--> statement-breakpoint
CREATE INDEX "notifications_created" ON "notifications" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "notifications_user_created" ON "notifications" USING btree ("user_id","created_at","id");