DROP INDEX idx_events_session_time ON events;
