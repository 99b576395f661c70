-- The inbox is read by user only at start-up (the replay sorts what is left, which is little);
-- the (user_id, update_id) index cost every commit one more page per user in the batch, which
-- was most of the WAL written per accepted update (examples/bench_inbox).
DROP INDEX IF EXISTS inbox_user;
