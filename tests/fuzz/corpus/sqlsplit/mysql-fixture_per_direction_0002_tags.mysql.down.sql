DROP TABLE tags;
