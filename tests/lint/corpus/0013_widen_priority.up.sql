ALTER TABLE projects ALTER COLUMN priority TYPE bigint;
