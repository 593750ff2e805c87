-- schemagate:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS tasks_title_idx;
