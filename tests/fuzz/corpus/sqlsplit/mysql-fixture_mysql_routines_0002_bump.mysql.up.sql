DELIMITER $$
CREATE PROCEDURE bump(IN hit INTEGER)
BEGIN
  UPDATE hits SET n = n + 1 WHERE id = hit;
  UPDATE hits SET stamped = 'bumped;' WHERE id = hit;
END$$
DELIMITER ;
