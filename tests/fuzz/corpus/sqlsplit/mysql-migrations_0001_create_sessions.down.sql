-- Shared by the postgres, mysql and sqlite variants.
DROP TABLE sessions;
