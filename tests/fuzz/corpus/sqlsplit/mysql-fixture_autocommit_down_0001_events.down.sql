DROP TABLE events;
