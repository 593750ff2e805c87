ALTER TABLE events ALTER COLUMN code TYPE text USING trim(code);
