ALTER TABLE tasks VALIDATE CONSTRAINT tasks_project_fk;
