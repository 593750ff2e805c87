DROP TABLE events;
