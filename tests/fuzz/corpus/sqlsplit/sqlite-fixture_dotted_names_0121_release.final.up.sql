CREATE TABLE release_final (id INTEGER);
