DROP INDEX "deliveries_provider_message_id";--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD COLUMN "provider_message_id" text;--> statement-breakpoint
-- Messages sent before this version: their id moves to the delivery's latest sent attempt, so feedback that
-- arrives later (complaints can come weeks after) still finds them.
UPDATE "delivery_attempts" a SET "provider_message_id" = d."provider_message_id"
FROM "deliveries" d
WHERE a."delivery_id" = d."id" AND d."provider_message_id" IS NOT NULL AND a."id" = (
  SELECT l."id" FROM "delivery_attempts" l
  WHERE l."delivery_id" = d."id" AND l."outcome" = 'sent'
  ORDER BY l."started_at" DESC LIMIT 1
);--> statement-breakpoint
ALTER TABLE "routing_rules" ADD COLUMN "email_from" text;--> statement-breakpoint
ALTER TABLE "routing_rules" ADD COLUMN "email_reply_to" text;--> statement-breakpoint
CREATE INDEX "delivery_attempts_provider_message_id" ON "delivery_attempts" USING btree ("provider_message_id") WHERE provider_message_id is not null;