/*
 * outcome.c - what a failure means for the run: a lost connection (connect
 * again) or a stop schemagate asked for (a signal, --timeout, a lost
 * lease), told apart from everything else in one place.
 */
#include <stdio.h>

#include "schemagate/run.h"

bool sg_connection_lost(const struct sg_error *err)
{
	return err->kind == SG_ERRK_CONNECTION;
}

int sg_stopped_error(struct sg_run *r, struct sg_error *err, const char *doing)
{
	const struct sg_loop *l = &r->loop;
	if (l->cancel == SG_CANCEL_DIRECTORY) {
		*err = r->dir_err;
		return -1;
	}
	err->kind = SG_ERRK_CANCELED;
	if (l->cancel == SG_CANCEL_DEADLINE)
		return sg_fail(err, SG_EXIT_TIMEOUT, "--timeout %llums expired while %s",
			       (unsigned long long)r->cfg->timeout_ms, doing);
	if (l->cancel == SG_CANCEL_LEASE)
		return sg_fail(err, SG_EXIT_TIMEOUT, "lost the lease on %s while %s", r->cfg->table, doing);
	return sg_fail(err, sg_loop_cancel_exit(l), "interrupted by %s while %s",
		       l->signum == 2 ? "SIGINT" : "SIGTERM", doing);
}
