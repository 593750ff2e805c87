-- squawk-ignore-file prefer-text-field
-- (VARCHAR(n), not text: the same keys and lengths on every engine; MySQL
-- cannot index a TEXT column without a prefix length.)

-- State shared by every session of an app, and by every session of a user.
CREATE TABLE app_states (
    app_name    VARCHAR(128) NOT NULL PRIMARY KEY,
    state       JSONB        NOT NULL DEFAULT '{}'::jsonb,
    update_time TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE TABLE user_states (
    app_name    VARCHAR(128) NOT NULL,
    user_id     VARCHAR(128) NOT NULL,
    state       JSONB        NOT NULL DEFAULT '{}'::jsonb,
    update_time TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (app_name, user_id)
);
