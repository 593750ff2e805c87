/*
 * migration.c - read the migration directory (SPEC section 3).
 *
 * A directory is a list of file names first: each .sql name is parsed into
 * version, name, dialect tag, layout and .autocommit marker, the list is
 * sorted numerically, and each version is resolved for one engine (a file
 * tagged for the engine beats the generic one). Everything that makes the
 * directory ambiguous - 0007 next to 7, two files providing the same
 * script, a down script without its up script - is refused here, before any
 * connection, so two pods can never disagree about what "version 7" means.
 *
 * The same parsed list drives `new` (next version in the directory's own
 * style) and `lint` (every engine checked, findings printed).
 */
#include "schemagate/migration.h"
#include "schemagate/sqlsplit.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NO_TX_DIRECTIVE "schemagate:no-transaction"

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
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	int c = strcmp(a, b);
	return (c > 0) - (c < 0);
}

void sg_checksum(const char *text, size_t len, char out[65])
{
	/* CRLF -> LF so a checkout with core.autocrlf does not change history. */
	char *norm = sg_malloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
			continue;
		norm[n++] = text[i];
	}
	/* Fetch the algorithm once: EVP_sha256() makes OpenSSL 3 look it up
	 * again on every call, which cost more than hashing a small file. */
	static EVP_MD *sha256;
	if (!sha256)
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!sha256 || EVP_Digest(norm, n, md, &mdlen, sha256, NULL) != 1 || mdlen != 32) {
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

static const struct {
	const char *tag;
	enum sg_engine engine;
} dialect_tags[] = {
	{"postgres", SG_ENGINE_POSTGRES},
	{"postgresql", SG_ENGINE_POSTGRES},
	{"pg", SG_ENGINE_POSTGRES},
	{"mysql", SG_ENGINE_MYSQL},
	{"mariadb", SG_ENGINE_MYSQL},
	{"sqlite", SG_ENGINE_SQLITE},
	{"sqlite3", SG_ENGINE_SQLITE},
	/* Engines schemagate does not drive: their files are skipped quietly. */
	{"cockroach", SG_ENGINE_NONE},
	{"cockroachdb", SG_ENGINE_NONE},
	{"crdb", SG_ENGINE_NONE},
	{"mssql", SG_ENGINE_NONE},
	{"sqlserver", SG_ENGINE_NONE},
	{"oracle", SG_ENGINE_NONE},
	{"clickhouse", SG_ENGINE_NONE},
	{"tidb", SG_ENGINE_NONE},
	{"duckdb", SG_ENGINE_NONE},
	{"snowflake", SG_ENGINE_NONE},
	{"redshift", SG_ENGINE_NONE},
	{"spanner", SG_ENGINE_NONE},
	{"bigquery", SG_ENGINE_NONE},
	{"yugabyte", SG_ENGINE_NONE},
	{"h2", SG_ENGINE_NONE},
};

enum sg_engine sg_dialect_engine(const char *tag, bool *known)
{
	for (size_t i = 0; i < sizeof(dialect_tags) / sizeof(dialect_tags[0]); i++) {
		if (strcasecmp(tag, dialect_tags[i].tag) == 0) {
			if (known)
				*known = true;
			return dialect_tags[i].engine;
		}
	}
	if (known)
		*known = false;
	return SG_ENGINE_NONE;
}

static const char *engine_label(enum sg_engine e)
{
	return e == SG_ENGINE_NONE ? "generic" : sg_engine_name(e);
}

/* ---- file names ---------------------------------------------------- */

enum file_kind { FILE_UP, FILE_DOWN, FILE_SINGLE };

/* One parsed file name. */
struct entry {
	char *file;          /* as in the directory */
	char *version;       /* digits as written */
	char *name;          /* "" when the name has no _NAME part */
	char *tag;           /* dialect tag as written, NULL for generic files */
	enum sg_engine engine;
	bool tag_known;      /* tag is NULL or in dialect_tags */
	enum file_kind kind;
	bool autocommit;
};

struct entry_list {
	struct entry *items;
	size_t count;
};

static void entry_list_free(struct entry_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		free(l->items[i].file);
		free(l->items[i].version);
		free(l->items[i].name);
		free(l->items[i].tag);
	}
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

static bool ends_with(const char *s, size_t len, const char *suffix, size_t *rest)
{
	size_t n = strlen(suffix);
	if (len < n || strncasecmp(s + len - n, suffix, n) != 0)
		return false;
	*rest = len - n;
	return true;
}

static bool valid_tag(const char *s, size_t n)
{
	if (n == 0 || !isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]))
			return false;
	return true;
}

/*
 * VERSION[_NAME][.DIALECT][.autocommit](.up.sql|.down.sql|.sql).
 * Returns -1 with a message when the name does not parse.
 */
static int parse_file_name(const char *file, struct entry *e, struct sg_error *err)
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
		return sg_fail(err, SG_EXIT_USAGE, "%s: not a .sql file", file);
	len = rest;
	if (ends_with(file, len, ".autocommit", &rest)) {
		e->autocommit = true;
		len = rest;
	}

	size_t v = 0;
	while (v < len && isdigit((unsigned char)file[v]))
		v++;
	if (v == 0)
		return sg_fail(err, SG_EXIT_USAGE,
			       "%s: cannot parse migration file name (expected VERSION[_NAME][.DIALECT].up.sql, "
			       ".down.sql or .sql, VERSION being digits)", file);
	size_t name_b = v, name_e = v;
	if (v < len && file[v] == '_') {
		name_b = v + 1;
		name_e = name_b;
		while (name_e < len && file[name_e] != '.')
			name_e++;
		if (name_e == name_b)
			return sg_fail(err, SG_EXIT_USAGE, "%s: empty migration name after '_'", file);
	} else if (v < len && file[v] != '.') {
		return sg_fail(err, SG_EXIT_USAGE,
			       "%s: cannot parse migration file name (VERSION must be followed by '_NAME' or '.')", file);
	}
	const char *tag = NULL;
	size_t taglen = 0;
	if (name_e < len) {
		/* file[name_e] == '.': the dialect tag, one word without dots */
		tag = file + name_e + 1;
		taglen = len - name_e - 1;
		if (!valid_tag(tag, taglen))
			return sg_fail(err, SG_EXIT_USAGE,
				       "%s: cannot parse migration file name ('%.*s' is not a dialect tag; "
				       "names cannot contain dots)", file, (int)taglen, tag);
	}

	e->file = sg_strdup(file);
	e->version = sg_strndup(file, v);
	e->name = sg_strndup(file + name_b, name_e - name_b);
	e->tag_known = true;
	if (tag) {
		e->tag = sg_strndup(tag, taglen);
		e->engine = sg_dialect_engine(e->tag, &e->tag_known);
	}
	return 0;
}

static bool is_hidden_or_ignored(const char *file)
{
	return file[0] == '.';
}

static bool has_sql_suffix(const char *file)
{
	size_t rest;
	return ends_with(file, strlen(file), ".sql", &rest);
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int c = sg_version_cmp(a->version, b->version);
	return c ? c : strcmp(a->file, b->file);
}

/* Observations that do not stop a load. `level` is "warning" or "note". */
struct finding {
	const char *level;
	char *text;
};

struct findings {
	struct finding *items;
	size_t count;
	bool quiet_absent;   /* lint says "only for X" once, across engines */
};

static void add_finding(struct findings *f, const char *level, char *text)
{
	if (!f) {
		free(text);
		return;
	}
	for (size_t i = 0; i < f->count; i++) {
		if (strcmp(f->items[i].text, text) == 0) {
			free(text);
			return;
		}
	}
	f->items = sg_realloc(f->items, (f->count + 1) * sizeof(*f->items));
	f->items[f->count].level = level;
	f->items[f->count].text = text;
	f->count++;
}

static void findings_free(struct findings *f)
{
	for (size_t i = 0; i < f->count; i++)
		free(f->items[i].text);
	free(f->items);
	f->items = NULL;
	f->count = 0;
}

/*
 * Parse every .sql name in dir. Non-.sql files are reported to `found` (a
 * README is expected and not mentioned). Stops at the first bad name unless
 * `bad_names` is given, in which case each bad name is added there as an
 * error and scanning continues (lint wants all of them).
 */
static int scan_dir(const char *dir, struct entry_list *out, struct findings *found, struct findings *bad_names,
		    struct sg_error *err)
{
	memset(out, 0, sizeof(*out));
	DIR *d = opendir(dir);
	if (!d)
		return sg_fail(err, SG_EXIT_USAGE, "migration directory %s: %s", dir, strerror(errno));
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		const char *file = de->d_name;
		if (is_hidden_or_ignored(file))
			continue;
		/* stat, not lstat: ConfigMap volumes are symlinks into ..data/ */
		char *path = sg_asprintf("%s/%s", dir, file);
		struct stat st;
		int srt = stat(path, &st);
		free(path);
		if (srt < 0 || S_ISDIR(st.st_mode))
			continue;
		if (!has_sql_suffix(file)) {
			if (strncasecmp(file, "README", 6) != 0)
				add_finding(found, "note", sg_asprintf("%s: not a .sql file, ignored", file));
			continue;
		}
		struct entry e;
		if (parse_file_name(file, &e, err) < 0) {
			if (!bad_names) {
				rc = -1;
				break;
			}
			add_finding(bad_names, "error", sg_strdup(err->msg));
			sg_error_clear(err);
			continue;
		}
		out->items = sg_realloc(out->items, (out->count + 1) * sizeof(*out->items));
		out->items[out->count++] = e;
	}
	closedir(d);
	if (rc < 0) {
		entry_list_free(out);
		return -1;
	}
	if (out->count)
		qsort(out->items, out->count, sizeof(*out->items), entry_cmp);
	return 0;
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

static bool has_no_tx_directive(const char *sql)
{
	for (const char *p = sql; *p;) {
		size_t n = strcspn(p, "\n");
		if (comment_keyword(p, n, NO_TX_DIRECTIVE))
			return true;
		p += n;
		if (*p)
			p++;
	}
	return false;
}

/*
 * dbmate's single-file layout: "-- migrate:up [transaction:false]" then
 * "-- migrate:down". Only comments may precede the up marker.
 */
static int split_single_file(const char *file, const char *text, char **up, char **down, bool *no_tx,
			     struct sg_error *err)
{
	const char *up_b = NULL, *up_e = NULL, *down_b = NULL;
	int lineno = 0;
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		const char *next = p[n] ? p + n + 1 : p + n;
		lineno++;
		const char *opts;
		if ((opts = comment_keyword(p, n, "migrate:up")) != NULL) {
			if (up_b)
				return sg_fail(err, SG_EXIT_USAGE, "%s:%d: second '-- migrate:up'", file, lineno);
			if (down_b)
				return sg_fail(err, SG_EXIT_USAGE, "%s:%d: '-- migrate:up' after '-- migrate:down'", file,
					       lineno);
			const char *end = p + n;
			while (opts < end) {
				while (opts < end && isspace((unsigned char)*opts))
					opts++;
				size_t w = 0;
				while (opts + w < end && !isspace((unsigned char)opts[w]))
					w++;
				if (w == 0)
					break;
				if (w == 17 && strncasecmp(opts, "transaction:false", w) == 0)
					*no_tx = true;
				else if (!(w == 16 && strncasecmp(opts, "transaction:true", w) == 0))
					return sg_fail(err, SG_EXIT_USAGE, "%s:%d: unknown migrate:up option '%.*s'", file,
						       lineno, (int)w, opts);
				opts += w;
			}
			up_b = next;
		} else if (comment_keyword(p, n, "migrate:down")) {
			if (down_b)
				return sg_fail(err, SG_EXIT_USAGE, "%s:%d: second '-- migrate:down'", file, lineno);
			if (!up_b)
				return sg_fail(err, SG_EXIT_USAGE, "%s:%d: '-- migrate:down' before '-- migrate:up'", file,
					       lineno);
			up_e = p;
			down_b = next;
		} else if (!up_b) {
			size_t i = 0;
			while (i < n && isspace((unsigned char)p[i]))
				i++;
			if (i < n && !(n - i >= 2 && p[i] == '-' && p[i + 1] == '-'))
				return sg_fail(err, SG_EXIT_USAGE, "%s:%d: SQL before '-- migrate:up'", file, lineno);
		}
		p = next;
	}
	if (!up_b) {
		sg_fail(err, SG_EXIT_USAGE, "%s: single-file migration without a '-- migrate:up' line", file);
		return -1;
	}
	if (!up_e)
		up_e = text + strlen(text);
	*up = sg_strndup(up_b, (size_t)(up_e - up_b));
	*down = down_b ? sg_strdup(down_b) : NULL;
	return 0;
}

static char *read_script(const char *dir, const char *file, size_t *len, struct sg_error *err)
{
	char *path = sg_asprintf("%s/%s", dir, file);
	size_t n = 0;
	char *text = sg_read_file(path, &n);
	if (!text)
		sg_fail(err, SG_EXIT_USAGE, "reading %s: %s", path, strerror(errno));
	else if (memchr(text, '\0', n)) {
		sg_fail(err, SG_EXIT_USAGE, "%s: contains a NUL byte; not a SQL script", path);
		free(text);
		text = NULL;
	}
	free(path);
	if (len)
		*len = n;
	return text;
}

/* ---- resolving versions -------------------------------------------- */

/*
 * The files of one version that belong to one engine, or to none (generic).
 * A generic down script with no generic up script is the shared down script
 * of the dialect variants (DROP TABLE reads the same everywhere), so it
 * serves any engine whose variant has no down file of its own.
 */
struct slot {
	const struct entry *up;     /* FILE_UP or FILE_SINGLE */
	const struct entry *down;   /* FILE_DOWN */
};

static bool entry_in_slot(const struct entry *e, enum sg_engine engine)
{
	if (engine == SG_ENGINE_NONE)
		return e->tag == NULL;
	return e->tag != NULL && e->tag_known && e->engine == engine;
}

static int fill_slot(const struct entry *g, size_t n, enum sg_engine engine, struct slot *s, struct sg_error *err)
{
	memset(s, 0, sizeof(*s));
	const char *who = engine_label(engine);
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = &g[i];
		if (!entry_in_slot(e, engine))
			continue;
		const struct entry **place = e->kind == FILE_DOWN ? &s->down : &s->up;
		if (*place)
			return sg_fail(err, SG_EXIT_USAGE,
				       "%s and %s both provide the %s script of version %s for %s; keep one",
				       (*place)->file, e->file, e->kind == FILE_DOWN ? "down" : "up", e->version, who);
		*place = e;
	}
	if (s->down && s->up && s->up->kind == FILE_SINGLE)
		return sg_fail(err, SG_EXIT_USAGE, "%s and %s both provide the down script of version %s for %s",
			       s->up->file, s->down->file, s->up->version, who);
	return 0;
}

/* Does any supported engine have its own up script for this version? */
static bool has_variant_up(const struct entry *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (g[i].tag && g[i].tag_known && g[i].engine != SG_ENGINE_NONE && g[i].kind != FILE_DOWN)
			return true;
	return false;
}

/*
 * Check the slot of one engine and pick its files: the variant's up script
 * with its own down script, else the shared generic down script.
 */
static int engine_slot(const struct entry *g, size_t n, enum sg_engine engine, const struct slot *generic,
		       struct slot *out, struct sg_error *err)
{
	if (fill_slot(g, n, engine, out, err) < 0)
		return -1;
	if (out->down && !out->up)
		return sg_fail(err, SG_EXIT_USAGE, "%s: down script without an up script for %s", out->down->file,
			       sg_engine_name(engine));
	if (out->up && !out->down && out->up->kind == FILE_UP && !generic->up)
		out->down = generic->down;
	return 0;
}

/* Version spellings and names must agree across all files of a version. */
static int check_group_identity(const struct entry *g, size_t n, struct sg_error *err)
{
	for (size_t i = 1; i < n; i++) {
		if (strcmp(g[i].version, g[0].version) != 0)
			return sg_fail(err, SG_EXIT_USAGE, "duplicate version: %s and %s have the same version (%s = %s)",
				       g[0].file, g[i].file, g[0].version, g[i].version);
		if (strcmp(g[i].name, g[0].name) != 0)
			return sg_fail(err, SG_EXIT_USAGE,
				       "duplicate version %s: %s and %s name different migrations", g[0].version,
				       g[0].file, g[i].file);
	}
	return 0;
}

static int build_migration(const char *dir, const struct slot *s, struct sg_migration *m, struct sg_error *err)
{
	memset(m, 0, sizeof(*m));
	size_t len = 0;
	char *text = read_script(dir, s->up->file, &len, err);
	if (!text)
		return -1;
	if (s->up->kind == FILE_SINGLE) {
		char *up = NULL, *down = NULL;
		int rc = split_single_file(s->up->file, text, &up, &down, &m->no_transaction, err);
		free(text);
		if (rc < 0)
			return -1;
		m->up_sql = up;
		m->down_sql = down;
		if (down)
			m->down_file = sg_strdup(s->up->file);
	} else {
		m->up_sql = text;
		if (s->down) {
			m->down_sql = read_script(dir, s->down->file, NULL, err);
			if (!m->down_sql) {
				free(m->up_sql);
				return -1;
			}
			m->down_file = sg_strdup(s->down->file);
		}
	}
	m->version = sg_strdup(s->up->version);
	m->name = sg_strdup(s->up->name);
	m->up_file = sg_strdup(s->up->file);
	if (s->up->autocommit || has_no_tx_directive(m->up_sql))
		m->no_transaction = true;
	sg_checksum(m->up_sql, strlen(m->up_sql), m->checksum);
	return 0;
}

static void migration_free(struct sg_migration *m)
{
	free(m->version);
	free(m->name);
	free(m->up_file);
	free(m->down_file);
	free(m->up_sql);
	free(m->down_sql);
}

static const enum sg_engine all_engines[] = {SG_ENGINE_POSTGRES, SG_ENGINE_MYSQL, SG_ENGINE_SQLITE};

/*
 * Resolve one version (entries g[0..n)) for engine into *chosen; chosen->up
 * is NULL when the version does not exist for this engine.
 */
static int resolve_group(const struct entry *g, size_t n, enum sg_engine engine, struct slot *chosen,
			 struct findings *found, struct sg_error *err)
{
	memset(chosen, 0, sizeof(*chosen));
	if (check_group_identity(g, n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!g[i].tag_known)
			add_finding(found, "warning",
				    sg_asprintf("%s: unknown dialect tag '%s'; file ignored (known: postgres, "
						"postgresql, pg, mysql, mariadb, sqlite, sqlite3)", g[i].file, g[i].tag));

	struct slot generic, variant;
	if (fill_slot(g, n, SG_ENGINE_NONE, &generic, err) < 0)
		return -1;
	if (generic.down && !generic.up && !has_variant_up(g, n))
		return sg_fail(err, SG_EXIT_USAGE, "%s: down script without an up script", generic.down->file);

	if (engine != SG_ENGINE_NONE) {
		if (engine_slot(g, n, engine, &generic, &variant, err) < 0)
			return -1;
		*chosen = variant.up ? variant : generic;
	} else {
		/* lint/new: validate every engine; prefer the generic variant */
		*chosen = generic;
		for (size_t k = 0; k < 3; k++) {
			if (engine_slot(g, n, all_engines[k], &generic, &variant, err) < 0)
				return -1;
			if (!chosen->up)
				*chosen = variant;
		}
	}
	if (!chosen->up && !(found && found->quiet_absent))
		add_finding(found, "note",
			    sg_asprintf("version %s (%s) has no file for %s; skipped for it", g[0].version, g[0].file,
					engine == SG_ENGINE_NONE ? "any supported engine" : sg_engine_name(engine)));
	return 0;
}

static int load_entries(const char *dir, const struct entry_list *entries, enum sg_engine engine,
			struct sg_migration_set *set, struct findings *found, struct sg_error *err)
{
	for (size_t i = 0; i < entries->count;) {
		size_t j = i + 1;
		while (j < entries->count && sg_version_cmp(entries->items[i].version, entries->items[j].version) == 0)
			j++;
		struct slot chosen;
		if (resolve_group(&entries->items[i], j - i, engine, &chosen, found, err) < 0)
			return -1;
		if (chosen.up) {
			struct sg_migration m;
			if (build_migration(dir, &chosen, &m, err) < 0)
				return -1;
			set->items = sg_realloc(set->items, (set->count + 1) * sizeof(*set->items));
			set->items[set->count++] = m;
		}
		i = j;
	}
	return 0;
}

/* bad_names: see scan_dir(); NULL makes the first bad file name an error. */
static int load_dir(const char *dir, enum sg_engine engine, struct sg_migration_set *set, struct findings *found,
		    struct findings *bad_names, struct sg_error *err)
{
	memset(set, 0, sizeof(*set));
	struct entry_list entries;
	if (scan_dir(dir, &entries, found, bad_names, err) < 0)
		return -1;
	set->dir = sg_strdup(dir);
	int rc = load_entries(dir, &entries, engine, set, found, err);
	entry_list_free(&entries);
	if (rc < 0)
		sg_migration_set_free(set);
	return rc;
}

int sg_migration_load(const char *dir, enum sg_engine engine, struct sg_migration_set *set, struct sg_error *err)
{
	struct findings found = {0};
	int rc = load_dir(dir, engine, set, &found, NULL, err);
	if (rc == 0 && found.count) {
		set->notes = sg_calloc(found.count, sizeof(char *));
		for (size_t i = 0; i < found.count; i++) {
			set->notes[i] = found.items[i].text;
			found.items[i].text = NULL;
		}
		set->nnotes = found.count;
	}
	findings_free(&found);
	return rc;
}

void sg_migration_set_free(struct sg_migration_set *set)
{
	for (size_t i = 0; i < set->count; i++)
		migration_free(&set->items[i]);
	free(set->items);
	for (size_t i = 0; i < set->nnotes; i++)
		free(set->notes[i]);
	free(set->notes);
	free(set->dir);
	memset(set, 0, sizeof(*set));
}

const struct sg_migration *sg_migration_find(const struct sg_migration_set *set, const char *version)
{
	if (!sg_version_valid(version))
		return NULL;
	size_t lo = 0, hi = set->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = sg_version_cmp(set->items[mid].version, version);
		if (c == 0)
			return &set->items[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
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
static char *next_version(const struct entry_list *entries)
{
	char ts[15];
	utc_timestamp(ts);
	if (entries->count == 0)
		return sg_strdup(ts);
	const char *newest = entries->items[entries->count - 1].version;
	if (looks_like_timestamp(newest)) {
		if (sg_version_cmp(ts, newest) > 0)
			return sg_strdup(ts);
		return version_next(newest, 14);   /* clock behind the newest file */
	}
	return version_next(newest, strlen(newest));
}

int sg_migration_new(const char *dir, const char *name, const char *dialect, bool single_file,
		     struct sg_error *err)
{
	if (!valid_migration_name(name))
		return sg_fail(err, SG_EXIT_USAGE, "migration name '%s' must match [A-Za-z0-9_-]+", name ? name : "");
	bool known = true;
	if (dialect && *dialect) {
		if (!valid_tag(dialect, strlen(dialect)))
			return sg_fail(err, SG_EXIT_USAGE, "dialect '%s' is not a valid tag", dialect);
		sg_dialect_engine(dialect, &known);
		if (!known)
			return sg_fail(err, SG_EXIT_USAGE,
				       "unknown dialect '%s' (use postgres, mysql or sqlite)", dialect);
	}
	if (mkdir_p(dir, err) < 0)
		return -1;

	/* Refuse to extend a directory that does not load. */
	struct sg_migration_set set;
	if (sg_migration_load(dir, SG_ENGINE_NONE, &set, err) < 0)
		return -1;
	sg_migration_set_free(&set);

	struct entry_list entries;
	if (scan_dir(dir, &entries, NULL, NULL, err) < 0)
		return -1;
	bool any_pair = false, any_single = false;
	for (size_t i = 0; i < entries.count; i++) {
		if (entries.items[i].kind == FILE_SINGLE)
			any_single = true;
		else
			any_pair = true;
	}
	/* An explicit request for single-file wins; otherwise follow the directory. */
	bool single = single_file || (any_single && !any_pair);
	char *version = next_version(&entries);
	entry_list_free(&entries);

	char *stem = dialect && *dialect ? sg_asprintf("%s/%s_%s.%s", dir, version, name, dialect)
					 : sg_asprintf("%s/%s_%s", dir, version, name);
	free(version);
	int rc = 0;
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

/* First keyword of a statement, upper-cased into out. */
static void first_word(const char *sql, char *out, size_t outsz)
{
	size_t n = 0;
	while (*sql && isalpha((unsigned char)*sql) && n + 1 < outsz)
		out[n++] = (char)toupper((unsigned char)*sql++);
	out[n] = '\0';
}

static bool splits_at_runtime(enum sg_engine engine, bool no_transaction)
{
	/* MySQL runs every script statement by statement; others only no-transaction ones. */
	return engine == SG_ENGINE_MYSQL || no_transaction;
}

static void lint_script(const char *file, const char *sql, enum sg_engine engine, bool no_tx,
			struct findings *found, struct findings *errors)
{
	if (!splits_at_runtime(engine, no_tx))
		return;
	struct sg_statement_list list;
	struct sg_error err = {0};
	if (sg_sql_split(sql, engine, &list, &err) < 0) {
		add_finding(errors, "error", sg_asprintf("%s (%s): %s", file, sg_engine_name(engine), err.msg));
		return;
	}
	for (size_t i = 0; no_tx && i < list.count; i++) {
		char w[16];
		first_word(list.items[i].sql, w, sizeof(w));
		if (!strcmp(w, "BEGIN") || !strcmp(w, "COMMIT") || !strcmp(w, "START") || !strcmp(w, "ROLLBACK") ||
		    !strcmp(w, "END"))
			add_finding(found, "warning",
				    sg_asprintf("%s:%d: no-transaction script contains %s; each statement already "
						"commits on its own", file, list.items[i].line, w));
	}
	sg_statement_list_free(&list);
}

static void lint_set(const struct sg_migration_set *set, enum sg_engine engine, struct findings *found,
		     struct findings *errors)
{
	for (size_t i = 0; i < set->count; i++) {
		const struct sg_migration *m = &set->items[i];
		if (!m->down_file)
			add_finding(found, "warning",
				    sg_asprintf("%s: no down script; `down` and `rollback` cannot revert version %s",
						m->up_file, m->version));
		lint_script(m->up_file, m->up_sql, engine, m->no_transaction, found, errors);
		if (m->down_sql)
			lint_script(m->down_file, m->down_sql, engine, has_no_tx_directive(m->down_sql), found,
				    errors);
	}
}

static void print_findings(const struct findings *f, const char *level)
{
	for (size_t i = 0; i < f->count; i++)
		if (strcmp(f->items[i].level, level) == 0)
			printf("%s: %s\n", level, f->items[i].text);
}

static size_t count_level(const struct findings *f, const char *level)
{
	size_t n = 0;
	for (size_t i = 0; i < f->count; i++)
		n += strcmp(f->items[i].level, level) == 0;
	return n;
}

/* One version as lint saw it: which engines load it. */
struct lint_version {
	const struct entry *first;   /* a file of the version, for messages */
	bool loaded[3];              /* per all_engines[] */
};

static void note_partial_versions(const struct lint_version *v, size_t n, struct findings *found)
{
	for (size_t i = 0; i < n; i++) {
		struct sg_buf engines = {0};
		for (size_t k = 0; k < 3; k++)
			if (v[i].loaded[k])
				sg_buf_printf(&engines, "%s%s", engines.len ? ", " : "", sg_engine_name(all_engines[k]));
		if (engines.len == 0)
			add_finding(found, "note",
				    sg_asprintf("version %s (%s) has no file for any supported engine",
						v[i].first->version, v[i].first->file));
		else if (!(v[i].loaded[0] && v[i].loaded[1] && v[i].loaded[2]))
			add_finding(found, "note",
				    sg_asprintf("version %s (%s) exists only for %s", v[i].first->version,
						v[i].first->file, engines.data));
		sg_buf_free(&engines);
	}
}

int sg_migration_lint(const char *dir, struct sg_error *err)
{
	struct findings found = {.quiet_absent = true}, errors = {0}, ignored = {0};
	struct sg_error e = {0};

	/* Every version in the directory, whether or not an engine loads it. */
	struct entry_list entries = {0};
	struct lint_version *versions = NULL;
	size_t nversions = 0;
	if (scan_dir(dir, &entries, NULL, &ignored, &e) == 0) {
		versions = sg_calloc(entries.count, sizeof(*versions));
		for (size_t i = 0; i < entries.count; i++)
			if (i == 0 || sg_version_cmp(entries.items[i - 1].version, entries.items[i].version) != 0)
				versions[nversions++].first = &entries.items[i];
	}
	findings_free(&ignored);

	for (size_t k = 0; k < 3; k++) {
		struct sg_migration_set set;
		sg_error_clear(&e);
		if (load_dir(dir, all_engines[k], &set, &found, &errors, &e) < 0) {
			add_finding(&errors, "error", sg_strdup(e.msg));
			continue;
		}
		lint_set(&set, all_engines[k], &found, &errors);
		for (size_t i = 0; i < set.count; i++)
			for (size_t j = 0; j < nversions; j++)
				if (sg_version_cmp(versions[j].first->version, set.items[i].version) == 0)
					versions[j].loaded[k] = true;
		sg_migration_set_free(&set);
	}
	if (errors.count == 0)
		note_partial_versions(versions, nversions, &found);
	size_t nloaded = 0;
	for (size_t j = 0; j < nversions; j++)
		nloaded += versions[j].loaded[0] || versions[j].loaded[1] || versions[j].loaded[2];

	print_findings(&errors, "error");
	print_findings(&found, "warning");
	print_findings(&found, "note");
	size_t nerr = errors.count, nwarn = count_level(&found, "warning"), nnote = count_level(&found, "note");
	printf("%s: %zu migration%s, %zu error%s, %zu warning%s, %zu note%s\n", dir, nloaded,
	       nloaded == 1 ? "" : "s", nerr, nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s", nnote,
	       nnote == 1 ? "" : "s");
	fflush(stdout);
	free(versions);
	entry_list_free(&entries);
	findings_free(&found);
	findings_free(&errors);
	if (nerr)
		return sg_fail(err, SG_EXIT_USAGE, "lint found %zu error%s in %s", nerr, nerr == 1 ? "" : "s", dir);
	return 0;
}
