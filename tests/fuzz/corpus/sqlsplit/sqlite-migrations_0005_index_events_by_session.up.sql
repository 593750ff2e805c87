-- Loading a session reads its events in time order.
-- Generic variant (used by SQLite); PostgreSQL and MySQL have their own.
CREATE INDEX IF NOT EXISTS idx_events_session_time
    ON events (app_name, user_id, session_id, timestamp);
