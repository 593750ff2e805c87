-- schemagate:no-transaction
ALTER TYPE task_state ADD VALUE IF NOT EXISTS 'blocked';
