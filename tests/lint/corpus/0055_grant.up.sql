GRANT SELECT ON tasks TO reporting;
