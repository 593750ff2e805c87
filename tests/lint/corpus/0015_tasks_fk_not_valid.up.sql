ALTER TABLE tasks ADD CONSTRAINT tasks_project_fk
    FOREIGN KEY (project_id) REFERENCES projects (id) NOT VALID;
