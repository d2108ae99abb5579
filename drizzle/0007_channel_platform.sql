CREATE TABLE "outbox_messages" (
	"id" uuid PRIMARY KEY NOT NULL,
	"delivery_id" uuid NOT NULL,
	"notification_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"channel" text NOT NULL,
	"provider" text NOT NULL,
	"destination" text NOT NULL,
	"message" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "deliveries" ADD COLUMN "push_token_id" uuid;--> statement-breakpoint
ALTER TABLE "deliveries" ADD COLUMN "destination" text;--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD COLUMN "destination" text;--> statement-breakpoint
ALTER TABLE "push_tokens" ADD COLUMN "invalidated_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "suppressions" ADD COLUMN "delivery_id" uuid;--> statement-breakpoint
ALTER TABLE "templates" ADD COLUMN "text" text;--> statement-breakpoint
CREATE INDEX "outbox_messages_channel" ON "outbox_messages" USING btree ("channel","id");--> statement-breakpoint
-- Until now push, e-mail and SMS had no provider, so their deliveries waited queued with nothing to take them.
-- They end here instead of all going out at once on upgrade (with status events for old notifications).
UPDATE "deliveries" SET "status" = 'skipped', "reason" = 'not_configured: queued before the channel had a provider', "updated_at" = now()
WHERE "channel" IN ('push', 'email', 'sms') AND "status" = 'queued';
