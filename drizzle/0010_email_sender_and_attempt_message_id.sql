ALTER TABLE "delivery_attempts" ADD COLUMN "provider_message_id" text;--> statement-breakpoint
ALTER TABLE "routing_rules" ADD COLUMN "email_from" text;--> statement-breakpoint
ALTER TABLE "routing_rules" ADD COLUMN "email_reply_to" text;--> statement-breakpoint
CREATE INDEX "delivery_attempts_provider_message_id" ON "delivery_attempts" USING btree ("provider_message_id") WHERE provider_message_id is not null;