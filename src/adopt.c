/*
 * adopt.c - adopt the history table of golang-migrate, dbmate, pop/popx or
 * goose (see adopt.h for each tool's rule).
 *
 * Three steps, the first two read-only: find the candidate tables (under
 * --adopt=auto, two candidates are a question only the operator can
 * answer, exit 2), read the versions the tool recorded and resolve them
 * against the directory, then either show them (read-only commands) or
 * record them under the lock in one transaction. The foreign table is
 * only ever SELECTed from: its tool may still be in use, and a
 * directory's own migrations may ALTER it.
 */
#include "schemagate/adopt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schemagate/log.h"

struct tool {
	enum sg_adopt_mode mode;
	const char *name;     /* "golang-migrate" */
	const char *table;    /* its table, unqualified */
};

/* golang-migrate and dbmate share a table name; the dirty column tells them apart. */
static const struct tool tools[] = {
	{SG_ADOPT_GOLANG_MIGRATE, "golang-migrate", "schema_migrations"},
	{SG_ADOPT_DBMATE, "dbmate", "schema_migrations"},
	{SG_ADOPT_POP, "pop", "schema_migration"},
	{SG_ADOPT_GOOSE, "goose", "goose_db_version"},
};
#define NTOOLS (sizeof(tools) / sizeof(tools[0]))

/* One row of a foreign table: a version and its flag (dirty, is_applied). */
struct foreign_row {
	char *version;
	bool flag;
};

struct foreign {
	const struct tool *tool;
	char *table;               /* qualified like the history table */
	struct foreign_row *rows;  /* in the table's order (goose: by id) */
	size_t count;
};

/* A version adoption records: m is NULL when the directory lacks it. */
struct adopted {
	const char *version;
	const struct sg_migration *m;
};

struct adoption {
	struct foreign found;      /* found.tool NULL: nothing to adopt */
	struct adopted *items;     /* sorted by version */
	size_t count;
	char label[160];           /* "golang-migrate's schema_migrations" */
};

static void foreign_free(struct foreign *f)
{
	for (size_t i = 0; i < f->count; i++)
		free(f->rows[i].version);
	free(f->rows);
	free(f->table);
	memset(f, 0, sizeof(*f));
}

static void adoption_free(struct adoption *a)
{
	foreign_free(&a->found);
	free(a->items);
	memset(a, 0, sizeof(*a));
}

/* The tool's table next to the history table: same schema. */
static char *sibling(const char *history_table, const char *name)
{
	const char *dot = strrchr(history_table, '.');
	if (!dot)
		return sg_strdup(name);
	return sg_asprintf("%.*s.%s", (int)(dot - history_table), history_table, name);
}

/* Booleans as PostgreSQL ("t"), MySQL ("1") and SQLite (1, "true") spell them. */
static bool truthy(const char *v)
{
	return v && (strcasecmp(v, "t") == 0 || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static int collect_foreign(void *ctx, int ncols, const char *const *v)
{
	struct foreign *f = ctx;
	if (ncols < 1 || !v[0])
		return 0;
	f->rows = sg_realloc(f->rows, (f->count + 1) * sizeof(*f->rows));
	f->rows[f->count].version = sg_strdup(v[0]);
	f->rows[f->count].flag = ncols > 1 && truthy(v[1]);
	f->count++;
	return 0;
}

/* SELECT the columns the tool writes; -1 when the table has another shape. */
static int read_foreign(struct sg_conn *c, const struct tool *t, const char *table, struct foreign *f,
			struct sg_error *err)
{
	memset(f, 0, sizeof(*f));
	static const char *const columns[] = {
		[SG_ADOPT_GOLANG_MIGRATE] = "version, dirty",
		[SG_ADOPT_DBMATE] = "version",
		[SG_ADOPT_POP] = "version",
		[SG_ADOPT_GOOSE] = "version_id, is_applied",
	};
	struct sg_buf sql = {0};
	sg_buf_printf(&sql, "SELECT %s FROM ", columns[t->mode]);
	c->driver->quote_ident(table, &sql);
	if (t->mode == SG_ADOPT_GOOSE)
		sg_buf_puts(&sql, " ORDER BY id");   /* the latest row of a version wins */
	int rc = sg_conn_query(c, sql.data, 0, NULL, collect_foreign, f, err);
	sg_buf_free(&sql);
	if (rc != 0) {
		foreign_free(f);
		return -1;
	}
	f->tool = t;
	f->table = sg_strdup(table);
	return 0;
}

/* The table is there with other columns: "column does not exist" as
 * PostgreSQL (42703), MySQL (1054) and SQLite say it. */
static bool other_shape(const struct sg_error *err)
{
	return err->kind == SG_ERRK_STATEMENT && (strcmp(err->sqlstate, "42703") == 0 ||
						 strcmp(err->sqlstate, "1054") == 0 || strstr(err->msg, "no such column"));
}

/* The candidate of one table name; under auto, golang-migrate's or dbmate's. */
static int probe(struct sg_conn *c, enum sg_adopt_mode mode, const char *history_table, const struct tool *t,
		 struct foreign *f, struct sg_error *err)
{
	memset(f, 0, sizeof(*f));
	char *table = sibling(history_table, t->table);
	bool exists = false;
	int rc = 0;
	if (strcmp(table, history_table) == 0)
		goto out;   /* --table named like the tool's own: that is schemagate's */
	if ((rc = c->driver->table_exists(c, table, &exists, err)) != 0 || !exists)
		goto out;
	if (t->mode == SG_ADOPT_DBMATE && mode == SG_ADOPT_DBMATE) {
		/* read as dbmate's, golang-migrate's table would lose every version below its one row */
		if (read_foreign(c, &tools[0], table, f, err) == 0) {
			foreign_free(f);
			rc = sg_fail(err, SG_OUTCOME_USAGE, "--adopt=dbmate: %s has golang-migrate's dirty column; "
				     "use --adopt=golang-migrate", table);
			goto out;
		}
		sg_error_clear(err);
	}
	if (read_foreign(c, t, table, f, err) == 0)
		goto out;
	if (!other_shape(err)) {
		rc = -1;   /* permission, connection: not a question of shape */
	} else if (mode == SG_ADOPT_AUTO) {
		sg_error_clear(err);   /* another shape: someone else's table (or dbmate's, tried next) */
	} else {
		char cause[SG_ERROR_MSG];
		snprintf(cause, sizeof(cause), "%s", err->msg);
		rc = sg_fail(err, SG_OUTCOME_USAGE, "--adopt=%s: %s is not %s's history table (%s)", t->name, table,
			     t->name, cause);
	}
out:
	free(table);
	return rc;
}

/* Find the foreign table --adopt points at; f->tool NULL when there is none. */
static int detect(struct sg_conn *c, enum sg_adopt_mode mode, const char *history_table, struct foreign *out,
		  struct sg_error *err)
{
	memset(out, 0, sizeof(*out));
	struct foreign found[NTOOLS];
	size_t n = 0;
	bool migrate_found = false;
	for (size_t i = 0; i < NTOOLS; i++) {
		const struct tool *t = &tools[i];
		if (mode != SG_ADOPT_AUTO && mode != t->mode)
			continue;
		if (t->mode == SG_ADOPT_DBMATE && migrate_found)
			continue;   /* one schema_migrations: golang-migrate's */
		if (probe(c, mode, history_table, t, &found[n], err) != 0) {
			for (size_t k = 0; k < n; k++)
				foreign_free(&found[k]);
			return -1;
		}
		if (found[n].tool) {
			migrate_found |= t->mode == SG_ADOPT_GOLANG_MIGRATE;
			n++;
		}
	}
	if (n > 1) {
		sg_fail(err, SG_OUTCOME_USAGE,
			"--adopt=auto found two histories to adopt, %s's %s and %s's %s; choose one with "
			"--adopt=%s or --adopt=%s (or --adopt=none)", found[0].tool->name, found[0].table,
			found[1].tool->name, found[1].table, found[0].tool->name, found[1].tool->name);
		for (size_t k = 0; k < n; k++)
			foreign_free(&found[k]);
		return -1;
	}
	if (n == 1)
		*out = found[0];
	return 0;
}

static void add(struct adoption *a, const char *version, const struct sg_migration *m)
{
	a->items = sg_realloc(a->items, (a->count + 1) * sizeof(*a->items));
	a->items[a->count++] = (struct adopted){m ? m->version : version, m};
}

static int adopted_cmp(const void *pa, const void *pb)
{
	const struct adopted *x = pa, *y = pb;
	return sg_version_cmp(x->version, y->version);
}

/* Sort, and keep one entry per version (0007 and 7 are one). */
static void sort_unique(struct adoption *a)
{
	if (a->count > 1)
		qsort(a->items, a->count, sizeof(*a->items), adopted_cmp);
	size_t n = 0;
	for (size_t i = 0; i < a->count; i++) {
		if (n && sg_version_cmp(a->items[n - 1].version, a->items[i].version) == 0) {
			if (!a->items[n - 1].m)
				a->items[n - 1] = a->items[i];
			continue;
		}
		a->items[n++] = a->items[i];
	}
	a->count = n;
}

/* golang-migrate: one row, the version reached; everything at or below
 * it ran. A dirty row is a migration that failed half way. */
static int resolve_golang_migrate(struct adoption *a, const struct sg_migration_set *set, struct sg_error *err)
{
	const struct foreign *f = &a->found;
	const char *newest = NULL;
	for (size_t i = 0; i < f->count; i++) {
		if (f->rows[i].flag)
			return sg_fail(err, SG_OUTCOME_INTEGRITY,
				       "golang-migrate's %s says version %s is dirty: a migration failed half way and "
				       "was never finished; fix the database by hand, then clear the flag "
				       "(`migrate force %s`) and run schemagate again; a dirty history is not adopted",
				       f->table, f->rows[i].version, f->rows[i].version);
		if (sg_version_valid(f->rows[i].version) &&
		    (!newest || sg_version_cmp(f->rows[i].version, newest) > 0))
			newest = f->rows[i].version;
	}
	if (!newest)
		return 0;   /* empty: everything was migrated down */
	for (size_t i = 0; i < set->count && sg_version_cmp(set->items[i].version, newest) <= 0; i++)
		add(a, NULL, &set->items[i]);
	if (!sg_migration_find(set, newest))
		add(a, newest, NULL);
	return 0;
}

/* dbmate and pop: exactly the versions recorded. popx also counts a
 * version longer than 14 digits as applied when its first 14 digits are
 * recorded (its legacy version format). */
static void resolve_listed(struct adoption *a, const struct sg_migration_set *set)
{
	const struct foreign *f = &a->found;
	for (size_t i = 0; i < f->count; i++) {
		const char *v = f->rows[i].version;
		if (!sg_version_valid(v)) {
			sg_warn("adopt", "%s holds version '%s', which is not a run of digits; not adopted", f->table, v);
			continue;
		}
		const struct sg_migration *m = sg_migration_find(set, v);
		bool legacy = false;
		for (size_t k = 0; !m && a->found.tool->mode == SG_ADOPT_POP && k < set->count; k++) {
			const char *dv = set->items[k].version;
			if (strlen(dv) > 14 && strlen(v) == 14 && strncmp(dv, v, 14) == 0) {
				add(a, NULL, &set->items[k]);
				legacy = true;
			}
		}
		if (!legacy)
			add(a, v, m);
	}
}

/* goose: rows in id order; the last one of a version says whether it is
 * applied. Version 0 is the row goose writes when it creates its table. */
static void resolve_goose(struct adoption *a, const struct sg_migration_set *set)
{
	const struct foreign *f = &a->found;
	for (size_t i = 0; i < f->count; i++) {
		const char *v = f->rows[i].version;
		if (!sg_version_valid(v) || sg_version_cmp(v, "0") == 0 || !f->rows[i].flag)
			continue;
		bool latest = true;
		for (size_t j = i + 1; j < f->count && latest; j++)
			latest = sg_version_cmp(f->rows[j].version, v) != 0;
		if (latest)
			add(a, v, sg_migration_find(set, v));
	}
}

/* Was schemagate's history never used? Then adoption may run. */
static int never_used(struct sg_conn *c, const char *table, const struct sg_history *h, bool *yes,
		      struct sg_error *err)
{
	*yes = !h->exists;
	if (h->exists && h->count == 0) {
		/* created, and then nothing: an adoption cut short on an engine
		 * whose CREATE TABLE commits on its own */
		bool any = false;
		if (sg_history_has_events(c, table, &any, err) != 0)
			return -1;
		*yes = !any;
	}
	return 0;
}

/* Everything up to the versions to record, read-only. */
static int adoption_find(struct sg_conn *c, enum sg_adopt_mode mode, const char *table,
			 const struct sg_migration_set *set, const struct sg_history *h, struct adoption *a,
			 struct sg_error *err)
{
	memset(a, 0, sizeof(*a));
	if (mode == SG_ADOPT_NONE)
		return 0;
	bool fresh = false;
	if (never_used(c, table, h, &fresh, err) != 0)
		return -1;
	if (!fresh)
		return 0;
	if (detect(c, mode, table, &a->found, err) != 0)
		return -1;
	if (!a->found.tool)
		return 0;
	snprintf(a->label, sizeof(a->label), "%s's %s", a->found.tool->name, a->found.table);
	int rc = 0;
	switch (a->found.tool->mode) {
	case SG_ADOPT_GOLANG_MIGRATE:
		rc = resolve_golang_migrate(a, set, err);
		break;
	case SG_ADOPT_GOOSE:
		resolve_goose(a, set);
		break;
	default:
		resolve_listed(a, set);
		break;
	}
	if (rc != 0) {
		adoption_free(a);
		return -1;
	}
	sort_unique(a);
	return 0;
}

int sg_adopt_preview(struct sg_conn *c, enum sg_adopt_mode mode, const char *table,
		     const struct sg_migration_set *set, struct sg_history *h, struct sg_error *err)
{
	struct adoption a;
	if (adoption_find(c, mode, table, set, h, &a, err) != 0)
		return -1;
	if (a.count) {
		/* h holds no row (never used), so these are all, in version order */
		h->rows = sg_calloc(a.count, sizeof(*h->rows));
		for (size_t i = 0; i < a.count; i++) {
			const struct sg_migration *m = a.items[i].m;
			struct sg_history_row *r = &h->rows[i];
			r->version = sg_strdup(a.items[i].version);
			r->name = sg_strdup(m ? m->name : "");
			r->checksum = sg_strdup(m ? m->checksum : "");
			r->status = sg_strdup("baselined");
			r->applied_by = sg_asprintf("(to adopt from %s)", a.label);
			r->has_down = m && m->down_sql;
		}
		h->count = a.count;
		h->nadopted = a.count;
		h->adopted_from = a.found.tool->name;
		sg_debug("adopt", "%zu version(s) would be adopted from %s", a.count, a.label);
	}
	adoption_free(&a);
	return 0;
}

static int record_all(struct sg_conn *c, const char *table, const struct adoption *a, struct sg_error *err)
{
	for (size_t i = 0; i < a->count; i++) {
		const struct sg_migration *m = a->items[i].m;
		/* a version the directory lacks: no name, no checksum, no down script */
		struct sg_migration unknown = {.version = (char *)a->items[i].version, .name = "", .checksum = ""};
		struct sg_row_change chg = {.version = a->items[i].version, .m = m ? m : &unknown};
		if (sg_row_move(c, table, SG_ROW_ABSENT, SG_EV_BASELINE, &chg, err) != 0 ||
		    sg_event_record(c, table, "adopt", a->items[i].version, "baselined", a->label, err) != 0)
			return -1;
	}
	return 0;
}

int sg_adopt_record(struct sg_conn *c, enum sg_adopt_mode mode, const char *table,
		    const struct sg_migration_set *set, struct sg_error *err)
{
	struct sg_history h;
	if (mode == SG_ADOPT_NONE)
		return 0;
	if (sg_history_read(c, table, false, &h, err) != 0)
		return -1;
	struct adoption a;
	int rc = adoption_find(c, mode, table, set, &h, &a, err);
	sg_history_free(&h);
	if (rc != 0 || a.count == 0) {
		adoption_free(&a);
		return rc;
	}
	/* one transaction: where DDL is transactional the table is created in
	 * it; elsewhere (MySQL) CREATE TABLE commits on its own, so it comes
	 * first, and an empty table without events is adopted again */
	bool ddl_in_tx = sg_conn_can(c, SG_CAP_TRANSACTIONAL_DDL);
	rc = ddl_in_tx ? 0 : sg_history_ensure(c, table, err);
	if (rc == 0)
		rc = sg_conn_begin(c, err);
	if (rc == 0) {
		if ((ddl_in_tx && sg_history_ensure(c, table, err) != 0) || record_all(c, table, &a, err) != 0 ||
		    sg_conn_commit(c, err) != 0) {
			struct sg_error e = {0};
			if (sg_conn_rollback(c, &e) != 0)
				sg_debug("rollback", "rollback failed: %s", e.msg);
			rc = -1;
		}
	}
	if (rc == 0)
		sg_info("adopted", "adopted %zu version%s from %s (newest %s), recorded as baselined", a.count,
			a.count == 1 ? "" : "s", a.label, a.items[a.count - 1].version);
	else
		sg_error_prefix(err, "adopting %s", a.label);
	adoption_free(&a);
	return rc;
}
