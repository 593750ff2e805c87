-- no mariadb file: a MariaDB server runs the mysql one
ALTER TABLE kv ADD COLUMN v INTEGER;
