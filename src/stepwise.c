/*
 * stepwise.c - running a script statement by statement with exact progress
 * (MySQL, whose DDL commits implicitly; no-transaction scripts everywhere).
 *
 * The history row is the migration's journal. Before a statement runs, the
 * row says how many statements are done and which one is next; after it,
 * the count moves on. So after any kill at most one statement is in doubt:
 * the one the row names, and only if it is one that runs alone.
 *
 * Statements that can run in a transaction commit together with the
 * progress record that counts them, so they are never in doubt: on MySQL
 * consecutive ones share one transaction and go to the server in batches;
 * elsewhere each has its own, keeping a no-transaction script's
 * commit-per-statement meaning. Statements that commit implicitly (MySQL
 * DDL) or cannot run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM)
 * run alone, and a SIGTERM lets such a statement finish within
 * --stop-grace before anything is canceled: canceled, it would be in
 * doubt. A transaction of grouped statements is canceled at once: it
 * rolls back and the next run does it again, so nothing is lost.
 *
 * Resuming, the statement in doubt is run again: an error that proves it
 * had taken effect ("already exists" after a CREATE, the driver's table)
 * counts it as done; any other error stops the run (exit 4) naming it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/log.h"
#include "schemagate/run.h"
#include "schemagate/sqlsplit.h"

/* One transaction of grouped statements stays this small, so a stop or a
 * failure never rolls back more than this, and one batch fits a server
 * packet (MySQL max_allowed_packet is 16 MiB by default). */
#define GROUP_MAX_STATEMENTS 5000
#define GROUP_MAX_BYTES (4u << 20)

struct steps_run {
	struct sg_run *r;
	const struct sg_steps *s;
	size_t n;
	size_t done;          /* statements known done (committed and counted) */
	bool in_user_txn;     /* the script opened a transaction of its own */
	struct sg_buf verify; /* the lock check as a statement (sg_steps_batch), or empty */
};

static enum sg_stmt_kind kind_of(const struct steps_run *x, size_t i)
{
	const struct sg_driver *d = x->r->drv;
	return d->classify ? d->classify(x->s->list->items[i].sql) : SG_STMT_STANDALONE;
}

/* "statement 3 of 5 (line 7: ALTER TABLE t ADD c int; sha256 1f0c9a2b3e4d)" */
static char *describe(const struct steps_run *x, size_t i)
{
	const struct sg_statement *st = &x->s->list->items[i];
	char head[120], sum[65];
	sg_statement_head(st->sql, head, sizeof(head));
	sg_checksum(st->sql, strlen(st->sql), sum);
	return sg_asprintf("statement %zu of %zu (line %d: %s; sha256 %.12s)", i + 1, x->n, st->line, head, sum);
}

/* The row after `done` statements: which one runs next. */
static int record_progress(struct steps_run *x, size_t done, struct sg_error *err)
{
	if (x->s->row == SG_ROW_ABSENT) {
		x->done = done;
		return 0;
	}
	char *next = done < x->n ? describe(x, done) : NULL;
	char *note = next ? sg_asprintf("next: %s", next) : NULL;
	struct sg_row_change chg = {.version = x->s->version, .statements_done = (long)done, .note = note};
	int rc = sg_row_move(x->r->conn, x->r->cfg->table, x->s->row, SG_EV_STATEMENT_DONE, &chg, err);
	free(next);
	free(note);
	if (rc == 0)
		x->done = done;
	return rc;
}

/* Best effort after a stop or failure (the cleanup window may be short). */
static void record_note(struct steps_run *x, size_t done, const char *note)
{
	if (x->s->row == SG_ROW_ABSENT)
		return;
	struct sg_error e = {0};
	struct sg_row_change chg = {.version = x->s->version, .statements_done = (long)done, .note = note};
	if (sg_row_move(x->r->conn, x->r->cfg->table, x->s->row, SG_EV_STOPPED, &chg, &e) != 0)
		sg_debug("history", "could not record where %s stopped: %s", x->s->version, e.msg);
}

static void name_statement(struct steps_run *x, size_t i, struct sg_error *err)
{
	char *what = describe(x, i);
	sg_error_prefix(err, "%s", what);
	free(what);
}

/*
 * After a failure: the script's own transaction (its BEGIN) may still be
 * open, aborted on PostgreSQL. Roll it back before anything records the
 * failure, or the row and the event would join it and be lost with it
 * (25P02). Its statements were never counted, so the row stays true.
 */
static void end_own_transaction(struct sg_run *r, const struct sg_error *err)
{
	if (sg_connection_lost(err) || !r->conn || !sg_conn_in_transaction(r->conn))
		return;
	struct sg_error e = {0};
	if (sg_conn_rollback(r->conn, &e) != 0)
		sg_debug("rollback", "rolling back the script's own transaction failed: %s", e.msg);
}

static bool stopped(struct steps_run *x) { return sg_loop_stopping(&x->r->loop); }

/* Statements [i, j) in one transaction with the progress record that
 * counts them: all of them done, or none. */
static int run_group(struct steps_run *x, size_t i, size_t j, struct sg_error *err)
{
	struct sg_run *r = x->r;
	const char *sqls[GROUP_MAX_STATEMENTS];
	for (size_t k = i; k < j; k++)
		sqls[k - i] = x->s->list->items[k].sql;
	size_t ok = 0;
	/* no grace here: canceled, the group rolls back and loses nothing */
	int rc = sg_conn_begin(r->conn, err);
	if (rc == 0) {
		if (r->drv->exec_batch) {
			rc = r->drv->exec_batch(r->conn, sqls, j - i, &ok, NULL, err);
		} else {
			for (; ok < j - i && rc == 0; ok++)
				rc = sg_conn_exec(r->conn, sqls[ok], err);
			if (rc != 0)
				ok--;
		}
	}
	bool statement_failed = rc != 0 && sg_statement_failed(err) && i + ok < j;
	if (rc == 0)
		rc = sg_lock_verify(r->lock, r->conn, err);
	if (rc == 0)
		rc = record_progress(x, j, err);
	if (rc == 0)
		rc = sg_conn_commit(r->conn, err);
	if (rc == 0)
		return 0;
	struct sg_error e = {0};
	if (!sg_connection_lost(err))
		sg_conn_rollback(r->conn, &e);
	if (stopped(x)) {
		/* InnoDB (or PostgreSQL) rolled the group back: not done, not
		 * in doubt */
		char note[160];
		if (j == i + 1)
			snprintf(note, sizeof(note), "next: statement %zu of %zu was rolled back when the run stopped",
				 j, x->n);
		else
			snprintf(note, sizeof(note), "next: statements %zu-%zu of %zu were rolled back when the run stopped",
				 i + 1, j, x->n);
		record_note(x, i, note);
		return sg_stopped_error(r, err, "running a statement");
	}
	if (!statement_failed)
		return -1;
	/* The statements before the failing one were rolled back with it:
	 * run them again on their own, so the history says exactly "done up
	 * to the failing statement" and a repair concerns that one alone. */
	struct sg_error failure = *err;
	if (ok > 0 && run_group(x, i, i + ok, err) != 0)
		return -1;
	*err = failure;
	name_statement(x, i + ok, err);
	return -1;
}

bool sg_steps_batch(struct sg_run *r)
{
	if (!r->drv->exec_batch || r->drv->before_statement || r->drv->after_statement || !r->drv->batch_elapsed_ms_sql)
		return false;
	struct sg_buf verify = {0};
	struct sg_error e = {0};
	bool can = false;
	sg_lock_verify_sql(r->lock, r->conn, &can, &verify, &e);
	sg_buf_free(&verify);
	return can;
}

/* The row's first write failed, so nothing ran: a row already there
 * (ER_DUP_ENTRY) means another instance recorded it, the lock was lost. */
static int insert_failed(struct steps_run *x, struct sg_error *err)
{
	struct sg_error e = {0};
	if (strcmp(err->sqlstate, "1062") == 0 &&
	    sg_history_check_absent(x->r->conn, x->r->cfg->table, x->s->version, &e) != 0) {
		*err = e;
	} else if (err->kind != SG_ERRK_LOCK_LOST) {
		/* a database error outside the migration (no INSERT right, a
		 * down script past max_allowed_packet), as sg_row_move says it */
		sg_error_prefix(err, "recording start of %s in %s", x->s->version, x->r->cfg->table);
		sg_error_ours(err);
	}
	return -1;
}

/* The parts of one round trip (run_batched) and where each one is. */
enum { PART_VERIFY, PART_INSERT, PART_STATEMENT, PART_RECORD, PART_EVENT, PARTS };

static int record_sql(struct steps_run *x, size_t i, bool last, struct sg_buf *record, struct sg_buf *event)
{
	struct sg_run *r = x->r;
	char *next = last || i + 1 >= x->n ? NULL : describe(x, i + 1);
	char *note = next ? sg_asprintf("next: %s", next) : NULL;
	char *duration = NULL, *detail = NULL;
	if (last) {
		/* the client's time until this round trip, and the server's in it */
		duration = sg_asprintf("(%llu + %s)", (unsigned long long)(sg_now_ms() - x->s->fresh->t0),
				       r->drv->batch_elapsed_ms_sql);
		detail = sg_asprintf("CONCAT(%s, 'ms')", duration);
	}
	struct sg_row_change chg = {.version = x->s->version, .statements_done = (long)(i + 1), .note = note};
	int rc = sg_row_move_sql(r->conn, r->cfg->table, x->s->row, last ? SG_EV_LAST_STATEMENT_DONE : SG_EV_STATEMENT_DONE,
				 &chg, duration, record);
	if (rc == 0 && last)
		rc = sg_event_sql(r->conn, r->cfg->table, x->s->fresh->event, x->s->version, "ok", detail, event);
	free(next);
	free(note);
	free(duration);
	free(detail);
	return rc;
}

/*
 * MariaDB: the lock check, statement i and the record that counts it in
 * one multi-statement round trip. The server runs them in order, each
 * committing on its own, and an error skips the rest: the row says what a
 * kill at any instant left, as when they go one by one. A fresh apply's
 * first statement also carries the row's insert (after the lock check,
 * before the statement), its last one the move to applied and the audit
 * event. Returns 0 done; 1 when the text cannot be built (nothing was
 * sent); -2 when the lock check or the statement failed (err, as
 * sg_conn_exec says it); -1 when the bookkeeping failed.
 */
static int run_batched(struct steps_run *x, size_t i, struct sg_error *err)
{
	struct sg_run *r = x->r;
	struct sg_steps_fresh *fresh = x->s->fresh;
	bool last = fresh && i + 1 == x->n;
	struct sg_buf record = {0}, event = {0};
	if (record_sql(x, i, last, &record, &event) != 0) {
		sg_buf_free(&record);
		sg_buf_free(&event);
		return 1;
	}
	const char *parts[PARTS];
	size_t at[PARTS], n = 0;
	for (int k = 0; k < PARTS; k++)
		at[k] = SIZE_MAX;
	at[PART_VERIFY] = n, parts[n++] = x->verify.data;
	if (fresh && !fresh->inserted)
		at[PART_INSERT] = n, parts[n++] = fresh->insert;
	at[PART_STATEMENT] = n, parts[n++] = x->s->list->items[i].sql;
	at[PART_RECORD] = n, parts[n++] = record.data;
	if (last)
		at[PART_EVENT] = n, parts[n++] = event.data;
	long affected[PARTS];
	size_t ok = 0;
	sg_loop_grace_begin(&r->loop, r->cfg->stop_grace_ms);
	int rc = r->drv->exec_batch(r->conn, parts, n, &ok, affected, err);
	sg_loop_grace_end(&r->loop);
	sg_buf_free(&record);
	sg_buf_free(&event);
	if (at[PART_INSERT] != SIZE_MAX && ok > at[PART_INSERT])
		fresh->inserted = true;
	if (rc != 0 && ok == at[PART_INSERT])
		return insert_failed(x, err);
	if (rc != 0 && ok <= at[PART_STATEMENT])
		return -2;   /* the lock check or the statement */
	if (rc != 0 && ok == at[PART_RECORD]) {
		/* the statement ran, its record did not: it is in doubt */
		sg_error_prefix(err, "recording statement %zu of %s in %s", i + 1, x->s->version, r->cfg->table);
		sg_error_ours(err);
		return -1;
	}
	if (rc != 0) {
		sg_warn("event", "could not record the %s event: %s", fresh->event, err->msg);
		sg_error_clear(err);
	}
	if (sg_row_check_moved(r->cfg->table, x->s->row, last ? SG_EV_LAST_STATEMENT_DONE : SG_EV_STATEMENT_DONE,
			       x->s->version, affected[at[PART_RECORD]], err) != 0)
		return -1;
	x->done = i + 1;
	if (last)
		fresh->finished = true;
	return 0;
}

/* Only the row's first write, with the lock check, when the first
 * statement goes in a transaction of grouped statements. */
static int write_insert(struct steps_run *x, struct sg_error *err)
{
	struct sg_steps_fresh *fresh = x->s->fresh;
	const char *parts[] = {x->verify.data, fresh->insert};
	size_t ok = 0;
	int rc = x->r->drv->exec_batch(x->r->conn, parts, 2, &ok, NULL, err);
	fresh->inserted = ok == 2;
	return rc != 0 && ok == 1 ? insert_failed(x, err) : rc;
}

/* One statement that runs alone. in_doubt: it may have run before. */
static int run_alone(struct steps_run *x, size_t i, bool in_doubt, struct sg_error *err)
{
	struct sg_run *r = x->r;
	const char *sql = x->s->list->items[i].sql;
	/* not a BEGIN or COMMIT of the script's: its record would join it */
	int rc = x->verify.len && !in_doubt && kind_of(x, i) == SG_STMT_STANDALONE ? run_batched(x, i, err) : 1;
	if (rc == 0 || rc == -1)
		return rc;
	if (rc > 0) {
		if (sg_lock_verify(r->lock, r->conn, err) != 0)
			return -1;
		if (r->drv->before_statement && r->drv->before_statement(r->conn, sql, err) != 0) {
			name_statement(x, i, err);
			return -1;
		}
		sg_loop_grace_begin(&r->loop, r->cfg->stop_grace_ms);
		rc = sg_conn_exec(r->conn, sql, err);
		sg_loop_grace_end(&r->loop);
	}
	if (rc != 0 && in_doubt && !sg_loop_canceled(&r->loop) && r->drv->already_done &&
	    r->drv->already_done(sql, err)) {
		char *what = describe(x, i);
		sg_warn("in_doubt_resolved", "%s was in doubt; running it again answered \"%s\": it had taken "
			"effect, counted as done", what, err->msg);
		free(what);
		sg_error_clear(err);
		rc = 0;
	}
	if (rc == 0 && r->drv->after_statement)
		rc = r->drv->after_statement(r->conn, sql, err);
	if (rc == 0) {
		x->in_user_txn = sg_conn_in_transaction(r->conn);
		/* inside the script's own transaction, a progress record would
		 * join it: count when it ends */
		return x->in_user_txn ? 0 : record_progress(x, i + 1, err);
	}
	if (sg_loop_canceled(&r->loop)) {
		end_own_transaction(r, err);
		char *what = describe(x, i);
		char *note = sg_asprintf("in doubt: %s was canceled after --stop-grace; it may have taken effect",
					 what);
		record_note(x, i, note);
		free(note);
		free(what);
		return sg_stopped_error(r, err, "running a statement (now in doubt)");
	}
	if (err->kind == SG_ERRK_LOCK_LOST || sg_connection_lost(err))
		return -1;
	name_statement(x, i, err);
	if (in_doubt) {
		/* neither done nor proven done: a human must look at this one */
		sg_error_prefix(err, "resuming an interrupted migration");
		err->outcome = SG_OUTCOME_INTEGRITY;
	}
	return -1;
}

int sg_steps_run(struct sg_run *r, const struct sg_steps *s, size_t *done, struct sg_error *err)
{
	struct steps_run x = {.r = r, .s = s, .n = s->list->count, .done = s->start};
	size_t i = s->start;
	int rc = 0;
	bool groups = sg_conn_can(r->conn, SG_CAP_GROUP_STATEMENTS);
	if (s->row != SG_ROW_ABSENT && sg_steps_batch(r)) {
		bool can = false;
		rc = sg_lock_verify_sql(r->lock, r->conn, &can, &x.verify, err);
	}
	if (rc == 0 && s->fresh && !s->fresh->inserted && (i >= x.n || kind_of(&x, i) != SG_STMT_STANDALONE))
		rc = write_insert(&x, err);
	while (i < x.n && rc == 0) {
		if (stopped(&x)) {
			rc = sg_stopped_error(r, err, "between two statements");
			break;
		}
		size_t j = i + 1;
		if (!x.in_user_txn && kind_of(&x, i) == SG_STMT_TRANSACTIONAL) {
			size_t bytes = strlen(s->list->items[i].sql);
			while (groups && j < x.n && j - i < GROUP_MAX_STATEMENTS && bytes < GROUP_MAX_BYTES &&
			       kind_of(&x, j) == SG_STMT_TRANSACTIONAL)
				bytes += strlen(s->list->items[j++].sql);
			rc = run_group(&x, i, j, err);
		} else {
			rc = run_alone(&x, i, s->start_in_doubt && i == s->start, err);
		}
		i = j;
	}
	sg_buf_free(&x.verify);
	if (rc == 0 && x.in_user_txn)
		rc = sg_fail(err, SG_OUTCOME_MIGRATION_FAILED, "%s ends inside a transaction it opened itself (a BEGIN without "
			     "COMMIT)", s->file);
	if (rc != 0)
		end_own_transaction(r, err);
	*done = x.done;
	return rc;
}
