-- schemagate:lint-ignore renaming-table
ALTER TABLE open_tasks RENAME TO active_tasks;
