-- One conversation between a user and an agent application.
-- SQLite keeps JSON and timestamps as TEXT (ISO 8601, UTC).
CREATE TABLE sessions (
    app_name    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    id          TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT '{}',
    create_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    update_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (app_name, user_id, id)
);
