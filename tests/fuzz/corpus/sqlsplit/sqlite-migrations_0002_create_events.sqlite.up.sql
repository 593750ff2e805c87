-- Everything that happened in a session: user messages, model turns,
-- tool calls. Deleting a session deletes its events (the application must
-- run with PRAGMA foreign_keys = ON for SQLite to enforce it).
CREATE TABLE events (
    id                         TEXT NOT NULL,
    app_name                   TEXT NOT NULL,
    user_id                    TEXT NOT NULL,
    session_id                 TEXT NOT NULL,
    invocation_id              TEXT NOT NULL,
    author                     TEXT NOT NULL,
    content                    TEXT,
    actions                    TEXT,
    long_running_tool_ids_json TEXT,
    grounding_metadata         TEXT,
    partial                    INTEGER,
    turn_complete              INTEGER,
    interrupted                INTEGER,
    error_code                 TEXT,
    error_message              TEXT,
    timestamp                  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (id, app_name, user_id, session_id),
    FOREIGN KEY (app_name, user_id, session_id)
        REFERENCES sessions (app_name, user_id, id) ON DELETE CASCADE
);
