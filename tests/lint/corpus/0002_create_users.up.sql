CREATE TABLE users (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    email varchar(255) NOT NULL,
    full_name text,
    created_at timestamp NOT NULL DEFAULT now()
);
CREATE INDEX users_account_id_idx ON users (account_id);
