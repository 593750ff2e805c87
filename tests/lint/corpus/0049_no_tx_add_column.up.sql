-- schemagate:no-transaction
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS archived_at timestamptz;
ALTER TABLE tasks ADD COLUMN weight bigint;
