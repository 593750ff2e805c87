/*
 * apply.c - applying or reverting one migration, under the lock.
 *
 * Transactional (PostgreSQL, SQLite): the script, the lock check and the
 * history row commit together, so a kill at any instant leaves the
 * migration either applied and recorded, or absent. Statement by
 * statement (MySQL, no-transaction scripts): each statement commits on
 * its own and the history row records how far the migration got.
 *
 * Failures are classified, not acted on: the caller (the state machine)
 * decides what a lost lock, a lost connection or a stop means.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/log.h"
#include "schemagate/run.h"

#define DDL_LOCK_RETRIES 6

static uint64_t elapsed_since(uint64_t t0) { return sg_now_ms() - t0; }

static void record_failure_event(struct sg_run *r, const char *version, const char *error)
{
	struct sg_error e = {0};
	if (sg_event_record(r->conn, r->cfg->table, "failure", version, "failed", error, &e) != 0)
		sg_debug("event", "could not record the failure event: %s", e.msg);
}

/* Sleep while holding the lock, keeping its session alive. */
static int sleep_holding_lock(struct sg_run *r, uint64_t ms, struct sg_error *err)
{
	uint64_t until = sg_now_ms() + ms;
	for (;;) {
		uint64_t now = sg_now_ms();
		if (now >= until)
			return 0;
		uint64_t nap = until - now < SG_LOCK_KEEPALIVE_MS ? until - now : SG_LOCK_KEEPALIVE_MS;
		if (sg_io_sleep(&r->loop.io, nap) == SG_IO_CANCELED)
			return sg_stopped_error(r, err, "waiting to retry a migration");
		if (sg_lock_keepalive(r->lock, err) != 0)
			return -1;
	}
}

/* The last checks before a migration's transaction commits: the lock is
 * still ours, and the script did not end the transaction itself (a stray
 * COMMIT in the file would leave part of it committed, unrecorded). */
static int script_ended_transaction(const char *file, struct sg_error *err)
{
	return sg_fail_db(err, SG_ERRK_STATEMENT, NULL,
			  "%s ended the migration's transaction itself (a COMMIT or ROLLBACK in the script): "
			  "whatever it did before that is committed and is not recorded; fix the database by "
			  "hand, then mark the file `-- schemagate:no-transaction` or remove the transaction "
			  "control", file);
}

static int check_before_commit(struct sg_run *r, const char *file, struct sg_error *err)
{
	if (sg_lock_verify(r->lock, r->conn, err) != 0)
		return -1;
	if (!sg_conn_in_transaction(r->conn))
		return script_ended_transaction(file, err);
	return 0;
}

/* After a failed transactional attempt: roll back, and say precisely what
 * happened, without deciding what it means. */
static int failed_in_transaction(struct sg_run *r, const struct sg_error *why)
{
	struct sg_error e = {0};
	/* a lost session took its transaction with it */
	if (!sg_connection_lost(why) && sg_conn_rollback(r->conn, &e) != 0)
		sg_debug("rollback", "rollback failed: %s", e.msg);
	return -1;
}

/*
 * The same transaction in one round trip (PostgreSQL): BEGIN, the script,
 * the history row, the audit event, the lock check and COMMIT go to the
 * server as one message, in that order, so the guarantees are those of
 * the statement-by-statement path below: the lock is verified inside the
 * transaction just before COMMIT, and a kill at any instant leaves the
 * migration applied and recorded, or absent. Returns 1 when the driver or
 * the lock kind cannot (the lease is verified against the client's clock),
 * else 0, or -1 rolled back.
 */
static int apply_in_one_message(struct sg_run *r, const struct sg_migration *m, struct sg_error *err)
{
	if (!r->conn->driver->exec_transaction)
		return 1;
	struct sg_buf verify = {0}, row = {0}, event = {0};
	bool can = false;
	int rc = sg_lock_verify_sql(r->lock, r->conn, &can, &verify, err);
	/* the row's write is the transition table's, batched: what cannot
	 * batch runs statement by statement, where the same move runs */
	struct sg_row_change chg = {.version = m->version, .m = m, .batch = &row,
				    .duration_sql = r->conn->driver->batch_elapsed_ms_sql};
	struct sg_error batch_err = {0};
	if (rc == 0 && can && (sg_row_move(r->conn, r->cfg->table, SG_ROW_ABSENT, SG_EV_COMMITTED, &chg, &batch_err) != 0 ||
			       sg_event_applied_sql(r->conn, r->cfg->table, m, &event) != 0))
		can = false;
	if (rc == 0 && can) {
		const char *parts[] = {m->up_sql, row.data, event.data, verify.data};
		bool script_done = false;
		rc = r->conn->driver->exec_transaction(r->conn, parts, verify.len ? 4 : 3, &script_done, err);
		if (rc != 0 && script_done && err->kind == SG_ERRK_STATEMENT) {
			/* the script ran; the row or the event could not be written
			 * (no INSERT privilege): a database error, not the migration's */
			sg_error_prefix(err, "recording %s in %s", m->version, r->cfg->table);
			sg_error_ours(err);
		}
		if (rc != 0 && !sg_connection_lost(err) && !sg_conn_in_transaction(r->conn)) {
			script_ended_transaction(m->up_file, err);
		} else if (rc != 0) {
			/* the history row is already there: tell a lost lock from
			 * a script's own duplicate key */
			bool duplicate = strcmp(err->sqlstate, "23505") == 0;
			failed_in_transaction(r, err);
			struct sg_error e = {0};
			if (duplicate && sg_history_check_absent(r->conn, r->cfg->table, m->version, &e) != 0 &&
			    e.kind == SG_ERRK_LOCK_LOST)
				*err = e;
		}
	}
	sg_buf_free(&verify);
	sg_buf_free(&row);
	sg_buf_free(&event);
	return rc != 0 ? -1 : can ? 0 : 1;
}

/* A versioned migration's row goes from absent; a repeatable's from the
 * row it had (prev), only while it still records prev's checksum. */
static int apply_in_transaction(struct sg_run *r, const struct sg_migration *m, const struct sg_history_row *prev,
				uint64_t t0, struct sg_error *err)
{
	int one = m->repeatable ? 1 : apply_in_one_message(r, m, err);
	if (one <= 0)
		return one;
	if (sg_conn_begin(r->conn, err) != 0)
		return -1;
	char dur[32];
	struct sg_row_change chg = {.version = m->version, .m = m, .old_checksum = prev ? prev->checksum : NULL};
	enum sg_row_state from = prev ? sg_row_state_of(prev) : SG_ROW_ABSENT;
	enum sg_row_event ev = m->repeatable ? SG_EV_REPEATABLE_COMMITTED : SG_EV_COMMITTED;
	if (sg_conn_exec(r->conn, m->up_sql, err) == 0 && check_before_commit(r, m->up_file, err) == 0 &&
	    (chg.duration_ms = (long)elapsed_since(t0),
	     sg_row_move(r->conn, r->cfg->table, from, ev, &chg, err) == 0) &&
	    (snprintf(dur, sizeof(dur), "%llums", (unsigned long long)elapsed_since(t0)), 1) &&
	    sg_event_record(r->conn, r->cfg->table, "apply", m->version, "ok", dur, err) == 0 &&
	    sg_conn_commit(r->conn, err) == 0)
		return 0;
	return failed_in_transaction(r, err);
}

static int apply_transactional(struct sg_run *r, const struct sg_migration *m, const struct sg_history_row *prev,
			       const struct sg_log_fields *f, struct sg_error *err)
{
	uint64_t t0 = sg_now_ms(), backoff = 500;
	for (int attempt = 1;; attempt++) {
		if (apply_in_transaction(r, m, prev, t0, err) == 0)
			return 0;
		if (err->kind != SG_ERRK_LOCK_TIMEOUT || attempt >= DDL_LOCK_RETRIES || sg_loop_canceled(&r->loop))
			break;
		/* Rolled back: live traffic was never queued behind us for
		 * longer than --ddl-lock-timeout. Try again shortly. */
		sg_log(SG_LOG_WARN, "ddl_lock_retry", f, "%s: could not get a table lock within %llums (attempt %d of "
		       "%d); rolled back, retrying in ~%llums", m->up_file,
		       (unsigned long long)r->cfg->ddl_lock_timeout_ms, attempt, DDL_LOCK_RETRIES,
		       (unsigned long long)backoff);
		if (sleep_holding_lock(r, sg_jitter(backoff), err) != 0)
			return -1;
		backoff = backoff * 2 > 8000 ? 8000 : backoff * 2;
		t0 = sg_now_ms();
	}
	if (sg_loop_canceled(&r->loop))
		return sg_stopped_error(r, err, "applying a migration (rolled back)");
	if (!sg_migration_failed(r, err))
		return -1;
	sg_error_prefix(err, "applying %s", m->up_file);
	record_failure_event(r, m->version, err->msg);
	return -1;
}

/*
 * A statement-by-statement migration (MySQL; no-transaction scripts). A
 * fresh one starts with its partial row (which also stores the down
 * script: if the server cannot take it, nothing has run yet); resuming,
 * this instance takes over the row of a writer that is gone and goes on
 * from the first statement not known to be done.
 */
static int apply_statements(struct sg_run *r, const struct sg_migration *m, const struct sg_history_row *resume,
			    bool in_doubt, struct sg_error *err)
{
	uint64_t t0 = sg_now_ms();
	const struct sg_statement_list *list = &m->up_statements;
	struct sg_steps steps = {.version = m->version, .file = m->up_file, .list = list, .row = SG_ROW_PARTIAL};
	struct sg_row_change chg = {.version = m->version, .m = m, .row = resume};
	struct sg_steps_fresh fresh = {.event = "apply", .t0 = t0};
	struct sg_buf insert = {0};
	int rc = 0;
	if (resume) {
		steps.start = (size_t)resume->statements_done;
		steps.start_in_doubt = in_doubt;
		/* resuming runs the rest of this file: the row records its
		 * checksum (repair --resume after the file was fixed) */
		chg.statements_done = resume->statements_done;
		chg.checksum = m->checksum;
		rc = sg_row_move(r->conn, r->cfg->table, sg_row_state_of(resume), SG_EV_RESUME, &chg, err);
		if (rc == 0 && in_doubt)
			sg_warn("resume", "resuming %s at statement %zu of %zu (the previous run, by %s, stopped there)",
				m->up_file, steps.start + 1, list->count, resume->applied_by ? resume->applied_by : "?");
		else if (rc == 0)
			sg_info("resume", "resuming %s at statement %zu of %zu (the statements before it are done)",
				m->up_file, steps.start + 1, list->count);
	} else if (sg_steps_batch(r) && sg_row_move_sql(r->conn, r->cfg->table, SG_ROW_ABSENT, SG_EV_START, &chg, NULL,
							 &insert) == 0) {
		/* the row's insert goes with the first statement (MariaDB) */
		fresh.insert = insert.data;
		steps.fresh = &fresh;
	} else {
		rc = sg_row_move(r->conn, r->cfg->table, SG_ROW_ABSENT, SG_EV_START, &chg, err);
	}
	bool recorded = resume || rc == 0;   /* the row the progress and a failure go to */
	size_t done = steps.start;
	if (rc == 0)
		rc = sg_steps_run(r, &steps, &done, err);
	sg_buf_free(&insert);
	if (steps.fresh)
		recorded = fresh.inserted;
	if (!recorded && !resume && err->kind != SG_ERRK_LOCK_LOST)
		sg_error_prefix(err, "nothing of %s ran", m->up_file);
	if (rc == 0 && fresh.finished)
		return 0;   /* the row is applied and the event recorded */
	if (rc == 0) {
		struct sg_row_change last = {.version = m->version, .statements_done = (long)list->count,
					     .duration_ms = (long)elapsed_since(t0)};
		rc = sg_row_move(r->conn, r->cfg->table, SG_ROW_PARTIAL, SG_EV_LAST_STATEMENT_DONE, &last, err);
	}
	if (rc == 0) {
		char dur[32];
		snprintf(dur, sizeof(dur), "%llums", (unsigned long long)elapsed_since(t0));
		struct sg_error e = {0};
		if (sg_event_record(r->conn, r->cfg->table, resume ? "resume" : "apply", m->version, "ok", dur, &e) != 0)
			sg_warn("event", "could not record the apply event: %s", e.msg);
		return 0;
	}
	/* stopped, lock or connection lost: the row says exactly where this
	 * run got; the next holder resumes from there */
	if (sg_stop_requested(err) || err->kind == SG_ERRK_LOCK_LOST || sg_connection_lost(err) ||
	    sg_loop_stopping(&r->loop))
		return -1;
	if (!recorded) {
		/* the server refused the partial row (too large, no privilege):
		 * nothing ran and nothing is left to repair */
		record_failure_event(r, m->version, err->msg);
		err->outcome = sg_outcome_of(r, err, true);
		return -1;
	}
	sg_error_prefix(err, "applying %s", m->up_file);
	struct sg_error e = {0};
	struct sg_row_change failed = {.version = m->version, .statements_done = (long)done,
				       .duration_ms = (long)elapsed_since(t0), .note = err->msg};
	if (sg_row_move(r->conn, r->cfg->table, SG_ROW_PARTIAL, SG_EV_SERVER_ERROR, &failed, &e) != 0)
		sg_warn("history", "could not record the failure of %s: %s", m->version, e.msg);
	record_failure_event(r, m->version, err->msg);
	err->outcome = sg_outcome_of(r, err, true);
	char cause[SG_ERROR_MSG];
	memcpy(cause, err->msg, sizeof(cause));
	sg_fail(err, err->outcome, "%s; %zu statement(s) before it are applied and stay applied; see `schemagate "
		"repair --help`", cause, done);
	return -1;
}

int sg_apply_one(struct sg_run *r, const struct sg_migration *m, const struct sg_history_row *resume, bool in_doubt,
		 struct sg_error *err)
{
	struct sg_log_fields f = {.version = m->version, .name = m->name, .duration_ms = -1, .waited_ms = -1};
	sg_log(SG_LOG_INFO, "apply_start", &f, "applying %s%s", m->up_file, m->up_no_tx ? " (no transaction)" : "");
	uint64_t t0 = sg_now_ms();
	sg_progress_watch_begin(r, m->up_file, m->version, m->name);
	/* the loader decided (MySQL, no-transaction scripts) and split it offline */
	int rc = !m->up_split && !resume ? apply_transactional(r, m, NULL, &f, err) : apply_statements(r, m, resume, in_doubt, err);
	sg_progress_watch_end(r);
	if (rc != 0)
		return -1;
	f.duration_ms = (int64_t)elapsed_since(t0);
	sg_log(SG_LOG_INFO, "applied", &f, "applied %s in %lldms", m->up_file, (long long)f.duration_ms);
	r->changed++;
	if (r->observer.applied)
		r->observer.applied(r->observer.ctx, m, (uint64_t)f.duration_ms);
	return 0;
}

/*
 * A repeatable migration's text statement by statement (MySQL, whose DDL
 * commits anyway; no-transaction scripts): no progress is recorded, the
 * row moves only when every statement ran. Stopped or failed half-way,
 * the row still records the old checksum and the next up runs the whole
 * text again: a repeatable migration's text is written to be re-run
 * (CREATE OR REPLACE, DROP ... IF EXISTS).
 */
static int reapply_statements(struct sg_run *r, const struct sg_migration *m, const struct sg_history_row *prev,
			      struct sg_error *err)
{
	uint64_t t0 = sg_now_ms();
	struct sg_steps steps = {.version = m->version, .file = m->up_file, .list = &m->up_statements,
				 .row = SG_ROW_ABSENT};
	size_t done = 0;
	int rc = sg_steps_run(r, &steps, &done, err);
	if (rc == 0) {
		struct sg_row_change chg = {.version = m->version, .m = m, .duration_ms = (long)elapsed_since(t0),
					    .old_checksum = prev ? prev->checksum : NULL};
		rc = sg_row_move(r->conn, r->cfg->table, prev ? sg_row_state_of(prev) : SG_ROW_ABSENT,
				 SG_EV_REPEATABLE_COMMITTED, &chg, err);
	}
	if (rc == 0) {
		char dur[32];
		snprintf(dur, sizeof(dur), "%llums", (unsigned long long)elapsed_since(t0));
		struct sg_error e = {0};
		if (sg_event_record(r->conn, r->cfg->table, "apply", m->version, "ok", dur, &e) != 0)
			sg_warn("event", "could not record the apply event: %s", e.msg);
		return 0;
	}
	if (sg_stop_requested(err) || err->kind == SG_ERRK_LOCK_LOST || sg_connection_lost(err) ||
	    sg_loop_stopping(&r->loop))
		return -1;
	err->outcome = sg_outcome_of(r, err, true);
	if (done > 0) {
		char cause[SG_ERROR_MSG];
		memcpy(cause, err->msg, sizeof(cause));
		sg_fail(err, err->outcome, "%s; %zu statement(s) before it ran and committed (the row still records the "
			"previous text: the next up runs the whole file again)", cause, done);
	}
	sg_error_prefix(err, "applying %s", m->up_file);
	record_failure_event(r, m->version, err->msg);
	return -1;
}

int sg_reapply_one(struct sg_run *r, const struct sg_migration *m, const struct sg_history_row *prev,
		   struct sg_error *err)
{
	struct sg_log_fields f = {.version = m->version, .name = m->name, .duration_ms = -1, .waited_ms = -1};
	sg_log(SG_LOG_INFO, "apply_start", &f, "applying repeatable migration %s (%s)", m->up_file,
	       prev ? "changed" : "new");
	uint64_t t0 = sg_now_ms();
	sg_progress_watch_begin(r, m->up_file, m->version, m->name);
	int rc = m->up_split ? reapply_statements(r, m, prev, err) : apply_transactional(r, m, prev, &f, err);
	sg_progress_watch_end(r);
	if (rc != 0)
		return -1;
	f.duration_ms = (int64_t)elapsed_since(t0);
	sg_log(SG_LOG_INFO, "applied", &f, "applied repeatable migration %s in %lldms", m->up_file,
	       (long long)f.duration_ms);
	r->changed++;
	if (r->observer.applied)
		r->observer.applied(r->observer.ctx, m, (uint64_t)f.duration_ms);
	return 0;
}

/* ---- reverting ----------------------------------------------------------- */

static int revert_in_transaction(struct sg_run *r, const struct sg_revert_item *it, struct sg_error *err)
{
	if (sg_conn_begin(r->conn, err) != 0)
		return -1;
	struct sg_row_change chg = {.version = it->version};
	if (sg_conn_exec(r->conn, it->down_sql, err) == 0 && check_before_commit(r, it->version, err) == 0 &&
	    sg_row_move(r->conn, r->cfg->table, it->from, SG_EV_REVERT_COMMITTED, &chg, err) == 0 &&
	    sg_event_record(r->conn, r->cfg->table, "revert", it->version, "ok", NULL, err) == 0 &&
	    sg_conn_commit(r->conn, err) == 0)
		return 0;
	return failed_in_transaction(r, err);
}

/*
 * A down script statement by statement: the row becomes partial-revert
 * (this instance its writer) and counts the down statements, so a kill
 * leaves a row that says how far the revert got, and a failure a
 * failed-revert row a human resumes or repairs. A row that is already
 * partial-revert was taken over by repair --resume: go on from its count.
 */
static int revert_statements(struct sg_run *r, const struct sg_revert_item *it, struct sg_error *err)
{
	char file[96];
	snprintf(file, sizeof(file), "the down script of %s", it->version);
	struct sg_steps steps = {.version = it->version, .file = file, .list = it->statements,
				 .row = SG_ROW_PARTIAL_REVERT, .start = it->start};
	if (it->from != SG_ROW_PARTIAL_REVERT) {
		struct sg_row_change chg = {.version = it->version, .row = it->row, .note = "reverting"};
		if (sg_row_move(r->conn, r->cfg->table, it->from, SG_EV_REVERT_START, &chg, err) != 0)
			return -1;
	}
	size_t done = it->start;
	int rc = sg_steps_run(r, &steps, &done, err);
	struct sg_row_change end = {.version = it->version, .statements_done = (long)done};
	if (rc == 0)
		rc = sg_row_move(r->conn, r->cfg->table, SG_ROW_PARTIAL_REVERT, SG_EV_LAST_STATEMENT_DONE, &end, err);
	if (rc == 0) {
		struct sg_error e = {0};
		sg_event_record(r->conn, r->cfg->table, "revert", it->version, "ok", NULL, &e);
		return 0;
	}
	/* stopped, lock or connection lost: the row says where the revert got
	 * (a cancel the server did on its own is a failure of the statement) */
	if (sg_stop_requested(err) || err->kind == SG_ERRK_LOCK_LOST || sg_connection_lost(err) ||
	    sg_loop_stopping(&r->loop))
		return -1;
	sg_error_prefix(err, "reverting: %zu statement(s) of the down script ran", done);
	end.note = err->msg;
	struct sg_error e = {0};
	if (sg_row_move(r->conn, r->cfg->table, SG_ROW_PARTIAL_REVERT, SG_EV_SERVER_ERROR, &end, &e) != 0)
		sg_warn("history", "could not record the failed revert of %s: %s", it->version, e.msg);
	return -1;
}

int sg_revert_one(struct sg_run *r, const struct sg_revert_item *it, struct sg_error *err)
{
	struct sg_log_fields f = {.version = it->version, .name = it->name, .duration_ms = -1, .waited_ms = -1};
	sg_log(SG_LOG_INFO, "revert_start", &f, "reverting %s_%s%s", it->version, it->name,
	       it->no_tx ? " (no transaction)" : "");
	uint64_t t0 = sg_now_ms();
	char file[96];
	snprintf(file, sizeof(file), "the down script of %s", it->version);
	sg_progress_watch_begin(r, file, it->version, it->name);
	int rc = it->split ? revert_statements(r, it, err) : revert_in_transaction(r, it, err);
	sg_progress_watch_end(r);
	if (rc != 0) {
		if (sg_loop_canceled(&r->loop))
			return sg_stopped_error(r, err, "reverting a migration");
		if (!sg_migration_failed(r, err))
			return -1;
		sg_error_prefix(err, "reverting %s", it->version);
		record_failure_event(r, it->version, err->msg);
		return -1;
	}
	f.duration_ms = (int64_t)elapsed_since(t0);
	sg_log(SG_LOG_INFO, "reverted", &f, "reverted %s_%s in %lldms", it->version, it->name, (long long)f.duration_ms);
	r->changed++;
	return 0;
}

void sg_revert_items_free(struct sg_revert_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].version);
		free(items[i].name);
		free(items[i].checksum);
		sg_script_free(&items[i].stored);
	}
	free(items);
}
