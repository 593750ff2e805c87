DROP TABLE schema_290;
