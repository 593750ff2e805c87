-- schemagate:no-transaction
-- Loading a session reads its events in time order. CONCURRENTLY builds
-- the index without blocking writes to a busy events table; it cannot run
-- inside a transaction block, hence the directive above.
-- An interrupted build leaves an INVALID index behind, which IF NOT EXISTS
-- would silently keep: before retrying, check \d events and drop it with
-- DROP INDEX CONCURRENTLY idx_events_session_time.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_events_session_time
    ON events (app_name, user_id, session_id, timestamp);
