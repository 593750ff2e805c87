CREATE TABLE audit_log (id bigint NOT NULL, payload jsonb);
