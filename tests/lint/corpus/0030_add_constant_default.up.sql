ALTER TABLE tasks ADD COLUMN source text DEFAULT 'web';
