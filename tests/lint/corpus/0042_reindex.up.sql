REINDEX TABLE audit_log;
