/*
 * sqlsplit.h - split a script into statements, client side.
 *
 * Needed where statements must run one at a time: MySQL (DDL commits
 * implicitly, so progress is recorded per statement) and no-transaction
 * scripts (CREATE INDEX CONCURRENTLY cannot run in a multi-statement
 * string). Understands quotes, backticks, comments, PostgreSQL dollar
 * quoting and BEGIN ATOMIC bodies, MySQL's DELIMITER command, routine
 * bodies without DELIMITER and NO_BACKSLASH_ESCAPES, SQLite trigger bodies.
 * The loader also splits every transactional script once, to find
 * top-level transaction control (sg_statement_tx_control).
 */
#ifndef SCHEMAGATE_SQLSPLIT_H
#define SCHEMAGATE_SQLSPLIT_H

#include "schemagate/common.h"
#include "schemagate/url.h"

/*
 * One statement. sql is exactly script[start, end): trimmed, without the
 * delimiter. Everything between one statement's end and the next one's
 * start (blanks, comments, the delimiter, DELIMITER commands, statements
 * that are only comments) is separator, so the statements and the bytes
 * between them reproduce the script.
 */
struct sg_statement {
	char *sql;
	int line;          /* 1-based line of start in the script */
	size_t start, end;
	size_t delim_end;  /* just past the delimiter that ended it; the script's length
	                    * when the end of the script ended it */
};

struct sg_statement_list {
	struct sg_statement *items;
	size_t count;
	size_t cap;    /* items allocated */
};

/* Statements that are empty or only comments are dropped. The script
 * ends at its first NUL (the loader refuses files holding one). */
int sg_sql_split(const char *script, enum sg_engine engine, struct sg_statement_list *out,
		 struct sg_error *err);
/* The same, counting lines from first_line (a section of a larger file). */
int sg_sql_split_at(const char *script, enum sg_engine engine, int first_line, struct sg_statement_list *out,
		    struct sg_error *err);
void sg_statement_list_free(struct sg_statement_list *l);
/* A deep copy of l into out. */
void sg_statement_list_copy(const struct sg_statement_list *l, struct sg_statement_list *out);
/*
 * Does every engine's lexer split script alike? True only for text
 * without any construct the engines read differently: backslashes,
 * backticks, brackets, dollar signs, '#', block comments,
 * carriage returns, a "--" not followed by a blank, a ';' inside
 * parentheses, and the words that open routine or trigger bodies or
 * change the delimiter (BEGIN, FUNCTION, PROCEDURE, TRIGGER, EVENT,
 * DELIMITER). A generic file's script is then split once for all of
 * them. (The sqlsplit fuzzer checks the claim.)
 */
bool sg_sql_engine_neutral(const char *script);

/* First line of a statement, truncated to max chars with "...", for messages. */
void sg_statement_head(const char *sql, char *out, size_t outsz);

/* Is a statement (as split) transaction control? */
enum sg_tx_control {
	SG_TXC_NONE = 0,
	SG_TXC_BEGIN,   /* plain BEGIN [WORK|TRANSACTION] / START TRANSACTION: a wrapper can be absorbed */
	SG_TXC_COMMIT,  /* plain COMMIT [WORK|TRANSACTION] / END [TRANSACTION] (PostgreSQL, SQLite) */
	SG_TXC_OTHER,   /* ROLLBACK, SAVEPOINT, RELEASE, BEGIN with options, XA, SET autocommit... */
};
enum sg_tx_control sg_statement_tx_control(const char *sql, enum sg_engine engine);

#endif
