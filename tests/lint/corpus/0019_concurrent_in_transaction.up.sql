CREATE INDEX CONCURRENTLY tasks_title_idx ON tasks (title);
