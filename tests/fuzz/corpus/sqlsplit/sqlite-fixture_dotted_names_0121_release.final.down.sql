DROP TABLE release_final;
