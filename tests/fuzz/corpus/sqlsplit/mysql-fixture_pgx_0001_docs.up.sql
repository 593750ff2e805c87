CREATE TABLE docs (id INTEGER, body TEXT);
