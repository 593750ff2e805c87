DROP TABLE junk;
