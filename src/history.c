/*
 * history.c - the history and events tables, and the plan built from them.
 *
 * All state-table SQL lives here, written once against sg_conn_query();
 * drivers contribute only DDL, identifier quoting and the database clock.
 */
#include "schemagate/history.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names --------------------------------------------------------------- */

static void quoted(struct sg_conn *c, const char *name, struct sg_buf *out)
{
	c->driver->quote_ident(name, out);
}

/* The events table lives next to the history table: same schema. */
static char *events_table_name(const char *table)
{
	const char *dot = strrchr(table, '.');
	if (!dot)
		return sg_strdup("schemagate_events");
	return sg_asprintf("%.*s.schemagate_events", (int)(dot - table), table);
}

/* A state-table statement that fails (permission denied, a table in the
 * way) is a database error outside a migration: exit 5, not 1. */
static int outside_migration(struct sg_error *err)
{
	if (err && err->exit_code == SG_EXIT_MIGRATION)
		err->exit_code = SG_EXIT_DATABASE;
	return -1;
}

/* ---- reading ------------------------------------------------------------- */

static int collect_row(void *ctx, int ncols, const char *const *v)
{
	struct sg_history *h = ctx;
	if (ncols < 10)
		return 1;
	h->rows = sg_realloc(h->rows, (h->count + 1) * sizeof(*h->rows));
	struct sg_history_row *r = &h->rows[h->count++];
	memset(r, 0, sizeof(*r));
	r->version = sg_strdup(v[0] ? v[0] : "");
	r->name = sg_strdup(v[1] ? v[1] : "");
	r->checksum = sg_strdup(v[2] ? v[2] : "");
	r->status = sg_strdup(v[3] ? v[3] : "");
	r->statements_done = v[4] ? atol(v[4]) : 0;
	r->applied_at = sg_strdup(v[5]);
	r->applied_by = sg_strdup(v[6]);
	r->duration_ms = v[7] ? atol(v[7]) : 0;
	r->error = sg_strdup(v[8]);
	r->has_down = v[9] && strcmp(v[9], "1") == 0;
	return 0;
}

static int row_cmp(const void *a, const void *b)
{
	const struct sg_history_row *x = a, *y = b;
	return sg_version_cmp(x->version, y->version);
}

int sg_history_read(struct sg_conn *c, const char *table, struct sg_history *h, struct sg_error *err)
{
	memset(h, 0, sizeof(*h));
	if (c->driver->table_exists(c, table, &h->exists, err) != 0)
		return outside_migration(err);
	if (!h->exists)
		return 0;
	struct sg_buf sql = {0};
	/* applied_at in one format on every engine, so every consumer (status
	 * text and JSON) shows the same text */
	sg_buf_puts(&sql, "SELECT version, name, checksum, status, statements_done, ");
	sg_buf_puts(&sql, c->driver->applied_at_sql);
	sg_buf_puts(&sql, ", applied_by, duration_ms, error, CASE WHEN down_sql IS NULL THEN 0 ELSE 1 END FROM ");
	quoted(c, table, &sql);
	int rc = sg_conn_query(c, sql.data, 0, NULL, collect_row, h, err);
	sg_buf_free(&sql);
	if (rc != 0) {
		sg_error_prefix(err, "reading history table %s", table);
		sg_history_free(h);
		return outside_migration(err);
	}
	if (h->count > 1)
		qsort(h->rows, h->count, sizeof(*h->rows), row_cmp);
	return 0;
}

void sg_history_free(struct sg_history *h)
{
	for (size_t i = 0; i < h->count; i++) {
		struct sg_history_row *r = &h->rows[i];
		free(r->version);
		free(r->name);
		free(r->checksum);
		free(r->status);
		free(r->applied_at);
		free(r->applied_by);
		free(r->error);
	}
	free(h->rows);
	memset(h, 0, sizeof(*h));
}

/* Rows are sorted by version (sg_history_read): binary search, since the
 * plan looks up every migration of the directory. */
const struct sg_history_row *sg_history_find(const struct sg_history *h, const char *version)
{
	return sg_version_search(h->rows, h->count, sizeof(*h->rows), offsetof(struct sg_history_row, version), version);
}

static int found_row(void *ctx, int ncols, const char *const *v)
{
	*(bool *)ctx = true;
	return 1;
}

int sg_history_has_events(struct sg_conn *c, const char *table, bool *any, struct sg_error *err)
{
	*any = false;
	char *events = events_table_name(table);
	bool exists = false;
	int rc = c->driver->table_exists(c, events, &exists, err);
	if (rc == 0 && exists) {
		struct sg_buf sql = {0};
		sg_buf_puts(&sql, "SELECT 1 FROM ");
		quoted(c, events, &sql);
		sg_buf_puts(&sql, " WHERE history_table = $1 LIMIT 1");
		const char *p[] = {table};
		rc = sg_conn_query(c, sql.data, 1, p, found_row, any, err);
		sg_buf_free(&sql);
	}
	free(events);
	return rc == 0 ? 0 : outside_migration(err);
}

/* ---- writing ------------------------------------------------------------- */

static int run_ddl(struct sg_conn *c, const char *fmt, const char *table, struct sg_error *err)
{
	/* splice the quoted name in place of the single %s */
	const char *hole = strstr(fmt, "%s");
	struct sg_buf sql = {0};
	sg_buf_append(&sql, fmt, (size_t)(hole - fmt));
	quoted(c, table, &sql);
	sg_buf_puts(&sql, hole + 2);
	int rc = sg_conn_exec(c, sql.data, err);
	sg_buf_free(&sql);
	return rc;
}

int sg_history_ensure(struct sg_conn *c, const char *table, struct sg_error *err)
{
	char *events = events_table_name(table);
	int rc = run_ddl(c, c->driver->history_ddl, table, err);
	if (rc == 0)
		rc = run_ddl(c, c->driver->events_ddl, events, err);
	free(events);
	if (rc != 0) {
		sg_error_prefix(err, "creating history table %s", table);
		return outside_migration(err);
	}
	return 0;
}

struct existing_row {
	bool found;
	char status[16];
	char applied_by[300];
};

static int take_existing(void *ctx, int ncols, const char *const *v)
{
	struct existing_row *r = ctx;
	r->found = true;
	snprintf(r->status, sizeof(r->status), "%s", v[0] ? v[0] : "");
	snprintf(r->applied_by, sizeof(r->applied_by), "%s", v[1] ? v[1] : "");
	return 1;
}

static int read_existing(struct sg_conn *c, const char *table, const char *version, struct existing_row *r,
			 struct sg_error *err)
{
	struct sg_buf sql = {0};
	sg_buf_puts(&sql, "SELECT status, applied_by FROM ");
	quoted(c, table, &sql);
	sg_buf_puts(&sql, " WHERE version = $1");
	const char *p[] = {version};
	memset(r, 0, sizeof(*r));
	int rc = sg_conn_query(c, sql.data, 1, p, take_existing, r, err);
	sg_buf_free(&sql);
	return rc;
}

/* Text for the error column and audit details: valid UTF-8 whatever the
 * server or the script said, and short enough for any engine's column. */
#define STORED_TEXT_MAX 4000

/* ---- bookkeeping statements ----------------------------------------------
 * The history row and the audit event are built once, as a statement with
 * $n parameters; they either run as such (one round trip each) or go as
 * text, with the values as literals, into a migration's one-message
 * transaction (sg_conn_exec_transaction). */

#define STMT_MAX_PARAMS 10

struct stmt {
	struct sg_buf sql;
	const char *p[STMT_MAX_PARAMS];
	bool raw[STMT_MAX_PARAMS];   /* text form only: p[i] is SQL, not a value */
	int n;
	char num[2][32];
	char *owned;
};

static void stmt_free(struct stmt *s)
{
	sg_buf_free(&s->sql);
	free(s->owned);
}

static int stmt_run(struct sg_conn *c, struct stmt *s, struct sg_error *err)
{
	int rc = sg_conn_query(c, s->sql.data, s->n, s->p, NULL, NULL, err);
	stmt_free(s);
	return rc;
}

/* s->sql with each $n outside quotes replaced by its value as a literal
 * (or its SQL, when raw) appended to out; -1 when a value cannot be quoted. */
static int stmt_text(struct sg_conn *c, struct stmt *s, struct sg_buf *out)
{
	int rc = 0;
	char quote = 0;
	for (const char *q = s->sql.data; *q && rc == 0; q++) {
		if (quote) {
			if (*q == quote)
				quote = 0;
		} else if (*q == '"' || *q == '\'' || *q == '`') {
			quote = *q;
		} else if (*q == '$' && q[1] >= '1' && q[1] <= '9') {
			char *end;
			long i = strtol(q + 1, &end, 10) - 1;
			if (i < 0 || i >= s->n)
				abort();   /* a statement of this file names a parameter it lacks */
			if (!s->p[i])
				sg_buf_puts(out, "NULL");
			else if (s->raw[i])
				sg_buf_puts(out, s->p[i]);
			else
				rc = sg_conn_quote_literal(c, s->p[i], out);
			q = end - 1;
			continue;
		}
		sg_buf_append(out, q, 1);
	}
	stmt_free(s);
	return rc;
}

static void record_stmt(struct stmt *s, struct sg_conn *c, const char *table, const struct sg_migration *m,
			const char *status, long statements_done, long duration_ms, const char *error)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->num[0], sizeof(s->num[0]), "%ld", statements_done);
	snprintf(s->num[1], sizeof(s->num[1]), "%ld", duration_ms);
	s->owned = error ? sg_utf8_sanitize(error, STORED_TEXT_MAX) : NULL;
	const char *p[] = {m->version, m->name, m->checksum, status, s->num[0], sg_instance_id(), s->num[1],
			   m->down_sql, SG_VERSION, s->owned};
	memcpy(s->p, p, sizeof(p));
	s->n = 10;
	sg_buf_puts(&s->sql, "INSERT INTO ");
	quoted(c, table, &s->sql);
	sg_buf_printf(&s->sql, " (version, name, checksum, status, statements_done, applied_at, applied_by, "
			       "duration_ms, down_sql, tool_version, error) "
			       "VALUES ($1, $2, $3, $4, $5, %s, $6, $7, $8, $9, $10)",
		      c->driver->now_sql);
}

static void event_stmt(struct stmt *s, struct sg_conn *c, const char *table, const char *event, const char *version,
		       const char *outcome, const char *detail)
{
	memset(s, 0, sizeof(*s));
	char *events = events_table_name(table);
	sg_buf_puts(&s->sql, "INSERT INTO ");
	quoted(c, events, &s->sql);
	free(events);
	sg_buf_printf(&s->sql, " (at, instance, history_table, event, version, outcome, detail) "
			       "VALUES (%s, $1, $2, $3, $4, $5, $6)", c->driver->now_sql);
	s->owned = detail ? sg_utf8_sanitize(detail, STORED_TEXT_MAX) : NULL;
	const char *p[] = {sg_instance_id(), table, event, version, outcome, s->owned};
	memcpy(s->p, p, sizeof(p));
	s->n = 6;
}

/*
 * A row is only ever inserted here. One that is already there means
 * another instance recorded this version while this one believed it held
 * the lock: fail with LOCK_LOST, so a transactional migration is rolled
 * back instead of being recorded twice and the run goes back to
 * contending.
 */
int sg_history_check_absent(struct sg_conn *c, const char *table, const char *version, struct sg_error *err)
{
	struct existing_row old;
	if (read_existing(c, table, version, &old, err) != 0)
		return outside_migration(err);
	if (old.found)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, SG_EXIT_TIMEOUT, NULL,
				  "version %s was recorded as %s by %s while this instance applied it: the lock was "
				  "lost", version, old.status, old.applied_by);
	return 0;
}

int sg_history_record(struct sg_conn *c, const char *table, const struct sg_migration *m,
		      const char *status, long statements_done, long duration_ms,
		      const char *error, struct sg_error *err)
{
	if (sg_history_check_absent(c, table, m->version, err) != 0)
		return -1;
	struct stmt s;
	record_stmt(&s, c, table, m, status, statements_done, duration_ms, error);
	if (stmt_run(c, &s, err) != 0) {
		sg_error_prefix(err, "recording %s in %s", m->version, table);
		return outside_migration(err);
	}
	return 0;
}

int sg_history_applied_sql(struct sg_conn *c, const char *table, const struct sg_migration *m,
			   struct sg_buf *row, struct sg_buf *event)
{
	/* the server's clock times the script: the message arrived when it began */
	const char *elapsed = c->driver->batch_elapsed_ms_sql;
	struct stmt s;
	record_stmt(&s, c, table, m, "applied", 0, 0, NULL);
	s.p[6] = elapsed;
	s.raw[6] = true;
	if (stmt_text(c, &s, row) != 0)
		return -1;
	event_stmt(&s, c, table, "apply", m->version, "ok", NULL);
	struct sg_buf ms = {0};
	sg_buf_printf(&ms, "%s || 'ms'", elapsed);
	s.p[5] = ms.data;
	s.raw[5] = true;
	int rc = stmt_text(c, &s, event);
	sg_buf_free(&ms);
	return rc;
}

/* The row must still be this instance's partial row. */
static int expect_one_row(struct sg_conn *c, const char *table, const char *version, const char *doing,
			  struct sg_error *err)
{
	if (c->affected == 1)
		return 0;
	return sg_fail_db(err, SG_ERRK_LOCK_LOST, SG_EXIT_TIMEOUT, NULL,
			  "%s %s in %s: the row is no longer this instance's partial row (another instance took it "
			  "over): the lock was lost", doing, version, table);
}

int sg_history_progress(struct sg_conn *c, const char *table, const char *version, const char *status,
			long statements_done, long duration_ms, const char *note, struct sg_error *err)
{
	char done[32], dur[32];
	snprintf(done, sizeof(done), "%ld", statements_done);
	snprintf(dur, sizeof(dur), "%ld", duration_ms);
	char *safe = note ? sg_utf8_sanitize(note, STORED_TEXT_MAX) : NULL;
	const char *p[] = {version, status, done, dur, safe, sg_instance_id()};
	struct sg_buf sql = {0};
	sg_buf_puts(&sql, "UPDATE ");
	quoted(c, table, &sql);
	sg_buf_puts(&sql, " SET status = $2, statements_done = $3, duration_ms = $4, error = $5");
	if (strcmp(status, "partial") != 0)
		sg_buf_printf(&sql, ", applied_at = %s", c->driver->now_sql);
	sg_buf_puts(&sql, " WHERE version = $1 AND status = 'partial' AND applied_by = $6");
	int rc = sg_conn_query(c, sql.data, 6, p, NULL, NULL, err);
	sg_buf_free(&sql);
	free(safe);
	if (rc != 0) {
		sg_error_prefix(err, "recording the progress of %s in %s", version, table);
		return outside_migration(err);
	}
	return expect_one_row(c, table, version, "recording the progress of", err);
}

int sg_history_take_over(struct sg_conn *c, const char *table, const struct sg_history_row *row,
			 struct sg_error *err)
{
	char done[32];
	snprintf(done, sizeof(done), "%ld", row->statements_done);
	const char *p[] = {row->version, row->applied_by ? row->applied_by : "", done, row->status, sg_instance_id()};
	struct sg_buf sql = {0};
	sg_buf_puts(&sql, "UPDATE ");
	quoted(c, table, &sql);
	sg_buf_puts(&sql, " SET applied_by = $5, status = 'partial' WHERE version = $1 AND coalesce(applied_by, '') "
			  "= $2 AND statements_done = $3 AND status = $4");
	int rc = sg_conn_query(c, sql.data, 5, p, NULL, NULL, err);
	sg_buf_free(&sql);
	if (rc != 0) {
		sg_error_prefix(err, "taking over %s in %s", row->version, table);
		return outside_migration(err);
	}
	return expect_one_row(c, table, row->version, "taking over", err);
}

/* UPDATE/DELETE "... WHERE version = $1" with up to two more params. */
static int simple_update(struct sg_conn *c, const char *table, const char *head, const char *tail,
			 int n, const char *const *p, struct sg_error *err)
{
	struct sg_buf sql = {0};
	sg_buf_puts(&sql, head);
	quoted(c, table, &sql);
	sg_buf_puts(&sql, tail);
	int rc = sg_conn_query(c, sql.data, n, p, NULL, NULL, err);
	sg_buf_free(&sql);
	return rc;
}

int sg_history_delete(struct sg_conn *c, const char *table, const char *version, bool failed_row,
		      struct sg_error *err)
{
	const char *p[] = {version};
	const char *where = failed_row ? " WHERE version = $1 AND status IN ('failed', 'partial')"
				       : " WHERE version = $1 AND status IN ('applied', 'baselined')";
	if (simple_update(c, table, "DELETE FROM ", where, 1, p, err) != 0)
		return outside_migration(err);
	/* exactly one row, or someone else reverted (or repaired) it first:
	 * a revert must never run twice */
	if (c->affected != 1)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, SG_EXIT_TIMEOUT, NULL,
				  "version %s was no longer %s in %s when this instance reverted it (%ld rows matched): "
				  "another instance changed it; the lock was lost", version,
				  failed_row ? "failed or partial" : "applied", table, c->affected);
	return 0;
}

int sg_history_set_checksum(struct sg_conn *c, const char *table, const char *version,
			    const char *checksum, struct sg_error *err)
{
	const char *p[] = {version, checksum};
	return simple_update(c, table, "UPDATE ", " SET checksum = $2 WHERE version = $1", 2, p, err);
}

int sg_history_set_status(struct sg_conn *c, const char *table, const char *version,
			  const char *status, const char *error, struct sg_error *err)
{
	char *safe = error ? sg_utf8_sanitize(error, STORED_TEXT_MAX) : NULL;
	const char *p[] = {version, status, safe};
	int rc = simple_update(c, table, "UPDATE ", " SET status = $2, error = $3 WHERE version = $1", 3, p, err);
	free(safe);
	return rc;
}

static int take_down(void *ctx, int ncols, const char *const *v)
{
	char **down = ctx;
	free(*down);
	*down = sg_strdup(v[0]);
	return 0;
}

int sg_history_down_sql(struct sg_conn *c, const char *table, const char *version, char **down,
			struct sg_error *err)
{
	*down = NULL;
	struct sg_buf sql = {0};
	sg_buf_puts(&sql, "SELECT down_sql FROM ");
	quoted(c, table, &sql);
	sg_buf_puts(&sql, " WHERE version = $1");
	const char *p[] = {version};
	int rc = sg_conn_query(c, sql.data, 1, p, take_down, down, err);
	sg_buf_free(&sql);
	return rc;
}

int sg_event_record(struct sg_conn *c, const char *table, const char *event, const char *version,
		    const char *outcome, const char *detail, struct sg_error *err)
{
	struct stmt s;
	event_stmt(&s, c, table, event, version, outcome, detail);
	return stmt_run(c, &s, err);
}

struct event_filter {
	struct sg_event_list *list;
	const char *since, *version;
};

static int collect_event(void *ctx, int ncols, const char *const *v)
{
	struct event_filter *f = ctx;
	if (ncols < 6)
		return 1;
	if (f->since && (!v[0] || strcmp(v[0], f->since) < 0))
		return 0;
	if (f->version && (!v[3] || !sg_version_valid(v[3]) || sg_version_cmp(v[3], f->version) != 0))
		return 0;
	struct sg_event_list *l = f->list;
	l->rows = sg_realloc(l->rows, (l->count + 1) * sizeof(*l->rows));
	struct sg_event_row *e = &l->rows[l->count++];
	e->at = sg_strdup(v[0]);
	e->instance = sg_strdup(v[1]);
	e->event = sg_strdup(v[2]);
	e->version = sg_strdup(v[3]);
	e->outcome = sg_strdup(v[4]);
	e->detail = sg_strdup(v[5]);
	return 0;
}

int sg_events_read(struct sg_conn *c, const char *table, const char *since, const char *version,
		   struct sg_event_list *out, struct sg_error *err)
{
	memset(out, 0, sizeof(*out));
	char *events = events_table_name(table);
	int rc = c->driver->table_exists(c, events, &out->exists, err);
	if (rc == 0 && out->exists) {
		/* `at` renamed so the driver's applied_at formatting applies:
		 * one text format on every engine, which sorts as time does */
		struct sg_buf sql = {0};
		sg_buf_puts(&sql, "SELECT ");
		sg_buf_puts(&sql, c->driver->applied_at_sql);
		sg_buf_puts(&sql, ", instance, event, version, outcome, detail FROM (SELECT id, at AS applied_at, "
				  "instance, history_table, event, version, outcome, detail FROM ");
		quoted(c, events, &sql);
		sg_buf_puts(&sql, ") e WHERE history_table = $1 ORDER BY id");
		struct event_filter f = {.list = out, .since = since, .version = version};
		const char *p[] = {table};
		rc = sg_conn_query(c, sql.data, 1, p, collect_event, &f, err);
		sg_buf_free(&sql);
		if (rc != 0) {
			sg_error_prefix(err, "reading the audit table %s", events);
			sg_event_list_free(out);
		}
	}
	free(events);
	return rc != 0 ? outside_migration(err) : 0;
}

void sg_event_list_free(struct sg_event_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		struct sg_event_row *e = &l->rows[i];
		free(e->at);
		free(e->instance);
		free(e->event);
		free(e->version);
		free(e->outcome);
		free(e->detail);
	}
	free(l->rows);
	memset(l, 0, sizeof(*l));
}

/* ---- the plan ------------------------------------------------------------ */

const char *sg_mstate_name(enum sg_mstate s)
{
	switch (s) {
	case SG_M_PENDING: return "pending";
	case SG_M_APPLIED: return "applied";
	case SG_M_CHANGED: return "changed";
	case SG_M_FAILED: return "failed";
	case SG_M_PARTIAL: return "partial";
	case SG_M_UNKNOWN: return "unknown";
	case SG_M_BEYOND: return "beyond-target";
	}
	return "?";
}

static bool row_is_done(const struct sg_history_row *r)
{
	return strcmp(r->status, "applied") == 0 || strcmp(r->status, "baselined") == 0;
}

static int item_cmp(const void *a, const void *b)
{
	const struct sg_plan_item *x = a, *y = b;
	return sg_version_cmp(x->version, y->version);
}

int sg_plan_build(const struct sg_migration_set *set, const struct sg_history *h, const char *target,
		  struct sg_plan *plan, struct sg_error *err)
{
	memset(plan, 0, sizeof(*plan));
	if (target) {
		const struct sg_migration *t = sg_migration_find(set, target);
		if (!t && sg_version_cmp(target, "0") != 0)
			return sg_fail(err, SG_EXIT_USAGE, "target version %s is not in the migration directory %s",
				       target, set->dir);
		plan->target = t ? t->version : NULL;
	} else if (set->count > 0) {
		plan->target = set->items[set->count - 1].version;
	}
	plan->items = sg_calloc(set->count + h->count + 1, sizeof(*plan->items));

	/* newest applied version, for out-of-order detection */
	const char *newest_applied = NULL;   /* kept in plan->newest_applied */
	for (size_t i = 0; i < h->count; i++)
		if (row_is_done(&h->rows[i]) || strcmp(h->rows[i].status, "failed") == 0 ||
		    strcmp(h->rows[i].status, "partial") == 0)
			if (!newest_applied || sg_version_cmp(h->rows[i].version, newest_applied) > 0)
				newest_applied = h->rows[i].version;

	/* the directory and the history are both sorted by version: walk
	 * them side by side rather than search one for each of the other */
	size_t j = 0;
	for (size_t i = 0; i < set->count; i++) {
		const struct sg_migration *m = &set->items[i];
		struct sg_plan_item *it = &plan->items[plan->count++];
		it->version = m->version;
		it->m = m;
		while (j < h->count && sg_version_cmp(h->rows[j].version, m->version) < 0)
			j++;
		it->row = j < h->count && sg_version_cmp(h->rows[j].version, m->version) == 0 ? &h->rows[j] : NULL;
		if (it->row && strcmp(it->row->status, "partial") == 0) {
			it->state = SG_M_PARTIAL;
			plan->npartial++;
		} else if (it->row && !row_is_done(it->row)) {
			it->state = SG_M_FAILED;
			plan->nfailed++;
		} else if (it->row) {
			/* a baselined row records the file's checksum at baseline time;
			 * a version adopted from another tool before this directory
			 * had its file records none, and matches any file */
			if (strcmp(it->row->checksum, m->checksum) != 0 && it->row->checksum[0] != '\0') {
				it->state = SG_M_CHANGED;
				plan->nchanged++;
			} else {
				it->state = SG_M_APPLIED;
			}
			plan->napplied++;
		} else if (!plan->target || sg_version_cmp(m->version, plan->target) > 0) {
			it->state = SG_M_BEYOND;
		} else {
			it->state = SG_M_PENDING;
			plan->npending++;
			if (newest_applied && sg_version_cmp(m->version, newest_applied) < 0) {
				plan->newest_applied = newest_applied;
				it->out_of_order = true;
				plan->nout_of_order++;
			}
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < h->count; i++) {
		const struct sg_history_row *r = &h->rows[i];
		while (k < set->count && sg_version_cmp(set->items[k].version, r->version) < 0)
			k++;
		if (k < set->count && sg_version_cmp(set->items[k].version, r->version) == 0)
			continue;   /* in the directory */
		struct sg_plan_item *it = &plan->items[plan->count++];
		it->version = r->version;
		it->row = r;
		if (row_is_done(r)) {
			it->state = SG_M_UNKNOWN;
			plan->nunknown++;
			plan->napplied++;
		} else if (strcmp(r->status, "partial") == 0) {
			/* a newer release's migration, interrupted: still its
			 * business, but nobody here can resume it */
			it->state = SG_M_PARTIAL;
			plan->npartial++;
		} else {
			it->state = SG_M_FAILED;
			plan->nfailed++;
		}
	}
	qsort(plan->items, plan->count, sizeof(*plan->items), item_cmp);
	return 0;
}

void sg_plan_free(struct sg_plan *plan)
{
	free(plan->items);
	memset(plan, 0, sizeof(*plan));
}

int sg_plan_check(const struct sg_plan *plan, bool strict, bool allow_out_of_order, struct sg_error *err)
{
	for (size_t i = 0; i < plan->count; i++) {
		const struct sg_plan_item *it = &plan->items[i];
		if (it->state == SG_M_FAILED) {
			const struct sg_history_row *r = it->row;
			return sg_fail(err, SG_EXIT_INTEGRITY,
				       "migration %s%s%s failed after %ld statement(s)%s%s; fix the database by hand, "
				       "then run `schemagate repair %s --applied` if all of its changes are now in the "
				       "database, `--reverted` if none of them are, or `--resume` if you completed the "
				       "failed statement and the rest should run",
				       r->version, r->name[0] ? "_" : "", r->name, r->statements_done,
				       r->error ? ": " : "", r->error ? r->error : "", r->version);
		}
		if (it->state == SG_M_CHANGED)
			return sg_fail(err, SG_EXIT_INTEGRITY,
				       "checksum mismatch: %s was applied with checksum %s but the file now has %s; "
				       "restore the file, or run `schemagate repair --accept-checksums` if the edit is "
				       "intended", it->m->up_file, it->row->checksum, it->m->checksum);
	}
	if (strict && plan->nunknown > 0) {
		for (size_t i = 0; i < plan->count; i++)
			if (plan->items[i].state == SG_M_UNKNOWN)
				return sg_fail(err, SG_EXIT_INTEGRITY,
					       "--strict: the database has applied version %s which this migration "
					       "directory does not contain (%zu unknown in all)",
					       plan->items[i].version, plan->nunknown);
	}
	if (!allow_out_of_order && plan->nout_of_order > 0) {
		for (size_t i = 0; i < plan->count; i++)
			if (plan->items[i].out_of_order)
				return sg_fail(err, SG_EXIT_INTEGRITY,
					       "pending migration %s is older than the newest applied version %s; "
					       "pass --allow-out-of-order to apply it anyway", plan->items[i].m->up_file,
					       plan->newest_applied);
	}
	return 0;
}
