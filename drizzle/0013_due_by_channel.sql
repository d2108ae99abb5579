-- The dispatcher's due index becomes one per channel: deliveries_due_by_channel (channel, next_attempt_at)
-- where status = 'queued' replaces deliveries_due (next_attempt_at). In-app deliveries stay queued until their
-- user connects and no dispatcher claims them; with one index for every channel, each claim for another
-- channel walked past all of them. Like migration 0012's, the new index is built after the migrations with
-- CREATE INDEX CONCURRENTLY, and the old one dropped concurrently once it is valid
-- (src/store/online-indexes.ts), so the table stays writable; nothing to do here.
SELECT 1;
