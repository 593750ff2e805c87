ALTER TYPE task_state ADD VALUE 'archived';
