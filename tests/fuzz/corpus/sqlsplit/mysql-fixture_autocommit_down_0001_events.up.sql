CREATE TABLE events (id INTEGER, kind TEXT);
