/*
 * lock.c - the migration lock; see lock.h.
 *
 * Three kinds behind one table of functions. Nothing outside this file
 * knows which kind a run uses: the session kind asks the driver for its
 * native lock, the lease kind keeps a row alive from the loop's
 * heartbeat, the none kind agrees to everything.
 */
#include "schemagate/lock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/lease.h"
#include "schemagate/log.h"

struct lock_kind {
	const char *name;
	bool stable_session;   /* no pooler in between: LISTEN works */
	int (*probe)(struct sg_lock *l, struct sg_conn *session, bool *held, struct sg_error *err);
	int (*acquire)(struct sg_lock *l, struct sg_conn *session, uint64_t wait_ms, bool *acquired,
		       struct sg_error *err);
	int (*keepalive)(struct sg_lock *l, struct sg_error *err);
	int (*verify)(struct sg_lock *l, struct sg_conn *work, struct sg_error *err);
	/* verify as a statement inside the transaction, appended to out
	 * (nothing when nothing needs checking): 0, 1 when it cannot be
	 * said in one statement, -1 error. NULL: never can. */
	int (*verify_sql)(struct sg_lock *l, struct sg_conn *work, struct sg_buf *out, struct sg_error *err);
	int (*release)(struct sg_lock *l, struct sg_error *err);
	void (*describe)(struct sg_lock *l, struct sg_conn *session, char *out, size_t n);
};

struct sg_lock {
	const struct lock_kind *kind;
	struct sg_lock_params p;
	struct sg_conn *session;      /* borrowed: where the lock was taken */
	bool held;
	/* lease */
	char *key;                    /* qualified history table */
	struct sg_conn *renewer;      /* owned: renews while work runs */
	uint64_t lease_until;         /* monotonic ms, from when the renewal was sent */
};

/* ---- session: the database's own lock ------------------------------------ */

static int session_acquire(struct sg_lock *l, struct sg_conn *session, uint64_t wait_ms, bool *acquired,
			   struct sg_error *err)
{
	if (session->driver->try_lock(session, l->p.table, wait_ms, acquired, err) != 0)
		return -1;
	if (*acquired)
		l->session = session;
	return 0;
}

static int session_keepalive(struct sg_lock *l, struct sg_error *err)
{
	return sg_conn_exec(l->session, "SELECT 1", err);
}

static int session_verify(struct sg_lock *l, struct sg_conn *work, struct sg_error *err)
{
	return work->driver->verify_lock(work, l->p.table, err);
}

static int session_verify_sql(struct sg_lock *l, struct sg_conn *work, struct sg_buf *out, struct sg_error *err)
{
	if (!work->driver->verify_lock_sql)
		return 1;
	return work->driver->verify_lock_sql(work, l->p.table, out, err);
}

static int session_release(struct sg_lock *l, struct sg_error *err)
{
	return l->session->driver->unlock(l->session, l->p.table, err);
}

static void session_describe(struct sg_lock *l, struct sg_conn *session, char *out, size_t n)
{
	struct sg_error e = {0};
	if (!session->driver->lock_holder || session->driver->lock_holder(session, l->p.table, out, n, &e) != 0)
		out[0] = '\0';
}

static int session_probe(struct sg_lock *l, struct sg_conn *session, bool *held, struct sg_error *err)
{
	char holder[256] = "";
	if (!session->driver->lock_holder)
		return sg_fail(err, SG_OUTCOME_DATABASE, "%s cannot tell who holds its lock", session->driver->name);
	if (session->driver->lock_holder(session, l->p.table, holder, sizeof(holder), err) != 0)
		return -1;
	*held = holder[0] != '\0';
	return 0;
}

static const struct lock_kind session_kind = {
	.name = "session",
	.stable_session = true,
	.probe = session_probe,
	.acquire = session_acquire,
	.keepalive = session_keepalive,
	.verify = session_verify,
	.verify_sql = session_verify_sql,
	.release = session_release,
	.describe = session_describe,
};

/* ---- lease: a row with an expiry ----------------------------------------- */

static uint64_t safety_margin(const struct sg_lock *l) { return l->p.lease_ms / 6; }

/*
 * The lease is ours until `until` (monotonic ms, measured from when the
 * renewal was sent). Stop everything a sixth of a lease before that,
 * whatever a (possibly blocked) renewal is doing: after expiry another
 * instance may take over, and two must never migrate at once.
 * In-process engines (SQLite) are exempt: their heartbeat cannot run
 * during a statement, and while a migration runs its write transaction
 * keeps everyone else from taking the lease over anyway.
 */
static void lease_extended(struct sg_lock *l, uint64_t until)
{
	l->lease_until = until;
	if (!sg_conn_can(l->session, SG_CAP_POLLABLE))
		return;
	uint64_t stop_at = until - safety_margin(l), now = sg_now_ms();
	sg_loop_arm_expiry(l->p.loop, stop_at > now ? stop_at - now : 0);
}

static int renew(struct sg_lock *l, bool *ours, struct sg_error *err)
{
	uint64_t sent = sg_now_ms();
	if (sg_lease_renew(l->renewer, l->p.table, l->key, sg_instance_id(), l->p.lease_ms, ours, err) != 0)
		return -1;
	if (*ours)
		lease_extended(l, sent + l->p.lease_ms);
	return 0;
}

/* Heartbeat: renew every lease/3. A holder that cannot renew before its
 * lease runs out stops everything (exit 3). */
static void renew_tick(void *data)
{
	struct sg_lock *l = data;
	bool ours = false;
	struct sg_error e = {0};
	int rc = renew(l, &ours, &e);
	if (rc == 0 && ours)
		return;
	if (rc == 0) {
		sg_errorlog("lease_lost", "the lease on %s expired and was taken by another instance; stopping",
			    l->key);
		sg_loop_cancel(l->p.loop, SG_CANCEL_LEASE);
	} else if (sg_now_ms() + safety_margin(l) >= l->lease_until) {
		sg_errorlog("lease_lost", "could not renew the lease on %s before it runs out (%s); stopping", l->key,
			    e.msg);
		sg_loop_cancel(l->p.loop, SG_CANCEL_LEASE);
	} else {
		sg_warn("lease_renew", "renewing the lease failed, retrying: %s", e.msg);
	}
}

static int lease_key(struct sg_lock *l, struct sg_conn *session, struct sg_error *err)
{
	if (l->key)
		return 0;
	return session->driver->qualify(session, l->p.table, &l->key, err);
}

static int lease_acquire(struct sg_lock *l, struct sg_conn *session, uint64_t wait_ms, bool *acquired,
			 struct sg_error *err)
{
	if (lease_key(l, session, err) != 0 || sg_lease_ensure(session, l->p.table, err) != 0)
		return -1;
	uint64_t sent = sg_now_ms();
	char previous[256];
	if (sg_lease_try_acquire(session, l->p.table, l->key, sg_instance_id(), l->p.lease_ms, acquired, previous,
				 sizeof(previous), err) != 0)
		return -1;
	if (!*acquired)
		return 0;
	l->session = session;
	/* the lease renews on a connection of its own, so a long statement on
	 * the session cannot starve it */
	if (l->p.connect(l->p.connect_ctx, l->p.lease_ms / 3, &l->renewer, err) != 0) {
		struct sg_error ignored = {0};
		sg_lease_release(session, l->p.table, l->key, sg_instance_id(), &ignored);
		*acquired = false;
		return sg_error_prefix(err, "opening the lease renewal connection");
	}
	lease_extended(l, sent + l->p.lease_ms);
	if (previous[0])
		sg_warn("lease_takeover", "took over the expired lease of %s (it stopped renewing: killed or cut off)",
			previous);
	sg_loop_start_heartbeat(l->p.loop, l->p.lease_ms / 3, renew_tick, l);
	return 0;
}

static int lease_keepalive(struct sg_lock *l, struct sg_error *err)
{
	bool ours = false;
	if (renew(l, &ours, err) != 0)
		return -1;
	if (!ours)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL,
				  "the lease on %s expired and was taken by another instance", l->key);
	return 0;
}

static int lease_verify(struct sg_lock *l, struct sg_conn *work, struct sg_error *err)
{
	/* Out-of-process servers: the commit that follows must land inside
	 * the lease. SQLite cannot renew during a statement, but the
	 * migration's write transaction keeps anyone from taking the row
	 * over until it commits: the row still naming us is enough. */
	bool timed = sg_conn_can(work, SG_CAP_POLLABLE);
	return sg_lease_verify(work, l->p.table, l->key, sg_instance_id(), timed ? safety_margin(l) : 0, timed, err);
}

static int lease_release(struct sg_lock *l, struct sg_error *err)
{
	sg_loop_stop_heartbeat(l->p.loop);
	sg_loop_disarm_expiry(l->p.loop);
	struct sg_conn *c = l->renewer ? l->renewer : l->session;
	int rc = sg_lease_release(c, l->p.table, l->key, sg_instance_id(), err);
	sg_conn_close(l->renewer);
	l->renewer = NULL;
	return rc;
}

static void lease_describe(struct sg_lock *l, struct sg_conn *session, char *out, size_t n)
{
	struct sg_error e = {0};
	out[0] = '\0';
	if (lease_key(l, session, &e) != 0 || sg_lease_describe(session, l->p.table, l->key, out, n, &e) != 0)
		out[0] = '\0';
}

static int lease_probe(struct sg_lock *l, struct sg_conn *session, bool *held, struct sg_error *err)
{
	char holder[256] = "";
	if (lease_key(l, session, err) != 0 || sg_lease_describe(session, l->p.table, l->key, holder, sizeof(holder), err) != 0)
		return -1;
	*held = holder[0] != '\0' && !strstr(holder, "(lease expired");
	return 0;
}

static const struct lock_kind lease_kind = {
	.name = "lease",
	.probe = lease_probe,
	.acquire = lease_acquire,
	.keepalive = lease_keepalive,
	.verify = lease_verify,
	.release = lease_release,
	.describe = lease_describe,
};

/* ---- none: the operator guarantees exclusivity --------------------------- */

static int none_acquire(struct sg_lock *l, struct sg_conn *session, uint64_t wait_ms, bool *acquired,
			struct sg_error *err)
{
	l->session = session;
	*acquired = true;
	return 0;
}

static int none_ok(struct sg_lock *l, struct sg_error *err) { return 0; }
/* without a lock nobody can be known to hold one: say "held", so an
 * interrupted-looking migration is never declared orphaned */
static int none_probe(struct sg_lock *l, struct sg_conn *session, bool *held, struct sg_error *err)
{
	*held = true;
	return 0;
}
static int none_verify(struct sg_lock *l, struct sg_conn *work, struct sg_error *err) { return 0; }
static int none_verify_sql(struct sg_lock *l, struct sg_conn *work, struct sg_buf *out, struct sg_error *err)
{
	return 0;
}
static void none_describe(struct sg_lock *l, struct sg_conn *session, char *out, size_t n) { out[0] = '\0'; }

static const struct lock_kind none_kind = {
	.name = "none",
	.stable_session = true,
	.probe = none_probe,
	.acquire = none_acquire,
	.keepalive = none_ok,
	.verify = none_verify,
	.verify_sql = none_verify_sql,
	.release = none_ok,
	.describe = none_describe,
};

/* ---- the interface ------------------------------------------------------- */

struct sg_lock *sg_lock_open(const struct sg_lock_params *p)
{
	struct sg_lock *l = sg_calloc(1, sizeof(*l));
	l->p = *p;
	switch (p->mode) {
	case SG_LOCK_AUTO: l->kind = &session_kind; break;
	case SG_LOCK_TABLE: l->kind = &lease_kind; break;
	case SG_LOCK_NONE: l->kind = &none_kind; break;
	}
	return l;
}

bool sg_lock_use_lease(struct sg_lock *l)
{
	if (l->kind != &session_kind || l->held)
		return false;
	l->kind = &lease_kind;
	l->p.mode = SG_LOCK_TABLE;
	return true;
}

void sg_lock_close(struct sg_lock *l)
{
	if (!l)
		return;
	if (l->kind == &lease_kind) {
		sg_loop_stop_heartbeat(l->p.loop);
		sg_loop_disarm_expiry(l->p.loop);
	}
	sg_conn_close(l->renewer);
	free(l->key);
	free(l);
}

int sg_lock_acquire(struct sg_lock *l, struct sg_conn *session, uint64_t wait_ms, bool *acquired,
		    struct sg_error *err)
{
	*acquired = false;
	if (l->kind->acquire(l, session, wait_ms, acquired, err) != 0)
		return -1;
	l->held = *acquired;
	return 0;
}

void sg_lock_announce(const struct sg_lock *l, uint64_t waited_ms)
{
	struct sg_log_fields f = {.waited_ms = (int64_t)waited_ms, .duration_ms = -1};
	if (l->kind == &none_kind)
		sg_info("no_lock", "--lock=none: not locking; the operator guarantees that one instance runs at a time");
	else
		sg_log(SG_LOG_INFO, "lock_acquired", &f, "%s lock acquired after %llums", l->kind->name,
		       (unsigned long long)waited_ms);
}

int sg_lock_keepalive(struct sg_lock *l, struct sg_error *err)
{
	return l->held ? l->kind->keepalive(l, err) : 0;
}

int sg_lock_verify(struct sg_lock *l, struct sg_conn *work, struct sg_error *err)
{
	if (!l->held)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL, "the lock is not held");
	return l->kind->verify(l, work, err);
}

int sg_lock_verify_sql(struct sg_lock *l, struct sg_conn *work, bool *can, struct sg_buf *out, struct sg_error *err)
{
	*can = false;
	if (!l->held)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL, "the lock is not held");
	if (!l->kind->verify_sql)
		return 0;
	int rc = l->kind->verify_sql(l, work, out, err);
	*can = rc == 0;
	return rc < 0 ? -1 : 0;
}

int sg_lock_release(struct sg_lock *l, struct sg_error *err)
{
	if (!l->held)
		return 0;
	l->held = false;
	if (l->kind->release(l, err) != 0)
		return sg_error_prefix(err, "releasing the %s lock", l->kind->name);
	sg_debug("lock_released", "%s lock released", l->kind->name);
	return 0;
}

void sg_lock_forget(struct sg_lock *l)
{
	if (l->kind == &lease_kind && l->held) {
		/* the row outlives the session: give it back if the renewal
		 * connection still can, else it expires within a lease */
		sg_loop_stop_heartbeat(l->p.loop);
		sg_loop_disarm_expiry(l->p.loop);
		struct sg_error ignored = {0};
		if (l->renewer)
			sg_lease_release(l->renewer, l->p.table, l->key, sg_instance_id(), &ignored);
		sg_conn_close(l->renewer);
		l->renewer = NULL;
	}
	l->held = false;
	l->session = NULL;
}

bool sg_lock_held(const struct sg_lock *l) { return l && l->held; }

int sg_lock_probe(struct sg_lock *l, struct sg_conn *session, bool *held, struct sg_error *err)
{
	*held = false;
	return l->kind->probe(l, session, held, err);
}

void sg_lock_describe(struct sg_lock *l, struct sg_conn *session, char *out, size_t n)
{
	out[0] = '\0';
	if (session)
		l->kind->describe(l, session, out, n);
}

const char *sg_lock_kind_name(const struct sg_lock *l) { return l->kind->name; }

bool sg_lock_session_is_stable(const struct sg_lock *l) { return l->kind->stable_session; }

bool sg_lock_can_be_taken_over(const struct sg_lock *l) { return l->kind == &lease_kind; }

bool sg_lock_waits_in_server(const struct sg_lock *l)
{
	return l->kind == &session_kind && l->p.driver_caps & SG_CAP_LOCK_WAIT;
}
