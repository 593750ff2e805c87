/*
 * lease.h - the SQL of the lease lock (--lock=table), for every engine.
 *
 * A row per lock key in schemagate_lock (next to the history table) says
 * who holds the lock until when, on the database's clock. Nothing about
 * it depends on a session, so it works through transaction-mode poolers
 * (PgBouncer, ProxySQL), and no lock outlives a dead holder by more than
 * the lease. All SQL is generic; drivers only supply now_ms_sql. lock.c
 * drives these (heartbeat, expiry); nothing else calls them.
 *
 * `table` is the history table as configured (it places the lock table in
 * the same schema); `key` is the history table's qualified name, so two
 * spellings of one table ("t", "public.t") share one lease.
 */
#ifndef SCHEMAGATE_LEASE_H
#define SCHEMAGATE_LEASE_H

#include "schemagate/driver.h"

/* Create the lock table if missing (safe when many instances race). */
int sg_lease_ensure(struct sg_conn *c, const char *table, struct sg_error *err);

/*
 * One attempt: insert the row, or take it over if its lease expired, or
 * extend it if we already hold it. *acquired tells. When the lease of
 * another holder had expired, its name goes to took_over_from (else "").
 * A failure other than losing the race (permission denied) is an error.
 */
int sg_lease_try_acquire(struct sg_conn *c, const char *table, const char *key, const char *holder,
			 uint64_t lease_ms, bool *acquired, char *took_over_from, size_t n, struct sg_error *err);

/* Extend our lease; *still_ours false when it expired and was taken. */
int sg_lease_renew(struct sg_conn *c, const char *table, const char *key, const char *holder, uint64_t lease_ms,
		   bool *still_ours, struct sg_error *err);

/* Inside a transaction on c: the row names holder and (timed) has at
 * least min_left_ms to run; else err->kind LOCK_LOST. */
int sg_lease_verify(struct sg_conn *c, const char *table, const char *key, const char *holder,
		    uint64_t min_left_ms, bool timed, struct sg_error *err);

/* Delete our row; fails if the lease is no longer ours. */
int sg_lease_release(struct sg_conn *c, const char *table, const char *key, const char *holder,
		     struct sg_error *err);

/* "pod-a/42, lease expires in 12s" or "" when free. */
int sg_lease_describe(struct sg_conn *c, const char *table, const char *key, char *out, size_t n,
		      struct sg_error *err);

#endif
