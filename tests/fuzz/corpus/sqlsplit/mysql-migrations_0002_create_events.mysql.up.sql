-- Everything that happened in a session: user messages, model turns,
-- tool calls. Deleting a session deletes its events.
CREATE TABLE events (
    id                         VARCHAR(128)  NOT NULL,
    app_name                   VARCHAR(128)  NOT NULL,
    user_id                    VARCHAR(128)  NOT NULL,
    session_id                 VARCHAR(128)  NOT NULL,
    invocation_id              VARCHAR(256)  NOT NULL,
    author                     VARCHAR(256)  NOT NULL,
    content                    JSON,
    actions                    JSON,
    long_running_tool_ids_json TEXT,
    grounding_metadata         JSON,
    `partial`                  BOOLEAN,
    turn_complete              BOOLEAN,
    interrupted                BOOLEAN,
    error_code                 VARCHAR(256),
    error_message              VARCHAR(1024),
    `timestamp`                DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id, app_name, user_id, session_id),
    -- An explicit index for the foreign key: otherwise InnoDB adopts the
    -- index of migration 0005 for it, and 0005's down script cannot drop it.
    KEY idx_events_session (app_name, user_id, session_id),
    CONSTRAINT fk_events_session FOREIGN KEY (app_name, user_id, session_id)
        REFERENCES sessions (app_name, user_id, id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
