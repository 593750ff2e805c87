CREATE TYPE task_state AS ENUM ('open', 'closed');
ALTER TABLE tasks ADD COLUMN state task_state;
