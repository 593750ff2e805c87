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
#include "schemagate/sqlsplit.h"

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
static int check_before_commit(struct sg_run *r, const char *file, struct sg_error *err)
{
	if (sg_lock_verify(r->lock, r->conn, err) != 0)
		return -1;
	if (!sg_conn_in_transaction(r->conn))
		return sg_fail_db(err, SG_ERRK_STATEMENT, SG_EXIT_MIGRATION, NULL,
				  "%s ended the migration's transaction itself (a COMMIT or ROLLBACK in the script): "
				  "whatever it did before that is committed and is not recorded; fix the database by "
				  "hand, then mark the file `-- schemagate:no-transaction` or remove the transaction "
				  "control", file);
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

static int apply_in_transaction(struct sg_run *r, const struct sg_migration *m, uint64_t t0, struct sg_error *err)
{
	if (sg_conn_begin(r->conn, err) != 0)
		return -1;
	char dur[32];
	if (sg_conn_exec(r->conn, m->up_sql, err) == 0 && check_before_commit(r, m->up_file, err) == 0 &&
	    sg_history_record(r->conn, r->cfg->table, m, "applied", 0, (long)elapsed_since(t0), NULL, err) == 0 &&
	    (snprintf(dur, sizeof(dur), "%llums", (unsigned long long)elapsed_since(t0)), 1) &&
	    sg_event_record(r->conn, r->cfg->table, "apply", m->version, "ok", dur, err) == 0 &&
	    sg_conn_commit(r->conn, err) == 0)
		return 0;
	return failed_in_transaction(r, err);
}

/* Is this failure the migration's own (exit 1), or something the state
 * machine handles (lost lock, lost connection, stop, database error)? */
static bool migration_failed(struct sg_run *r, const struct sg_error *err)
{
	if (sg_loop_canceled(&r->loop) && (err->kind == SG_ERRK_CANCELED || err->kind == SG_ERRK_CONNECTION))
		return false;
	return err->kind != SG_ERRK_LOCK_LOST && err->kind != SG_ERRK_CONNECTION && err->kind != SG_ERRK_PERMANENT &&
	       err->exit_code != SG_EXIT_DATABASE;
}

static int apply_transactional(struct sg_run *r, const struct sg_migration *m, const struct sg_log_fields *f,
			       struct sg_error *err)
{
	uint64_t t0 = sg_now_ms(), backoff = 500;
	for (int attempt = 1;; attempt++) {
		if (apply_in_transaction(r, m, t0, err) == 0)
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
	if (!migration_failed(r, err))
		return -1;
	sg_error_prefix(err, "applying %s", m->up_file);
	err->exit_code = SG_EXIT_MIGRATION;
	record_failure_event(r, m->version, err->msg);
	return -1;
}

/*
 * Run a script statement by statement. With progress (apply), the history
 * row says "partial" and how many statements are done after each one, so
 * a crash leaves an exact record. Returns 0 or -1; *done = statements run.
 */
static int run_statements(struct sg_run *r, const struct sg_migration *m, const char *script, bool progress,
			  long *done, struct sg_error *err)
{
	struct sg_statement_list list = {0};
	*done = 0;
	if (sg_sql_split(script, r->url.engine, &list, err) != 0)
		return -1;
	int rc = 0;
	if (r->drv->before_script && r->drv->before_script(r->conn, err) != 0)
		rc = -1;
	if (rc == 0 && progress)
		rc = sg_history_record(r->conn, r->cfg->table, m, "partial", 0, 0, NULL, err);
	for (size_t i = 0; rc == 0 && i < list.count; i++) {
		if (sg_loop_stopping(&r->loop)) {
			rc = sg_stopped_error(r, err, "between two statements");
			break;
		}
		if ((rc = sg_lock_verify(r->lock, r->conn, err)) != 0)
			break;
		if (sg_conn_exec(r->conn, list.items[i].sql, err) != 0) {
			char head[160];
			sg_statement_head(list.items[i].sql, head, sizeof(head));
			sg_error_prefix(err, "statement %zu (line %d: %s)", i + 1, list.items[i].line, head);
			rc = -1;
			break;
		}
		*done = (long)i + 1;
		if (progress)
			rc = sg_history_record(r->conn, r->cfg->table, m, "partial", *done, 0, NULL, err);
	}
	if (rc == 0 && r->drv->after_script && r->drv->after_script(r->conn, err) != 0)
		rc = -1;
	sg_statement_list_free(&list);
	return rc;
}

static int apply_statements(struct sg_run *r, const struct sg_migration *m, struct sg_error *err)
{
	uint64_t t0 = sg_now_ms();
	long done = 0;
	int rc = run_statements(r, m, m->up_sql, true, &done, err);
	if (rc == 0)
		rc = sg_history_record(r->conn, r->cfg->table, m, "applied", done, (long)elapsed_since(t0), NULL, err);
	if (rc == 0) {
		char dur[32];
		snprintf(dur, sizeof(dur), "%llums", (unsigned long long)elapsed_since(t0));
		struct sg_error e = {0};
		if (sg_event_record(r->conn, r->cfg->table, "apply", m->version, "ok", dur, &e) != 0)
			sg_warn("event", "could not record the apply event: %s", e.msg);
		return 0;
	}
	if (err->kind == SG_ERRK_LOCK_LOST || (sg_connection_lost(err) && !sg_loop_canceled(&r->loop)))
		return -1; /* nothing more can be recorded here; the next holder resumes */
	bool stopped = sg_loop_stopping(&r->loop);
	sg_error_prefix(err, "applying %s", m->up_file);
	struct sg_error e = {0};
	/* the statements before the failing one are committed: say so precisely */
	if (sg_history_record(r->conn, r->cfg->table, m, "failed", done, (long)elapsed_since(t0), err->msg, &e) != 0)
		sg_warn("history", "could not record the failure of %s: %s", m->version, e.msg);
	record_failure_event(r, m->version, err->msg);
	char cause[SG_ERROR_MSG];
	memcpy(cause, err->msg, sizeof(cause));
	int code = stopped ? sg_loop_cancel_exit(&r->loop) : SG_EXIT_MIGRATION;
	sg_fail(err, code, "%s; %ld statement(s) were applied and stay applied; after fixing the database run "
		"`schemagate repair %s --applied` or `--reverted`", cause, done, m->version);
	if (stopped)
		err->kind = SG_ERRK_CANCELED;
	return -1;
}

int sg_apply_one(struct sg_run *r, const struct sg_migration *m, struct sg_error *err)
{
	struct sg_log_fields f = {.version = m->version, .name = m->name, .duration_ms = -1, .waited_ms = -1};
	sg_log(SG_LOG_INFO, "apply_start", &f, "applying %s%s", m->up_file, m->no_transaction ? " (no transaction)" : "");
	uint64_t t0 = sg_now_ms();
	bool transactional = sg_conn_can(r->conn, SG_CAP_TRANSACTIONAL_DDL) && !m->no_transaction;
	int rc = transactional ? apply_transactional(r, m, &f, err) : apply_statements(r, m, err);
	if (rc != 0)
		return -1;
	f.duration_ms = (int64_t)elapsed_since(t0);
	sg_log(SG_LOG_INFO, "applied", &f, "applied %s in %lldms", m->up_file, (long long)f.duration_ms);
	r->changed++;
	return 0;
}

/* ---- reverting ----------------------------------------------------------- */

static int revert_in_transaction(struct sg_run *r, const struct sg_revert_item *it, struct sg_error *err)
{
	if (sg_conn_begin(r->conn, err) != 0)
		return -1;
	if (sg_conn_exec(r->conn, it->down_sql, err) == 0 && check_before_commit(r, it->version, err) == 0 &&
	    sg_history_delete(r->conn, r->cfg->table, it->version, false, err) == 0 &&
	    sg_event_record(r->conn, r->cfg->table, "revert", it->version, "ok", NULL, err) == 0 &&
	    sg_conn_commit(r->conn, err) == 0)
		return 0;
	return failed_in_transaction(r, err);
}

static int revert_statements(struct sg_run *r, const struct sg_revert_item *it, struct sg_error *err)
{
	struct sg_migration m = {.version = it->version, .name = it->name, .down_sql = it->down_sql};
	snprintf(m.checksum, sizeof(m.checksum), "%s", it->checksum);
	long done = 0;
	int rc = run_statements(r, &m, it->down_sql, false, &done, err);
	if (rc == 0)
		rc = sg_history_delete(r->conn, r->cfg->table, it->version, false, err);
	if (rc == 0) {
		struct sg_error e = {0};
		sg_event_record(r->conn, r->cfg->table, "revert", it->version, "ok", NULL, &e);
		return 0;
	}
	if (err->kind == SG_ERRK_LOCK_LOST || (sg_connection_lost(err) && !sg_loop_canceled(&r->loop)))
		return -1;
	sg_error_prefix(err, "%ld statement(s) of the down script ran", done);
	struct sg_error e = {0};
	if (sg_history_set_status(r->conn, r->cfg->table, it->version, "failed", err->msg, &e) != 0)
		sg_warn("history", "could not record the failed revert of %s: %s", it->version, e.msg);
	return -1;
}

int sg_revert_one(struct sg_run *r, const struct sg_revert_item *it, struct sg_error *err)
{
	struct sg_log_fields f = {.version = it->version, .name = it->name, .duration_ms = -1, .waited_ms = -1};
	sg_log(SG_LOG_INFO, "revert_start", &f, "reverting %s_%s%s", it->version, it->name,
	       it->no_transaction ? " (no transaction)" : "");
	uint64_t t0 = sg_now_ms();
	bool transactional = sg_conn_can(r->conn, SG_CAP_TRANSACTIONAL_DDL) && !it->no_transaction;
	int rc = transactional ? revert_in_transaction(r, it, err) : revert_statements(r, it, err);
	if (rc != 0) {
		if (sg_loop_canceled(&r->loop))
			return sg_stopped_error(r, err, "reverting a migration");
		if (!migration_failed(r, err))
			return -1;
		sg_error_prefix(err, "reverting %s", it->version);
		err->exit_code = SG_EXIT_MIGRATION;
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
		free(items[i].down_sql);
	}
	free(items);
}
