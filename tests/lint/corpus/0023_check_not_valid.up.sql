ALTER TABLE projects ADD CONSTRAINT projects_name_length CHECK (length(name) <= 200) NOT VALID;
