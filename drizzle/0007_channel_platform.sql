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
-- Deliveries still waiting take the address they would have used before destinations were recorded.
UPDATE "deliveries" d SET "destination" = CASE d."channel" WHEN 'email' THEN r."email" WHEN 'sms' THEN r."phone" END
FROM "recipients" r
WHERE r."user_id" = d."user_id" AND d."channel" IN ('email', 'sms') AND d."status" IN ('queued', 'sending');
