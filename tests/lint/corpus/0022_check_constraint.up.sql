ALTER TABLE tasks ADD CONSTRAINT tasks_title_length CHECK (length(title) <= 500);
