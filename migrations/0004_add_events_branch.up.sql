-- squawk-ignore-file prefer-text-field
-- (VARCHAR(n), not text: the same keys and lengths on every engine; MySQL
-- cannot index a TEXT column without a prefix length.)

-- Which agent branch of a multi-agent tree produced the event
-- (e.g. "root.planner.search"). Portable SQL: one file for every engine.
ALTER TABLE events ADD COLUMN branch VARCHAR(256);
