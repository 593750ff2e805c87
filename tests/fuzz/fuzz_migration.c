/*
 * fuzz_migration.c - migration file names and the directory rules
 * (sg_migration_load_files: src/migration.c's loader over a directory
 * held in memory; every file a regular, readable file).
 *
 * Input: fields separated by NUL bytes.
 *   0   control: byte 0 the order to permute the files by, byte 1 bit 0
 *       puts a NUL byte into the first file's content;
 *   1.. pairs of fields: a file name, its content (at most 16 files;
 *       empty names, names with '/' and a name already given are
 *       skipped: a directory cannot hold them).
 *
 * Every input is loaded for PostgreSQL, MySQL (with MariaDB's selection
 * when the directory has mariadb files) and SQLite, each time with the
 * files in three orders. Properties:
 *   - the same input gives the same result in every order: the same
 *     verdict, the same message, the same selection (versions, names,
 *     files, scripts, flags, statements, checksums; repeatable
 *     migrations, R__NAME.sql, likewise) and the same notes;
 *   - a refusal is exit 2 and one line;
 *   - accepted, against a reference written here from SPEC section 3
 *     (names VERSION[_NAME][.DIALECT][.autocommit](.up.sql|.down.sql|.sql)
 *     in UTF-8,
 *     known tags and their aliases, dbmate sections, popx's choice per
 *     direction): every file that looks like a migration has a name the
 *     reference parses; no version is spelled two ways or carries two
 *     names; no version, direction and engine has two files at one level
 *     of specificity (the engine's tag, MySQL's for MariaDB, generic);
 *     the versions are exactly those with an up file for the engine, in
 *     numeric order; each takes the most specific up file and, on its
 *     own, the most specific down file (a single file's down section
 *     counts); the checksum is the SHA-256 of the up script without a
 *     byte-order mark, CRLF turned into LF (a single file: its up
 *     section); no selected file holds a NUL byte.
 */
#include <ctype.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "schemagate/migration.h"

#define MAX_FILES 16
#define NO_LEVEL (-1)

/* ---- the reference: names ------------------------------------------------- */

enum kind { K_UP, K_DOWN, K_SINGLE };

/* Dialects as the reference numbers them. */
enum ref_dialect { R_GENERIC, R_POSTGRES, R_MYSQL, R_MARIADB, R_SQLITE, R_OTHER_ENGINE };

struct ref_name {
	bool migration;   /* starts with a digit, ends in .sql */
	bool valid;
	char *version, *name;
	enum ref_dialect tag;
	enum kind kind;
	bool autocommit;
};

static enum ref_dialect tag_of(const char *w, size_t n, bool *known)
{
	static const struct {
		const char *tag;
		enum ref_dialect d;
	} tags[] = {
		{"postgres", R_POSTGRES}, {"postgresql", R_POSTGRES}, {"pg", R_POSTGRES}, {"pgx", R_POSTGRES},
		{"mysql", R_MYSQL}, {"mariadb", R_MARIADB}, {"sqlite", R_SQLITE}, {"sqlite3", R_SQLITE},
		{"cockroach", R_OTHER_ENGINE}, {"cockroachdb", R_OTHER_ENGINE}, {"crdb", R_OTHER_ENGINE},
		{"mssql", R_OTHER_ENGINE}, {"sqlserver", R_OTHER_ENGINE}, {"clickhouse", R_OTHER_ENGINE},
		{"spanner", R_OTHER_ENGINE}, {"oracle", R_OTHER_ENGINE}, {"tidb", R_OTHER_ENGINE},
		{"duckdb", R_OTHER_ENGINE}, {"snowflake", R_OTHER_ENGINE}, {"redshift", R_OTHER_ENGINE},
		{"bigquery", R_OTHER_ENGINE}, {"yugabyte", R_OTHER_ENGINE}, {"h2", R_OTHER_ENGINE},
	};
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (strlen(tags[i].tag) == n && strncasecmp(w, tags[i].tag, n) == 0) {
			*known = true;
			return tags[i].d;
		}
	*known = false;
	return R_GENERIC;
}

static bool suffix(const char *s, size_t len, const char *suf, size_t *rest)
{
	size_t n = strlen(suf);
	if (len < n || strncasecmp(s + len - n, suf, n) != 0)
		return false;
	*rest = len - n;
	return true;
}

static void ref_parse_name(const char *file, struct ref_name *r)
{
	memset(r, 0, sizeof(*r));
	size_t len = strlen(file), rest;
	r->migration = isdigit((unsigned char)file[0]) && suffix(file, len, ".sql", &rest);
	if (!r->migration)
		return;
	if (suffix(file, len, ".up.sql", &rest))
		r->kind = K_UP;
	else if (suffix(file, len, ".down.sql", &rest))
		r->kind = K_DOWN;
	else
		(void)suffix(file, len, ".sql", &rest), r->kind = K_SINGLE;
	size_t stem = rest, v = 0;
	while (v < stem && isdigit((unsigned char)file[v]))
		v++;
	/* after VERSION: "_NAME...", or ".DIALECT", or nothing */
	if (v < stem && file[v] != '_' && file[v] != '.')
		return;
	size_t end = stem;
	if (suffix(file, end, ".autocommit", &rest) && rest >= v) {
		r->autocommit = true;
		end = rest;
	}
	size_t name_b = v < stem && file[v] == '_' ? v + 1 : v;
	const char *dot = NULL;
	for (size_t i = name_b; i < end; i++)
		if (file[i] == '.')
			dot = file + i;
	if (dot) {
		bool known;
		size_t tb = (size_t)(dot - file) + 1;
		enum ref_dialect d = tag_of(file + tb, end - tb, &known);
		if (known) {
			r->tag = d;
			end = tb - 1;
		}
	}
	if (v < stem && file[v] == '.' && end != v)
		return;   /* "7.foo.sql": after VERSION a '.' starts a tag */
	if (v < stem && file[v] == '_' && end <= name_b)
		return;   /* "7_.sql" */
	if (end > name_b && suffix(file, end, ".autocommit", &rest))
		return;   /* ".autocommit" only right before .up.sql/.down.sql */
	r->valid = true;
	r->version = strndup(file, v);
	r->name = v < stem && file[v] == '_' ? strndup(file + name_b, end - name_b) : strdup("");
}

/* Numeric comparison of digit strings: both padded with zeros to one
 * width, then compared as text. */
static int version_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), w = la > lb ? la : lb;
	for (size_t i = 0; i < w; i++) {
		char ca = i < w - la ? '0' : a[i - (w - la)];
		char cb = i < w - lb ? '0' : b[i - (w - lb)];
		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return 0;
}

/* ---- the reference: contents ---------------------------------------------- */

struct file {
	char *name;
	char *content;
	size_t len;
	struct ref_name ref;
};

/* A line "-- KEYWORD..." (dbmate's marker rule): blanks, "--", blanks,
 * the keyword in any case, then the end of the line or a blank. */
static bool marker(const char *line, size_t n, const char *kw)
{
	size_t i = 0, k = strlen(kw);
	while (i < n && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (n - i < 2 || line[i] != '-' || line[i + 1] != '-')
		return false;
	i += 2;
	while (i < n && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return n - i >= k && strncasecmp(line + i, kw, k) == 0 && (i + k == n || isspace((unsigned char)line[i + k]));
}

/* The text without a leading UTF-8 byte-order mark. */
static const char *without_bom(const struct file *f, size_t *n)
{
	if (f->len >= 3 && memcmp(f->content, "\xEF\xBB\xBF", 3) == 0) {
		*n = f->len - 3;
		return f->content + 3;
	}
	*n = f->len;
	return f->content;
}

/* A single file's up section and whether it has a down section. */
static bool sections(const struct file *f, const char **up, size_t *up_len, bool *has_down)
{
	size_t n;
	const char *t = without_bom(f, &n);
	*up = NULL;
	*has_down = false;
	for (size_t i = 0; i < n;) {
		const char *nl = memchr(t + i, '\n', n - i);
		size_t e = nl ? (size_t)(nl - t) : n;
		size_t next = nl ? e + 1 : n;
		if (!*up && marker(t + i, e - i, "migrate:up")) {
			*up = t + next;
		} else if (*up && marker(t + i, e - i, "migrate:down")) {
			*up_len = (size_t)(t + i - *up);
			*has_down = true;
			return true;
		}
		i = next;
	}
	if (*up)
		*up_len = (size_t)(t + n - *up);
	return *up != NULL;
}

/* SHA-256 of text with CRLF turned into LF, in hex. */
static void ref_checksum(const char *text, size_t n, char out[65])
{
	unsigned char *norm = malloc(n + 1), md[32];
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n'))
			norm[m++] = (unsigned char)text[i];
	SHA256(norm, m, md);
	free(norm);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- the reference: choice per dialect ------------------------------------- */

/* Does file f serve level `level` of a dialect? */
static bool at_level(const struct file *f, enum ref_dialect level)
{
	return f->ref.valid && f->ref.tag == level;
}

static bool provides_down(const struct file *f)
{
	if (f->ref.kind == K_DOWN)
		return true;
	if (f->ref.kind != K_SINGLE)
		return false;
	const char *up;
	size_t up_len;
	bool has_down;
	return sections(f, &up, &up_len, &has_down) && has_down;
}

/* The reference's choice for one version and dialect: the up and the
 * down file (NULL when none); false when two files compete at a level. */
static bool ref_choose(struct file *files, size_t n, const char *version, enum ref_dialect dialect,
		       const struct file **up, const struct file **down)
{
	enum ref_dialect levels[3];
	size_t nl = 0;
	levels[nl++] = dialect;
	if (dialect == R_MARIADB)
		levels[nl++] = R_MYSQL;
	levels[nl++] = R_GENERIC;
	*up = *down = NULL;
	bool ok = true;
	for (size_t k = 0; k < nl; k++) {
		const struct file *u = NULL, *d = NULL;
		int nu = 0, nd = 0;
		for (size_t i = 0; i < n; i++) {
			const struct file *f = &files[i];
			if (!at_level(f, levels[k]) || version_cmp(f->ref.version, version) != 0)
				continue;
			if (f->ref.kind != K_DOWN) {
				u = f;
				nu++;
			}
			if (provides_down(f)) {
				d = f;
				nd++;
			}
		}
		if (nu > 1 || nd > 1)
			ok = false;
		if (!*up)
			*up = u;
		if (!*down)
			*down = d;
	}
	return ok;
}

/* ---- checks ----------------------------------------------------------------- */

static const char *dialect_name(enum ref_dialect d)
{
	static const char *const names[] = {"generic", "postgres", "mysql", "mariadb", "sqlite", "other"};
	return names[d];
}

static void check_selection(struct file *files, size_t n, const struct sg_migration *items, size_t count,
			    enum ref_dialect dialect)
{
	/* versions with an up file for the dialect, in numeric order */
	size_t expect = 0;
	for (size_t i = 0; i < n; i++) {
		const struct file *f = &files[i];
		if (!f->ref.valid || f->ref.tag == R_OTHER_ENGINE)
			continue;
		/* the first file of each version, counted once (among the files
		 * the filter above keeps: another engine's file listed first
		 * must not hide this one) */
		bool first = true;
		for (size_t j = 0; j < i && first; j++)
			first = !(files[j].ref.valid && files[j].ref.tag != R_OTHER_ENGINE &&
				  version_cmp(files[j].ref.version, f->ref.version) == 0);
		if (!first)
			continue;
		const struct file *up, *down;
		bool ok = ref_choose(files, n, f->ref.version, dialect, &up, &down);
		FUZZ_CHECK(ok, "%s: accepted two files competing for one direction of version %s", dialect_name(dialect),
			   f->ref.version);
		if (!up)
			continue;
		expect++;
		const struct sg_migration *m = NULL;
		for (size_t k = 0; k < count; k++)
			if (version_cmp(items[k].version, f->ref.version) == 0)
				m = &items[k];
		FUZZ_CHECK(m, "%s: version %s has an up file (%s) but is not selected", dialect_name(dialect),
			   f->ref.version, up->name);
		FUZZ_CHECK(strcmp(m->up_file, up->name) == 0, "%s: version %s takes %s, the most specific is %s",
			   dialect_name(dialect), m->version, m->up_file, up->name);
		FUZZ_CHECK((!down && !m->down_file) || (down && m->down_file && strcmp(m->down_file, down->name) == 0),
			   "%s: version %s's down script is %s, the most specific is %s", dialect_name(dialect),
			   m->version, m->down_file ? m->down_file : "(none)", down ? down->name : "(none)");
		FUZZ_CHECK(strcmp(m->version, up->ref.version) == 0 && strcmp(m->name, up->ref.name) == 0,
			   "%s: version %s name '%s', the file says %s '%s'", dialect_name(dialect), m->version, m->name,
			   up->ref.version, up->ref.name);
		/* the checksum of the up script */
		const char *text;
		size_t len;
		bool has_down;
		if (up->ref.kind == K_SINGLE)
			FUZZ_CHECK(sections(up, &text, &len, &has_down), "%s has no up section", up->name);
		else
			text = without_bom(up, &len);
		FUZZ_CHECK(!memchr(up->content, '\0', up->len), "%s holds a NUL byte and was accepted", up->name);
		char sum[65];
		ref_checksum(text, len, sum);
		if (strcmp(sum, m->checksum) != 0)
			fuzz_dump("up script", text, len);
		FUZZ_CHECK(strcmp(sum, m->checksum) == 0, "%s: checksum %s, the up script's is %s", up->name, m->checksum,
			   sum);
		if (down)
			FUZZ_CHECK(!memchr(down->content, '\0', down->len), "%s holds a NUL byte and was accepted",
				   down->name);
	}
	FUZZ_CHECK(count == expect, "%s: %zu migrations selected, %zu versions have an up file", dialect_name(dialect),
		   count, expect);
	for (size_t k = 1; k < count; k++)
		FUZZ_CHECK(version_cmp(items[k - 1].version, items[k].version) < 0, "versions out of order: %s, %s",
			   items[k - 1].version, items[k].version);
}

/* Accepted: every name parses and no version is spelled two ways. */
static void check_names(struct file *files, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct file *f = &files[i];
		if (!f->ref.migration || f->name[0] == '.')
			continue;
		FUZZ_CHECK(f->ref.valid, "accepted '%s', a name the reference does not parse", f->name);
		FUZZ_CHECK(fuzz_utf8_valid(f->name, strlen(f->name), NULL), "accepted '%s', a name that is not UTF-8",
			   f->name);
		for (size_t j = 0; j < i; j++) {
			const struct file *g = &files[j];
			if (!g->ref.valid || g->name[0] == '.' || version_cmp(f->ref.version, g->ref.version) != 0)
				continue;
			FUZZ_CHECK(strcmp(f->ref.version, g->ref.version) == 0, "accepted version %s spelled %s too (%s, %s)",
				   f->ref.version, g->ref.version, f->name, g->name);
			FUZZ_CHECK(strcmp(f->ref.name, g->ref.name) == 0, "accepted version %s named '%s' and '%s'",
				   f->ref.version, f->ref.name, g->ref.name);
		}
	}
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_statements(const struct sg_statement_list *a, const struct sg_statement_list *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (a->items[i].start != b->items[i].start || a->items[i].end != b->items[i].end ||
		    a->items[i].line != b->items[i].line || strcmp(a->items[i].sql, b->items[i].sql) != 0)
			return false;
	return true;
}

static bool same_items(const struct sg_migration *a, const struct sg_migration *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct sg_migration *x = &a[i], *y = &b[i];
		if (!same_str(x->version, y->version) || !same_str(x->name, y->name) || !same_str(x->up_file, y->up_file) ||
		    !same_str(x->down_file, y->down_file) || !same_str(x->up_sql, y->up_sql) ||
		    !same_str(x->down_sql, y->down_sql) || x->up_no_tx != y->up_no_tx || x->down_no_tx != y->down_no_tx ||
		    x->up_split != y->up_split || x->down_split != y->down_split ||
		    !same_statements(&x->up_statements, &y->up_statements) ||
		    !same_statements(&x->down_statements, &y->down_statements) || strcmp(x->checksum, y->checksum) != 0)
			return false;
	}
	return true;
}

struct load {
	int rc;
	struct sg_error err;
	struct sg_migration_set set;
};

static void expect_same_load(const struct load *a, const struct load *b, const char *order)
{
	FUZZ_CHECK(a->rc == b->rc, "in %s order the directory is %s, else %s", order, b->rc ? "refused" : "accepted",
		   a->rc ? "refused" : "accepted");
	if (a->rc) {
		FUZZ_CHECK(strcmp(a->err.msg, b->err.msg) == 0, "in %s order the message is '%s', else '%s'", order,
			   b->err.msg, a->err.msg);
		return;
	}
	const struct sg_migration_set *x = &a->set, *y = &b->set;
	FUZZ_CHECK(x->count == y->count && x->other_count == y->other_count && x->dialect == y->dialect &&
		   x->other_dialect == y->other_dialect && same_items(x->items, y->items, x->count) &&
		   same_items(x->other_items, y->other_items, x->other_count) && x->nrepeatables == y->nrepeatables &&
		   x->other_nrepeatables == y->other_nrepeatables &&
		   same_items(x->repeatables, y->repeatables, x->nrepeatables) &&
		   same_items(x->other_repeatables, y->other_repeatables, x->other_nrepeatables),
		   "in %s order the selection differs", order);
	FUZZ_CHECK(x->nnotes == y->nnotes, "in %s order %zu notes, else %zu", order, y->nnotes, x->nnotes);
	for (size_t i = 0; i < x->nnotes; i++)
		FUZZ_CHECK(strcmp(x->notes[i], y->notes[i]) == 0, "in %s order note %zu is '%s', else '%s'", order, i,
			   y->notes[i], x->notes[i]);
}

static void load_in_order(struct load *l, const struct file *files, size_t n, const size_t *order,
			  enum sg_engine engine)
{
	struct sg_migration_file list[MAX_FILES];
	for (size_t i = 0; i < n; i++) {
		const struct file *f = &files[order[i]];
		list[i] = (struct sg_migration_file){f->name, f->content, f->len};
	}
	memset(l, 0, sizeof(*l));
	l->rc = sg_migration_load_files("migrations", list, n, engine, &l->set, &l->err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields in;
	fuzz_fields_split(&in, data, size, 1 + 2 * MAX_FILES);
	const char *control = fuzz_field(&in, 0);
	unsigned seed = (unsigned char)control[0];
	bool nul = control[0] && (control[1] & 1);

	struct file files[MAX_FILES];
	size_t n = 0;
	for (size_t k = 1; k + 1 <= in.n && n < MAX_FILES; k += 2) {
		const char *name = fuzz_field(&in, k), *content = fuzz_field(&in, k + 1);
		bool skip = !name[0] || strchr(name, '/');
		for (size_t j = 0; j < n && !skip; j++)
			skip = strcmp(files[j].name, name) == 0;
		if (skip)
			continue;
		struct file *f = &files[n++];
		f->name = strdup(name);
		f->len = strlen(content) + (nul && n == 1);
		f->content = malloc(f->len + 1);
		memcpy(f->content, content, strlen(content) + 1);
		if (nul && n == 1) {   /* a NUL byte in the middle of the first file */
			size_t at = f->len / 2;
			memmove(f->content + at + 1, f->content + at, f->len - at);
			f->content[at] = '\0';
		}
		ref_parse_name(f->name, &f->ref);
	}

	size_t orders[3][MAX_FILES];
	for (size_t i = 0; i < n; i++) {
		orders[0][i] = i;
		orders[1][i] = n - 1 - i;
		orders[2][i] = (i + seed) % n;
	}
	static const enum sg_engine engines[] = {SG_ENGINE_POSTGRES, SG_ENGINE_MYSQL, SG_ENGINE_SQLITE};
	static const enum ref_dialect dialects[] = {R_POSTGRES, R_MYSQL, R_SQLITE};
	for (size_t e = 0; e < 3; e++) {
		struct load l[3];
		for (size_t o = 0; o < 3; o++)
			load_in_order(&l[o], files, n, orders[o], engines[e]);
		expect_same_load(&l[0], &l[1], "reversed");
		expect_same_load(&l[0], &l[2], "rotated");
		if (l[0].rc) {
			FUZZ_CHECK(l[0].err.outcome == SG_OUTCOME_USAGE && l[0].err.msg[0] && !strchr(l[0].err.msg, '\n'),
				   "refused with outcome %d: '%s'", (int)l[0].err.outcome, l[0].err.msg);
		} else {
			check_names(files, n);
			check_selection(files, n, l[0].set.items, l[0].set.count, dialects[e]);
			if (l[0].set.other_dialect == SG_DIALECT_MARIADB)
				check_selection(files, n, l[0].set.other_items, l[0].set.other_count, R_MARIADB);
		}
		for (size_t o = 0; o < 3; o++)
			sg_migration_set_free(&l[o].set);
	}
	for (size_t i = 0; i < n; i++) {
		free(files[i].name);
		free(files[i].content);
		free(files[i].ref.version);
		free(files[i].ref.name);
	}
	fuzz_fields_free(&in);
	return 0;
}
