-- squawk-ignore-file prefer-text-field
-- (VARCHAR(n), not text: the same keys and lengths on every engine; MySQL
-- cannot index a TEXT column without a prefix length.)

-- One conversation between a user and an agent application.
CREATE TABLE sessions (
    app_name    VARCHAR(128) NOT NULL,
    user_id     VARCHAR(128) NOT NULL,
    id          VARCHAR(128) NOT NULL,
    state       JSONB        NOT NULL DEFAULT '{}'::jsonb,
    create_time TIMESTAMPTZ  NOT NULL DEFAULT now(),
    update_time TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (app_name, user_id, id)
);
