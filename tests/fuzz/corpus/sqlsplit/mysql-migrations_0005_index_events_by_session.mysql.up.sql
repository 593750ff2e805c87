-- Loading a session reads its events in time order. InnoDB builds the
-- index online (ALGORITHM=INPLACE, LOCK=NONE keeps writes flowing).
CREATE INDEX idx_events_session_time
    ON events (app_name, user_id, session_id, `timestamp`)
    ALGORITHM=INPLACE LOCK=NONE;
