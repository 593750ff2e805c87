/*
 * lock.h - the migration lock: one interface, three kinds (SPEC section 5).
 *
 *   session  the database's own session lock (PostgreSQL advisory lock,
 *            MySQL GET_LOCK, SQLite's lock on the database file), taken on
 *            the run's one connection, the same one that runs the
 *            migrations. The lock lives exactly as long as the session
 *            doing the work: if the session dies, its transaction dies
 *            with it, so a holder can never keep working without the lock.
 *   lease    --lock=table: a row in schemagate_lock with an expiry on the
 *            database clock, renewed every lease/3 on a connection of its
 *            own (so it renews while a long statement runs); a holder that
 *            cannot renew in time stops (exit 3). Safe behind poolers.
 *   none     --lock=none: the operator guarantees exclusivity.
 *
 * The coordinator calls these and never asks which kind it holds. Every
 * kind verifies, inside each migration's transaction just before its
 * commit, that the lock is still held by the session running that
 * transaction (sg_lock_verify); a failed verify is err->kind LOCK_LOST.
 *
 * Ownership: sg_lock_open() allocates; sg_lock_close() frees and closes
 * any connection the lock opened itself. The session connection passed
 * to acquire is borrowed: the caller keeps it open while the lock is held.
 */
#ifndef SCHEMAGATE_LOCK_H
#define SCHEMAGATE_LOCK_H

#include "schemagate/config.h"
#include "schemagate/driver.h"
#include "schemagate/loop.h"

struct sg_lock;

/* An idle session holding the lock (a backoff sleep) is touched this
 * often, well inside common idle timeouts (MySQL wait_timeout, proxies). */
#define SG_LOCK_KEEPALIVE_MS 2000

struct sg_lock_params {
	enum sg_lock_mode mode;
	unsigned driver_caps;         /* the engine's enum sg_driver_caps */
	const char *table;            /* the history table, as configured */
	uint64_t lease_ms;            /* --lock-lease */
	struct sg_loop *loop;         /* heartbeat and expiry of the lease */
	/* Open another connection like the run's own, with lock_wait_ms as
	 * given (the lease's renewal connection). */
	int (*connect)(void *ctx, uint64_t lock_wait_ms, struct sg_conn **out, struct sg_error *err);
	void *connect_ctx;
};

/* The lock of the kind p->mode names; nothing is contacted yet. */
struct sg_lock *sg_lock_open(const struct sg_lock_params *p);
/* --lock=auto on a server whose session locks are node-local (a Galera
 * cluster: GET_LOCK excludes nobody on the other nodes): the lease from
 * now on. True when it switched (auto, not held). */
bool sg_lock_use_lease(struct sg_lock *l);
/* Frees the lock; a lock still held is released by closing its sessions. */
void sg_lock_close(struct sg_lock *l);

/* One attempt on session; may wait in the server up to wait_ms where the
 * engine can (MySQL GET_LOCK), else returns at once. */
int sg_lock_acquire(struct sg_lock *l, struct sg_conn *session, uint64_t wait_ms, bool *acquired,
		    struct sg_error *err);
/* Log that the lock is now ours and the work begins. */
void sg_lock_announce(const struct sg_lock *l, uint64_t waited_ms);
/* While holding the lock with the session idle (a backoff sleep): keep
 * the session (or the lease) alive. */
int sg_lock_keepalive(struct sg_lock *l, struct sg_error *err);
/* Inside the transaction about to commit on work: still ours? */
int sg_lock_verify(struct sg_lock *l, struct sg_conn *work, struct sg_error *err);
/* sg_lock_verify as a statement (appended to out) to run inside the
 * transaction just before its commit, with the same error when the lock
 * is not held; *can false when this kind or driver has no such statement
 * (the caller calls sg_lock_verify instead). */
int sg_lock_verify_sql(struct sg_lock *l, struct sg_conn *work, bool *can, struct sg_buf *out, struct sg_error *err);
/* Give the lock back and check that the release took effect. */
int sg_lock_release(struct sg_lock *l, struct sg_error *err);
/* Forget a lock whose session is gone (connection lost): nothing to
 * release, the database already did. */
void sg_lock_forget(struct sg_lock *l);
bool sg_lock_held(const struct sg_lock *l);
/* Does anybody hold the lock right now? (`wait` tells an interrupted
 * migration from one in progress.) -1 when the database cannot say. */
int sg_lock_probe(struct sg_lock *l, struct sg_conn *session, bool *held, struct sg_error *err);
/* Who holds it, for "still waiting" logs and timeouts; "" when unknown
 * or free. Errors are swallowed (it is only a description). */
void sg_lock_describe(struct sg_lock *l, struct sg_conn *session, char *out, size_t n);
const char *sg_lock_kind_name(const struct sg_lock *l);
/* The lock's session is a real session end to end (no pooler between):
 * LISTEN works on it. */
bool sg_lock_session_is_stable(const struct sg_lock *l);
/* Can another instance take this lock over while we run (a lease that
 * expired)? Then a lost lock means contending again; a session lock is
 * lost only to a pooler or proxy in between, which no retry fixes. */
bool sg_lock_can_be_taken_over(const struct sg_lock *l);
/* acquire() can wait in the server for the holder to let go (GET_LOCK),
 * so waiters need no sleep between attempts. */
bool sg_lock_waits_in_server(const struct sg_lock *l);

#endif
