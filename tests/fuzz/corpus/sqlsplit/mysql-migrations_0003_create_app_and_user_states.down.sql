-- Shared by the postgres, mysql and sqlite variants.
DROP TABLE user_states;
DROP TABLE app_states;
