CREATE TABLE hits (id INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0, stamped VARCHAR(10));

-- no DELIMITER: golang-migrate sends the file as one multi-statement query,
-- and the server parses BEGIN ... END itself
CREATE TRIGGER hits_bi BEFORE INSERT ON hits FOR EACH ROW
BEGIN
  IF NEW.stamped IS NULL THEN
    SET NEW.stamped = 'trigger';
  END IF;
END;
