/*
 * lease.c - the lease lock (--lock=table); see lease.h.
 *
 * Acquisition is two atomic statements: an INSERT that only succeeds
 * when no row exists, then an UPDATE that only matches an expired lease
 * (or our own). Row locks serialise concurrent UPDATEs, and both compare
 * against the database clock, so pods with skewed clocks cannot both win.
 * Writes run in short transactions of their own, so the driver's lock
 * wait bound applies to them (a blocked renewal fails in time).
 */
#include "schemagate/lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *lock_table_name(const char *table)
{
	const char *dot = strrchr(table, '.');
	if (!dot)
		return sg_strdup("schemagate_lock");
	return sg_asprintf("%.*s.schemagate_lock", (int)(dot - table), table);
}

/* Build SQL with @T (quoted lock table) and @NOW (database clock, ms). */
static char *build(struct sg_conn *c, const char *table, const char *tmpl)
{
	char *lock_table = lock_table_name(table);
	struct sg_buf quoted = {0}, sql = {0};
	c->driver->quote_ident(lock_table, &quoted);
	for (const char *p = tmpl; *p;) {
		if (strncmp(p, "@T", 2) == 0) {
			sg_buf_puts(&sql, quoted.data);
			p += 2;
		} else if (strncmp(p, "@NOW", 4) == 0) {
			sg_buf_printf(&sql, "(%s)", c->driver->now_ms_sql);
			p += 4;
		} else {
			sg_buf_append(&sql, p, 1);
			p++;
		}
	}
	sg_buf_free(&quoted);
	free(lock_table);
	return sql.data;
}

static int run(struct sg_conn *c, const char *table, const char *tmpl, int n, const char *const *p,
	       sg_row_fn fn, void *ctx, struct sg_error *err)
{
	char *sql = build(c, table, tmpl);
	int rc = sg_conn_query(c, sql, n, p, fn, ctx, err);
	free(sql);
	return rc;
}

int sg_lease_ensure(struct sg_conn *c, const char *table, struct sg_error *err)
{
	char *lock_table = lock_table_name(table);
	bool exists = false;
	int rc = c->driver->table_exists(c, lock_table, &exists, err);
	free(lock_table);
	if (rc != 0 || exists)
		return rc;
	struct sg_error e = {0};
	if (run(c, table, "CREATE TABLE IF NOT EXISTS @T (lock_key VARCHAR(255) NOT NULL PRIMARY KEY, "
			  "holder VARCHAR(255) NOT NULL, acquired_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)",
		0, NULL, NULL, NULL, &e) == 0)
		return 0;
	/* Concurrent CREATE TABLE IF NOT EXISTS can still collide (PostgreSQL
	 * catalog unique index); if the table is there now, someone won. */
	lock_table = lock_table_name(table);
	rc = c->driver->table_exists(c, lock_table, &exists, err);
	free(lock_table);
	if (rc == 0 && !exists) {
		*err = e;
		return sg_error_prefix(err, "creating the lease table");
	}
	return rc;
}

struct lease_row {
	bool found;
	char holder[256];
	long long remaining_ms;
};

static int take_row(void *ctx, int ncols, const char *const *v)
{
	struct lease_row *r = ctx;
	r->found = true;
	snprintf(r->holder, sizeof(r->holder), "%s", v[0] ? v[0] : "");
	r->remaining_ms = v[1] ? atoll(v[1]) : 0;
	return 1;
}

static int read_row(struct sg_conn *c, const char *table, const char *key, struct lease_row *r,
		    struct sg_error *err)
{
	memset(r, 0, sizeof(*r));
	const char *p[] = {key};
	return run(c, table, "SELECT holder, expires_at - @NOW FROM @T WHERE lock_key = $1", 1, p, take_row, r, err);
}

/* A lease statement that fails is a database problem (permission, a
 * table in the way): exit 5 unless the driver said more. */
static int lease_error(struct sg_error *err, const char *doing)
{
	sg_error_ours(err);
	return sg_error_prefix(err, "%s", doing);
}

/* One statement in its own transaction: the driver's lock wait bound
 * (PostgreSQL SET LOCAL lock_timeout) applies without leaking a session
 * setting into a pooled server connection. */
static int run_in_transaction(struct sg_conn *c, const char *table, const char *tmpl, int n,
			      const char *const *p, struct sg_error *err)
{
	if (sg_conn_begin(c, err) != 0)
		return -1;
	if (run(c, table, tmpl, n, p, NULL, NULL, err) != 0 || sg_conn_commit(c, err) != 0) {
		struct sg_error ignored = {0};
		sg_conn_rollback(c, &ignored);
		return -1;
	}
	return 0;
}

int sg_lease_try_acquire(struct sg_conn *c, const char *table, const char *key, const char *holder,
			 uint64_t lease_ms, bool *acquired, char *took_over_from, size_t n, struct sg_error *err)
{
	*acquired = false;
	took_over_from[0] = '\0';
	char ms[32];
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)lease_ms);
	const char *p[] = {key, holder, ms};
	struct lease_row before;
	if (read_row(c, table, key, &before, err) != 0)
		return lease_error(err, "reading the lease");
	struct sg_error insert_err = {0};
	bool inserted = false;
	if (!before.found) {
		/* Two instances may race here: the loser's INSERT fails on the
		 * primary key; the row read below tells the two failures apart. */
		inserted = run_in_transaction(c, table, "INSERT INTO @T (lock_key, holder, acquired_at, expires_at) "
							"VALUES ($1, $2, @NOW, @NOW + $3)",
					      3, p, &insert_err) == 0;
	} else if (before.remaining_ms < 0 || strcmp(before.holder, holder) == 0) {
		if (run_in_transaction(c, table, "UPDATE @T SET holder = $2, acquired_at = @NOW, expires_at = @NOW + $3 "
						 "WHERE lock_key = $1 AND (expires_at < @NOW OR holder = $2)",
				       3, p, err) != 0) {
			/* SQLite: the holder's migration has the file locked */
			if (err->kind == SG_ERRK_TRANSIENT || err->kind == SG_ERRK_LOCK_TIMEOUT) {
				sg_error_clear(err);
				return 0;
			}
			return lease_error(err, "taking over the lease");
		}
	}
	struct lease_row after;
	if (read_row(c, table, key, &after, err) != 0)
		return lease_error(err, "reading the lease");
	if (!before.found && !inserted && !after.found) {
		/* the INSERT failed and nobody else's row is there: not a lost
		 * race but a real error (permission denied...) */
		if (insert_err.kind == SG_ERRK_TRANSIENT || insert_err.kind == SG_ERRK_LOCK_TIMEOUT)
			return 0;
		*err = insert_err;
		return lease_error(err, "taking the lease");
	}
	*acquired = after.found && strcmp(after.holder, holder) == 0 && after.remaining_ms > 0;
	if (*acquired && before.found && strcmp(before.holder, holder) != 0)
		snprintf(took_over_from, n, "%s", before.holder);
	return 0;
}

int sg_lease_renew(struct sg_conn *c, const char *table, const char *key, const char *holder, uint64_t lease_ms,
		   bool *still_ours, struct sg_error *err)
{
	char ms[32];
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)lease_ms);
	const char *p[] = {key, holder, ms};
	*still_ours = false;
	/* The holder column is the truth: a takeover rewrites it. A lease
	 * that ran out while nobody took it is still ours to extend. */
	if (run_in_transaction(c, table, "UPDATE @T SET expires_at = @NOW + $3 WHERE lock_key = $1 AND holder = $2",
			       3, p, err) != 0)
		return -1;
	struct lease_row r;
	if (read_row(c, table, key, &r, err) != 0)
		return -1;
	*still_ours = r.found && strcmp(r.holder, holder) == 0 && r.remaining_ms > 0;
	return 0;
}

int sg_lease_verify(struct sg_conn *c, const char *table, const char *key, const char *holder,
		    uint64_t min_left_ms, bool timed, struct sg_error *err)
{
	struct lease_row r;
	if (read_row(c, table, key, &r, err) != 0)
		return -1;
	if (r.found && strcmp(r.holder, holder) == 0 && (!timed || r.remaining_ms > (long long)min_left_ms))
		return 0;
	if (r.found && strcmp(r.holder, holder) == 0)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL,
				  "the lease on %s runs out in %lldms: too close to trust it for this commit", key,
				  r.remaining_ms);
	return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL, "the lease on %s is now held by %s", key,
			  r.found ? r.holder : "nobody");
}

int sg_lease_release(struct sg_conn *c, const char *table, const char *key, const char *holder,
		     struct sg_error *err)
{
	struct lease_row r;
	if (read_row(c, table, key, &r, err) != 0)
		return -1;
	if (!r.found || strcmp(r.holder, holder) != 0)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL,
				  "the lease on %s was no longer ours at release (now held by %s)", key,
				  r.found ? r.holder : "nobody");
	const char *p[] = {key, holder};
	return run(c, table, "DELETE FROM @T WHERE lock_key = $1 AND holder = $2", 2, p, NULL, NULL, err);
}

int sg_lease_describe(struct sg_conn *c, const char *table, const char *key, char *out, size_t n,
		      struct sg_error *err)
{
	out[0] = '\0';
	/* read-only callers (wait) never create the table: no table, no lease */
	char *lock_table = lock_table_name(table);
	bool exists = false;
	int rc = c->driver->table_exists(c, lock_table, &exists, err);
	free(lock_table);
	if (rc != 0 || !exists)
		return rc;
	struct lease_row r;
	if (read_row(c, table, key, &r, err) != 0)
		return -1;
	if (r.found)
		snprintf(out, n, "%s (lease %s %llds)", r.holder, r.remaining_ms >= 0 ? "expires in" : "expired",
			 (long long)(r.remaining_ms >= 0 ? r.remaining_ms : -r.remaining_ms) / 1000);
	return 0;
}
