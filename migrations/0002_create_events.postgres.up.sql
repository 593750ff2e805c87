-- squawk-ignore-file prefer-text-field
-- (VARCHAR(n), not text: the same keys and lengths on every engine; MySQL
-- cannot index a TEXT column without a prefix length.)

-- Everything that happened in a session: user messages, model turns,
-- tool calls. Deleting a session deletes its events.
CREATE TABLE events (
    id                         VARCHAR(128) NOT NULL,
    app_name                   VARCHAR(128) NOT NULL,
    user_id                    VARCHAR(128) NOT NULL,
    session_id                 VARCHAR(128) NOT NULL,
    invocation_id              VARCHAR(256) NOT NULL,
    author                     VARCHAR(256) NOT NULL,
    content                    JSONB,
    actions                    JSONB,
    long_running_tool_ids_json TEXT,
    grounding_metadata         JSONB,
    partial                    BOOLEAN,
    turn_complete              BOOLEAN,
    interrupted                BOOLEAN,
    error_code                 VARCHAR(256),
    error_message              VARCHAR(1024),
    timestamp                  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (id, app_name, user_id, session_id),
    FOREIGN KEY (app_name, user_id, session_id)
        REFERENCES sessions (app_name, user_id, id) ON DELETE CASCADE
);
