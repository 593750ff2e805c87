CREATE VIEW open_tasks AS SELECT id, title FROM tasks WHERE NOT done;
