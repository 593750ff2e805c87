-- the generic down serves the dialect ups and the generic up
ALTER TABLE items DROP COLUMN note;
