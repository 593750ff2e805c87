ALTER DOMAIN positive_int ADD CONSTRAINT positive_int_max CHECK (VALUE < 1000000);
