DROP VIEW IF EXISTS active_tasks;
