ALTER TABLE projects ADD CONSTRAINT projects_name_key UNIQUE (account_id, name);
