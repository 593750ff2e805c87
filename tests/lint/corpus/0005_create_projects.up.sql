CREATE TABLE projects (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL,
    title text NOT NULL,
    archived boolean NOT NULL DEFAULT false
);
ALTER TABLE projects ADD CONSTRAINT projects_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id);
