DROP INDEX tasks_due_on_idx;
