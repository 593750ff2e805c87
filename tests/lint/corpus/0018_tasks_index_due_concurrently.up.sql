-- schemagate:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_done_idx ON tasks (done) WHERE NOT done;
