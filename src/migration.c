/*
 * migration.c - the migration directory module (SPEC section 3): versions,
 * checksums, dialect tags and the findings report its other files share
 * (migration_internal.h lists them). The rest of this comment is the
 * module's design.
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

/* SHA256_Init and friends: see sg_checksum */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migration_internal.h"
#include "schemagate/lint.h"
#include <openssl/sha.h>

const enum sg_dialect sg_all_dialects[NDIALECTS] = {SG_DIALECT_POSTGRES, SG_DIALECT_MYSQL, SG_DIALECT_MARIADB,
						     SG_DIALECT_SQLITE};

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

bool sg_is_repeatable_key(const char *version)
{
	return version && strncmp(version, SG_REPEATABLE_PREFIX, strlen(SG_REPEATABLE_PREFIX)) == 0;
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
	/* OpenSSL's SHA-256 functions, not EVP: the first EVP fetch builds
	 * OpenSSL 3's provider name map (6 M instructions, ~2 ms per run,
	 * which a SQLite or MariaDB run spends on nothing else); these run
	 * the same assembly (the CPU's SHA extensions) without it. */
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned int mdlen = SHA256_DIGEST_LENGTH;
	SHA256_CTX ctx;
	if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, norm ? norm : text, n) != 1 || SHA256_Final(md, &ctx) != 1) {
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
const struct sg_dialect_tag_word sg_dialect_tags[] = {
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
const size_t sg_ndialect_tags = sizeof(sg_dialect_tags) / sizeof(sg_dialect_tags[0]);
const char *const sg_known_tags_help = "known tags: postgres, postgresql, pg, pgx, mysql, mariadb, sqlite, sqlite3";

enum sg_dialect sg_dialect_tag_n(const char *s, size_t n, bool *known)
{
	for (size_t i = 0; i < sg_ndialect_tags; i++) {
		if (strlen(sg_dialect_tags[i].tag) == n && strncasecmp(s, sg_dialect_tags[i].tag, n) == 0) {
			*known = true;
			return sg_dialect_tags[i].dialect;
		}
	}
	*known = false;
	return SG_DIALECT_NONE;
}

enum sg_dialect sg_dialect_tag(const char *tag, bool *known)
{
	bool k;
	enum sg_dialect d = sg_dialect_tag_n(tag, strlen(tag), &k);
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

/* The files a dialect takes, most specific first. */
size_t sg_dialect_levels(enum sg_dialect d, enum sg_dialect out[3])
{
	size_t n = 0;
	out[n++] = d;
	if (d == SG_DIALECT_MARIADB)
		out[n++] = SG_DIALECT_MYSQL;   /* a MariaDB server runs the mysql files otherwise */
	out[n++] = SG_DIALECT_NONE;           /* the generic file */
	return n;
}

/* ---- findings ------------------------------------------------------- */

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

/* Room for n findings at most half full: one pass over what is kept. */
static void report_reserve(struct report *r, size_t n)
{
	if (n * 2 <= r->nslots)
		return;
	size_t nslots = r->nslots ? r->nslots : 64;
	while (n * 2 > nslots)
		nslots *= 2;
	free(r->slots);
	r->nslots = nslots;
	r->slots = sg_calloc(r->nslots, sizeof(*r->slots));
	for (size_t i = 0; i < r->count; i++) {
		size_t s = (size_t)r->items[i].hash & (r->nslots - 1);
		while (r->slots[s])
			s = (s + 1) & (r->nslots - 1);
		r->slots[s] = i + 1;
	}
}

/* file and text are moved in (freed when the finding merges into an equal one). */
static struct finding *keep(struct report *r, enum level lv, char *file, int line, int column, unsigned bit,
			    char *text)
{
	report_reserve(r, r->count + 1);
	uint64_t h = finding_hash(lv, file, line, text);
	size_t s = (size_t)h & (r->nslots - 1);
	for (; r->slots[s]; s = (s + 1) & (r->nslots - 1)) {
		struct finding *f = &r->items[r->slots[s] - 1];
		if (f->hash == h && same_finding(f, lv, file, line, column, text)) {
			f->dialects |= bit;
			free(text);
			free(file);
			return NULL;
		}
	}
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->items = sg_realloc(r->items, r->cap * sizeof(*r->items));
	}
	r->items[r->count] = (struct finding){lv, file, line, text, bit, NULL, column, NULL, h};
	r->slots[s] = ++r->count;
	r->counts[lv]++;
	return &r->items[r->count - 1];
}

struct finding *sg_report_keep(struct report *r, enum level lv, const char *file, int line, int column,
			       enum sg_dialect d, char *text)
{
	return keep(r, lv, file ? sg_strdup(file) : NULL, line, column, d == SG_DIALECT_NONE ? 0 : DIALECT_BIT(d),
		    text);
}

void sg_report_merge(struct report *dst, struct report *src)
{
	report_reserve(dst, dst->count + src->count);
	for (size_t i = 0; i < src->count; i++) {
		struct finding *f = &src->items[i];
		struct finding *kept = keep(dst, f->level, f->file, f->line, f->column, f->dialects, f->text);
		f->file = f->text = NULL;   /* moved, or freed as a duplicate */
		if (kept && !kept->rule) {
			kept->rule = f->rule;
			kept->statement = f->statement;
			f->statement = NULL;
		}
	}
	sg_report_free(src);
}

void sg_report_add(struct report *r, enum level lv, const char *file, int line, enum sg_dialect d,
		   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	sg_report_keep(r, lv, file, line, 0, d, text);
}

void sg_report_free(struct report *r)
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

/* ":N" (lint prints thousands of these: no printf) */
static void put_number(struct sg_buf *b, int n)
{
	char digits[16];
	size_t i = sizeof(digits);
	unsigned u = (unsigned)n;
	do
		digits[--i] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	digits[--i] = ':';
	sg_buf_append(b, digits + i, sizeof(digits) - i);
}

/* "file:line: text" as one line, for messages and lint. */
void sg_finding_format(const struct finding *f, unsigned all, struct sg_buf *b)
{
	if (f->file) {
		sg_buf_puts(b, f->file);
		if (f->line > 0) {
			put_number(b, f->line);
			if (f->column > 0)
				put_number(b, f->column);
		}
		sg_buf_puts(b, ": ");
	}
	if (f->rule) {
		sg_buf_puts(b, f->rule->id);
		sg_buf_puts(b, ": ");
	}
	sg_buf_puts(b, f->text);
	if (f->dialects && f->dialects != all) {
		const char *sep = " [";
		for (size_t k = 0; k < NDIALECTS; k++)
			if (f->dialects & DIALECT_BIT(sg_all_dialects[k])) {
				sg_buf_puts(b, sep);
				sg_buf_puts(b, sg_dialect_name(sg_all_dialects[k]));
				sep = ", ";
			}
		sg_buf_puts(b, "]");
	}
}

/* The first error as err's message, with how many more there are. */
int sg_report_fail(const struct report *r, struct sg_error *err)
{
	for (size_t i = 0; i < r->count; i++) {
		if (r->items[i].level != LV_ERROR)
			continue;
		struct sg_buf b = {0};
		sg_finding_format(&r->items[i], r->all, &b);
		size_t more = r->counts[LV_ERROR] - 1;
		if (more)
			sg_buf_printf(&b, " (and %zu more problem%s; `schemagate lint` lists them all)", more,
				      more == 1 ? "" : "s");
		sg_fail(err, SG_OUTCOME_USAGE, "%s", b.data);
		sg_buf_free(&b);
		return -1;
	}
	return 0;
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
