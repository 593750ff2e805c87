ALTER TABLE events ADD COLUMN source text;
UPDATE events SET source = 'api';
ALTER TABLE events ALTER COLUMN source SET NOT NULL;
