/*
 * migration_select.c - resolving each version for one dialect, per
 * direction, as popx does: the up script is the most specific up file for
 * the dialect (its own tag, then MySQL's for MariaDB, then the generic
 * file), and the down script likewise, on its own; and the load that
 * turns a scanned directory into the set a run uses.
 */
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
#include <uv.h>

#include "migration_internal.h"

/* ---- resolving a version for a dialect ----------------------------- */

/* Entries d->items[*b, *e) are one version. */
bool sg_next_group(const struct directory *d, size_t *b, size_t *e)
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
			sg_report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE,
				   "duplicate version: %s and %s have the same version (%s = %s)", g[0].file, g[i].file,
				   g[0].version, g[i].version);
			ok = false;
		} else if (strcmp(g[i].name, g[0].name) != 0) {
			/* "a" next to "a.postgers": a misspelled tag is part of the name */
			const char *shorter = strlen(g[0].name) < strlen(g[i].name) ? g[0].name : g[i].name;
			const char *longer = shorter == g[0].name ? g[i].name : g[0].name;
			size_t k = strlen(shorter);
			bool tag_like = strncmp(shorter, longer, k) == 0 && longer[k] == '.';
			sg_report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE,
				   "duplicate version %s: %s and %s name different migrations%s%s%s", g[0].version,
				   g[0].file, g[i].file, tag_like ? " ('" : "", tag_like ? longer + k + 1 : "",
				   tag_like ? "' is not a dialect tag, so it is part of the name)" : "");
			ok = false;
		}
	}
	if (!any_up) {
		for (size_t i = 0; i < n; i++)
			sg_report_add(rep, LV_ERROR, g[i].file, 0, SG_DIALECT_NONE,
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
		e->parsed_ok = sg_entry_read(d, e, rep) && sg_single_file_sections(e, &e->sections, rep) == 0;
	}
	return e->parsed_ok ? &e->sections : NULL;
}

static bool has_down_section(const struct directory *d, struct entry *e, struct report *rep)
{
	const struct sections *s = sections_of(d, e, rep);
	return s && s->down;
}

static void conflict(struct report *rep, const struct entry *a, const struct entry *b, const char *direction,
		     enum sg_dialect level)
{
	sg_report_add(rep, LV_ERROR, NULL, 0, level, "%s and %s both provide the %s script of version %s; keep one",
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
	size_t nlevels = sg_dialect_levels(dialect, levels);
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
	if (!sg_entry_read(d, e, rep))
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
	if (checksum) {
		if (!e->summed)
			sg_checksum(text, len, e->checksum);
		e->summed = true;
		memcpy(checksum, e->checksum, sizeof(e->checksum));
	}
	struct split_cache *cache = d->share_splits ? &e->split[up ? 0 : 1] : NULL;
	int rc = sg_script_prepare_text(text, len, marked, !up, d->keep_statements, cache, dialect, e->file, first_line,
					out, rep);
	if (rc == 0 && up && out->empty)
		sg_report_add(rep, LV_WARNING, e->file, 0, SG_DIALECT_NONE,
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
	m->repeatable = c->up->kind == FILE_REPEATABLE;
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


void sg_selection_free(struct selection *s)
{
	for (size_t i = 0; i < s->count; i++)
		migration_free(&s->items[i]);
	free(s->items);
	memset(s, 0, sizeof(*s));
}

/* Every version of the directory, resolved for one dialect. Versions
 * with no up file for it do not exist for it (a note). */
void sg_load_dialect(const struct directory *d, const bool *bad, enum sg_dialect dialect, bool note_absent,
			 struct selection *sel, struct report *rep)
{
	sg_load_dialect_range(d, bad, dialect, note_absent, 0, d->count, sel, rep);
}

/* The versions whose first entry lies in d->items[from, to) (from is a
 * version's first entry): it touches only those entries, so loads of
 * disjoint ranges may run on different threads. */
void sg_load_dialect_range(const struct directory *d, const bool *bad, enum sg_dialect dialect, bool note_absent,
			   size_t from, size_t to, struct selection *sel, struct report *rep)
{
	memset(sel, 0, sizeof(*sel));
	size_t b = from, e = from;
	while (sg_next_group(d, &b, &e) && b < to) {
		if (bad[b])
			continue;
		struct choice c;
		if (choose(d, &d->items[b], e - b, dialect, &c, rep) < 0)
			continue;
		if (!c.up) {
			if (note_absent)
				sg_report_add(rep, LV_NOTE, d->items[b].file, 0, dialect,
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

/* The second half of a load on a thread of its own. */
struct load_half {
	const struct directory *d;
	const bool *bad;
	enum sg_dialect dialect;
	bool note_absent;
	size_t from;
	struct selection sel;
	struct report rep;
};

static void load_half(void *arg)
{
	struct load_half *h = arg;
	sg_load_dialect_range(h->d, h->bad, h->dialect, h->note_absent, h->from, h->d->count, &h->sel, &h->rep);
}

/* Below this many versions a second thread costs more than it saves. */
#define VERSIONS_FOR_A_THREAD 128

/*
 * sg_load_dialect, the second half of the versions on a thread of its
 * own when there are enough of them and a second core: reading, hashing
 * and splitting 1,000 files takes longer than the connection takes to
 * start. The halves touch disjoint entries; the selection is joined in
 * version order and the second half's findings come after the first's,
 * as a single load adds them (the first error is the one reported).
 */
static void load_dialect_halves(const struct directory *d, const bool *bad, enum sg_dialect dialect,
				bool note_absent, struct selection *sel, struct report *rep)
{
	size_t ngroups = 0, b = 0, e = 0;
	while (sg_next_group(d, &b, &e))
		ngroups++;
	struct load_half half = {.d = d, .bad = bad, .dialect = dialect, .note_absent = note_absent};
	uv_thread_t thread;
	bool threaded = false;
	if (ngroups >= VERSIONS_FOR_A_THREAD && uv_available_parallelism() > 1) {
		size_t gi = 0;
		b = e = 0;
		while (sg_next_group(d, &b, &e) && gi++ < ngroups / 2)
			;
		half.from = b;
		threaded = uv_thread_create(&thread, load_half, &half) == 0;
	}
	if (!threaded) {
		sg_load_dialect(d, bad, dialect, note_absent, sel, rep);
		return;
	}
	sg_load_dialect_range(d, bad, dialect, note_absent, 0, half.from, sel, rep);
	uv_thread_join(&thread);
	if (half.sel.count) {
		sel->items = sg_realloc(sel->items, (sel->count + half.sel.count) * sizeof(*sel->items));
		memcpy(sel->items + sel->count, half.sel.items, half.sel.count * sizeof(*half.sel.items));
		sel->count += half.sel.count;
		sel->cap = sel->count;
	}
	free(half.sel.items);
	sg_report_merge(rep, &half.rep);
}

/* The repeatables: each name's most specific file for the dialect (the
 * rules of an up file: a dialect's own, MySQL's for MariaDB, generic). */
void sg_load_repeatables(const struct directory *d, enum sg_dialect dialect, struct selection *sel,
			 struct report *rep)
{
	memset(sel, 0, sizeof(*sel));
	for (size_t b = 0, e; b < d->nreps; b = e) {
		for (e = b + 1; e < d->nreps && strcmp(d->reps[e].version, d->reps[b].version) == 0; e++)
			;
		struct choice c;
		struct sg_migration m;
		if (choose(d, &d->reps[b], e - b, dialect, &c, rep) < 0 || !c.up || build(d, &c, dialect, &m, rep) < 0)
			continue;
		sel->items = sg_realloc(sel->items, (sel->count + 1) * sizeof(*sel->items));
		sel->items[sel->count++] = m;
	}
}

/* bad[i] for the first entry of each group that group_ok() refused. */
bool *sg_check_groups(struct directory *d, struct report *rep)
{
	bool *bad = sg_calloc(d->count + 1, sizeof(bool));
	size_t b = 0, e = 0;
	while (sg_next_group(d, &b, &e))
		bad[b] = !group_ok(&d->items[b], e - b, rep);
	return bad;
}

/* Files no dialect read must still be readable (SPEC: an unreadable
 * file is an error), as the next image may select them. */
void sg_check_unread(const struct directory *d, struct report *rep)
{
	for (size_t i = 0; i < d->count + d->nreps && !d->files; i++) {
		const struct entry *e = i < d->count ? &d->items[i] : &d->reps[i - d->count];
		if (e->read)
			continue;
		if (faccessat(dirfd(d->handle), e->file, R_OK, 0) < 0)
			sg_report_add(rep, LV_ERROR, e->file, 0, SG_DIALECT_NONE, "cannot be read: %s", strerror(errno));
	}
}

void sg_no_migrations(const struct directory *d, struct report *rep)
{
	sg_report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE,
		   "migration directory %s holds no migrations (files named VERSION_NAME.up.sql, "
		   "VERSION_NAME.down.sql, VERSION_NAME.sql or R__NAME.sql)%s", d->dir,
		   d->nignored ? "; its other files are ignored" : "");
}

/* The notes a loaded set keeps. */
static void keep_notes(const struct report *rep, struct sg_migration_set *set)
{
	for (size_t i = 0; i < rep->count; i++) {
		if (rep->items[i].level != LV_NOTE)
			continue;
		struct sg_buf b = {0};
		sg_finding_format(&rep->items[i], rep->all, &b);
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
			sg_report_add(rep, LV_NOTE, d->ignored[i], 0, SG_DIALECT_NONE, "not a migration file; ignored");
		bad = sg_check_groups(d, rep);
		if (d->count == 0 && d->nreps == 0 && rep->counts[LV_ERROR] == 0)
			sg_no_migrations(d, rep);
		enum sg_dialect first = sg_engine_dialect(engine);
		struct selection sel;
		if (first == SG_DIALECT_NONE) {
			rep->all = ALL_DIALECT_BITS;
			d->share_splits = true;
			for (size_t k = 0; k < NDIALECTS; k++) {
				sg_load_dialect(d, bad, sg_all_dialects[k], false, &sel, rep);
				sg_selection_free(&sel);
				sg_load_repeatables(d, sg_all_dialects[k], &sel, rep);
				sg_selection_free(&sel);
			}
		} else {
			set->dialect = first;
			rep->all = DIALECT_BIT(first);
			load_dialect_halves(d, bad, first, true, &sel, rep);
			set->items = sel.items;
			set->count = sel.count;
			sg_load_repeatables(d, first, &sel, rep);
			set->repeatables = sel.items;
			set->nrepeatables = sel.count;
			if (first == SG_DIALECT_MYSQL && d->has_tag[SG_DIALECT_MARIADB]) {
				set->other_dialect = SG_DIALECT_MARIADB;
				rep->all |= DIALECT_BIT(SG_DIALECT_MARIADB);
				sg_load_dialect(d, bad, SG_DIALECT_MARIADB, true, &sel, rep);
				set->other_items = sel.items;
				set->other_count = sel.count;
				sg_load_repeatables(d, SG_DIALECT_MARIADB, &sel, rep);
				set->other_repeatables = sel.items;
				set->other_nrepeatables = sel.count;
			}
			if (set->count + set->nrepeatables == 0 && d->count + d->nreps > 0 && rep->counts[LV_ERROR] == 0)
				sg_report_add(rep, LV_ERROR, NULL, 0, SG_DIALECT_NONE,
					   "none of the migrations in %s is for %s: every version has only files "
					   "tagged for other engines", dir, sg_engine_name(engine));
		}
		sg_check_unread(d, rep);
		sg_directory_free(d);
	}
	free(bad);
	int rc = 0;
	if (rep->counts[LV_ERROR]) {
		rc = sg_report_fail(rep, err);
		sg_migration_set_free(set);
	} else {
		keep_notes(rep, set);
	}
	sg_report_free(rep);
	return rc;
}

int sg_migration_load(const char *dir, enum sg_engine engine, struct sg_migration_set *set, struct sg_error *err)
{
	struct report rep = {0};
	struct directory d;
	return load_scanned(&d, sg_directory_scan(dir, &d, &rep), engine, set, &rep, err);
}

int sg_migration_load_files(const char *label, const struct sg_migration_file *files, size_t n, enum sg_engine engine,
			    struct sg_migration_set *set, struct sg_error *err)
{
	struct report rep = {0};
	struct directory d;
	sg_directory_scan_files(label, files, n, &d, &rep);
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
	items_free(set->repeatables, set->nrepeatables);
	items_free(set->other_repeatables, set->other_nrepeatables);
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
	items = set->repeatables;
	count = set->nrepeatables;
	set->repeatables = set->other_repeatables;
	set->nrepeatables = set->other_nrepeatables;
	set->other_repeatables = items;
	set->other_nrepeatables = count;
	set->other_dialect = set->dialect;
	set->dialect = dialect;
}

