ALTER TABLE "deliveries" ADD COLUMN "sms_segments" integer;--> statement-breakpoint
ALTER TABLE "routing_rules" ADD COLUMN "sms_max_segments" integer;