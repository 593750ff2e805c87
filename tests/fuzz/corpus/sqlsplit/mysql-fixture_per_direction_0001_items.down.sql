DROP TABLE items;
