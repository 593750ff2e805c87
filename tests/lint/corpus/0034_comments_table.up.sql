CREATE TABLE comments (
    id serial PRIMARY KEY,
    task_id integer NOT NULL,
    body varchar(2000) NOT NULL,
    author char(36),
    created_at timestamp DEFAULT CURRENT_TIMESTAMP
);
