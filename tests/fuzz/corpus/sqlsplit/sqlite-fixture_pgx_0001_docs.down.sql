DROP TABLE docs;
