-- State shared by every session of an app, and by every session of a user.
CREATE TABLE app_states (
    app_name    VARCHAR(128) NOT NULL PRIMARY KEY,
    state       JSON         NOT NULL,
    update_time DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE user_states (
    app_name    VARCHAR(128) NOT NULL,
    user_id     VARCHAR(128) NOT NULL,
    state       JSON         NOT NULL,
    update_time DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (app_name, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
