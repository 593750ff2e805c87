-- popx: .autocommit runs outside a transaction, where VACUUM must
VACUUM;
