CREATE INDEX IF NOT EXISTS tasks_created_idx ON tasks (updated_at);
