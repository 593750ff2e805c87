DROP TABLE items;
