-- One conversation between a user and an agent application.
-- Keys are VARCHAR(128): MySQL cannot index TEXT without a prefix length.
-- JSON columns get no DEFAULT: MySQL before 8.0.13 rejects one.
CREATE TABLE sessions (
    app_name    VARCHAR(128) NOT NULL,
    user_id     VARCHAR(128) NOT NULL,
    id          VARCHAR(128) NOT NULL,
    state       JSON         NOT NULL,
    create_time DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    update_time DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (app_name, user_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
