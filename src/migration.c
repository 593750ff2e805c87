/*
 * migration.c - read the migration directory (SPEC section 3).
 *
 * A directory is a list of file names first. Each name that starts like a
 * migration (digits, ending in .sql) is parsed into version, name, dialect
 * tag, layout and .autocommit marker; anything else is not a migration and
 * is only listed by lint. The list is sorted numerically and each version
 * is resolved for one dialect, per direction, as popx does: the up script
 * is the most specific up file for the dialect (its own tag, then MySQL's
 * for MariaDB, then the generic file), and the down script likewise, on
 * its own. Every selected script is read once and prepared by one rule
 * (sg_script_prepare): BOM stripped, no-transaction decided, transaction
 * control checked, split when it will run statement by statement.
 *
 * Everything that makes the directory ambiguous or unrunnable is refused
 * here, before any connection, so two pods can never disagree about what
 * "version 7" means and nothing half-applies for a reason visible offline.
 * Problems are collected, not thrown: `lint` prints them all, a load
 * reports the first and how many more.
 */
#include "schemagate/migration.h"
#include "schemagate/lint.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIRECTIVE_WORD "schemagate:no-transaction"

/* ---- versions and checksums ---------------------------------------- */

bool sg_version_valid(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Compared as text after leading zeros: no integer can overflow. */
int sg_version_cmp(const char *a, const char *b)
{
	while (*a == '0')
		a++;
	while (*b == '0')
		b++;
	/* one pass (it sorts and searches every version of the directory):
	 * the longer run of digits is the larger number; at equal lengths
	 * the first differing digit decides */
	int first = 0;
	for (;; a++, b++) {
		if (!*a || !*b)
			return *a ? 1 : *b ? -1 : first;
		if (!first && *a != *b)
			first = (unsigned char)*a < (unsigned char)*b ? -1 : 1;
	}
}

void sg_checksum(const char *text, size_t len, char out[65])
{
	/* CRLF -> LF so a checkout with core.autocrlf does not change history. */
	char *norm = NULL;
	size_t n = len;
	if (memchr(text, '\r', len)) {
		norm = sg_malloc(len + 1);
		n = 0;
		for (size_t i = 0; i < len; i++) {
			if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
				continue;
			norm[n++] = text[i];
		}
	}
	/* Fetch the algorithm once: EVP_sha256() makes OpenSSL 3 look it up
	 * again on every call, which cost more than hashing a small file. */
	static EVP_MD *sha256;
	if (!sha256)
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!sha256 || EVP_Digest(norm ? norm : text, n, md, &mdlen, sha256, NULL) != 1 || mdlen != 32) {
		/* OpenSSL without SHA-256 is a broken build, not a runtime condition. */
		fputs("schemagate: SHA-256 unavailable\n", stderr);
		abort();
	}
	free(norm);
	static const char hex[] = "0123456789abcdef";
	for (unsigned int i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

/* ---- dialect tags -------------------------------------------------- */

/*
 * Only these words are tags; any other dotted word is part of the name
 * (golang-migrate allows 0120_2.9.0_schema.up.sql). The aliases are pop's
 * (CanonicalDialect) plus pgx; mariadb is its own tag (SPEC section 3).
 */
static const struct {
	const char *tag;
	enum sg_dialect dialect;
} dialect_tags[] = {
	{"postgres", SG_DIALECT_POSTGRES},
	{"postgresql", SG_DIALECT_POSTGRES},
	{"pg", SG_DIALECT_POSTGRES},
	{"pgx", SG_DIALECT_POSTGRES},
	{"mysql", SG_DIALECT_MYSQL},
	{"mariadb", SG_DIALECT_MARIADB},
	{"sqlite", SG_DIALECT_SQLITE},
	{"sqlite3", SG_DIALECT_SQLITE},
	/* Engines schemagate does not drive: their files exist for nobody here. */
	{"cockroach", SG_DIALECT_NONE},
	{"cockroachdb", SG_DIALECT_NONE},
	{"crdb", SG_DIALECT_NONE},
	{"mssql", SG_DIALECT_NONE},
	{"sqlserver", SG_DIALECT_NONE},
	{"clickhouse", SG_DIALECT_NONE},
	{"spanner", SG_DIALECT_NONE},
	{"oracle", SG_DIALECT_NONE},
	{"tidb", SG_DIALECT_NONE},
	{"duckdb", SG_DIALECT_NONE},
	{"snowflake", SG_DIALECT_NONE},
	{"redshift", SG_DIALECT_NONE},
	{"bigquery", SG_DIALECT_NONE},
	{"yugabyte", SG_DIALECT_NONE},
	{"h2", SG_DIALECT_NONE},
};
#define NTAGS (sizeof(dialect_tags) / sizeof(dialect_tags[0]))

static enum sg_dialect lookup_tag(const char *s, size_t n, bool *known)
{
	for (size_t i = 0; i < NTAGS; i++) {
		if (strlen(dialect_tags[i].tag) == n && strncasecmp(s, dialect_tags[i].tag, n) == 0) {
			*known = true;
			return dialect_tags[i].dialect;
		}
	}
	*known = false;
	return SG_DIALECT_NONE;
}

enum sg_dialect sg_dialect_tag(const char *tag, bool *known)
{
	bool k;
	enum sg_dialect d = lookup_tag(tag, strlen(tag), &k);
	if (known)
		*known = k;
	return d;
}

const char *sg_dialect_name(enum sg_dialect d)
{
	switch (d) {
	case SG_DIALECT_POSTGRES: return "postgres";
	case SG_DIALECT_MYSQL: return "mysql";
	case SG_DIALECT_MARIADB: return "mariadb";
	case SG_DIALECT_SQLITE: return "sqlite";
	default: return "generic";
	}
}

enum sg_engine sg_dialect_engine(enum sg_dialect d)
{
	switch (d) {
	case SG_DIALECT_POSTGRES: return SG_ENGINE_POSTGRES;
	case SG_DIALECT_MYSQL:
	case SG_DIALECT_MARIADB: return SG_ENGINE_MYSQL;
	case SG_DIALECT_SQLITE: return SG_ENGINE_SQLITE;
	default: return SG_ENGINE_NONE;
	}
}

enum sg_dialect sg_engine_dialect(enum sg_engine e)
{
	switch (e) {
	case SG_ENGINE_POSTGRES: return SG_DIALECT_POSTGRES;
	case SG_ENGINE_MYSQL: return SG_DIALECT_MYSQL;
	case SG_ENGINE_SQLITE: return SG_DIALECT_SQLITE;
	default: return SG_DIALECT_NONE;
	}
}

/* Every dialect lint checks, and the bit each has in a finding's mask. */
static const enum sg_dialect all_dialects[] = {SG_DIALECT_POSTGRES, SG_DIALECT_MYSQL, SG_DIALECT_MARIADB,
					       SG_DIALECT_SQLITE};
#define NDIALECTS 4
#define DIALECT_BIT(d) (1u << (d))
#define ALL_DIALECT_BITS (DIALECT_BIT(SG_DIALECT_POSTGRES) | DIALECT_BIT(SG_DIALECT_MYSQL) | \
			  DIALECT_BIT(SG_DIALECT_MARIADB) | DIALECT_BIT(SG_DIALECT_SQLITE))

/* The files a dialect takes, most specific first. */
static size_t dialect_levels(enum sg_dialect d, enum sg_dialect out[3])
{
	size_t n = 0;
	out[n++] = d;
	if (d == SG_DIALECT_MARIADB)
		out[n++] = SG_DIALECT_MYSQL;   /* a MariaDB server runs the mysql files otherwise */
	out[n++] = SG_DIALECT_NONE;           /* the generic file */
	return n;
}

/* ---- findings ------------------------------------------------------- */

enum level { LV_ERROR, LV_WARNING, LV_NOTE };
static const char *const level_names[] = {"error", "warning", "note"};

/* One problem or observation: file (may be NULL), line (0 = none), and
 * the dialects it was seen for (0 = not dialect-specific). */
struct finding {
	enum level level;
	char *file;
	int line;
	char *text;
	unsigned dialects;
	/* a lint rule's finding (src/lint_rules.c); NULL rule for the directory's own problems */
	const struct sg_lint_rule *rule;
	int column;          /* 1-based; 0 = none */
	char *statement;     /* the head of the statement it is about, or NULL */
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

static uint64_t finding_hash(enum level lv, const char *file, int line, const char *text)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)lv ^ ((uint64_t)(unsigned)line << 8);
	for (const char *p = file ? file : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (const char *p = text; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
}

static bool same_finding(const struct finding *f, enum level lv, const char *file, int line, int column,
			 const char *text)
{
	return f->level == lv && f->line == line && f->column == column && strcmp(f->text, text) == 0 &&
	       ((!f->file && !file) || (f->file && file && strcmp(f->file, file) == 0));
}

static void report_rehash(struct report *r)
{
	free(r->slots);
	r->nslots = r->nslots ? r->nslots * 2 : 64;
	r->slots = sg_calloc(r->nslots, sizeof(*r->slots));
	for (size_t i = 0; i < r->count; i++) {
		const struct finding *f = &r->items[i];
		size_t s = (size_t)finding_hash(f->level, f->file, f->line, f->text) & (r->nslots - 1);
		while (r->slots[s])
			s = (s + 1) & (r->nslots - 1);
		r->slots[s] = i + 1;
	}
}

/* Keep text (owned, moved in) as a finding, once. */
static struct finding *report_keep(struct report *r, enum level lv, const char *file, int line, int column,
				   enum sg_dialect d, char *text)
{
	unsigned bit = d == SG_DIALECT_NONE ? 0 : DIALECT_BIT(d);
	if ((r->count + 1) * 2 > r->nslots)
		report_rehash(r);
	size_t s = (size_t)finding_hash(lv, file, line, text) & (r->nslots - 1);
	for (; r->slots[s]; s = (s + 1) & (r->nslots - 1)) {
		struct finding *f = &r->items[r->slots[s] - 1];
		if (same_finding(f, lv, file, line, column, text)) {
			f->dialects |= bit;
			free(text);
			return NULL;
		}
	}
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->items = sg_realloc(r->items, r->cap * sizeof(*r->items));
	}
	r->items[r->count] = (struct finding){lv, file ? sg_strdup(file) : NULL, line, text, bit, NULL, column, NULL};
	r->slots[s] = ++r->count;
	r->counts[lv]++;
	return &r->items[r->count - 1];
}

static void report_add(struct report *r, enum level lv, const char *file, int line, enum sg_dialect d,
		       const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void report_add(struct report *r, enum level lv, const char *file, int line, enum sg_dialect d,
		       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	report_keep(r, lv, file, line, 0, d, text);
}

static void report_free(struct report *r)
{
	for (size_t i = 0; i < r->count; i++) {
		free(r->items[i].file);
		free(r->items[i].text);
		free(r->items[i].statement);
	}
	free(r->items);
	free(r->slots);
	memset(r, 0, sizeof(*r));
}

/* "file:line: text" as one line, for messages and lint. */
static void finding_format(const struct finding *f, unsigned all, struct sg_buf *b)
{
	if (f->file && f->line > 0 && f->column > 0)
		sg_buf_printf(b, "%s:%d:%d: ", f->file, f->line, f->column);
	else if (f->file && f->line > 0)
		sg_buf_printf(b, "%s:%d: ", f->file, f->line);
	else if (f->file)
		sg_buf_printf(b, "%s: ", f->file);
	if (f->rule)
		sg_buf_printf(b, "%s: ", f->rule->id);
	sg_buf_puts(b, f->text);
	if (f->dialects && f->dialects != all) {
		sg_buf_puts(b, " [");
		bool first = true;
		for (size_t k = 0; k < NDIALECTS; k++)
			if (f->dialects & DIALECT_BIT(all_dialects[k])) {
				sg_buf_printf(b, "%s%s", first ? "" : ", ", sg_dialect_name(all_dialects[k]));
				first = false;
			}
		sg_buf_puts(b, "]");
	}
}

/* The first error as err's message, with how many more there are. */
static int report_fail(const struct report *r, struct sg_error *err)
{
	for (size_t i = 0; i < r->count; i++) {
		if (r->items[i].level != LV_ERROR)
			continue;
		struct sg_buf b = {0};
		finding_format(&r->items[i], r->all, &b);
		size_t more = r->counts[LV_ERROR] - 1;
		if (more)
			sg_buf_printf(&b, " (and %zu more problem%s; `schemagate lint` lists them all)", more,
				      more == 1 ? "" : "s");
		sg_fail(err, SG_EXIT_USAGE, "%s", b.data);
		sg_buf_free(&b);
		return -1;
	}
	return 0;
}

/* ---- file names ---------------------------------------------------- */

enum file_kind { FILE_UP, FILE_DOWN, FILE_SINGLE };

/* dbmate's single-file layout, as its parser reads it. */
struct sections {
	const char *up, *down;      /* first byte after each marker line; down NULL when absent */
	size_t up_len, down_len;
	int up_line, down_line;     /* file line of each section's first line */
	bool up_no_tx, down_no_tx;  /* "transaction:false" on the marker line */
};

/* One migration file: its parsed name, and its text once read. */
struct entry {
	char *file;            /* as in the directory */
	char *version;         /* digits as written */
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
};

struct directory {
	const char *dir;
	DIR *handle;           /* open until directory_free: files are opened relative to it */
	/* a directory held in memory (sg_migration_load_files); NULL: the file system */
	const struct sg_migration_file *files;
	size_t nfiles;
	struct entry *items;
	size_t count, cap;
	char **ignored;        /* files that are not migrations */
	size_t nignored;
	bool has_tag[SG_DIALECT_SQLITE + 1];
};

static void directory_free(struct directory *d)
{
	for (size_t i = 0; i < d->count; i++) {
		struct entry *e = &d->items[i];
		free(e->file);
		free(e->version);
		free(e->name);
		free(e->text);
	}
	free(d->items);
	for (size_t i = 0; i < d->nignored; i++)
		free(d->ignored[i]);
	free(d->ignored);
	if (d->handle)
		closedir(d->handle);
	memset(d, 0, sizeof(*d));
}

static bool ends_with(const char *s, size_t len, const char *suffix, size_t *rest)
{
	size_t n = strlen(suffix);
	if (len < n || strncasecmp(s + len - n, suffix, n) != 0)
		return false;
	*rest = len - n;
	return true;
}

/* golang-migrate and dbmate take a file as a migration when its name
 * starts with digits; the rest of the directory is not theirs. */
static bool looks_like_migration(const char *file)
{
	size_t rest;
	return isdigit((unsigned char)file[0]) && ends_with(file, strlen(file), ".sql", &rest);
}

static const char *const name_help = "expected VERSION_NAME[.DIALECT][.autocommit].up.sql, .down.sql or .sql";

/*
 * VERSION[_NAME][.DIALECT][.autocommit](.up.sql|.down.sql|.sql). NAME may
 * hold dots; only a known tag as the last dotted word is a dialect.
 * Returns -1 (reported) when the name does not parse.
 */
static int parse_file_name(const char *file, struct entry *e, struct report *rep)
{
	memset(e, 0, sizeof(*e));
	size_t len = strlen(file), rest;
	if (ends_with(file, len, ".up.sql", &rest))
		e->kind = FILE_UP;
	else if (ends_with(file, len, ".down.sql", &rest))
		e->kind = FILE_DOWN;
	else if (ends_with(file, len, ".sql", &rest))
		e->kind = FILE_SINGLE;
	else
		return -1;   /* looks_like_migration() said .sql */
	len = rest;

	size_t v = 0;
	while (v < len && isdigit((unsigned char)file[v]))
		v++;
	size_t name_b = v;
	if (v < len && file[v] == '_') {
		name_b = v + 1;
	} else if (v < len && file[v] != '.') {
		report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE,
			   "cannot parse the migration file name: VERSION must be followed by '_NAME' or '.' (%s)",
			   name_help);
		return -1;
	}
	size_t end = len;
	if (ends_with(file, end, ".autocommit", &rest) && rest >= v) {
		e->autocommit = true;
		end = rest;
	}
	const char *dot = end > name_b ? memrchr(file + name_b, '.', end - name_b) : NULL;
	if (dot) {
		bool known;
		size_t tb = (size_t)(dot - file) + 1;
		enum sg_dialect d = lookup_tag(file + tb, end - tb, &known);
		if (known) {
			e->tag = d;
			e->other_engine = d == SG_DIALECT_NONE;
			end = tb - 1;
		}
	}
	if (file[v] == '.' && end != v) {
		report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE,
			   "cannot parse the migration file name: after VERSION, '.' must start a dialect tag (%s)",
			   name_help);
		return -1;
	}
	if (file[v] == '_' && end <= name_b) {
		report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE, "empty migration name after '_' (%s)", name_help);
		return -1;
	}
	size_t rest2;
	if (end > name_b && ends_with(file, end, ".autocommit", &rest2)) {
		report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE,
			   "'.autocommit' must come right before .up.sql or .down.sql (V_NAME.DIALECT.autocommit.up.sql, "
			   "as popx reads it)");
		return -1;
	}
	e->file = sg_strdup(file);
	e->version = sg_strndup(file, v);
	e->name = end > name_b && file[v] == '_' ? sg_strndup(file + name_b, end - name_b) : sg_strdup("");
	return 0;
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int c = sg_version_cmp(a->version, b->version);
	return c ? c : strcmp(a->file, b->file);
}

static const char *file_type(mode_t m)
{
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

/* Classify one directory entry; adds a migration to d. */
static void scan_one(struct directory *d, const char *name, unsigned char dtype, struct report *rep)
{
	bool migration = looks_like_migration(name);
	struct stat st;
	mode_t mode;
	if (dtype == DT_REG) {
		mode = S_IFREG;
	} else if (dtype == DT_DIR) {
		mode = S_IFDIR;
	} else {
		/* symlinks (ConfigMap volumes), and file systems without d_type */
		if (fstatat(dirfd(d->handle), name, &st, 0) < 0) {
			char target[512];
			ssize_t n = readlinkat(dirfd(d->handle), name, target, sizeof(target) - 1);
			if (n >= 0) {
				target[n] = '\0';
				bool loop = errno == ELOOP;
				report_add(rep, LV_ERROR, name, 0, SG_DIALECT_NONE, "%s symlink to %s (%s)%s",
					   loop ? "looping" : "dangling", target, strerror(errno),
					   loop ? "" : "; a volume that is not fully mounted?");
			} else {
				report_add(rep, LV_ERROR, name, 0, SG_DIALECT_NONE, "%s", strerror(errno));
			}
			return;
		}
		mode = st.st_mode;
	}
	if (S_ISDIR(mode)) {
		/* subdirectories are not part of the directory, as for golang-migrate */
		if (migration)
			report_add(rep, LV_ERROR, name, 0, SG_DIALECT_NONE, "a directory named like a migration file");
		return;
	}
	if (!S_ISREG(mode)) {
		report_add(rep, LV_ERROR, name, 0, SG_DIALECT_NONE,
			   "%s, not a file: a migration directory holds only files", file_type(mode));
		return;
	}
	if (!migration) {
		d->ignored = sg_realloc(d->ignored, (d->nignored + 1) * sizeof(char *));
		d->ignored[d->nignored++] = sg_strdup(name);
		return;
	}
	if (!sg_utf8_valid(name)) {
		/* the history table records the name as text: PostgreSQL and
		 * MySQL would refuse it after the script ran */
		char *shown = sg_utf8_sanitize(name, 1024);
		report_add(rep, LV_ERROR, shown, 0, SG_DIALECT_NONE,
			   "the file name is not valid UTF-8 (the history table records names as text); rename it");
		free(shown);
		return;
	}
	struct entry e;
	if (parse_file_name(name, &e, rep) < 0)
		return;
	if (!e.other_engine)
		d->has_tag[e.tag] = true;
	if (d->count == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->items = sg_realloc(d->items, d->cap * sizeof(*d->items));
	}
	d->items[d->count++] = e;
}

/* A directory entry before it is classified. */
struct dir_name {
	char *name;
	unsigned char type;   /* d_type */
};

static int dir_name_cmp(const void *pa, const void *pb)
{
	return strcmp(((const struct dir_name *)pa)->name, ((const struct dir_name *)pb)->name);
}

/* Classify the entries in name order: every message and note then comes
 * out the same, whatever order the file system lists them in. Frees names. */
static void scan_names(struct directory *d, struct dir_name *names, size_t n, struct report *rep)
{
	if (n > 1)
		qsort(names, n, sizeof(*names), dir_name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (names[i].name[0] != '.')   /* dot-files; ConfigMap's ..data links */
			scan_one(d, names[i].name, names[i].type, rep);
		free(names[i].name);
	}
	free(names);
	if (d->count > 1)
		qsort(d->items, d->count, sizeof(*d->items), entry_cmp);
}

/* Every file of dir, classified. Problems go to rep; returns -1 only
 * when the directory itself cannot be read. */
static int scan_dir(const char *dir, struct directory *d, struct report *rep)
{
	memset(d, 0, sizeof(*d));
	d->dir = dir;
	d->handle = opendir(dir);
	if (!d->handle) {
		report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE, "migration directory %s: %s", dir, strerror(errno));
		return -1;
	}
	struct dir_name *names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d->handle)) != NULL) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = sg_realloc(names, cap * sizeof(*names));
		}
		names[n++] = (struct dir_name){sg_strdup(de->d_name), de->d_type};
	}
	scan_names(d, names, n, rep);
	return 0;
}

/* The same for a directory held in memory: every file is a regular file. */
static void scan_files(const char *label, const struct sg_migration_file *files, size_t n, struct directory *d,
		       struct report *rep)
{
	memset(d, 0, sizeof(*d));
	d->dir = label;
	d->files = files;
	d->nfiles = n;
	struct dir_name *names = sg_calloc(n + 1, sizeof(*names));
	for (size_t i = 0; i < n; i++)
		names[i] = (struct dir_name){sg_strdup(files[i].name), DT_REG};
	scan_names(d, names, n, rep);
}

/* A file of a directory held in memory, copied to end in NUL. */
static char *memory_file(const struct directory *d, const char *name, size_t *n)
{
	for (size_t i = 0; i < d->nfiles; i++) {
		if (strcmp(d->files[i].name, name) != 0)
			continue;
		char *text = sg_malloc(d->files[i].len + 1);
		memcpy(text, d->files[i].content, d->files[i].len);
		text[d->files[i].len] = '\0';
		*n = d->files[i].len;
		return text;
	}
	abort();   /* scan_files() took the name from the list */
}

/* A migration file's bytes, NUL-terminated; NULL (reported) when it
 * cannot be read. */
static char *read_file(const struct directory *d, const struct entry *e, size_t *len, struct report *rep)
{
	/* O_NONBLOCK: a FIFO swapped in after the scan must not hang us */
	int fd = openat(dirfd(d->handle), e->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st = {0};
	const char *why = NULL;
	if (fd < 0 || fstat(fd, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	if (why) {
		report_add(rep, LV_ERROR, e->file, 0, SG_DIALECT_NONE, "cannot be read: %s", why);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	/* Room for one byte more than fstat saw: a read of a regular file
	 * that returns less than asked is at its end, so a file costs one
	 * read and no reallocation (the buffer grows only if the file grew
	 * since fstat). Linux returns at most ~2 GiB per call, so only
	 * smaller reads that come back short are taken as the end. */
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *text = sg_malloc(cap + 1);
	for (;;) {
		if (n == cap) {
			cap = cap * 2 + 4096;
			text = sg_realloc(text, cap + 1);
		}
		size_t want = cap - n;
		ssize_t got = read(fd, text + n, want);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			report_add(rep, LV_ERROR, e->file, 0, SG_DIALECT_NONE, "cannot be read: %s", strerror(errno));
			close(fd);
			free(text);
			return NULL;
		}
		n += (size_t)got;
		if (got == 0 || ((size_t)got < want && want <= (1u << 30)))
			break;
	}
	close(fd);
	text[n] = '\0';
	*len = n;
	return text;
}

/* Read a migration once: BOM stripped, NUL bytes refused. */
static bool read_entry(const struct directory *d, struct entry *e, struct report *rep)
{
	if (e->read)
		return e->text != NULL;
	e->read = true;
	size_t n = 0;
	char *text = d->files ? memory_file(d, e->file, &n) : read_file(d, e, &n, rep);
	if (!text)
		return false;
	if (memchr(text, '\0', n)) {
		report_add(rep, LV_ERROR, e->file, 0, SG_DIALECT_NONE, "contains a NUL byte; not a SQL script");
		free(text);
		return false;
	}
	if (n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		memmove(text, text + 3, n - 2);
		n -= 3;
		e->bom = true;
	}
	e->text = text;
	e->len = n;
	return true;
}

/* ---- script contents ----------------------------------------------- */

/* Does a line (without its newline) read "-- KEYWORD..."? Returns the text after the keyword. */
static const char *comment_keyword(const char *line, size_t len, const char *keyword)
{
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (len - i < 2 || line[i] != '-' || line[i + 1] != '-')
		return NULL;
	i += 2;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	size_t k = strlen(keyword);
	if (len - i < k || strncasecmp(line + i, keyword, k) != 0)
		return NULL;
	i += k;
	if (i < len && !isspace((unsigned char)line[i]))
		return NULL;   /* "-- schemagate:no-transactional" is not the directive */
	return line + i;
}

static bool has_directive(const char *sql)
{
	for (const char *p = sql; *p;) {
		size_t n = strcspn(p, "\n");
		if (comment_keyword(p, n, DIRECTIVE_WORD))
			return true;
		p += n;
		if (*p)
			p++;
	}
	return false;
}

enum no_tx { IN_TRANSACTION, NO_TX_BY_DIRECTIVE, NO_TX_BY_MARK };

/*
 * THE no-transaction rule, for up and down scripts alike and whichever
 * command runs them: a "-- schemagate:no-transaction" line in the text,
 * or a mark outside it (pop's .autocommit file name, dbmate's
 * "-- migrate:up/down transaction:false").
 */
static enum no_tx script_no_transaction(const char *text, bool marked)
{
	if (has_directive(text))
		return NO_TX_BY_DIRECTIVE;
	return marked ? NO_TX_BY_MARK : IN_TRANSACTION;
}

/* Blank text[b, e) but keep its newlines: line numbers stay the file's. */
static void blank(char *text, size_t b, size_t e)
{
	for (size_t i = b; i < e; i++)
		if (text[i] != '\n')
			text[i] = ' ';
}

static void drop_statement(struct sg_statement_list *l, size_t i)
{
	free(l->items[i].sql);
	memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof(*l->items));
	l->count--;
}

static void first_word_upper(const char *sql, char *out, size_t outsz)
{
	size_t n = 0;
	while (*sql && isalpha((unsigned char)*sql) && n + 1 < outsz)
		out[n++] = (char)toupper((unsigned char)*sql++);
	out[n] = '\0';
}

/*
 * A transactional script runs inside schemagate's own transaction, with
 * its history row. One leading BEGIN and one trailing COMMIT (the wrapper
 * golang-migrate's docs suggest for PostgreSQL files) are absorbed into
 * it; any other top-level transaction control would commit or end that
 * transaction half way and is refused.
 */
static int check_transaction_control(char *sql, struct sg_statement_list *l, enum sg_engine engine,
				     const char *what, enum sg_dialect d, struct report *rep)
{
	size_t n = l->count;
	bool wrapped = n >= 2 && sg_statement_tx_control(l->items[0].sql, engine) == SG_TXC_BEGIN &&
		       sg_statement_tx_control(l->items[n - 1].sql, engine) == SG_TXC_COMMIT;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if ((wrapped && (i == 0 || i == n - 1)) ||
		    sg_statement_tx_control(l->items[i].sql, engine) == SG_TXC_NONE)
			continue;
		char head[64];
		sg_statement_head(l->items[i].sql, head, sizeof(head));
		report_add(rep, LV_ERROR, what, l->items[i].line, d,
			   "top-level transaction control '%s' in a transactional script: schemagate runs each "
			   "migration in one transaction with its history row, so only one leading BEGIN and one "
			   "trailing COMMIT are allowed (they are absorbed); remove it, or add a line "
			   "'" SG_NO_TX_DIRECTIVE "' to run the script statement by statement", head);
		rc = -1;
	}
	if (rc == 0 && wrapped) {
		report_add(rep, LV_WARNING, what, l->items[0].line, d,
			   "BEGIN ... COMMIT wrapper absorbed: schemagate runs the script in its own transaction "
			   "with its history row; the wrapper can go");
		blank(sql, l->items[n - 1].start, l->items[n - 1].delim_end);
		blank(sql, l->items[0].start, l->items[0].delim_end);
		drop_statement(l, n - 1);
		drop_statement(l, 0);
	}
	return rc;
}

/* The rule of sg_script_prepare, reporting instead of failing, on
 * text[0, len) (a section of a file need not end in NUL). first_line is
 * the file line of the text's first line (single-file sections). */
static int prepare(const char *text, size_t len, bool marked, bool stored, enum sg_dialect d, const char *what,
		   int first_line, struct sg_script *out, struct report *rep)
{
	memset(out, 0, sizeof(*out));
	enum sg_engine engine = sg_dialect_engine(d);
	out->sql = sg_strndup(text, len);
	enum no_tx how = script_no_transaction(out->sql, marked);
	out->no_tx = how != IN_TRANSACTION;
	/* a mark outside the text becomes a line in it when the text is
	 * stored (down scripts): `rollback` reads the same rule from it */
	bool prefix = stored && how == NO_TX_BY_MARK;
	if (prefix) {
		char *marked_sql = sg_asprintf("%s\n%s", SG_NO_TX_DIRECTIVE, out->sql);
		free(out->sql);
		out->sql = marked_sql;
	}
	struct sg_statement_list l;
	struct sg_error e = {0};
	if (sg_sql_split_at(out->sql, engine, prefix ? first_line - 1 : first_line, &l, &e) < 0) {
		report_add(rep, LV_ERROR, what, 0, d, "%s", e.msg);
		sg_script_free(out);
		return -1;
	}
	int rc = 0;
	if (!out->no_tx) {
		rc = check_transaction_control(out->sql, &l, engine, what, d, rep);
	} else {
		for (size_t i = 0; i < l.count; i++) {
			if (sg_statement_tx_control(l.items[i].sql, engine) == SG_TXC_NONE)
				continue;
			char w[16];
			first_word_upper(l.items[i].sql, w, sizeof(w));
			report_add(rep, LV_WARNING, what, l.items[i].line, d,
				   "no-transaction script contains %s; each statement already commits on its own", w);
		}
	}
	out->split = out->no_tx || engine == SG_ENGINE_MYSQL;
	out->empty = l.count == 0;
	out->first_line = prefix ? first_line - 1 : first_line;
	if (rc == 0 && out->split)
		out->statements = l;
	else
		sg_statement_list_free(&l);
	if (rc < 0)
		sg_script_free(out);
	return rc;
}

int sg_script_prepare(const char *text, bool marked, enum sg_dialect dialect, const char *what,
		      struct sg_script *out, struct sg_error *err)
{
	struct report rep = {0};
	int rc = prepare(text, strlen(text), marked, false, dialect, what, 1, out, &rep);
	if (rc < 0)
		report_fail(&rep, err);
	report_free(&rep);
	return rc;
}

void sg_script_free(struct sg_script *s)
{
	free(s->sql);
	sg_statement_list_free(&s->statements);
	memset(s, 0, sizeof(*s));
}

/* "transaction:false" / "transaction:true"; anything else is refused
 * (dbmate ignores what it does not know; a typo should not run a
 * CREATE INDEX CONCURRENTLY inside a transaction). */
static int marker_options(const char *file, int lineno, const char *opts, const char *end, const char *marker,
			  bool *no_tx, struct report *rep)
{
	while (opts < end) {
		while (opts < end && isspace((unsigned char)*opts))
			opts++;
		size_t w = 0;
		while (opts + w < end && !isspace((unsigned char)opts[w]))
			w++;
		if (w == 0)
			break;
		if (w == 17 && strncasecmp(opts, "transaction:false", w) == 0) {
			*no_tx = true;
		} else if (!(w == 16 && strncasecmp(opts, "transaction:true", w) == 0)) {
			report_add(rep, LV_ERROR, file, lineno, SG_DIALECT_NONE, "unknown %s option '%.*s'", marker,
				   (int)w, opts);
			return -1;
		}
		opts += w;
	}
	return 0;
}

/* "-- migrate:up [transaction:false]", then "-- migrate:down [...]". Only
 * comments may precede the up marker. */
static int single_file_sections(const struct entry *e, struct sections *s, struct report *rep)
{
	memset(s, 0, sizeof(*s));
	const char *text = e->text, *file = e->file;
	const char *up_end = NULL;
	int lineno = 0;
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		const char *next = p[n] ? p + n + 1 : p + n;
		lineno++;
		const char *opts;
		if ((opts = comment_keyword(p, n, "migrate:up")) != NULL) {
			if (s->up || s->down) {
				report_add(rep, LV_ERROR, file, lineno, SG_DIALECT_NONE, s->up ? "second '-- migrate:up'"
						   : "'-- migrate:up' after '-- migrate:down'");
				return -1;
			}
			if (marker_options(file, lineno, opts, p + n, "migrate:up", &s->up_no_tx, rep) < 0)
				return -1;
			s->up = next;
			s->up_line = lineno + 1;
		} else if ((opts = comment_keyword(p, n, "migrate:down")) != NULL) {
			if (s->down || !s->up) {
				report_add(rep, LV_ERROR, file, lineno, SG_DIALECT_NONE, s->down ? "second '-- migrate:down'"
						   : "'-- migrate:down' before '-- migrate:up'");
				return -1;
			}
			if (marker_options(file, lineno, opts, p + n, "migrate:down", &s->down_no_tx, rep) < 0)
				return -1;
			up_end = p;
			s->down = next;
			s->down_line = lineno + 1;
		} else if (!s->up) {
			size_t i = 0;
			while (i < n && isspace((unsigned char)p[i]))
				i++;
			if (i < n && !(n - i >= 2 && p[i] == '-' && p[i + 1] == '-')) {
				report_add(rep, LV_ERROR, file, lineno, SG_DIALECT_NONE, "SQL before '-- migrate:up'");
				return -1;
			}
		}
		p = next;
	}
	if (!s->up) {
		report_add(rep, LV_ERROR, file, 0, SG_DIALECT_NONE, "single-file migration without a '-- migrate:up' line");
		return -1;
	}
	const char *text_end = text + e->len;
	s->up_len = (size_t)((up_end ? up_end : text_end) - s->up);
	if (s->down)
		s->down_len = (size_t)(text_end - s->down);
	return 0;
}

/* ---- resolving a version for a dialect ----------------------------- */

/* Entries d->items[*b, *e) are one version. */
static bool next_group(const struct directory *d, size_t *b, size_t *e)
{
	if (*e >= d->count)
		return false;
	*b = *e;
	size_t j = *b + 1;
	while (j < d->count && sg_version_cmp(d->items[*b].version, d->items[j].version) == 0)
		j++;
	*e = j;
	return true;
}

static const char *const known_tags_help =
	"known tags: postgres, postgresql, pg, pgx, mysql, mariadb, sqlite, sqlite3";

/* One version is one migration: one spelling, one name, an up script
 * somewhere. A group that breaks this is reported and left out. */
static bool group_ok(struct entry *g, size_t n, struct report *rep)
{
	bool ok = true, any_up = false;
	for (size_t i = 0; i < n; i++) {
		any_up |= g[i].kind != FILE_DOWN;
		if (i == 0)
			continue;
		if (strcmp(g[i].version, g[0].version) != 0) {
			report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE,
				   "duplicate version: %s and %s have the same version (%s = %s)", g[0].file, g[i].file,
				   g[0].version, g[i].version);
			ok = false;
		} else if (strcmp(g[i].name, g[0].name) != 0) {
			/* "a" next to "a.postgers": a misspelled tag is part of the name */
			const char *shorter = strlen(g[0].name) < strlen(g[i].name) ? g[0].name : g[i].name;
			const char *longer = shorter == g[0].name ? g[i].name : g[0].name;
			size_t k = strlen(shorter);
			bool tag_like = strncmp(shorter, longer, k) == 0 && longer[k] == '.';
			report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE,
				   "duplicate version %s: %s and %s name different migrations%s%s%s", g[0].version,
				   g[0].file, g[i].file, tag_like ? " ('" : "", tag_like ? longer + k + 1 : "",
				   tag_like ? "' is not a dialect tag, so it is part of the name)" : "");
			ok = false;
		}
	}
	if (!any_up) {
		for (size_t i = 0; i < n; i++)
			report_add(rep, LV_ERROR, g[i].file, 0, SG_DIALECT_NONE,
				   "down script without an up script for any engine");
		ok = false;
	}
	return ok;
}

/* A single file's sections, parsed on first use; NULL (reported) when it cannot be. */
static const struct sections *sections_of(const struct directory *d, struct entry *e, struct report *rep)
{
	if (!e->parsed) {
		e->parsed = true;
		e->parsed_ok = read_entry(d, e, rep) && single_file_sections(e, &e->sections, rep) == 0;
	}
	return e->parsed_ok ? &e->sections : NULL;
}

/* Which files serve one dialect: up and down chosen independently. */
struct choice {
	struct entry *up, *down;
};

static bool has_down_section(const struct directory *d, struct entry *e, struct report *rep)
{
	const struct sections *s = sections_of(d, e, rep);
	return s && s->down;
}

static void conflict(struct report *rep, const struct entry *a, const struct entry *b, const char *direction,
		     enum sg_dialect level)
{
	report_add(rep, LV_ERROR, NULL, 0, level, "%s and %s both provide the %s script of version %s; keep one",
		   a->file, b->file, direction, a->version);
}

/*
 * As popx does: for each direction, the most specific file for the
 * dialect (its tag; MySQL's for MariaDB; the generic file). A single file
 * offers its down section, when it has one. Two files at one level for
 * one direction are an error, at every level the dialect reads.
 */
static int choose(const struct directory *d, struct entry *g, size_t n, enum sg_dialect dialect, struct choice *c,
		  struct report *rep)
{
	memset(c, 0, sizeof(*c));
	enum sg_dialect levels[3];
	size_t nlevels = dialect_levels(dialect, levels);
	int rc = 0;
	for (size_t k = 0; k < nlevels; k++) {
		struct entry *up = NULL, *down = NULL, *single = NULL;
		for (size_t i = 0; i < n; i++) {
			struct entry *e = &g[i];
			if (e->other_engine || e->tag != levels[k])
				continue;
			if (e->kind == FILE_DOWN) {
				if (down || single) {
					conflict(rep, down ? down : single, e, "down", levels[k]);
					rc = -1;
				}
				down = e;
			} else {
				if (up || (e->kind == FILE_SINGLE && down)) {
					conflict(rep, up ? up : down, e, up ? "up" : "down", levels[k]);
					rc = -1;
				}
				up = e;
				if (e->kind == FILE_SINGLE)
					single = e;
			}
		}
		if (!c->up)
			c->up = up;
		if (!c->down) {
			if (down)
				c->down = down;
			else if (single && has_down_section(d, single, rep))
				c->down = single;
		}
	}
	return rc;
}

/* One script of a chosen file: the file, or its section of a single file. */
static int script_of(const struct directory *d, struct entry *e, bool up, enum sg_dialect dialect,
		     struct sg_script *out, char checksum[65], struct report *rep)
{
	memset(out, 0, sizeof(*out));
	if (!read_entry(d, e, rep))
		return -1;
	const char *text = e->text;
	size_t len = e->len;
	int first_line = 1;
	bool marked = e->autocommit;
	if (e->kind == FILE_SINGLE) {
		const struct sections *s = sections_of(d, e, rep);
		if (!s)
			return -1;
		text = up ? s->up : s->down;
		len = up ? s->up_len : s->down_len;
		first_line = up ? s->up_line : s->down_line;
		marked |= up ? s->up_no_tx : s->down_no_tx;
	}
	if (checksum)
		sg_checksum(text, len, checksum);
	int rc = prepare(text, len, marked, !up, dialect, e->file, first_line, out, rep);
	if (rc == 0 && up && out->empty)
		report_add(rep, LV_WARNING, e->file, 0, SG_DIALECT_NONE,
			   "empty up script: it is recorded as applied and changes nothing");
	return rc;
}

static void migration_free(struct sg_migration *m)
{
	free(m->version);
	free(m->name);
	free(m->up_file);
	free(m->down_file);
	free(m->up_sql);
	free(m->down_sql);
	sg_statement_list_free(&m->up_statements);
	sg_statement_list_free(&m->down_statements);
}

static int build(const struct directory *d, const struct choice *c, enum sg_dialect dialect,
		 struct sg_migration *m, struct report *rep)
{
	memset(m, 0, sizeof(*m));
	struct sg_script up = {0}, down = {0};
	int rc = script_of(d, c->up, true, dialect, &up, m->checksum, rep);
	if (c->down && script_of(d, c->down, false, dialect, &down, NULL, rep) < 0)
		rc = -1;
	if (rc < 0) {
		sg_script_free(&up);
		sg_script_free(&down);
		return -1;
	}
	m->version = sg_strdup(c->up->version);
	m->name = sg_strdup(c->up->name);
	m->up_file = sg_strdup(c->up->file);
	m->up_sql = up.sql;
	m->up_line = up.first_line;
	m->up_no_tx = up.no_tx;
	m->up_split = up.split;
	m->up_statements = up.statements;
	if (c->down) {
		m->down_file = sg_strdup(c->down->file);
		m->down_sql = down.sql;
		m->down_no_tx = down.no_tx;
		m->down_split = down.split;
		m->down_statements = down.statements;
	}
	return 0;
}

struct selection {
	struct sg_migration *items;
	size_t count, cap;
};

static void selection_free(struct selection *s)
{
	for (size_t i = 0; i < s->count; i++)
		migration_free(&s->items[i]);
	free(s->items);
	memset(s, 0, sizeof(*s));
}

/* Every version of the directory, resolved for one dialect. Versions
 * with no up file for it do not exist for it (a note). */
static void load_dialect(const struct directory *d, const bool *bad, enum sg_dialect dialect, bool note_absent,
			 struct selection *sel, struct report *rep)
{
	memset(sel, 0, sizeof(*sel));
	size_t b = 0, e = 0;
	while (next_group(d, &b, &e)) {
		if (bad[b])
			continue;
		struct choice c;
		if (choose(d, &d->items[b], e - b, dialect, &c, rep) < 0)
			continue;
		if (!c.up) {
			if (note_absent)
				report_add(rep, LV_NOTE, d->items[b].file, 0, dialect,
					   "version %s has no up file for this engine; it does not exist for it",
					   d->items[b].version);
			continue;
		}
		struct sg_migration m;
		if (build(d, &c, dialect, &m, rep) < 0)
			continue;
		if (sel->count == sel->cap) {
			sel->cap = sel->cap ? sel->cap * 2 : 64;
			sel->items = sg_realloc(sel->items, sel->cap * sizeof(*sel->items));
		}
		sel->items[sel->count++] = m;
	}
}

/* bad[i] for the first entry of each group that group_ok() refused. */
static bool *check_groups(struct directory *d, struct report *rep)
{
	bool *bad = sg_calloc(d->count + 1, sizeof(bool));
	size_t b = 0, e = 0;
	while (next_group(d, &b, &e))
		bad[b] = !group_ok(&d->items[b], e - b, rep);
	return bad;
}

/* Files no dialect read must still be readable (SPEC: an unreadable
 * file is an error), as the next image may select them. */
static void check_unread(const struct directory *d, struct report *rep)
{
	for (size_t i = 0; i < d->count && !d->files; i++) {
		if (d->items[i].read)
			continue;
		if (faccessat(dirfd(d->handle), d->items[i].file, R_OK, 0) < 0)
			report_add(rep, LV_ERROR, d->items[i].file, 0, SG_DIALECT_NONE, "cannot be read: %s",
				   strerror(errno));
	}
}

static void no_migrations(const struct directory *d, struct report *rep)
{
	report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE,
		   "migration directory %s holds no migrations (files named VERSION_NAME.up.sql, "
		   "VERSION_NAME.down.sql or VERSION_NAME.sql)%s", d->dir,
		   d->nignored ? "; its other files are ignored" : "");
}

/* The notes a loaded set keeps. */
static void keep_notes(const struct report *rep, struct sg_migration_set *set)
{
	for (size_t i = 0; i < rep->count; i++) {
		if (rep->items[i].level != LV_NOTE)
			continue;
		struct sg_buf b = {0};
		finding_format(&rep->items[i], rep->all, &b);
		set->notes = sg_realloc(set->notes, (set->nnotes + 1) * sizeof(char *));
		set->notes[set->nnotes++] = b.data;
	}
}

/* The rest of a load, once the directory is scanned (scanned: 0, or -1
 * when it could not be read; rep holds what the scan found). */
static int load_scanned(struct directory *d, int scanned, enum sg_engine engine, struct sg_migration_set *set,
			struct report *rep, struct sg_error *err)
{
	const char *dir = d->dir;
	memset(set, 0, sizeof(*set));
	set->dir = sg_strdup(dir);
	bool *bad = NULL;
	if (scanned == 0) {
		for (size_t i = 0; i < d->nignored; i++)
			report_add(rep, LV_NOTE, d->ignored[i], 0, SG_DIALECT_NONE, "not a migration file; ignored");
		bad = check_groups(d, rep);
		if (d->count == 0 && rep->counts[LV_ERROR] == 0)
			no_migrations(d, rep);
		enum sg_dialect first = sg_engine_dialect(engine);
		struct selection sel;
		if (first == SG_DIALECT_NONE) {
			rep->all = ALL_DIALECT_BITS;
			for (size_t k = 0; k < NDIALECTS; k++) {
				load_dialect(d, bad, all_dialects[k], false, &sel, rep);
				selection_free(&sel);
			}
		} else {
			set->dialect = first;
			rep->all = DIALECT_BIT(first);
			load_dialect(d, bad, first, true, &sel, rep);
			set->items = sel.items;
			set->count = sel.count;
			if (first == SG_DIALECT_MYSQL && d->has_tag[SG_DIALECT_MARIADB]) {
				set->other_dialect = SG_DIALECT_MARIADB;
				rep->all |= DIALECT_BIT(SG_DIALECT_MARIADB);
				load_dialect(d, bad, SG_DIALECT_MARIADB, true, &sel, rep);
				set->other_items = sel.items;
				set->other_count = sel.count;
			}
			if (set->count == 0 && d->count > 0 && rep->counts[LV_ERROR] == 0)
				report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE,
					   "none of the migrations in %s is for %s: every version has only files "
					   "tagged for other engines", dir, sg_engine_name(engine));
		}
		check_unread(d, rep);
		directory_free(d);
	}
	free(bad);
	int rc = 0;
	if (rep->counts[LV_ERROR]) {
		rc = report_fail(rep, err);
		sg_migration_set_free(set);
	} else {
		keep_notes(rep, set);
	}
	report_free(rep);
	return rc;
}

int sg_migration_load(const char *dir, enum sg_engine engine, struct sg_migration_set *set, struct sg_error *err)
{
	struct report rep = {0};
	struct directory d;
	return load_scanned(&d, scan_dir(dir, &d, &rep), engine, set, &rep, err);
}

int sg_migration_load_files(const char *label, const struct sg_migration_file *files, size_t n, enum sg_engine engine,
			    struct sg_migration_set *set, struct sg_error *err)
{
	struct report rep = {0};
	struct directory d;
	scan_files(label, files, n, &d, &rep);
	return load_scanned(&d, 0, engine, set, &rep, err);
}

static void items_free(struct sg_migration *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		migration_free(&items[i]);
	free(items);
}

void sg_migration_set_free(struct sg_migration_set *set)
{
	items_free(set->items, set->count);
	items_free(set->other_items, set->other_count);
	for (size_t i = 0; i < set->nnotes; i++)
		free(set->notes[i]);
	free(set->notes);
	free(set->dir);
	memset(set, 0, sizeof(*set));
}

void sg_migration_select(struct sg_migration_set *set, enum sg_dialect dialect)
{
	if (dialect == set->dialect || dialect != set->other_dialect || dialect == SG_DIALECT_NONE)
		return;
	struct sg_migration *items = set->items;
	size_t count = set->count;
	set->items = set->other_items;
	set->count = set->other_count;
	set->other_items = items;
	set->other_count = count;
	set->other_dialect = set->dialect;
	set->dialect = dialect;
}

const void *sg_version_search(const void *base, size_t n, size_t size, size_t offset, const char *version)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *elem = (const char *)base + mid * size;
		int c = sg_version_cmp(*(const char *const *)(elem + offset), version);
		if (c == 0)
			return elem;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct sg_migration *sg_migration_find(const struct sg_migration_set *set, const char *version)
{
	if (!sg_version_valid(version))
		return NULL;
	return sg_version_search(set->items, set->count, sizeof(*set->items), offsetof(struct sg_migration, version),
				 version);
}
/* ---- new ----------------------------------------------------------- */

static bool valid_migration_name(const char *name)
{
	if (!name || !*name)
		return false;
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* YYYYMMDDHHMMSS with plausible fields. */
static bool looks_like_timestamp(const char *v)
{
	if (strlen(v) != 14 || !sg_version_valid(v))
		return false;
	int year, mon, day, hour, min, sec;
	if (sscanf(v, "%4d%2d%2d%2d%2d%2d", &year, &mon, &day, &hour, &min, &sec) != 6)
		return false;
	return year >= 1970 && year <= 2999 && mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hour < 24 &&
	       min < 60 && sec < 61;
}

static void utc_timestamp(char out[15])
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, 15, "%Y%m%d%H%M%S", &tm);
}

/* Decimal v + 1, at least `width` digits (zero padded). Malloc'd. */
static char *version_next(const char *v, size_t width)
{
	size_t n = strlen(v);
	char *buf = sg_malloc(n + 2);
	memcpy(buf + 1, v, n + 1);
	buf[0] = '0';
	size_t i = n + 1;
	while (i-- > 0) {
		if (buf[i] == '9') {
			buf[i] = '0';
			continue;
		}
		buf[i]++;
		break;
	}
	char *digits = buf;
	while (digits[0] == '0' && digits[1])
		digits++;
	size_t len = strlen(digits), pad = len < width ? width - len : 0;
	char *out = sg_malloc(pad + len + 1);
	memset(out, '0', pad);
	memcpy(out + pad, digits, len + 1);
	free(buf);
	return out;
}

static int mkdir_p(const char *dir, struct sg_error *err)
{
	char *path = sg_strdup(dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			sg_fail(err, SG_EXIT_USAGE, "creating %s: %s", path, strerror(errno));
			free(path);
			return -1;
		}
		*p = '/';
	}
	int rc = 0;
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		rc = sg_fail(err, SG_EXIT_USAGE, "creating %s: %s", path, strerror(errno));
	free(path);
	return rc;
}

static int create_file(const char *path, const char *content, struct sg_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return sg_fail(err, SG_EXIT_USAGE, "creating %s: %s", path, strerror(errno));
	size_t len = strlen(content);
	if (len && write(fd, content, len) != (ssize_t)len) {
		int saved = errno;
		close(fd);
		unlink(path);
		return sg_fail(err, SG_EXIT_USAGE, "writing %s: %s", path, strerror(saved));
	}
	if (close(fd) < 0) {
		int saved = errno;
		unlink(path);
		return sg_fail(err, SG_EXIT_USAGE, "writing %s: %s", path, strerror(saved));
	}
	return 0;
}

/* The version `new` should use, in the style of the newest existing one. */
static char *next_version(const struct directory *d)
{
	char ts[15];
	utc_timestamp(ts);
	if (d->count == 0)
		return sg_strdup(ts);
	const char *newest = d->items[d->count - 1].version;
	if (looks_like_timestamp(newest)) {
		if (sg_version_cmp(ts, newest) > 0)
			return sg_strdup(ts);
		return version_next(newest, 14);   /* clock behind the newest file */
	}
	return version_next(newest, strlen(newest));
}

/* Scan and validate dir for every dialect; problems go to rep. An empty
 * or missing directory is fine for `new`. */
static void validate_all(const char *dir, struct directory *d, struct report *rep, bool empty_ok)
{
	if (scan_dir(dir, d, rep) < 0)
		return;
	bool *bad = check_groups(d, rep);
	if (d->count == 0 && !empty_ok && rep->counts[LV_ERROR] == 0)
		no_migrations(d, rep);
	for (size_t k = 0; k < NDIALECTS; k++) {
		if (all_dialects[k] == SG_DIALECT_MARIADB && !d->has_tag[SG_DIALECT_MARIADB])
			continue;   /* the same files as for MySQL */
		struct selection sel;
		load_dialect(d, bad, all_dialects[k], false, &sel, rep);
		selection_free(&sel);
	}
	check_unread(d, rep);
	free(bad);
}

int sg_migration_new(const char *dir, const char *name, const char *dialect, bool single_file,
		     struct sg_error *err)
{
	if (!valid_migration_name(name))
		return sg_fail(err, SG_EXIT_USAGE, "migration name '%s' must match [A-Za-z0-9_-]+", name ? name : "");
	if (dialect && *dialect) {
		bool known;
		if (sg_dialect_tag(dialect, &known) == SG_DIALECT_NONE)
			return sg_fail(err, SG_EXIT_USAGE, "%s dialect '%s' (%s)",
				       known ? "schemagate does not run migrations for the" : "unknown", dialect,
				       known_tags_help);
	}
	if (mkdir_p(dir, err) < 0)
		return -1;

	/* Refuse to extend a directory that does not load. */
	struct report rep = {0};
	struct directory d;
	validate_all(dir, &d, &rep, true);
	int rc = report_fail(&rep, err);
	report_free(&rep);
	if (rc < 0) {
		directory_free(&d);
		return -1;
	}
	bool any_pair = false, any_single = false;
	for (size_t i = 0; i < d.count; i++) {
		if (d.items[i].kind == FILE_SINGLE)
			any_single = true;
		else
			any_pair = true;
	}
	/* An explicit request for single-file wins; otherwise follow the directory. */
	bool single = single_file || (any_single && !any_pair);
	char *version = next_version(&d);
	directory_free(&d);

	char *stem = dialect && *dialect ? sg_asprintf("%s/%s_%s.%s", dir, version, name, dialect)
					 : sg_asprintf("%s/%s_%s", dir, version, name);
	free(version);
	if (single) {
		char *path = sg_asprintf("%s.sql", stem);
		rc = create_file(path, "-- migrate:up\n\n-- migrate:down\n", err);
		if (rc == 0)
			printf("%s\n", path);
		free(path);
	} else {
		char *up = sg_asprintf("%s.up.sql", stem), *down = sg_asprintf("%s.down.sql", stem);
		rc = create_file(up, "", err);
		if (rc == 0 && (rc = create_file(down, "", err)) < 0)
			unlink(up);   /* never leave half a pair behind */
		if (rc == 0)
			printf("%s\n%s\n", up, down);
		free(up);
		free(down);
	}
	free(stem);
	fflush(stdout);
	return rc;
}

/* ---- lint ---------------------------------------------------------- */

static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
	size_t row[32];
	if (na >= 32 || nb >= 32)
		return 99;
	for (size_t j = 0; j <= nb; j++)
		row[j] = j;
	for (size_t i = 1; i <= na; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= nb; j++) {
			size_t up = row[j];
			size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
			size_t best = diag + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[nb];
}

/* "0003_c.postgers.up.sql" runs on every engine: the name ends in a word
 * that is almost a dialect tag. */
static void warn_tag_like_names(const struct directory *d, struct report *rep)
{
	for (size_t i = 0; i < d->count; i++) {
		const struct entry *e = &d->items[i];
		const char *dot = strrchr(e->name, '.');
		if (!dot || e->tag != SG_DIALECT_NONE || e->other_engine)
			continue;
		const char *w = dot + 1;
		size_t n = strlen(w);
		for (size_t k = 0; k < NTAGS && n >= 2; k++) {
			size_t tn = strlen(dialect_tags[k].tag);
			if (edit_distance(w, n, dialect_tags[k].tag, tn) <= (tn <= 3 ? 1u : 2u)) {
				report_add(rep, LV_WARNING, e->file, 0, SG_DIALECT_NONE,
					   "'%s' is not a dialect tag (did you mean '%s'?): it is part of the name, "
					   "and the file runs on every engine", w, dialect_tags[k].tag);
				break;
			}
		}
	}
}

/* What lint says about one dialect's selection. */
static void lint_selection(const struct selection *sel, enum sg_dialect dialect, struct report *rep)
{
	for (size_t i = 0; i < sel->count; i++) {
		const struct sg_migration *m = &sel->items[i];
		if (!m->down_file)
			report_add(rep, LV_WARNING, m->up_file, 0, dialect,
				   "no down script; `down` and `rollback` cannot revert version %s", m->version);
	}
}

static bool is_readme(const char *file)
{
	return strncasecmp(file, "README", 6) == 0;
}

/* Per version: which dialects have it (lint's notes). */
static void note_partial_versions(const struct directory *d, const unsigned *present, struct report *rep)
{
	size_t b = 0, e = 0, gi = 0;
	while (next_group(d, &b, &e)) {
		unsigned mask = present[gi++];
		const struct entry *first = &d->items[b];
		for (size_t i = b; i < e; i++)
			if (d->items[i].kind != FILE_DOWN) {
				first = &d->items[i];   /* name an up file */
				break;
			}
		if (mask == 0) {
			report_add(rep, LV_NOTE, first->file, 0, SG_DIALECT_NONE,
				   "version %s has no up file for any engine schemagate runs", first->version);
			continue;
		}
		unsigned engines = ALL_DIALECT_BITS & ~DIALECT_BIT(SG_DIALECT_MARIADB);
		if ((mask & engines) == engines)
			continue;
		/* mysql files serve MariaDB too: name mariadb only on its own */
		bool mysql = mask & DIALECT_BIT(SG_DIALECT_MYSQL);
		struct sg_buf names = {0};
		for (size_t k = 0; k < NDIALECTS; k++)
			if ((mask & DIALECT_BIT(all_dialects[k])) && !(mysql && all_dialects[k] == SG_DIALECT_MARIADB))
				sg_buf_printf(&names, "%s%s", names.len ? ", " : "", sg_dialect_name(all_dialects[k]));
		report_add(rep, LV_NOTE, first->file, 0, SG_DIALECT_NONE, "version %s exists only for %s",
			   first->version, names.data);
		sg_buf_free(&names);
	}
}

/* Output order: by level, then file and line (the directory's own order is arbitrary). */
static int finding_cmp(const void *pa, const void *pb)
{
	const struct finding *a = pa, *b = pb;
	if (a->level != b->level)
		return (int)a->level - (int)b->level;
	int c = strcmp(a->file ? a->file : "", b->file ? b->file : "");
	if (c)
		return c;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return strcmp(a->text, b->text);
}

/* Is a version in the lint's scope (--since, --pending)? */
static bool lint_in_scope(const struct sg_lint_request *req, const char *version)
{
	if (req->since && sg_version_cmp(version, req->since) <= 0)
		return false;
	if (!req->only_versions)
		return true;
	for (size_t i = 0; i < req->nversions; i++)
		if (sg_version_cmp(version, req->versions[i]) == 0)
			return true;
	return false;
}

static enum level lint_level(enum sg_lint_severity s)
{
	return s == SG_LINT_ERROR ? LV_ERROR : s == SG_LINT_WARNING ? LV_WARNING : LV_NOTE;
}

/* The rules, on the up script of every migration in scope (down scripts
 * run only on the way back, where dropping is the point). */
static void lint_rules_selection(const struct sg_lint_request *req, const struct selection *sel,
				 enum sg_dialect dialect, struct report *rep)
{
	for (size_t i = 0; i < sel->count; i++) {
		const struct sg_migration *m = &sel->items[i];
		if (!lint_in_scope(req, m->version))
			continue;
		struct sg_lint_result res = {0};
		sg_lint_script(m->up_sql, dialect, m->up_no_tx, m->up_line, &res);
		for (size_t k = 0; k < res.count; k++) {
			struct sg_lint_hit *h = &res.items[k];
			struct finding *f = report_keep(rep, lint_level(h->rule->severity), m->up_file, h->line, h->column,
							dialect, h->message);
			h->message = NULL;   /* moved into the report */
			if (!f)
				continue;
			f->rule = h->rule;
			char *sql = sg_strndup(m->up_sql + h->stmt_start, h->stmt_end - h->stmt_start);
			char head[160];
			sg_statement_head(sql, head, sizeof(head));
			f->statement = sg_strdup(head);
			free(sql);
		}
		sg_lint_result_free(&res);
	}
}

static void lint_print_text(const char *dir, const struct report *rep, size_t nmigrations)
{
	struct sg_buf out = {0};
	for (size_t i = 0; i < rep->count; i++) {
		sg_buf_printf(&out, "%s: ", level_names[rep->items[i].level]);
		finding_format(&rep->items[i], rep->all, &out);
		sg_buf_puts(&out, "\n");
		if (rep->items[i].statement)
			sg_buf_printf(&out, "    %s\n", rep->items[i].statement);
	}
	size_t ne = rep->counts[LV_ERROR], nw = rep->counts[LV_WARNING], nn = rep->counts[LV_NOTE];
	sg_buf_printf(&out, "%s: %zu migration%s, %zu error%s, %zu warning%s, %zu note%s\n", dir, nmigrations,
		      nmigrations == 1 ? "" : "s", ne, ne == 1 ? "" : "s", nw, nw == 1 ? "" : "s", nn,
		      nn == 1 ? "" : "s");
	fwrite(out.data, 1, out.len, stdout);
	sg_buf_free(&out);
}

static void lint_print_json(const char *dir, const struct report *rep, size_t nmigrations, bool strict)
{
	struct sg_buf out = {0};
	size_t ne = rep->counts[LV_ERROR], nw = rep->counts[LV_WARNING];
	sg_buf_puts(&out, "{\"dir\":");
	sg_buf_json_string(&out, dir);
	sg_buf_printf(&out, ",\"ok\":%s,\"strict\":%s,\"migrations\":%zu,\"counts\":{\"error\":%zu,\"warning\":%zu,"
			    "\"note\":%zu},\"findings\":[",
		      ne == 0 && !(strict && nw) ? "true" : "false", strict ? "true" : "false", nmigrations, ne, nw,
		      rep->counts[LV_NOTE]);
	for (size_t i = 0; i < rep->count; i++) {
		const struct finding *f = &rep->items[i];
		sg_buf_printf(&out, "%s{\"level\":\"%s\",\"file\":", i ? "," : "", level_names[f->level]);
		sg_buf_json_string(&out, f->file);
		sg_buf_printf(&out, ",\"line\":%d,\"column\":%d,\"rule\":", f->line, f->column);
		if (f->rule)
			sg_buf_json_string(&out, f->rule->id);
		else
			sg_buf_puts(&out, "null");
		sg_buf_puts(&out, ",\"dialects\":[");
		bool first = true;
		for (size_t k = 0; k < NDIALECTS; k++)
			if (f->dialects & DIALECT_BIT(all_dialects[k])) {
				sg_buf_printf(&out, "%s\"%s\"", first ? "" : ",", sg_dialect_name(all_dialects[k]));
				first = false;
			}
		sg_buf_puts(&out, "],\"message\":");
		sg_buf_json_string(&out, f->text);
		if (f->statement) {
			sg_buf_puts(&out, ",\"statement\":");
			sg_buf_json_string(&out, f->statement);
		}
		sg_buf_puts(&out, "}");
	}
	sg_buf_puts(&out, "]}\n");
	fwrite(out.data, 1, out.len, stdout);
	sg_buf_free(&out);
}

/* dir/file as a path relative to where lint ran (or absolute). */
static char *lint_path(const char *dir, const char *file)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '.')
		return sg_strdup(file);
	return sg_asprintf("%.*s/%s", (int)n, dir, file);
}

/* SARIF 2.1.0: one run, the rules that fired as reportingDescriptors,
 * a result per finding. The directory's own problems use the rule id
 * "schemagate-directory". Paths are relative to SRCROOT, the working
 * directory lint ran in (GitHub code scanning resolves them against the
 * checkout). */
static void lint_print_sarif(const char *dir, const struct report *rep)
{
	static const char *const sarif_levels[] = {"error", "warning", "note"};
	struct sg_buf out = {0};
	sg_buf_puts(&out, "{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"version\":\"2.1.0\","
			  "\"runs\":[{\"tool\":{\"driver\":{\"name\":\"schemagate\",\"version\":\"" SG_VERSION "\",\"informationUri\":"
			  "\"https://github.com/schemagate/schemagate\",\"rules\":[");
	/* every rule in the table, so ruleIndex is the table's index */
	for (size_t i = 0; i < sg_lint_nrules; i++) {
		const struct sg_lint_rule *r = &sg_lint_rules[i];
		sg_buf_printf(&out, "%s{\"id\":", i ? "," : "");
		sg_buf_json_string(&out, r->id);
		sg_buf_puts(&out, ",\"shortDescription\":{\"text\":");
		sg_buf_json_string(&out, r->summary);
		sg_buf_puts(&out, "},\"fullDescription\":{\"text\":");
		sg_buf_json_string(&out, r->explanation);
		sg_buf_puts(&out, "},\"help\":{\"text\":");
		sg_buf_json_string(&out, r->explanation);
		sg_buf_printf(&out, "},\"defaultConfiguration\":{\"level\":\"%s\"}}", sarif_levels[r->severity]);
	}
	sg_buf_printf(&out, ",{\"id\":\"schemagate-directory\",\"shortDescription\":{\"text\":\"a problem of "
			    "the migration directory\"},\"fullDescription\":{\"text\":\"File names, versions, "
			    "dialect tags, sections and transaction control that schemagate refuses or warns about "
			    "before any connection.\"},\"defaultConfiguration\":{\"level\":\"error\"}}");
	sg_buf_puts(&out, "]}},\"originalUriBaseIds\":{\"SRCROOT\":{\"description\":{\"text\":"
			  "\"the directory schemagate lint ran in\"}}},\"columnKind\":\"unicodeCodePoints\","
			  "\"results\":[");
	for (size_t i = 0; i < rep->count; i++) {
		const struct finding *f = &rep->items[i];
		size_t index = f->rule ? (size_t)(f->rule - sg_lint_rules) : sg_lint_nrules;
		sg_buf_printf(&out, "%s{\"ruleId\":", i ? "," : "");
		sg_buf_json_string(&out, f->rule ? f->rule->id : "schemagate-directory");
		sg_buf_printf(&out, ",\"ruleIndex\":%zu,\"level\":\"%s\",\"message\":{\"text\":", index,
			      sarif_levels[f->level]);
		struct sg_buf text = {0};
		finding_format(&(struct finding){.text = f->text, .dialects = f->dialects}, rep->all, &text);
		sg_buf_json_string(&out, text.data ? text.data : f->text);
		sg_buf_free(&text);
		sg_buf_puts(&out, "}");
		if (f->file) {
			char *path = lint_path(dir, f->file);
			sg_buf_puts(&out, ",\"locations\":[{\"physicalLocation\":{\"artifactLocation\":{\"uri\":");
			sg_buf_json_string(&out, path);
			if (path[0] != '/')
				sg_buf_puts(&out, ",\"uriBaseId\":\"SRCROOT\"");
			sg_buf_puts(&out, "}");
			if (f->line > 0) {
				sg_buf_printf(&out, ",\"region\":{\"startLine\":%d", f->line);
				if (f->column > 0)
					sg_buf_printf(&out, ",\"startColumn\":%d", f->column);
				if (f->statement) {
					sg_buf_puts(&out, ",\"snippet\":{\"text\":");
					sg_buf_json_string(&out, f->statement);
					sg_buf_puts(&out, "}");
				}
				sg_buf_puts(&out, "}");
			}
			sg_buf_puts(&out, "}}]");
			free(path);
		}
		sg_buf_puts(&out, "}");
	}
	sg_buf_puts(&out, "]}]}\n");
	fwrite(out.data, 1, out.len, stdout);
	sg_buf_free(&out);
}

/* A GitHub Actions workflow command's data or property, escaped as the
 * runner unescapes it (%, CR, LF; in properties also ':' and ','). */
static void github_escape(struct sg_buf *b, const char *s, bool property)
{
	for (; *s; s++) {
		switch (*s) {
		case '%': sg_buf_puts(b, "%25"); break;
		case '\r': sg_buf_puts(b, "%0D"); break;
		case '\n': sg_buf_puts(b, "%0A"); break;
		case ':': sg_buf_puts(b, property ? "%3A" : ":"); break;
		case ',': sg_buf_puts(b, property ? "%2C" : ","); break;
		default: sg_buf_append(b, s, 1);
		}
	}
}

/* ::error file=F,line=L,col=C,title=RULE::message - annotations on the
 * pull request's diff. */
static void lint_print_github(const char *dir, const struct report *rep, size_t nmigrations)
{
	static const char *const commands[] = {"error", "warning", "notice"};
	struct sg_buf out = {0};
	for (size_t i = 0; i < rep->count; i++) {
		const struct finding *f = &rep->items[i];
		sg_buf_printf(&out, "::%s ", commands[f->level]);
		bool any = false;
		if (f->file) {
			char *path = lint_path(dir, f->file);
			sg_buf_puts(&out, "file=");
			github_escape(&out, path, true);
			free(path);
			any = true;
			if (f->line > 0)
				sg_buf_printf(&out, ",line=%d", f->line);
			if (f->column > 0)
				sg_buf_printf(&out, ",col=%d", f->column);
		}
		sg_buf_printf(&out, "%stitle=", any ? "," : "");
		github_escape(&out, f->rule ? f->rule->id : "schemagate lint", true);
		sg_buf_puts(&out, "::");
		struct sg_buf text = {0};
		finding_format(&(struct finding){.text = f->text, .dialects = f->dialects}, rep->all, &text);
		github_escape(&out, text.data, false);
		sg_buf_free(&text);
		sg_buf_puts(&out, "\n");
	}
	size_t ne = rep->counts[LV_ERROR], nw = rep->counts[LV_WARNING], nn = rep->counts[LV_NOTE];
	sg_buf_printf(&out, "%s: %zu migration%s, %zu error%s, %zu warning%s, %zu note%s\n", dir, nmigrations,
		      nmigrations == 1 ? "" : "s", ne, ne == 1 ? "" : "s", nw, nw == 1 ? "" : "s", nn,
		      nn == 1 ? "" : "s");
	fwrite(out.data, 1, out.len, stdout);
	sg_buf_free(&out);
}

int sg_migration_lint(const struct sg_lint_request *req, struct sg_error *err)
{
	const char *dir = req->dir, *dialect_tag = req->dialect;
	bool strict = req->strict;
	enum sg_dialect only = SG_DIALECT_NONE;
	if (dialect_tag) {
		bool known;
		only = sg_dialect_tag(dialect_tag, &known);
		if (only == SG_DIALECT_NONE)
			return sg_fail(err, SG_EXIT_USAGE, "lint --dialect: %s dialect '%s' (%s)",
				       known ? "schemagate does not run migrations for the" : "unknown", dialect_tag,
				       known_tags_help);
	}
	struct report rep = {0};
	struct directory d;
	size_t nmigrations = 0;
	if (scan_dir(dir, &d, &rep) == 0) {
		for (size_t i = 0; i < d.nignored; i++)
			report_add(&rep, is_readme(d.ignored[i]) ? LV_NOTE : LV_WARNING, d.ignored[i], 0, SG_DIALECT_NONE,
				   "not a migration file; ignored (migrations are VERSION_NAME.up.sql, .down.sql or .sql)");
		warn_tag_like_names(&d, &rep);
		bool *bad = check_groups(&d, &rep);
		if (d.count == 0 && rep.counts[LV_ERROR] == 0)
			no_migrations(&d, &rep);
		unsigned *present = sg_calloc(d.count + 1, sizeof(unsigned));
		for (size_t k = 0; k < NDIALECTS; k++) {
			enum sg_dialect dialect = all_dialects[k];
			if (dialect == SG_DIALECT_MARIADB && !d.has_tag[SG_DIALECT_MARIADB])
				continue;   /* the same files as for MySQL */
			if (only != SG_DIALECT_NONE && dialect != only &&
			    !(only == SG_DIALECT_MYSQL && dialect == SG_DIALECT_MARIADB))
				continue;
			rep.all |= DIALECT_BIT(dialect);
			struct selection sel;
			load_dialect(&d, bad, dialect, false, &sel, &rep);
			lint_selection(&sel, dialect, &rep);
			lint_rules_selection(req, &sel, dialect, &rep);
			/* both sorted by version: walk them together */
			size_t b = 0, e = 0, gi = 0, j = 0;
			while (next_group(&d, &b, &e) && j < sel.count) {
				if (sg_version_cmp(d.items[b].version, sel.items[j].version) == 0) {
					present[gi] |= DIALECT_BIT(dialect);
					j++;
				}
				gi++;
			}
			selection_free(&sel);
		}
		if (rep.counts[LV_ERROR] == 0 && only == SG_DIALECT_NONE)
			note_partial_versions(&d, present, &rep);
		size_t b = 0, e = 0, gi = 0;
		while (next_group(&d, &b, &e))
			nmigrations += present[gi++] != 0;
		for (size_t i = 0; i < d.count; i++)
			if (d.items[i].bom)
				report_add(&rep, LV_WARNING, d.items[i].file, 0, SG_DIALECT_NONE,
					   "starts with a UTF-8 byte-order mark: schemagate strips it (it is not part of "
					   "the checksum); other tools may not");
		check_unread(&d, &rep);
		free(present);
		free(bad);
		directory_free(&d);
	}
	/* sorted for printing: the hash slots index the old order and go */
	if (rep.count > 1)
		qsort(rep.items, rep.count, sizeof(*rep.items), finding_cmp);
	switch (req->format) {
	case SG_LINT_FORMAT_JSON: lint_print_json(dir, &rep, nmigrations, strict); break;
	case SG_LINT_FORMAT_SARIF: lint_print_sarif(dir, &rep); break;
	case SG_LINT_FORMAT_GITHUB: lint_print_github(dir, &rep, nmigrations); break;
	default: lint_print_text(dir, &rep, nmigrations); break;
	}
	fflush(stdout);
	/* the directory's own errors make it unrunnable (exit 2, SPEC 3); a
	 * rule's error, or any warning under --strict, is exit 4 */
	size_t ndir = 0, nrule = 0;
	for (size_t i = 0; i < rep.count; i++)
		if (rep.items[i].level == LV_ERROR)
			*(rep.items[i].rule ? &nrule : &ndir) += 1;
	size_t nw = rep.counts[LV_WARNING];
	report_free(&rep);
	if (ndir)
		return sg_fail(err, SG_EXIT_USAGE, "lint found %zu error%s in %s", ndir + nrule,
			       ndir + nrule == 1 ? "" : "s", dir);
	if (nrule)
		return sg_fail(err, SG_EXIT_INTEGRITY, "lint found %zu error%s in %s", nrule, nrule == 1 ? "" : "s",
			       dir);
	if (strict && nw)
		return sg_fail(err, SG_EXIT_INTEGRITY, "lint --strict: %zu warning%s in %s", nw, nw == 1 ? "" : "s",
			       dir);
	return 0;
}
