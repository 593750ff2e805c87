/*
 * migration.h - the migration directory (SPEC section 3).
 *
 * Loads a directory for one engine, the way golang-migrate, dbmate and
 * pop/popx read their own: pair layout (V_name.up.sql / V_name.down.sql,
 * names may hold dots), single-file layout (V_name.sql with "-- migrate:up"
 * / "-- migrate:down"), dialect variants chosen per direction (the most
 * specific up file and the most specific down file, as popx does), one
 * no-transaction rule for every script, top-level transaction control
 * checked, every script that will run statement by statement split here,
 * SHA-256 checksums of the up script with CRLF normalised to LF and a BOM
 * excluded. Everything that can be wrong is found before any connection.
 */
#ifndef SCHEMAGATE_MIGRATION_H
#define SCHEMAGATE_MIGRATION_H

#include "schemagate/common.h"
#include "schemagate/sqlsplit.h"
#include "schemagate/url.h"

/* The line that marks a script to run outside a transaction. */
#define SG_NO_TX_DIRECTIVE "-- schemagate:no-transaction"

struct sg_migration {
	/* digits as written in the file name ("0003"); a repeatable
	 * migration's key, "R__" and its name ("R__active_users") */
	char *version;
	char *name;            /* "add_index"; may hold dots ("2.9.0_schema") */
	char *up_file;         /* file name relative to dir ("0003_add_index.pg.up.sql") */
	char *down_file;       /* NULL if there is no down script for this engine */
	/*
	 * What runs. A UTF-8 byte-order mark is stripped; an absorbed
	 * BEGIN ... COMMIT wrapper is blanked (newlines kept, so line numbers
	 * stay the file's). down_sql is also what the history table stores for
	 * `rollback`: when its no-transaction mark came from outside the text
	 * (.autocommit file name, dbmate's "-- migrate:down transaction:false")
	 * it starts with an SG_NO_TX_DIRECTIVE line, so the stored script says
	 * the same. NULL when there is no down script.
	 */
	char *up_sql;
	char *down_sql;
	int up_line;           /* file line of up_sql's first line (a single file's up section starts later) */
	/* Decided by one rule for both directions (sg_script_prepare). */
	bool up_no_tx, down_no_tx;
	/* Runs statement by statement (MySQL/MariaDB: every script; any
	 * engine: no-transaction scripts): the statements below, split
	 * offline. Otherwise the script runs whole and the lists are empty.
	 * Statement offsets index up_sql/down_sql; lines are file lines. */
	bool up_split, down_split;
	struct sg_statement_list up_statements, down_statements;
	char checksum[65];     /* hex SHA-256 of the up script, CRLF -> LF, without a BOM */
	/* R__NAME[.DIALECT].sql: the whole file is the definition, re-applied
	 * whenever its checksum changes; no down script */
	bool repeatable;
};

/* The key prefix of a repeatable migration's file and history row. */
#define SG_REPEATABLE_PREFIX "R__"
/* Is this version (a file's or a history row's) a repeatable's key? */
bool sg_is_repeatable_key(const char *version);

/* Sorted by version (numeric). Owned; sg_migration_set_free() releases. */
struct sg_migration_set {
	struct sg_migration *items;
	size_t count;
	char *dir;
	enum sg_dialect dialect;          /* whose files items holds */
	/* A MySQL URL may reach MySQL or MariaDB: when the directory has
	 * `mariadb` files, the MariaDB selection waits here (validated too)
	 * until sg_migration_select() is told which server answered. */
	struct sg_migration *other_items;
	size_t other_count;
	enum sg_dialect other_dialect;    /* SG_DIALECT_NONE when there is none */
	/* Repeatable migrations (R__NAME.sql) for this dialect, by key
	 * (strcmp); applied after every versioned one. The MariaDB selection
	 * waits in other_repeatables like other_items. */
	struct sg_migration *repeatables, *other_repeatables;
	size_t nrepeatables, other_nrepeatables;
	/* Non-fatal observations: versions absent for this engine, files
	 * that are not migrations. */
	char **notes;
	size_t nnotes;
};

/*
 * Load dir for the engine of a URL. Errors (exit 2): missing or empty
 * directory, no migration for this engine, dangling symlinks, non-regular
 * or unreadable files, names that start like a migration and do not
 * parse, duplicate versions (0007 vs 7), two files competing for one
 * version, direction and engine, malformed single files, scripts that
 * cannot be split, top-level transaction control in a transactional
 * script. The message names the first problem (file and line) and how
 * many more there are. A MySQL engine validates the MySQL and the
 * MariaDB selection. SG_ENGINE_NONE validates every dialect and loads
 * nothing (`new` refuses to extend a broken directory).
 */
int sg_migration_load(const char *dir, enum sg_engine engine, struct sg_migration_set *set,
		      struct sg_error *err);
void sg_migration_set_free(struct sg_migration_set *set);

/* The same for a directory held in memory (the loader's fuzz target):
 * files[] are its entries, every one a regular, readable file (content
 * may hold NUL bytes: refused like a file's). label names the directory
 * in messages. Borrowed for the call only. */
struct sg_migration_file {
	const char *name;
	const char *content;
	size_t len;
};
int sg_migration_load_files(const char *label, const struct sg_migration_file *files, size_t n, enum sg_engine engine,
			    struct sg_migration_set *set, struct sg_error *err);

/* After connecting: use the selection for the server's dialect (MariaDB
 * behind a mysql:// URL). A no-op when it is already in use or the
 * directory has no files of its own for it. */
void sg_migration_select(struct sg_migration_set *set, enum sg_dialect dialect);

/* Find by numeric version; NULL if absent. */
const struct sg_migration *sg_migration_find(const struct sg_migration_set *set, const char *version);
/* Binary search of an array of n elements of `size` bytes, sorted by
 * version, whose version (a char *) sits at `offset` in each element. */
const void *sg_version_search(const void *base, size_t n, size_t size, size_t offset, const char *version);

/* Numeric comparison of digit strings of any length (leading zeros ignored). */
int sg_version_cmp(const char *a, const char *b);
/* True if s is a non-empty run of decimal digits. */
bool sg_version_valid(const char *s);

/* Hex SHA-256 (65 bytes with NUL) of text with CRLF normalised to LF. */
void sg_checksum(const char *text, size_t len, char out[65]);

/* A dialect tag: "pg", "pgx" -> POSTGRES, "mariadb" -> MARIADB; tags of
 * engines schemagate does not drive ("cockroach") -> NONE with *known
 * true; anything else -> NONE with *known false (part of a name). */
enum sg_dialect sg_dialect_tag(const char *tag, bool *known);
const char *sg_dialect_name(enum sg_dialect d);   /* "postgres", "mysql", "mariadb", "sqlite" */
enum sg_engine sg_dialect_engine(enum sg_dialect d);
/* The dialect a URL's engine is validated for first (MySQL before MariaDB). */
enum sg_dialect sg_engine_dialect(enum sg_engine e);

/*
 * The one rule for a script, whatever its direction and whichever
 * command runs it: no-transaction when marked outside the text (marked)
 * or by a SG_NO_TX_DIRECTIVE line; a transactional script may only be
 * wrapped in one leading BEGIN and one trailing COMMIT (absorbed), other
 * top-level transaction control is an error (exit 2, naming what and
 * line); split into statements when it runs statement by statement.
 * The loader uses it for every file; `rollback` for the down scripts
 * stored in the history table. what names the script in messages.
 */
struct sg_script {
	char *sql;                           /* what runs (see struct sg_migration) */
	bool no_tx, split;
	bool empty;                          /* only blanks and comments */
	struct sg_statement_list statements; /* when split */
	int first_line;                      /* file line of sql's first line */
};
int sg_script_prepare(const char *text, bool marked, enum sg_dialect dialect, const char *what,
		      struct sg_script *out, struct sg_error *err);
void sg_script_free(struct sg_script *s);

/*
 * `new NAME`: create the next migration file(s) following the existing
 * version style (same digit count, next number; 14-digit timestamps get
 * the current UTC time; empty directory -> UTC timestamp YYYYMMDDHHMMSS).
 * dialect may be any known tag or alias. Prints the created paths to
 * stdout. Exit 2 on errors.
 */
int sg_migration_new(const char *dir, const char *name, const char *dialect, bool single_file,
		     struct sg_error *err);

#endif
