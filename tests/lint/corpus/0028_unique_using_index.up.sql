ALTER TABLE users ADD CONSTRAINT users_email_unique UNIQUE USING INDEX users_email_key;
