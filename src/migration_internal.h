/*
 * migration_internal.h - what the files of the migration directory module
 * share (not an interface to other modules; include/schemagate/migration.h
 * is that):
 *
 *   migration.c         versions, checksums, dialect tags, the findings report
 *   migration_scan.c    reading the directory: file names, entries, file text
 *   migration_script.c  the script rules: directives, single-file sections,
 *                       transaction control, sg_script_prepare
 *   migration_select.c  choosing each version's files for a dialect; the load
 *   migration_new.c     `schemagate new`
 *   lint.c              `schemagate lint` (include/schemagate/lint.h)
 */
#ifndef SCHEMAGATE_MIGRATION_INTERNAL_H
#define SCHEMAGATE_MIGRATION_INTERNAL_H

#include <dirent.h>
#include <stdint.h>
#include <sys/types.h>

#include "schemagate/migration.h"

/* Every dialect lint checks, and the bit each has in a finding's mask. */
#define NDIALECTS 4
extern const enum sg_dialect sg_all_dialects[NDIALECTS];
#define DIALECT_BIT(d) (1u << (d))
#define ALL_DIALECT_BITS (DIALECT_BIT(SG_DIALECT_POSTGRES) | DIALECT_BIT(SG_DIALECT_MYSQL) | \
			  DIALECT_BIT(SG_DIALECT_MARIADB) | DIALECT_BIT(SG_DIALECT_SQLITE))


/* ---- findings ------------------------------------------------------- */

enum level { LV_ERROR, LV_WARNING, LV_NOTE };

/* One problem or observation: file (may be NULL), line (0 = none), and
 * the dialects it was seen for (0 = not dialect-specific). */
struct sg_lint_rule;
struct finding {
	enum level level;
	char *file;
	int line;
	char *text;
	unsigned dialects;
	/* a lint rule's finding (lint_rules.c); NULL rule for the directory's own problems */
	const struct sg_lint_rule *rule;
	int column;          /* 1-based; 0 = none */
	char *statement;     /* the head of the statement it is about, or NULL */
	uint64_t hash;       /* of level, file, line and text (the report's slots) */
};

/*
 * The same problem is usually seen once per dialect (a generic file is
 * checked for each): a finding is kept once, with the dialects merged.
 * A hash keeps that linear for directories of thousands of files.
 */
struct report {
	struct finding *items;
	size_t count, cap;
	size_t *slots;        /* open addressing: index + 1, 0 = empty */
	size_t nslots;
	size_t counts[3];
	unsigned all;         /* the dialects checked: a finding seen for all of them names none */
};


/* FILE_REPEATABLE: R__NAME[.DIALECT].sql, the whole file is the definition */
enum file_kind { FILE_UP, FILE_DOWN, FILE_SINGLE, FILE_REPEATABLE };

/* dbmate's single-file layout, as its parser reads it. */
struct sections {
	const char *up, *down;      /* first byte after each marker line; down NULL when absent */
	size_t up_len, down_len;
	int up_line, down_line;     /* file line of each section's first line */
	bool up_no_tx, down_no_tx;  /* "transaction:false" on the marker line */
};

/* One migration file: its parsed name, and its text once read. */
/* One script's split, shared by the dialects when every engine splits
 * it alike (sg_sql_engine_neutral). */
struct split_cache {
	bool known, neutral;
	size_t len;                    /* of the text it is the split of */
	struct sg_statement_list list;
};

struct entry {
	char *file;            /* as in the directory */
	char *version;         /* digits as written; a repeatable's key "R__NAME" */
	char *name;            /* "" when the name has no _NAME part */
	enum sg_dialect tag;   /* SG_DIALECT_NONE: generic, or another engine's */
	bool other_engine;     /* tagged for an engine schemagate does not drive */
	enum file_kind kind;
	bool autocommit;       /* pop's .autocommit marker */
	/* read on first use, shared by every dialect */
	bool read;
	char *text;            /* BOM stripped; NULL until read, or unreadable */
	size_t len;
	bool bom;
	/* single files: the sections, parsed once */
	bool parsed, parsed_ok;
	struct sections sections;
	/* the up script's checksum, computed once for every dialect (lint
	 * loads each file for three) */
	bool summed;
	char checksum[65];
	struct split_cache split[2];   /* [0]: the up script, [1]: the down script */
};

struct directory {
	const char *dir;
	DIR *handle;           /* open until directory_free: files are opened relative to it */
	/* a directory held in memory (sg_migration_load_files); NULL: the file system */
	const struct sg_migration_file *files;
	size_t nfiles;
	struct entry *items;
	size_t count, cap;
	struct entry *reps;    /* repeatable migrations, by key (never in items) */
	size_t nreps, capreps;
	char **ignored;        /* files that are not migrations */
	size_t nignored;
	bool has_tag[SG_DIALECT_SQLITE + 1];
	/* keep every script's statements, also where it runs whole (lint reads them) */
	bool keep_statements;
	/* loaded for several dialects: a script they split alike is split once */
	bool share_splits;
};

/* Which files serve one dialect: up and down chosen independently. */
struct choice {
	struct entry *up, *down;
};


struct selection {
	struct sg_migration *items;
	size_t count, cap;
};


/* ---- migration.c ---------------------------------------------------- */

/* The tag words (aliases included) and the dialect of each; lint suggests
 * the nearest for a misspelled one. */
struct sg_dialect_tag_word {
	const char *tag;
	enum sg_dialect dialect;
};
extern const struct sg_dialect_tag_word sg_dialect_tags[];
extern const size_t sg_ndialect_tags;
extern const char *const sg_known_tags_help;

/* The files a dialect takes, most specific first; returns how many. */
size_t sg_dialect_levels(enum sg_dialect d, enum sg_dialect out[3]);
/* sg_dialect_tag for the n bytes at s. */
enum sg_dialect sg_dialect_tag_n(const char *s, size_t n, bool *known);
/* Add a finding (merged with an equal one seen for another dialect). */
void sg_report_add(struct report *r, enum level lv, const char *file, int line, enum sg_dialect d,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void sg_report_free(struct report *r);
/* Keep text (owned, moved in) as a finding at line:column, once; the new
 * finding, or NULL when it merged into an equal one (text freed). */
struct finding *sg_report_keep(struct report *r, enum level lv, const char *file, int line, int column,
			       enum sg_dialect d, char *text);
/* Move src's findings into dst (one seen in both is kept once, its
 * dialects merged: the result does not depend on which report saw it
 * first); src is freed. */
void sg_report_merge(struct report *dst, struct report *src);
/* "file:line: text [dialects]" as one line, for messages and lint. */
void sg_finding_format(const struct finding *f, unsigned all, struct sg_buf *b);
/* The first error as err's message, with how many more there are: -1;
 * 0 when there is none. */
int sg_report_fail(const struct report *r, struct sg_error *err);

/* ---- migration_scan.c ----------------------------------------------- */

void sg_directory_free(struct directory *d);
/* List dir into d (names parsed, sorted; texts not read yet): 0, or -1
 * when it cannot be read (in rep). */
int sg_directory_scan(const char *dir, struct directory *d, struct report *rep);
/* The same for a directory held in memory. */
void sg_directory_scan_files(const char *label, const struct sg_migration_file *files, size_t n, struct directory *d,
			     struct report *rep);
/* Read e's text once (BOM stripped); false when unreadable (in rep). */
bool sg_entry_read(const struct directory *d, struct entry *e, struct report *rep);

/* ---- migration_script.c --------------------------------------------- */

/* sg_script_prepare on len bytes; stored: a script read back from the
 * history table; keep: the statements also when it runs whole; cache: the
 * script's split shared by the dialects, or NULL. Problems go to rep as
 * findings of `what`. */
int sg_script_prepare_text(const char *text, size_t len, bool marked, bool stored, bool keep,
			   struct split_cache *cache, enum sg_dialect d, const char *what, int first_line,
			   struct sg_script *out, struct report *rep);
/* Parse a single file's up/down sections into s: 0, or -1 (in rep). */
int sg_single_file_sections(const struct entry *e, struct sections *s, struct report *rep);

/* ---- migration_select.c --------------------------------------------- */

/* Entries d->items[*b, *e) are one version; false at the end. */
bool sg_next_group(const struct directory *d, size_t *b, size_t *e);
void sg_selection_free(struct selection *s);
/* Choose and prepare every version's scripts for dialect into sel. */
void sg_load_dialect(const struct directory *d, const bool *bad, enum sg_dialect dialect, bool note_absent,
		     struct selection *sel, struct report *rep);
/* The same for the versions starting in d->items[from, to) only. */
void sg_load_dialect_range(const struct directory *d, const bool *bad, enum sg_dialect dialect, bool note_absent,
			   size_t from, size_t to, struct selection *sel, struct report *rep);
/* The repeatable migrations of the directory for dialect, by name, into sel. */
void sg_load_repeatables(const struct directory *d, enum sg_dialect dialect, struct selection *sel,
			 struct report *rep);
/* Versions whose files conflict, as a malloc'd flag per entry. */
bool *sg_check_groups(struct directory *d, struct report *rep);
/* Files of no selected script that could not be read. */
void sg_check_unread(const struct directory *d, struct report *rep);
/* A directory without a single migration. */
void sg_no_migrations(const struct directory *d, struct report *rep);

#endif
