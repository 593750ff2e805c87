CREATE INDEX tasks_due_on_idx ON tasks (due_on);
