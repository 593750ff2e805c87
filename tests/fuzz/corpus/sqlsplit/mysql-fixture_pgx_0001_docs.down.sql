DROP TABLE docs;
