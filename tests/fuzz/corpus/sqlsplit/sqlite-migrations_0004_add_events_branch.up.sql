-- Which agent branch of a multi-agent tree produced the event
-- (e.g. "root.planner.search"). Portable SQL: one file for every engine.
ALTER TABLE events ADD COLUMN branch VARCHAR(256);
