/*
 * lint.h - the rules `lint` checks migrations against: what breaks the
 * release still running while a migration applies (drops, renames,
 * required columns, type changes) and what holds a long blocking lock.
 *
 * Rule ids are squawk's names where squawk has the rule, with the same
 * meaning; the others are schemagate's own. The rule table and the
 * suppression comments are engine-independent (lint_rules.c); each
 * engine has one analyser that finds the statements a rule is about:
 * PostgreSQL with the real parser (libpg_query, lint_pg.c), MySQL/MariaDB
 * and SQLite by a statement-level reading of the DDL that matters
 * (lint_mysql.c, lint_sqlite.c), which says what it does not understand.
 * The command itself (the directory's problems, then the rules) is
 * lint.c, on the loader's own reading of the directory.
 */
#ifndef SCHEMAGATE_LINT_H
#define SCHEMAGATE_LINT_H

#include "schemagate/common.h"
#include "schemagate/config.h"
#include "schemagate/url.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* error: fails `lint` (exit 4) and the `up --lint` gate; warning: fails
 * only `lint --strict`; note: never fails (what was not understood). */
enum sg_lint_severity { SG_LINT_ERROR, SG_LINT_WARNING, SG_LINT_NOTE };
const char *sg_lint_severity_name(enum sg_lint_severity s);

/* The engines a rule applies to. */
#define SG_LINT_POSTGRES 1u
#define SG_LINT_MYSQL 2u     /* MySQL and MariaDB */
#define SG_LINT_SQLITE 4u

struct sg_lint_rule {
	const char *id;               /* "ban-drop-column" */
	enum sg_lint_severity severity;
	unsigned engines;             /* SG_LINT_* bits */
	bool squawk;                  /* squawk has a rule of this id and meaning */
	const char *atlas;            /* Atlas analyzer codes it covers ("DS103"), "" if none */
	const char *summary;          /* one line: what is wrong */
	const char *explanation;      /* one paragraph: why, and the safe alternative */
};

/* Every rule, in `lint --rules` order. */
extern const struct sg_lint_rule sg_lint_rules[];
extern const size_t sg_lint_nrules;
/* By id; NULL if there is none. */
const struct sg_lint_rule *sg_lint_rule_find(const char *id);
/* `lint --rules`: every rule with its id, severity, engines, explanation. */
void sg_lint_print_rules(bool json);

/* One finding of a rule in a script. */
struct sg_lint_hit {
	const struct sg_lint_rule *rule;
	size_t offset;     /* byte offset in the script the finding points at */
	int line, column;  /* file line (1-based) and column (1-based, in characters) of offset */
	size_t stmt_start, stmt_end;   /* the statement it is about: script[stmt_start, stmt_end) */
	char *message;     /* the summary with what this statement does */
};

struct sg_lint_result {
	struct sg_lint_hit *items;
	size_t count, cap;
};

struct sg_statement_list;
/*
 * Lint one up script. script: its text (NUL-terminated); first_line: the
 * file line of its first byte (a single-file section starts later);
 * no_tx: it runs outside a transaction. Suppression comments of the
 * script are applied and an ignore that matched nothing is itself a
 * finding. Hits are appended to out in script order; the caller frees
 * them with sg_lint_result_free(). statements: the script as the loader
 * split it for the dialect (struct sg_migration), or NULL to split here.
 */
void sg_lint_script(const char *script, enum sg_dialect dialect, bool no_tx, int first_line,
		    const struct sg_statement_list *statements, struct sg_lint_result *out);
void sg_lint_result_free(struct sg_lint_result *r);

/* `up --lint`: fail (exit 4) when m's up script has an error-severity
 * finding for the dialect, naming file:line:col, the rule and how to
 * ignore it. Returns 0 when it has none. */
struct sg_migration;
int sg_lint_gate(const struct sg_migration *m, enum sg_dialect dialect, struct sg_error *err);

/* ---- for the engine analysers (lint_pg.c, lint_mysql.c, lint_sqlite.c) ---- */

/* Append a hit of rule id at offset, about script[stmt_start, stmt_end). */
void sg_lint_add(struct sg_lint_result *r, const char *id, size_t offset, size_t stmt_start, size_t stmt_end,
		 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void sg_lint_vadd(struct sg_lint_result *r, const char *id, size_t offset, size_t stmt_start, size_t stmt_end,
		  const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

struct sg_statement_list;

/* Each analyser appends the hits of one script, unsuppressed, with
 * offset and statement set (line and column are filled in after). The
 * hand-written ones read the script's statements as schemagate's
 * splitter cut them (l, split once by sg_lint_script); PostgreSQL's
 * parser cuts its own. */
void sg_lint_postgres(const char *script, bool no_tx, struct sg_lint_result *out);
void sg_lint_mysql(const char *script, const struct sg_statement_list *l, struct sg_lint_result *out);
void sg_lint_sqlite(const char *script, const struct sg_statement_list *l, struct sg_lint_result *out);

/*
 * A word-level reading of one statement, for the analysers without a
 * parser: words, quoted identifiers (`x`, "x", [x]), strings, numbers
 * and single punctuation characters; blanks and comments (--, # for
 * MySQL, slash-star) are skipped. Offsets index the script.
 */
enum sg_lint_token_kind { SG_TOK_WORD, SG_TOK_QUOTED, SG_TOK_STRING, SG_TOK_NUMBER, SG_TOK_PUNCT };
struct sg_lint_token {
	enum sg_lint_token_kind kind;
	size_t start, len;
};
/* Tokens of script[start, end) into *out (caller frees); returns the count. */
size_t sg_lint_tokenize(const char *script, size_t start, size_t end, bool hash_comments,
			struct sg_lint_token **out);
/* Is token t the keyword word (case-insensitive)? */
bool sg_lint_is(const char *script, const struct sg_lint_token *t, const char *word);
/* The identifier a word or quoted token names, unquoted, in buf. */
const char *sg_lint_name(const char *script, const struct sg_lint_token *t, char *buf, size_t size);

/* `lint`: every problem of the directory at once, for every dialect (or
 * only for one: dialect is a tag, NULL for all; mysql includes mariadb),
 * and the rules' findings on the up scripts in scope, on stdout (text,
 * JSON, SARIF or GitHub workflow commands). Returns 0, or -1 with exit 2
 * for the directory's own errors, exit 4 for a rule's error (or any
 * warning under strict). */
struct sg_lint_request {
	const char *dir;
	const char *dialect;               /* tag, or NULL for every dialect */
	bool strict;
	enum sg_lint_format format;
	const char *since;                 /* only versions after it, or NULL */
	bool only_versions;                /* only these (--pending): */
	const char *const *versions;
	size_t nversions;
};
int sg_lint(const struct sg_lint_request *req, struct sg_error *err);

#endif
