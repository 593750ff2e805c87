DROP TABLE junk;
