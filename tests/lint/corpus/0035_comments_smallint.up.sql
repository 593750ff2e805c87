ALTER TABLE comments ADD COLUMN votes smallint DEFAULT 0;
