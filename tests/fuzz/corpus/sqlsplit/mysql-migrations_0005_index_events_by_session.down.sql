DROP INDEX IF EXISTS idx_events_session_time;
