/*
 * history.c - the history and events tables, and the plan built from them.
 *
 * All state-table SQL lives here, written once against sg_conn_query();
 * drivers contribute only DDL, identifier quoting and the database clock.
 */
#include "schemagate/history.h"
#include "schemagate/log.h"

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
static int outside_migration(struct sg_error *err) { return sg_error_ours(err); }

/* ---- reading ------------------------------------------------------------- */

static int collect_row(void *ctx, int ncols, const char *const *v)
{
	struct sg_history *h = ctx;
	if (ncols < 10)
		return 1;
	struct sg_history_row *r;
	if (sg_is_repeatable_key(v[0])) {
		h->reps = sg_realloc(h->reps, (h->nreps + 1) * sizeof(*h->reps));
		r = &h->reps[h->nreps++];
	} else {
		h->rows = sg_realloc(h->rows, (h->count + 1) * sizeof(*h->rows));
		r = &h->rows[h->count++];
	}
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

static int rep_row_cmp(const void *a, const void *b)
{
	const struct sg_history_row *x = a, *y = b;
	return strcmp(x->version, y->version);
}

int sg_history_read(struct sg_conn *c, const char *table, bool with_applied_at, struct sg_history *h,
		    struct sg_error *err)
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
	sg_buf_puts(&sql, with_applied_at ? c->driver->applied_at_sql : "NULL");
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
	if (h->nreps > 1)
		qsort(h->reps, h->nreps, sizeof(*h->reps), rep_row_cmp);
	return 0;
}

static void rows_free(struct sg_history_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sg_history_row *r = &rows[i];
		free(r->version);
		free(r->name);
		free(r->checksum);
		free(r->status);
		free(r->applied_at);
		free(r->applied_by);
		free(r->error);
	}
	free(rows);
}

void sg_history_free(struct sg_history *h)
{
	rows_free(h->rows, h->count);
	rows_free(h->reps, h->nreps);
	memset(h, 0, sizeof(*h));
}

const struct sg_history_row *sg_history_find_repeatable(const struct sg_history *h, const char *key)
{
	struct sg_history_row k = {.version = (char *)key};
	return bsearch(&k, h->reps, h->nreps, sizeof(*h->reps), rep_row_cmp);
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

/* PostgreSQL 42501; MySQL 1044 (database), 1142 (table), 1227 (privilege) */
static bool permission_denied(const struct sg_error *err)
{
	static const char *const codes[] = { "42501", "1044", "1142", "1227" };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(err->sqlstate, codes[i]) == 0)
			return true;
	return false;
}

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

/* A reader's credentials on a writing command: say so, and point at the
 * command that never writes. */
static int may_not_write(const char *table, const char *why, const char *sqlstate, struct sg_error *err)
{
	return sg_fail_db(err, SG_ERRK_PERMANENT, sqlstate,
			  "the history table %s exists, but this user may not write it (%s); a user with read "
			  "rights only runs `schemagate wait`, which never writes", table, why);
}

struct missing_rights {
	const char *const *quoted, *const *name;   /* the two tables, as sent and as the user wrote them */
	struct sg_buf text;
};

static int take_missing_right(void *ctx, int ncols, const char *const *v)
{
	struct missing_rights *m = ctx;
	if (ncols < 2 || !v[0] || !v[1])
		return 0;
	const char *object = v[0];
	for (int i = 0; i < 2; i++)
		if (strcmp(object, m->quoted[i]) == 0)
			object = m->name[i];
	sg_buf_printf(&m->text, "%sno %s on %s", m->text.len ? "; " : "", v[1], object);
	return 0;
}

/* Every right the bookkeeping needs, before any migration runs: a refusal
 * inside a migration's transaction would read as the script's failure. */
static int check_rights(struct sg_conn *c, const char *table, const char *events, struct sg_error *err)
{
	const char *sql = c->driver->history_rights_sql;
	if (!sql)
		return 0;
	struct sg_buf t = {0}, e = {0};
	quoted(c, table, &t);
	quoted(c, events, &e);
	const char *p[] = {t.data, e.data}, *names[] = {table, events};
	struct missing_rights m = {.quoted = p, .name = names};
	int rc = sg_conn_query(c, sql, 2, p, take_missing_right, &m, err);
	if (rc == 0 && m.text.len)
		rc = may_not_write(table, m.text.data, "42501", err);
	else if (rc != 0)
		sg_error_prefix(err, "checking this user's rights on %s", table);
	sg_buf_free(&t);
	sg_buf_free(&e);
	sg_buf_free(&m.text);
	return rc == 0 ? 0 : outside_migration(err);
}

/* Both tables in one transaction where DDL is transactional (unless the
 * caller's transaction holds them already): a fresh database pays one
 * commit for them, on SQLite one journal and its four fsyncs, not two. */
int sg_history_ensure(struct sg_conn *c, const char *table, struct sg_error *err)
{
	char *events = events_table_name(table);
	bool own = sg_conn_can(c, SG_CAP_TRANSACTIONAL_DDL) && !sg_conn_in_transaction(c);
	int rc = own ? sg_conn_begin(c, err) : 0;
	if (rc == 0)
		rc = run_ddl(c, c->driver->history_ddl, table, err);
	if (rc == 0)
		rc = run_ddl(c, c->driver->events_ddl, events, err);
	if (own && rc == 0)
		rc = sg_conn_commit(c, err);
	else if (own) {
		/* a lost connection took the transaction with it: then this fails */
		struct sg_error e = {0};
		if (sg_conn_rollback(c, &e) != 0)
			sg_debug("rollback", "rollback failed: %s", e.msg);
	}
	if (rc == 0) {
		rc = check_rights(c, table, events, err);
		free(events);
		return rc;
	}
	free(events);
	if (permission_denied(err)) {
		/* not "creating history table: permission denied" of a table
		 * that is there */
		bool exists = false;
		struct sg_error e = {0};
		char why[SG_ERROR_MSG], state[sizeof(err->sqlstate)];
		snprintf(why, sizeof(why), "%s", err->msg);
		snprintf(state, sizeof(state), "%s", err->sqlstate);
		if (c->driver->table_exists(c, table, &exists, &e) == 0 && exists)
			return may_not_write(table, why, state, err);
	}
	sg_error_prefix(err, "creating history table %s", table);
	return outside_migration(err);
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
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL,
				  "version %s was recorded as %s by %s while this instance applied it: the lock was "
				  "lost", version, old.status, old.applied_by);
	return 0;
}

int sg_event_applied_sql(struct sg_conn *c, const char *table, const struct sg_migration *m, struct sg_buf *event)
{
	struct stmt s;
	event_stmt(&s, c, table, "apply", m->version, "ok", NULL);
	struct sg_buf ms = {0};
	sg_buf_printf(&ms, "%s || 'ms'", c->driver->batch_elapsed_ms_sql);
	s.p[5] = ms.data;
	s.raw[5] = true;
	int rc = stmt_text(c, &s, event);
	sg_buf_free(&ms);
	return rc;
}

/* ---- the row's state machine ------------------------------------------- */

#define FAILED_HINT                                                                                                \
	"fix the database by hand, then run `schemagate repair {V} --applied` if all of its changes are now in "  \
	"the database, `--reverted` if none of them are, or `--resume` if you completed the failed statement "    \
	"and the rest of the up script should run"
#define FAILED_REVERT_HINT                                                                                         \
	"it failed while reverting: fix the database by hand, then run `schemagate repair {V} --resume` if you "  \
	"completed the failed statement of the down script and the rest of it should run, `--reverted` if the "  \
	"revert is complete, or `--applied` if everything the down script removed is back"
#define PARTIAL_REVERT_HINT                                                                                        \
	"it was interrupted while reverting: run `schemagate repair {V} --resume` to count the statement it "     \
	"stopped at as done by hand and run the rest of the down script, or finish by hand and run `schemagate " \
	"repair {V} --reverted` (or `--applied` if everything is back)"
#define PARTIAL_CHANGED_HINT                                                                                       \
	"its file changed since the interrupted run started, so the rest of it cannot be resumed: restore the "   \
	"file that ran, or complete or undo its changes by hand and run `schemagate repair {V} --applied` (every " \
	"change of the current file is in the database) or `--reverted` (none is)"
#define CHANGED_HINT "restore the file, or run `schemagate repair --accept-checksums` if the edit is intended"
#define REPAIR_FIRST_HINT "repair it first with `schemagate repair {V} --applied|--reverted|--resume`"

/*
 * Every (state, event) pair the code meets. A pair that is not here is a
 * bug of the caller (sg_row_move says so, exit 4, and writes nothing).
 * Rows with a refusal write nothing: a human must act first.
 */
static const struct sg_row_transition transitions[] = {
	/* a version nobody recorded */
	{SG_ROW_ABSENT, SG_EV_BASELINE, SG_ROW_BASELINED, SG_WRITE_INSERT, NULL,
	 "recorded without running: the database predates schemagate"},
	{SG_ROW_ABSENT, SG_EV_COMMITTED, SG_ROW_APPLIED, SG_WRITE_INSERT, NULL,
	 "the script and its row commit in one transaction"},
	{SG_ROW_ABSENT, SG_EV_START, SG_ROW_PARTIAL, SG_WRITE_INSERT, NULL,
	 "the row (and the down script) is written before the first statement runs"},
	{SG_ROW_ABSENT, SG_EV_SERVER_ERROR, SG_ROW_ABSENT, SG_WRITE_NONE, NULL,
	 "a transactional script rolled back with its row; the failure is an event"},
	{SG_ROW_ABSENT, SG_EV_STOPPED, SG_ROW_ABSENT, SG_WRITE_NONE, NULL,
	 "a transactional script rolled back: nothing happened"},

	/* applied, baselined */
	{SG_ROW_APPLIED, SG_EV_FILE_CHANGED, SG_ROW_APPLIED, SG_WRITE_NONE, CHANGED_HINT, "the file changed"},
	{SG_ROW_APPLIED, SG_EV_ACCEPT_CHECKSUM, SG_ROW_APPLIED, SG_WRITE_CHECKSUM, NULL, "a human accepted the edit"},
	{SG_ROW_APPLIED, SG_EV_REVERT_COMMITTED, SG_ROW_ABSENT, SG_WRITE_DELETE, NULL,
	 "the down script and the row's removal commit in one transaction"},
	{SG_ROW_APPLIED, SG_EV_REVERT_START, SG_ROW_PARTIAL_REVERT, SG_WRITE_TAKE_OVER, NULL,
	 "a statement-by-statement down script starts: the row keeps its count"},
	{SG_ROW_APPLIED, SG_EV_SERVER_ERROR, SG_ROW_APPLIED, SG_WRITE_NONE, NULL,
	 "a transactional down script rolled back"},
	{SG_ROW_APPLIED, SG_EV_STOPPED, SG_ROW_APPLIED, SG_WRITE_NONE, NULL, "a transactional down script rolled back"},
	{SG_ROW_BASELINED, SG_EV_FILE_CHANGED, SG_ROW_BASELINED, SG_WRITE_NONE, CHANGED_HINT, "the file changed"},
	{SG_ROW_BASELINED, SG_EV_ACCEPT_CHECKSUM, SG_ROW_BASELINED, SG_WRITE_CHECKSUM, NULL, "a human accepted the edit"},
	{SG_ROW_BASELINED, SG_EV_REVERT_COMMITTED, SG_ROW_ABSENT, SG_WRITE_DELETE, NULL,
	 "the down script and the row's removal commit in one transaction"},
	{SG_ROW_BASELINED, SG_EV_REVERT_START, SG_ROW_PARTIAL_REVERT, SG_WRITE_TAKE_OVER, NULL,
	 "a statement-by-statement down script starts"},
	{SG_ROW_BASELINED, SG_EV_SERVER_ERROR, SG_ROW_BASELINED, SG_WRITE_NONE, NULL,
	 "a transactional down script rolled back"},
	{SG_ROW_BASELINED, SG_EV_STOPPED, SG_ROW_BASELINED, SG_WRITE_NONE, NULL,
	 "a transactional down script rolled back"},

	/* a repeatable migration (R__NAME.sql): its row records the text that ran */
	{SG_ROW_ABSENT, SG_EV_REPEATABLE_COMMITTED, SG_ROW_REPEATABLE, SG_WRITE_INSERT, NULL,
	 "a repeatable migration's first text ran; its row is inserted"},
	{SG_ROW_REPEATABLE, SG_EV_REPEATABLE_COMMITTED, SG_ROW_REPEATABLE, SG_WRITE_REAPPLIED, NULL,
	 "its changed text ran: the row records the new checksum, only over the checksum it read"},
	{SG_ROW_REPEATABLE, SG_EV_SERVER_ERROR, SG_ROW_REPEATABLE, SG_WRITE_NONE, NULL,
	 "the new text failed: the row keeps the text that ran before; a failure event"},
	{SG_ROW_REPEATABLE, SG_EV_STOPPED, SG_ROW_REPEATABLE, SG_WRITE_NONE, NULL,
	 "stopped: the row keeps the text that ran before; the next up runs the new one"},

	/* the up script, statement by statement */
	{SG_ROW_PARTIAL, SG_EV_STATEMENT_DONE, SG_ROW_PARTIAL, SG_WRITE_PROGRESS, NULL,
	 "the count moves on; the note names the next statement and its digest"},
	{SG_ROW_PARTIAL, SG_EV_LAST_STATEMENT_DONE, SG_ROW_APPLIED, SG_WRITE_PROGRESS, NULL,
	 "every statement of the recorded file ran"},
	{SG_ROW_PARTIAL, SG_EV_SERVER_ERROR, SG_ROW_FAILED, SG_WRITE_PROGRESS, NULL,
	 "the failed statement and the server's error are recorded"},
	{SG_ROW_PARTIAL, SG_EV_STOPPED, SG_ROW_PARTIAL, SG_WRITE_PROGRESS, NULL,
	 "our own stop: the note says where and why"},
	{SG_ROW_PARTIAL, SG_EV_RESUME, SG_ROW_PARTIAL, SG_WRITE_TAKE_OVER, NULL,
	 "its writer is gone: the next lock holder goes on (the statement in doubt runs again)"},
	{SG_ROW_PARTIAL, SG_EV_FILE_CHANGED, SG_ROW_PARTIAL, SG_WRITE_NONE, PARTIAL_CHANGED_HINT,
	 "the rest of another file cannot finish this one"},
	{SG_ROW_PARTIAL, SG_EV_REVERT_START, SG_ROW_PARTIAL, SG_WRITE_NONE,
	 "it is being applied, or was interrupted: run `schemagate up` to finish it first, or " REPAIR_FIRST_HINT,
	 "a half-applied migration is never reverted"},
	{SG_ROW_PARTIAL, SG_EV_ACCEPT_CHECKSUM, SG_ROW_PARTIAL, SG_WRITE_NONE, REPAIR_FIRST_HINT,
	 "a partial row's checksum names the file that ran"},
	{SG_ROW_PARTIAL, SG_EV_REPAIR_APPLIED, SG_ROW_APPLIED, SG_WRITE_STATUS, NULL, "a human completed it"},
	{SG_ROW_PARTIAL, SG_EV_REPAIR_REVERTED, SG_ROW_ABSENT, SG_WRITE_DELETE, NULL, "a human undid it"},
	{SG_ROW_PARTIAL, SG_EV_REPAIR_RESUME, SG_ROW_PARTIAL, SG_WRITE_TAKE_OVER, NULL,
	 "a human completed the next statement; the rest of the current file runs"},
	{SG_ROW_FAILED, SG_EV_RESUME, SG_ROW_FAILED, SG_WRITE_NONE, FAILED_HINT, "a human must look"},
	{SG_ROW_FAILED, SG_EV_FILE_CHANGED, SG_ROW_FAILED, SG_WRITE_NONE, FAILED_HINT, "a human must look"},
	{SG_ROW_FAILED, SG_EV_REVERT_START, SG_ROW_FAILED, SG_WRITE_NONE, REPAIR_FIRST_HINT, "a human must look"},
	{SG_ROW_FAILED, SG_EV_ACCEPT_CHECKSUM, SG_ROW_FAILED, SG_WRITE_NONE, REPAIR_FIRST_HINT, "a human must look"},
	{SG_ROW_FAILED, SG_EV_REPAIR_APPLIED, SG_ROW_APPLIED, SG_WRITE_STATUS, NULL, "a human completed it"},
	{SG_ROW_FAILED, SG_EV_REPAIR_REVERTED, SG_ROW_ABSENT, SG_WRITE_DELETE, NULL, "a human undid it"},
	{SG_ROW_FAILED, SG_EV_REPAIR_RESUME, SG_ROW_PARTIAL, SG_WRITE_TAKE_OVER, NULL,
	 "a human completed the failed statement; the rest of the current up script runs"},

	/* the down script, statement by statement */
	{SG_ROW_PARTIAL_REVERT, SG_EV_STATEMENT_DONE, SG_ROW_PARTIAL_REVERT, SG_WRITE_PROGRESS, NULL,
	 "the count of down statements moves on"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_LAST_STATEMENT_DONE, SG_ROW_ABSENT, SG_WRITE_DELETE, NULL,
	 "every statement of the down script ran"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_SERVER_ERROR, SG_ROW_FAILED_REVERT, SG_WRITE_PROGRESS, NULL,
	 "the failed down statement and the server's error are recorded"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_STOPPED, SG_ROW_PARTIAL_REVERT, SG_WRITE_PROGRESS, NULL,
	 "our own stop: the note says where"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_RESUME, SG_ROW_PARTIAL_REVERT, SG_WRITE_NONE, PARTIAL_REVERT_HINT,
	 "down scripts destroy data: only a human resumes one"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_FILE_CHANGED, SG_ROW_PARTIAL_REVERT, SG_WRITE_NONE, PARTIAL_REVERT_HINT,
	 "down scripts destroy data: only a human resumes one"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_REVERT_START, SG_ROW_PARTIAL_REVERT, SG_WRITE_NONE, PARTIAL_REVERT_HINT,
	 "down scripts destroy data: only a human resumes one"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_ACCEPT_CHECKSUM, SG_ROW_PARTIAL_REVERT, SG_WRITE_NONE, REPAIR_FIRST_HINT,
	 "a human must look"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_REPAIR_APPLIED, SG_ROW_APPLIED, SG_WRITE_STATUS, NULL, "a human restored it"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_REPAIR_REVERTED, SG_ROW_ABSENT, SG_WRITE_DELETE, NULL, "a human finished the revert"},
	{SG_ROW_PARTIAL_REVERT, SG_EV_REPAIR_RESUME, SG_ROW_PARTIAL_REVERT, SG_WRITE_TAKE_OVER, NULL,
	 "a human completed the next down statement; the rest of the down script runs"},
	{SG_ROW_FAILED_REVERT, SG_EV_RESUME, SG_ROW_FAILED_REVERT, SG_WRITE_NONE, FAILED_REVERT_HINT, "a human must look"},
	{SG_ROW_FAILED_REVERT, SG_EV_FILE_CHANGED, SG_ROW_FAILED_REVERT, SG_WRITE_NONE, FAILED_REVERT_HINT,
	 "a human must look"},
	{SG_ROW_FAILED_REVERT, SG_EV_REVERT_START, SG_ROW_FAILED_REVERT, SG_WRITE_NONE, FAILED_REVERT_HINT,
	 "a human must look"},
	{SG_ROW_FAILED_REVERT, SG_EV_ACCEPT_CHECKSUM, SG_ROW_FAILED_REVERT, SG_WRITE_NONE, REPAIR_FIRST_HINT,
	 "a human must look"},
	{SG_ROW_FAILED_REVERT, SG_EV_REPAIR_APPLIED, SG_ROW_APPLIED, SG_WRITE_STATUS, NULL, "a human restored it"},
	{SG_ROW_FAILED_REVERT, SG_EV_REPAIR_REVERTED, SG_ROW_ABSENT, SG_WRITE_DELETE, NULL, "a human finished the revert"},
	{SG_ROW_FAILED_REVERT, SG_EV_REPAIR_RESUME, SG_ROW_PARTIAL_REVERT, SG_WRITE_TAKE_OVER, NULL,
	 "a human completed the failed down statement; the rest of the down script runs"},
};

static const char *const state_names[SG_ROW_STATE_COUNT] = {
	[SG_ROW_ABSENT] = "absent",
	[SG_ROW_APPLIED] = "applied",
	[SG_ROW_BASELINED] = "baselined",
	[SG_ROW_REPEATABLE] = "repeatable",
	[SG_ROW_PARTIAL] = "partial",
	[SG_ROW_FAILED] = "failed",
	[SG_ROW_PARTIAL_REVERT] = "partial-revert",
	[SG_ROW_FAILED_REVERT] = "failed-revert",
};

static const char *const event_names[SG_EV_COUNT] = {
	[SG_EV_BASELINE] = "baseline",
	[SG_EV_COMMITTED] = "committed",
	[SG_EV_START] = "start",
	[SG_EV_STATEMENT_DONE] = "statement done",
	[SG_EV_LAST_STATEMENT_DONE] = "last statement done",
	[SG_EV_SERVER_ERROR] = "server error",
	[SG_EV_STOPPED] = "stopped",
	[SG_EV_RESUME] = "resume",
	[SG_EV_FILE_CHANGED] = "file changed",
	[SG_EV_REVERT_COMMITTED] = "revert committed",
	[SG_EV_REVERT_START] = "revert start",
	[SG_EV_REPAIR_APPLIED] = "repair --applied",
	[SG_EV_REPAIR_REVERTED] = "repair --reverted",
	[SG_EV_REPAIR_RESUME] = "repair --resume",
	[SG_EV_ACCEPT_CHECKSUM] = "repair --accept-checksums",
	[SG_EV_REPEATABLE_COMMITTED] = "repeatable committed",
};

const char *sg_row_state_name(enum sg_row_state s) { return s < SG_ROW_STATE_COUNT ? state_names[s] : "?"; }
const char *sg_row_event_name(enum sg_row_event e) { return e < SG_EV_COUNT ? event_names[e] : "?"; }

/* A status this release does not know (a newer one wrote it) reads as
 * failed: a human must look. */
enum sg_row_state sg_row_state_of(const struct sg_history_row *row)
{
	if (!row)
		return SG_ROW_ABSENT;
	for (int s = SG_ROW_APPLIED; s < SG_ROW_STATE_COUNT; s++)
		if (strcmp(row->status, state_names[s]) == 0)
			return (enum sg_row_state)s;
	return SG_ROW_FAILED;
}

const struct sg_row_transition *sg_row_transitions(size_t *count)
{
	*count = sizeof(transitions) / sizeof(transitions[0]);
	return transitions;
}

const struct sg_row_transition *sg_row_transition_find(enum sg_row_state from, enum sg_row_event event)
{
	for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
		if (transitions[i].from == from && transitions[i].event == event)
			return &transitions[i];
	return NULL;
}

int sg_row_refuse(const struct sg_row_transition *t, const char *version, const char *what, struct sg_error *err)
{
	struct sg_buf hint = {0};
	for (const char *p = t->refusal; *p;) {
		const char *hole = strstr(p, "{V}");
		if (!hole) {
			sg_buf_puts(&hint, p);
			break;
		}
		sg_buf_append(&hint, p, (size_t)(hole - p));
		sg_buf_puts(&hint, version);
		p = hole + 3;
	}
	sg_fail(err, SG_OUTCOME_INTEGRITY, "%s; %s", what, hint.data);
	sg_buf_free(&hint);
	return -1;
}

/* The row must still be what the transition started from. */
static int expect_one_row(long affected, const char *table, const struct sg_row_transition *t, const char *version,
			  struct sg_error *err)
{
	if (affected == 1)
		return 0;
	return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL,
			  "%s of %s in %s: the row was no longer %s%s (%ld rows matched): another instance changed it; "
			  "the lock was lost", sg_row_event_name(t->event), version, table, sg_row_state_name(t->from),
			  t->write == SG_WRITE_PROGRESS ? " and this instance's" : "", affected);
}

int sg_row_check_moved(const char *table, enum sg_row_state from, enum sg_row_event event, const char *version,
		       long affected, struct sg_error *err)
{
	return expect_one_row(affected, table, sg_row_transition_find(from, event), version, err);
}

static int insert_row(struct sg_conn *c, const char *table, const struct sg_row_transition *t,
		      const struct sg_row_change *chg, struct sg_error *err)
{
	struct stmt s;
	if (chg->batch) {
		/* the transaction's unique key refuses a second row (23505) */
		record_stmt(&s, c, table, chg->m, sg_row_state_name(t->to), chg->statements_done, 0, chg->note);
		if (chg->duration_sql) {
			s.p[6] = chg->duration_sql;
			s.raw[6] = true;
		}
		if (stmt_text(c, &s, chg->batch) != 0)
			return sg_fail(err, SG_OUTCOME_DATABASE, "a value of %s cannot be quoted", chg->version);
		return 0;
	}
	if (sg_history_check_absent(c, table, chg->m->version, err) != 0)
		return -1;
	record_stmt(&s, c, table, chg->m, sg_row_state_name(t->to), chg->statements_done, chg->duration_ms, chg->note);
	return stmt_run(c, &s, err);
}

/* UPDATE or DELETE of the one row in t->from; the SQL up to its WHERE,
 * then "version = $1 AND status = $2" and `more`. */
static int update_row(struct sg_conn *c, const char *table, const struct sg_row_transition *t, const char *head,
		      const char *set, const char *more, int n, const char **p, struct sg_error *err)
{
	struct sg_buf sql = {0};
	sg_buf_puts(&sql, head);
	quoted(c, table, &sql);
	sg_buf_puts(&sql, set);
	sg_buf_puts(&sql, " WHERE version = $1 AND status = $2");
	sg_buf_puts(&sql, more);
	int rc = sg_conn_query(c, sql.data, n, p, NULL, NULL, err);
	sg_buf_free(&sql);
	return rc != 0 ? -1 : expect_one_row(c->affected, table, t, p[0], err);
}

/* The PROGRESS write: this instance's row in t->from moves on. */
static void progress_stmt(struct stmt *s, struct sg_conn *c, const char *table, const struct sg_row_transition *t,
			  const struct sg_row_change *chg)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->num[0], sizeof(s->num[0]), "%ld", chg->statements_done);
	snprintf(s->num[1], sizeof(s->num[1]), "%ld", chg->duration_ms);
	s->owned = chg->note ? sg_utf8_sanitize(chg->note, STORED_TEXT_MAX) : NULL;
	const char *p[] = {chg->version, sg_row_state_name(t->from), sg_row_state_name(t->to), s->num[0], s->num[1],
			   s->owned, sg_instance_id()};
	memcpy(s->p, p, sizeof(p));
	s->n = 7;
	sg_buf_puts(&s->sql, "UPDATE ");
	quoted(c, table, &s->sql);
	sg_buf_puts(&s->sql, " SET status = $3, statements_done = $4, duration_ms = $5, error = $6");
	if (t->to == SG_ROW_APPLIED || t->to == SG_ROW_FAILED || t->to == SG_ROW_FAILED_REVERT)
		sg_buf_printf(&s->sql, ", applied_at = %s", c->driver->now_sql);
	sg_buf_puts(&s->sql, " WHERE version = $1 AND status = $2 AND applied_by = $7");
}

static int write_row(struct sg_conn *c, const char *table, const struct sg_row_transition *t,
		     const struct sg_row_change *chg, struct sg_error *err)
{
	const char *from = sg_row_state_name(t->from), *to = sg_row_state_name(t->to);
	char done[32];
	snprintf(done, sizeof(done), "%ld", chg->statements_done);
	char *note = chg->note ? sg_utf8_sanitize(chg->note, STORED_TEXT_MAX) : NULL;
	int rc = 0;
	switch (t->write) {
	case SG_WRITE_NONE:
		break;
	case SG_WRITE_INSERT:
		rc = insert_row(c, table, t, chg, err);
		break;
	case SG_WRITE_PROGRESS: {
		struct stmt s;
		progress_stmt(&s, c, table, t, chg);
		rc = stmt_run(c, &s, err) != 0 ? -1 : expect_one_row(c->affected, table, t, chg->version, err);
		break;
	}
	case SG_WRITE_TAKE_OVER: {
		/* the row as read: nobody else took it over in between */
		char old_done[32];
		const struct sg_history_row *row = chg->row;
		snprintf(old_done, sizeof(old_done), "%ld", row->statements_done);
		const char *p[] = {chg->version, from, to, done, sg_instance_id(), row->applied_by ? row->applied_by : "",
				   old_done, note ? note : row->error, chg->checksum ? chg->checksum : row->checksum};
		rc = update_row(c, table, t, "UPDATE ", " SET status = $3, statements_done = $4, applied_by = $5, "
			       "error = $8, checksum = $9", " AND coalesce(applied_by, '') = $6 AND statements_done = $7",
			       9, p, err);
		break;
	}
	case SG_WRITE_STATUS: {
		const char *p[] = {chg->version, from, to};
		rc = update_row(c, table, t, "UPDATE ", " SET status = $3, error = NULL", "", 3, p, err);
		break;
	}
	case SG_WRITE_CHECKSUM: {
		const char *p[] = {chg->version, from, chg->checksum};
		rc = update_row(c, table, t, "UPDATE ", " SET checksum = $3", "", 3, p, err);
		break;
	}
	case SG_WRITE_REAPPLIED: {
		/* only over the checksum this instance read: a second writer
		 * matches no row (LOCK_LOST), so a text never runs twice */
		char dur[32];
		snprintf(dur, sizeof(dur), "%ld", chg->duration_ms);
		const char *p[] = {chg->version, from, chg->old_checksum, chg->m->checksum, chg->m->name,
				   sg_instance_id(), dur, SG_VERSION};
		struct sg_buf set = {0};
		sg_buf_printf(&set, " SET checksum = $4, name = $5, applied_by = $6, duration_ms = $7, tool_version = $8, "
			      "error = NULL, applied_at = %s", c->driver->now_sql);
		rc = update_row(c, table, t, "UPDATE ", set.data, " AND checksum = $3", 8, p, err);
		sg_buf_free(&set);
		break;
	}
	case SG_WRITE_DELETE: {
		const char *p[] = {chg->version, from};
		rc = update_row(c, table, t, "DELETE FROM ", "", "", 2, p, err);
		break;
	}
	}
	free(note);
	return rc;
}

int sg_row_move(struct sg_conn *c, const char *table, enum sg_row_state from, enum sg_row_event event,
		const struct sg_row_change *chg, struct sg_error *err)
{
	const struct sg_row_transition *t = sg_row_transition_find(from, event);
	if (!t)
		return sg_fail(err, SG_OUTCOME_INTEGRITY, "version %s is %s in %s: `%s` does not apply to it",
			       chg->version, sg_row_state_name(from), table, sg_row_event_name(event));
	if (t->refusal) {
		char *what = sg_asprintf("version %s is %s in %s", chg->version, sg_row_state_name(from), table);
		sg_row_refuse(t, chg->version, what, err);
		free(what);
		return -1;
	}
	if (chg->batch && t->write != SG_WRITE_INSERT)
		return sg_fail(err, SG_OUTCOME_DATABASE, "%s of %s cannot be batched", sg_row_event_name(event),
			       chg->version);
	if (write_row(c, table, t, chg, err) != 0) {
		if (err->kind != SG_ERRK_LOCK_LOST) {
			sg_error_prefix(err, "recording %s of %s in %s", sg_row_event_name(event), chg->version, table);
			return outside_migration(err);
		}
		return -1;
	}
	if (t->to != from)
		sg_debug("history", "%s: transition from \"%s\" to \"%s\" on %s: %s%s", chg->version,
			 sg_row_state_name(from), sg_row_state_name(t->to), sg_row_event_name(event), t->why,
			 chg->batch ? " (written by the migration's own transaction)" : "");
	return 0;
}

int sg_row_move_sql(struct sg_conn *c, const char *table, enum sg_row_state from, enum sg_row_event event,
		    const struct sg_row_change *chg, const char *duration_sql, struct sg_buf *out)
{
	const struct sg_row_transition *t = sg_row_transition_find(from, event);
	if (!t || t->refusal)
		return -1;
	struct stmt s;
	if (t->write == SG_WRITE_INSERT)
		record_stmt(&s, c, table, chg->m, sg_row_state_name(t->to), chg->statements_done, chg->duration_ms,
			    chg->note);
	else if (t->write == SG_WRITE_PROGRESS)
		progress_stmt(&s, c, table, t, chg);
	else
		return -1;
	if (duration_sql) {
		int at = t->write == SG_WRITE_INSERT ? 6 : 4;
		s.p[at] = duration_sql;
		s.raw[at] = true;
	}
	return stmt_text(c, &s, out);
}

int sg_event_sql(struct sg_conn *c, const char *table, const char *event, const char *version, const char *outcome,
		 const char *detail_sql, struct sg_buf *out)
{
	struct stmt s;
	event_stmt(&s, c, table, event, version, outcome, NULL);
	s.p[5] = detail_sql;
	s.raw[5] = detail_sql != NULL;
	return stmt_text(c, &s, out);
}

/* The 12 hex digits after "sha256 " in a progress note, or NULL. */
static const char *noted_digest(const char *note)
{
	const char *p = note ? strstr(note, "sha256 ") : NULL;
	if (!p)
		return NULL;
	p += 7;
	for (int i = 0; i < 12; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return NULL;
	return p;
}

int sg_row_check_resumable(const struct sg_history_row *row, const struct sg_migration *m, struct sg_error *err)
{
	bool same = strcmp(row->checksum, m->checksum) == 0;
	const char *digest = noted_digest(row->error);
	size_t next = row->statements_done < 0 ? 0 : (size_t)row->statements_done;
	if (same && digest) {
		/* the statement the note names is the one the file has there */
		char sum[65] = "";
		if (m->up_split && next < m->up_statements.count) {
			const char *sql = m->up_statements.items[next].sql;
			sg_checksum(sql, strlen(sql), sum);
		}
		same = strncmp(sum, digest, 12) == 0;
	}
	if (same)
		return 0;
	char *what = sg_asprintf("migration %s is partial after %ld statement(s) of a file with checksum %s, but %s "
				 "now has %s%s", row->version, row->statements_done, row->checksum, m->up_file,
				 m->checksum, strcmp(row->checksum, m->checksum) == 0 ? " and a different next statement" : "");
	sg_row_refuse(sg_row_transition_find(SG_ROW_PARTIAL, SG_EV_FILE_CHANGED), row->version, what, err);
	free(what);
	return -1;
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
	if (f->version && sg_is_repeatable_key(f->version) && (!v[3] || strcmp(v[3], f->version) != 0))
		return 0;
	if (f->version && !sg_is_repeatable_key(f->version) &&
	    (!v[3] || !sg_version_valid(v[3]) || sg_version_cmp(v[3], f->version) != 0))
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
	case SG_M_MISSING: return "missing";
	case SG_M_BEYOND: return "beyond-target";
	case SG_M_REAPPLY: return "reapply";
	}
	return "?";
}

static bool renamed(const struct sg_history_row *row, const struct sg_migration *m)
{
	return row->name[0] != '\0' && strcmp(row->name, m->name) != 0;
}

int sg_row_check_name(const struct sg_history_row *row, const struct sg_migration *m, struct sg_error *err)
{
	if (!renamed(row, m))
		return 0;
	return sg_fail(err, SG_OUTCOME_INTEGRITY,
		       "version %s was applied as %s_%s but the directory's file for it is %s: another release "
		       "applied a different migration under this version, or the file was renamed. The name is "
		       "part of a migration's identity and `repair --accept-checksums` does not adopt it: if the "
		       "file was renamed, rename it back to %s_%s; if it is a different migration, give it a new "
		       "version newer than every applied one", row->version, row->version, row->name, m->up_file,
		       row->version, row->name);
}

static bool row_is_done(const struct sg_history_row *r)
{
	enum sg_row_state s = sg_row_state_of(r);
	return s == SG_ROW_APPLIED || s == SG_ROW_BASELINED;
}

static int item_cmp(const void *a, const void *b)
{
	const struct sg_plan_item *x = a, *y = b;
	return sg_version_cmp(x->version, y->version);
}

/* Repeatables: the directory's and the history's, both by key, side by
 * side. A changed file is not an integrity error: it is what a
 * repeatable migration is for. A row whose file is gone is left alone. */
static void plan_repeatables(const struct sg_migration_set *set, const struct sg_history *h, struct sg_plan *plan)
{
	plan->reps = sg_calloc(set->nrepeatables + h->nreps + 1, sizeof(*plan->reps));
	size_t i = 0, j = 0;
	while (i < set->nrepeatables || j < h->nreps) {
		const struct sg_migration *m = i < set->nrepeatables ? &set->repeatables[i] : NULL;
		const struct sg_history_row *row = j < h->nreps ? &h->reps[j] : NULL;
		int c = !m ? 1 : !row ? -1 : strcmp(m->version, row->version);
		struct sg_plan_item *it = &plan->reps[plan->nreps++];
		it->m = c <= 0 ? m : NULL;
		it->row = c >= 0 ? row : NULL;
		it->version = it->m ? m->version : row->version;
		i += c <= 0;
		j += c >= 0;
		if (!it->m)
			it->state = SG_M_UNKNOWN;
		else if (it->row && strcmp(it->row->checksum, it->m->checksum) == 0)
			it->state = SG_M_APPLIED;
		else
			it->state = it->row ? SG_M_REAPPLY : SG_M_PENDING;
		plan->npending += it->state == SG_M_PENDING || it->state == SG_M_REAPPLY;
	}
}

int sg_plan_build(const struct sg_migration_set *set, const struct sg_history *h, const char *target,
		  struct sg_plan *plan, struct sg_error *err)
{
	memset(plan, 0, sizeof(*plan));
	if (target) {
		const struct sg_migration *t = sg_migration_find(set, target);
		if (!t && sg_version_cmp(target, "0") != 0)
			return sg_fail(err, SG_OUTCOME_USAGE, "target version %s is not in the migration directory %s",
				       target, set->dir);
		plan->target = t ? t->version : NULL;
	} else if (set->count > 0) {
		plan->target = set->items[set->count - 1].version;
	}
	plan->items = sg_calloc(set->count + h->count + 1, sizeof(*plan->items));

	/* the newest version with a row (rows are sorted), for out-of-order
	 * detection */
	const char *newest_applied = h->count ? h->rows[h->count - 1].version : NULL;   /* kept in plan->newest_applied */

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
		if (it->row && sg_row_state_of(it->row) == SG_ROW_PARTIAL) {
			it->state = SG_M_PARTIAL;
			plan->npartial++;
		} else if (it->row && !row_is_done(it->row)) {
			it->state = SG_M_FAILED;
			plan->nfailed++;
		} else if (it->row) {
			/* a baselined row records the file's checksum at baseline time;
			 * a version adopted from another tool before this directory
			 * had its file records none, and matches any file */
			it->renamed = renamed(it->row, m);
			if (it->renamed || (strcmp(it->row->checksum, m->checksum) != 0 && it->row->checksum[0] != '\0')) {
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
		} else if (sg_row_state_of(r) == SG_ROW_PARTIAL) {
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
	/* an applied version the directory does not know is a newer release's
	 * only when it is newer than every version the directory has: below
	 * one, the directory lost it (deleted or renamed) */
	bool below_a_file = false;
	for (size_t i = plan->count; i-- > 0;) {
		struct sg_plan_item *it = &plan->items[i];
		if (it->m)
			below_a_file = true;
		else if (it->state == SG_M_UNKNOWN && below_a_file) {
			it->state = SG_M_MISSING;
			plan->nunknown--;
			plan->nmissing++;
		}
	}
	plan_repeatables(set, h, plan);
	return 0;
}

void sg_plan_free(struct sg_plan *plan)
{
	free(plan->reps);
	free(plan->items);
	memset(plan, 0, sizeof(*plan));
}

int sg_plan_check(const struct sg_plan *plan, bool strict, bool allow_out_of_order, struct sg_error *err)
{
	for (size_t i = 0; i < plan->count; i++) {
		const struct sg_plan_item *it = &plan->items[i];
		const struct sg_history_row *r = it->row;
		if (it->state == SG_M_FAILED) {
			enum sg_row_state st = sg_row_state_of(r);
			bool reverting = st == SG_ROW_FAILED_REVERT || st == SG_ROW_PARTIAL_REVERT;
			char *what = sg_asprintf("migration %s%s%s is %s after %ld statement(s) of its %s script%s%s",
						 r->version, r->name[0] ? "_" : "", r->name, r->status, r->statements_done,
						 reverting ? "down" : "up", r->error ? ": " : "", r->error ? r->error : "");
			sg_row_refuse(sg_row_transition_find(st, SG_EV_RESUME), r->version, what, err);
			free(what);
			return -1;
		}
		if (it->state == SG_M_PARTIAL && it->m && sg_row_check_resumable(r, it->m, err) != 0)
			return -1;
		if (it->state == SG_M_CHANGED && it->renamed)
			return sg_row_check_name(r, it->m, err);
		if (it->state == SG_M_CHANGED) {
			char *what = sg_asprintf("checksum mismatch: %s was applied with checksum %s but the file now has %s",
						 it->m->up_file, r->checksum, it->m->checksum);
			sg_row_refuse(sg_row_transition_find(sg_row_state_of(r), SG_EV_FILE_CHANGED), r->version, what, err);
			free(what);
			return -1;
		}
	}
	for (size_t i = 0; i < plan->count; i++) {
		if (plan->items[i].state != SG_M_MISSING)
			continue;
		for (size_t k = i + 1; k < plan->count; k++)
			if (plan->items[k].m)
				return sg_fail(err, SG_OUTCOME_INTEGRITY,
					       "applied version %s is missing from the migration directory, which has "
					       "the newer version %s: its file was deleted or renamed; restore it (a "
					       "newer release's migrations are accepted only above every version the "
					       "directory has)", plan->items[i].version, plan->items[k].m->up_file);
	}
	if (strict && plan->nunknown > 0) {
		for (size_t i = 0; i < plan->count; i++)
			if (plan->items[i].state == SG_M_UNKNOWN)
				return sg_fail(err, SG_OUTCOME_INTEGRITY,
					       "--strict: the database has applied version %s which this migration "
					       "directory does not contain (%zu unknown in all)",
					       plan->items[i].version, plan->nunknown);
	}
	if (!allow_out_of_order && plan->nout_of_order > 0) {
		for (size_t i = 0; i < plan->count; i++)
			if (plan->items[i].out_of_order)
				return sg_fail(err, SG_OUTCOME_INTEGRITY,
					       "pending migration %s is older than the newest applied version %s; "
					       "pass --allow-out-of-order to apply it anyway", plan->items[i].m->up_file,
					       plan->newest_applied);
	}
	return 0;
}
