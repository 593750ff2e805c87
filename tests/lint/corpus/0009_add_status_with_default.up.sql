ALTER TABLE projects ADD COLUMN priority integer NOT NULL DEFAULT 0;
