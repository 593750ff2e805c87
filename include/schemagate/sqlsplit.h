/*
 * sqlsplit.h - split a script into statements, client side.
 *
 * Needed where statements must run one at a time: MySQL (DDL commits
 * implicitly, so progress is recorded per statement) and no-transaction
 * scripts (CREATE INDEX CONCURRENTLY cannot run in a multi-statement
 * string). Understands quotes, backticks, comments, PostgreSQL dollar
 * quoting, and MySQL's DELIMITER command.
 */
#ifndef SCHEMAGATE_SQLSPLIT_H
#define SCHEMAGATE_SQLSPLIT_H

#include "schemagate/common.h"
#include "schemagate/url.h"

struct sg_statement {
	char *sql;      /* trimmed statement without the terminating delimiter */
	int line;       /* 1-based line where it starts in the script */
};

struct sg_statement_list {
	struct sg_statement *items;
	size_t count;
};

/* Statements that are empty or only comments are dropped. */
int sg_sql_split(const char *script, enum sg_engine engine, struct sg_statement_list *out,
		 struct sg_error *err);
void sg_statement_list_free(struct sg_statement_list *l);

/* First line of a statement, truncated to max chars with "...", for messages. */
void sg_statement_head(const char *sql, char *out, size_t outsz);

#endif
