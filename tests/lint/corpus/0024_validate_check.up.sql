ALTER TABLE projects VALIDATE CONSTRAINT projects_name_length;
