-- squawk-ignore ban-drop-column
ALTER TABLE tasks DROP COLUMN estimate_minutes;
