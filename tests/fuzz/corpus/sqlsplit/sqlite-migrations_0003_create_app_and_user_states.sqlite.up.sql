-- State shared by every session of an app, and by every session of a user.
CREATE TABLE app_states (
    app_name    TEXT NOT NULL PRIMARY KEY,
    state       TEXT NOT NULL DEFAULT '{}',
    update_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE user_states (
    app_name    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT '{}',
    update_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (app_name, user_id)
);
