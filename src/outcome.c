/*
 * outcome.c - what a failure means for the run, decided in one place.
 *
 * Drivers and modules report what happened: the error's kind, its
 * SQLSTATE or errno, whether schemagate asked for a cancel. This file maps
 * that, why the run is stopping (the loop's reason) and where the run is
 * (its state, whether a migration's own script was running) to the next
 * state and the outcome; main.c alone turns the final outcome into an
 * exit code.
 *
 *   a stop schemagate asked for (signal, --timeout, lost lease)  -> FAILED, the stop's outcome
 *   a lost connection (not a one-shot probe, not stopping)      -> CONNECTING
 *   a lost lock that can be taken back (a lease; a session lock
 *   still held whose row was taken), applying                    -> CONTENDING
 *   a session lock the session no longer holds (a pooler)       -> FAILED, database (5)
 *   a statement, lock timeout or cancel the server did on its
 *   own, in a migration's script                                -> FAILED, migration failed (1)
 *   the same in schemagate's own statements                     -> FAILED, (1) unless ours (5)
 *   transient (connect, busy)                                   -> FAILED, timeout (3)
 *   permanent, connection (one-shot)                            -> FAILED, database (5)
 */
#include <stdio.h>

#include "schemagate/run.h"

bool sg_connection_lost(const struct sg_error *err)
{
	/* a read-only server (a standby, a demoted primary) is as good as
	 * gone for a writer: connect again, and wait for a primary */
	return err->kind == SG_ERRK_CONNECTION || err->kind == SG_ERRK_READ_ONLY;
}

bool sg_stop_requested(const struct sg_error *err)
{
	return err->kind == SG_ERRK_CANCELED && err->cancel_requested;
}

bool sg_statement_failed(const struct sg_error *err)
{
	return err->kind == SG_ERRK_STATEMENT || err->kind == SG_ERRK_LOCK_TIMEOUT ||
	       (err->kind == SG_ERRK_CANCELED && !err->cancel_requested);
}

int sg_stopped_error(struct sg_run *r, struct sg_error *err, const char *doing)
{
	const struct sg_loop *l = &r->loop;
	if (l->cancel == SG_CANCEL_DIRECTORY) {
		*err = r->dir_err;
		return -1;
	}
	err->kind = SG_ERRK_CANCELED;
	err->cancel_requested = true;
	if (l->cancel == SG_CANCEL_DEADLINE)
		return sg_fail(err, SG_OUTCOME_TIMEOUT, "--timeout %llums expired while %s",
			       (unsigned long long)r->cfg->timeout_ms, doing);
	if (l->cancel == SG_CANCEL_LEASE)
		return sg_fail(err, SG_OUTCOME_TIMEOUT, "lost the lease on %s while %s", r->cfg->table, doing);
	return sg_fail(err, sg_loop_cancel_outcome(l), "interrupted by %s while %s",
		       l->signum == 2 ? "SIGINT" : "SIGTERM", doing);
}

enum sg_outcome sg_outcome_of(const struct sg_run *r, const struct sg_error *err, bool in_migration)
{
	if (err->outcome != SG_OUTCOME_OK)
		return err->outcome;   /* a module's verdict: usage, integrity, a deadline */
	switch (err->kind) {
	case SG_ERRK_CANCELED:
		if (err->cancel_requested) {
			enum sg_outcome o = sg_loop_cancel_outcome(&r->loop);
			return o != SG_OUTCOME_OK ? o : SG_OUTCOME_TERMINATED;
		}
		/* the server canceled the statement on its own (statement_timeout,
		 * pg_cancel_backend): the statement failed */
		return SG_OUTCOME_MIGRATION_FAILED;
	case SG_ERRK_TRANSIENT:
		return in_migration ? SG_OUTCOME_MIGRATION_FAILED : SG_OUTCOME_TIMEOUT;
	case SG_ERRK_USAGE:
		return SG_OUTCOME_USAGE;
	case SG_ERRK_LOCK_LOST:
		/* a lease lost past its deadline; a session lock lost to a pooler */
		return sg_lock_can_be_taken_over(r->lock) ? SG_OUTCOME_TIMEOUT : SG_OUTCOME_DATABASE;
	case SG_ERRK_PERMANENT:
	case SG_ERRK_CONNECTION:
	case SG_ERRK_READ_ONLY:
		return SG_OUTCOME_DATABASE;
	case SG_ERRK_STATEMENT:
	case SG_ERRK_LOCK_TIMEOUT:
	case SG_ERRK_NONE:
		break;
	}
	return SG_OUTCOME_MIGRATION_FAILED;
}

bool sg_migration_failed(struct sg_run *r, struct sg_error *err)
{
	if (sg_loop_canceled(&r->loop) && (err->kind == SG_ERRK_CANCELED || err->kind == SG_ERRK_CONNECTION))
		return false;
	if (err->kind == SG_ERRK_LOCK_LOST || sg_connection_lost(err))
		return false;
	err->outcome = sg_outcome_of(r, err, true);
	return err->outcome == SG_OUTCOME_MIGRATION_FAILED;
}

/* A lost lock while applying: contend again when that can help. A lease
 * is taken over by another instance and can be taken back; a session lock
 * this session still holds lost only its row (another instance took it
 * over). A session lock the session no longer holds was taken by
 * something in between (a pooler, a proxy, a script that unlocks): no
 * retry fixes that. */
static bool lock_can_be_retaken(struct sg_run *r)
{
	if (sg_lock_can_be_taken_over(r->lock))
		return true;
	struct sg_error e = {0};
	return r->conn && sg_lock_verify(r->lock, r->conn, &e) == 0;
}

enum sg_state sg_outcome_next(struct sg_run *r, struct sg_error *err, const char *doing)
{
	if (sg_loop_canceled(&r->loop)) {
		/* whatever failed on the way, the run stops for the stop's
		 * reason; while applying, a stop already reported says more
		 * (rolled back, in doubt) */
		if (r->state != SG_ST_APPLYING || !sg_stop_requested(err))
			sg_stopped_error(r, err, doing);
		return SG_ST_FAILED;
	}
	if (err->kind == SG_ERRK_LOCK_LOST && r->state == SG_ST_APPLYING && lock_can_be_retaken(r))
		return SG_ST_CONTENDING;
	if (sg_connection_lost(err) && !r->cmd->one_shot)
		return SG_ST_CONNECTING;
	err->outcome = sg_outcome_of(r, err, false);
	return SG_ST_FAILED;
}
