-- SQLite supports DROP COLUMN since 3.35.
ALTER TABLE events DROP COLUMN branch;
