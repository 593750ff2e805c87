ALTER TABLE tasks
    ADD COLUMN estimate_minutes integer,
    DROP COLUMN source,
    ALTER COLUMN title TYPE varchar(300);
