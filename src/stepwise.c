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
			rc = r->drv->exec_batch(r->conn, sqls, j - i, &ok, err);
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

/* One statement that runs alone. in_doubt: it may have run before. */
static int run_alone(struct steps_run *x, size_t i, bool in_doubt, struct sg_error *err)
{
	struct sg_run *r = x->r;
	const char *sql = x->s->list->items[i].sql;
	if (r->drv->before_statement && r->drv->before_statement(r->conn, sql, err) != 0) {
		name_statement(x, i, err);
		return -1;
	}
	sg_loop_grace_begin(&r->loop, r->cfg->stop_grace_ms);
	int rc = sg_conn_exec(r->conn, sql, err);
	sg_loop_grace_end(&r->loop);
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
			rc = sg_lock_verify(r->lock, r->conn, err);
			if (rc == 0)
				rc = run_alone(&x, i, s->start_in_doubt && i == s->start, err);
		}
		i = j;
	}
	if (rc == 0 && x.in_user_txn)
		rc = sg_fail(err, SG_OUTCOME_MIGRATION_FAILED, "%s ends inside a transaction it opened itself (a BEGIN without "
			     "COMMIT)", s->file);
	if (rc != 0)
		end_own_transaction(r, err);
	*done = x.done;
	return rc;
}
