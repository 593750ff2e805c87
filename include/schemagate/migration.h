/*
 * migration.h - the migration directory (SPEC section 3).
 *
 * Loads a directory for one engine: pair layout (V_name.up.sql /
 * V_name.down.sql), single-file layout (V_name.sql with "-- migrate:up" /
 * "-- migrate:down"), dialect variants (V_name.DIALECT.up.sql beats the
 * generic file), no-transaction directives, SHA-256 checksums of the up
 * script with CRLF normalised to LF. Versions compare numerically.
 */
#ifndef SCHEMAGATE_MIGRATION_H
#define SCHEMAGATE_MIGRATION_H

#include "schemagate/common.h"
#include "schemagate/url.h"

struct sg_migration {
	char *version;         /* digits as written in the file name ("0003") */
	char *name;            /* "add_index" */
	char *up_file;         /* file name relative to dir ("0003_add_index.up.sql") */
	char *down_file;       /* NULL if there is no down script */
	char *up_sql;          /* script text (single-file: the up section) */
	char *down_sql;        /* NULL if none */
	bool no_transaction;   /* directive or .autocommit marker */
	char checksum[65];     /* hex SHA-256 of up_sql with CRLF -> LF */
};

/* Sorted by version (numeric). Owned; sg_migration_set_free() releases. */
struct sg_migration_set {
	struct sg_migration *items;
	size_t count;
	char *dir;
	/* Non-fatal observations for lint: unknown dialect tags, versions that
	 * exist only for other engines, files that do not look like migrations. */
	char **notes;
	size_t nnotes;
};

/*
 * Load dir for engine. Errors (exit 2): missing/unreadable dir, duplicate
 * versions (0007 vs 7), two files competing for one version and engine,
 * malformed single-file scripts, unreadable files.
 * With engine SG_ENGINE_NONE (lint, new), every engine's files are
 * checked and the generic variant is loaded.
 */
int sg_migration_load(const char *dir, enum sg_engine engine, struct sg_migration_set *set,
		      struct sg_error *err);
void sg_migration_set_free(struct sg_migration_set *set);

/* Find by numeric version; NULL if absent. */
const struct sg_migration *sg_migration_find(const struct sg_migration_set *set, const char *version);

/* Numeric comparison of digit strings of any length (leading zeros ignored). */
int sg_version_cmp(const char *a, const char *b);
/* True if s is a non-empty run of decimal digits. */
bool sg_version_valid(const char *s);

/* Hex SHA-256 (65 bytes with NUL) of text with CRLF normalised to LF. */
void sg_checksum(const char *text, size_t len, char out[65]);

/* Map a dialect tag to an engine: "pg" -> POSTGRES, "cockroach" -> NONE,
 * and *known is false for tags nobody knows. */
enum sg_engine sg_dialect_engine(const char *tag, bool *known);

/*
 * `new NAME`: create the next migration file(s) following the existing
 * version style (same digit count, next number; 14-digit timestamps get
 * the current UTC time; empty directory -> UTC timestamp YYYYMMDDHHMMSS).
 * Prints the created paths to stdout. Exit 2 on errors.
 */
int sg_migration_new(const char *dir, const char *name, const char *dialect, bool single_file,
		     struct sg_error *err);

/* `lint`: print findings to stdout; returns 0 if clean, -1 (exit 2) if errors. */
int sg_migration_lint(const char *dir, struct sg_error *err);

#endif
