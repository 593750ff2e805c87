/*
 * coordinator.c - runs one command against one database.
 *
 * Written once for every engine: what differs is asked of the driver as a
 * capability. The flow is a small state machine (see `transitions`); all
 * waiting happens on the libuv loop, so signals and deadlines act at any
 * moment, including while a driver waits on its socket.
 */
#include "schemagate/coordinator.h"
#include "schemagate/adopt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "schemagate/driver.h"
#include "schemagate/history.h"
#include "schemagate/lease.h"
#include "schemagate/log.h"
#include "schemagate/loop.h"
#include "schemagate/migration.h"
#include "schemagate/sqlsplit.h"
#include "schemagate/url.h"

#define HOLDER_LOG_INTERVAL_MS 10000
#define CLEANUP_BUDGET_MS 1500
#define CONNECT_ATTEMPT_MAX_MS 15000
#define DDL_LOCK_RETRIES 6

enum state {
	ST_INIT,
	ST_CONNECTING,
	ST_CHECKING,
	ST_WAITING,
	ST_CONTENDING,
	ST_APPLYING,
	ST_RELEASING,
	ST_READY,
	ST_FAILED,
};

static const char *const state_names[] = {
	[ST_INIT] = "init",
	[ST_CONNECTING] = "connecting",
	[ST_CHECKING] = "checking",
	[ST_WAITING] = "waiting",
	[ST_CONTENDING] = "contending",
	[ST_APPLYING] = "applying",
	[ST_RELEASING] = "releasing",
	[ST_READY] = "ready",
	[ST_FAILED] = "failed",
};

/* Every allowed transition. Anything else is a bug and aborts. */
static const struct {
	enum state from, to;
} transitions[] = {
	{ST_INIT, ST_CONNECTING},       /* directory validated offline */
	{ST_INIT, ST_FAILED},           /* bad URL, bad directory */
	{ST_CONNECTING, ST_CHECKING},   /* connected */
	{ST_CONNECTING, ST_FAILED},     /* permanent error, connect timeout, signal */
	{ST_CHECKING, ST_READY},        /* fast path: at target, checksums match */
	{ST_CHECKING, ST_CONTENDING},   /* work to do, or a command that writes */
	{ST_CHECKING, ST_WAITING},      /* `wait`: someone else migrates */
	{ST_CHECKING, ST_APPLYING},     /* --lock=none */
	{ST_CHECKING, ST_FAILED},       /* integrity error; verify: pending */
	{ST_WAITING, ST_READY},         /* the target was reached */
	{ST_WAITING, ST_FAILED},        /* timeout, integrity error, signal */
	{ST_CONTENDING, ST_APPLYING},   /* lock acquired */
	{ST_CONTENDING, ST_READY},      /* another instance finished the work */
	{ST_CONTENDING, ST_FAILED},     /* lock timeout, signal, deadline */
	{ST_APPLYING, ST_RELEASING},    /* done or failed: the lock goes back either way */
	{ST_APPLYING, ST_READY},        /* --lock=none, nothing to release */
	{ST_APPLYING, ST_FAILED},       /* --lock=none */
	{ST_RELEASING, ST_READY},       /* lock released, schema verified */
	{ST_RELEASING, ST_FAILED},      /* the work or the release failed */
};

struct coord {
	const struct sg_config *cfg;
	struct sg_loop loop;
	struct sg_url url;
	const struct sg_driver *drv;
	struct sg_migration_set set;
	struct sg_conn *work;       /* history reads, migrations */
	struct sg_conn *lock;       /* the lock's session (== work without DEDICATED_LOCK_CONN) */
	bool locked;
	bool listening;
	/* --lock=table: when our lease ends unless renewed (monotonic ms) */
	uint64_t lease_until;
	int applied;                /* migrations applied or reverted by this run */
	enum state state;
	char app_name[320];
};

static void transition(struct coord *c, enum state to, const char *reason)
{
	bool allowed = false;
	for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
		if (transitions[i].from == c->state && transitions[i].to == to)
			allowed = true;
	if (!allowed) {
		sg_errorlog("bug", "transition from \"%s\" to \"%s\" is not in the table", state_names[c->state],
			    state_names[to]);
		abort();
	}
	sg_debug("transition", "transition from \"%s\" to \"%s\": %s", state_names[c->state], state_names[to], reason);
	c->state = to;
}

static uint64_t jitter(uint64_t ms)
{
	/* +-20%: 200 pods polling in lockstep would hit the server together */
	return ms * (uint64_t)(80 + rand() % 41) / 100;
}

static uint64_t elapsed_since(uint64_t t0) { return sg_now_ms() - t0; }

/* Once a signal or deadline canceled the work, give the cleanup a short,
 * bounded window of I/O to roll back and release the lock. */
static void begin_cleanup_if_canceled(struct coord *c)
{
	if (sg_loop_canceled(&c->loop))
		sg_loop_begin_cleanup(&c->loop, CLEANUP_BUDGET_MS);
}

static int canceled_error(struct coord *c, struct sg_error *err, const char *doing)
{
	begin_cleanup_if_canceled(c);
	err->kind = SG_ERRK_CANCELED;
	if (c->loop.cancel == SG_CANCEL_DEADLINE)
		return sg_fail(err, SG_EXIT_TIMEOUT, "--timeout %llums expired while %s",
			       (unsigned long long)c->cfg->timeout_ms, doing);
	if (c->loop.cancel == SG_CANCEL_LEASE)
		return sg_fail(err, SG_EXIT_TIMEOUT, "lost the lease on %s while %s; rolled back", c->cfg->table, doing);
	return sg_fail(err, sg_loop_cancel_exit(&c->loop), "interrupted by %s while %s",
		       c->loop.signum == 2 ? "SIGINT" : "SIGTERM", doing);
}

/* ---- connecting ---------------------------------------------------------- */

static int connect_with_retry(struct coord *c, struct sg_conn **out, const char *role, uint64_t row_lock_wait_ms,
			      struct sg_error *err)
{
	const struct sg_config *cfg = c->cfg;
	bool read_only = cfg->command == SG_CMD_WAIT || cfg->command == SG_CMD_VERIFY ||
			 cfg->command == SG_CMD_STATUS;
	struct sg_conn_opts opts = {
		.url = &c->url,
		.password = cfg->password,
		.application_name = c->app_name,
		.ddl_lock_timeout_ms = cfg->ddl_lock_timeout_ms,
		.io = &c->loop.io,
		.read_only = read_only,
		.row_lock_wait_ms = row_lock_wait_ms,
	};
	uint64_t t0 = sg_now_ms(), backoff = 100, last_log = 0;
	int attempts = 0;
	for (;;) {
		uint64_t spent = elapsed_since(t0);
		uint64_t left = cfg->connect_timeout_ms > spent ? cfg->connect_timeout_ms - spent : 0;
		opts.attempt_timeout_ms = left < CONNECT_ATTEMPT_MAX_MS ? (left ? left : 1000) : CONNECT_ATTEMPT_MAX_MS;
		struct sg_error e = {0};
		attempts++;
		if (c->drv->connect(&opts, out, &e) == 0) {
			if (attempts > 1)
				sg_info("connected", "connected to %s (%s) after %d attempts, %llums", c->url.redacted,
					role, attempts, (unsigned long long)elapsed_since(t0));
			return 0;
		}
		if (sg_loop_canceled(&c->loop) || e.kind == SG_ERRK_CANCELED)
			return canceled_error(c, err, "connecting to the database");
		if (e.kind != SG_ERRK_TRANSIENT) {
			*err = e;
			if (!err->exit_code || err->exit_code == SG_EXIT_MIGRATION)
				err->exit_code = SG_EXIT_DATABASE;
			return -1;
		}
		spent = elapsed_since(t0);
		/* verify and status are one-shot probes: a Kubernetes probe has
		 * its own timeout and retry, so they never wait */
		bool one_shot = cfg->command == SG_CMD_VERIFY || cfg->command == SG_CMD_STATUS;
		if (one_shot) {
			*err = e;
			return sg_fail(err, SG_EXIT_TIMEOUT, "could not connect to %s (%s makes one attempt): %s",
				       c->url.redacted, cfg->command_name, e.msg);
		}
		if (spent >= cfg->connect_timeout_ms) {
			*err = e;
			return sg_fail(err, SG_EXIT_TIMEOUT, "could not connect to %s within %llums (%d attempts): %s",
				       c->url.redacted, (unsigned long long)cfg->connect_timeout_ms, attempts, e.msg);
		}
		if (last_log == 0 || elapsed_since(last_log) >= HOLDER_LOG_INTERVAL_MS) {
			sg_info("connect_retry", "database not ready (%s); retrying for up to %llus", e.msg,
				(unsigned long long)((cfg->connect_timeout_ms - spent) / 1000));
			last_log = sg_now_ms();
		}
		uint64_t nap = jitter(backoff);
		if (nap > cfg->connect_timeout_ms - spent)
			nap = cfg->connect_timeout_ms - spent;
		if (sg_io_sleep(&c->loop.io, nap) == SG_IO_CANCELED)
			return canceled_error(c, err, "waiting to reconnect");
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
}

/* ---- reading the state --------------------------------------------------- */

static int read_plan(struct coord *c, struct sg_history *h, struct sg_plan *p, struct sg_error *err)
{
	if (sg_history_read(c->work, c->cfg->table, h, err) != 0)
		return -1;
	/* ADOPTION (read-only): another tool's history, as the rows it would become */
	if (sg_adopt_preview(c->work, c->cfg->adopt, c->cfg->table, &c->set, h, err) != 0) {
		sg_history_free(h);
		return -1;
	}
	if (sg_plan_build(&c->set, h, c->cfg->target, p, err) != 0) {
		sg_history_free(h);
		return -1;
	}
	return 0;
}

static void free_plan(struct sg_history *h, struct sg_plan *p)
{
	sg_plan_free(p);
	sg_history_free(h);
}

/* At target, nothing failed or changed: the check every waiter and the
 * fast path make. Returns 1 ready, 0 not yet, -1 integrity error. */
static int ready_check(struct coord *c, const struct sg_plan *p, bool allow_ooo, struct sg_error *err)
{
	if (sg_plan_check(p, c->cfg->strict, allow_ooo, err) != 0)
		return -1;
	return p->npending == 0 ? 1 : 0;
}

/*
 * The same check from a waiter's side. A "partial" row is usually the
 * winner's work in progress (MySQL, no-transaction scripts), so it means
 * "not yet", not "broken": only the lock holder may judge it. A "failed"
 * row is final; `up` waiters still take the lock and report it from
 * there, `wait` (which never takes the lock) reports it at once.
 */
static int waiter_check(struct coord *c, const struct sg_plan *p, bool failed_is_final, struct sg_error *err)
{
	for (size_t i = 0; i < p->count; i++) {
		const struct sg_plan_item *it = &p->items[i];
		if (it->state != SG_M_FAILED)
			continue;
		if (failed_is_final && strcmp(it->row->status, "failed") == 0)
			return ready_check(c, p, c->cfg->allow_out_of_order, err);
		return 0;
	}
	return ready_check(c, p, c->cfg->allow_out_of_order, err);
}

static void warn_if_ahead(const struct sg_plan *p)
{
	if (p->nunknown == 0)
		return;
	for (size_t i = p->count; i-- > 0;)
		if (p->items[i].state == SG_M_UNKNOWN) {
			sg_warn("database_ahead", "the database has %zu applied version(s) this directory does not "
				"know (newest %s): a newer release migrated it; accepted because every known migration "
				"is applied (use --strict to refuse)", p->nunknown, p->items[i].version);
			return;
		}
}

static void log_ready(const struct sg_plan *p)
{
	warn_if_ahead(p);
	sg_info("ready", "database is at version %s (%zu applied)", p->target ? p->target : "0", p->napplied);
}

/* ---- the lock ------------------------------------------------------------ */

static void describe_holder(struct coord *c, char *out, size_t outsz)
{
	out[0] = '\0';
	struct sg_error e = {0};
	int rc = 0;
	if (c->lock && c->cfg->lock_mode == SG_LOCK_TABLE)
		rc = sg_lease_describe(c->lock, c->cfg->table, out, outsz, &e);
	else if (c->lock && c->drv->lock_holder)
		rc = c->drv->lock_holder(c->lock, c->cfg->table, out, outsz, &e);
	if (rc != 0)
		out[0] = '\0';
}

/* Wait one poll interval, or less if a notification arrives. */
static int wait_interval(struct coord *c, struct sg_conn *notify_conn, uint64_t max_ms, struct sg_error *err)
{
	uint64_t ms = jitter(c->cfg->poll_interval_ms);
	if (ms > max_ms)
		ms = max_ms;
	int rc;
	if (notify_conn && c->listening) {
		rc = sg_io_wait(&c->loop.io, c->drv->socket(notify_conn), SG_IO_READ, (int64_t)ms);
		if (rc > 0) {
			bool got = false;
			struct sg_error e = {0};
			if (c->drv->consume_notifications(notify_conn, &got, &e) != 0)
				sg_debug("notify", "reading notifications: %s", e.msg);
			else if (got)
				sg_debug("notify", "woken by the winner's notification");
		}
	} else {
		rc = sg_io_sleep(&c->loop.io, ms);
	}
	if (rc == SG_IO_CANCELED)
		return canceled_error(c, err, "waiting");
	return 0;
}

static void start_listening(struct coord *c, struct sg_conn *conn)
{
	/* Not with --lock=table: behind a transaction pooler a LISTEN would
	 * stick to whichever server connection ran it. Waiters poll. */
	if (!conn || !sg_conn_can(conn, SG_CAP_NOTIFY) || c->listening || c->cfg->lock_mode == SG_LOCK_TABLE)
		return;
	struct sg_error e = {0};
	if (c->drv->listen(conn, c->cfg->table, &e) == 0)
		c->listening = true;
	else
		sg_debug("listen", "LISTEN failed, polling only: %s", e.msg);
}

static uint64_t lease_ms(const struct coord *c) { return c->cfg->lock_lease_ms; }

/*
 * The lease is ours until `until` (monotonic ms, measured from when the
 * renewal was sent). Stop everything a sixth of a lease before that,
 * whatever a (possibly blocked) renewal is doing: after expiry another
 * instance may take over, and two must never migrate at once.
 * In-process engines (SQLite) are exempt: their heartbeat cannot run
 * during a statement, and while a migration runs its write lock keeps
 * everyone else from taking the lease over anyway.
 */
static void lease_extended(struct coord *c, uint64_t until)
{
	c->lease_until = until;
	if (!sg_conn_can(c->lock, SG_CAP_POLLABLE))
		return;
	uint64_t stop_at = until - lease_ms(c) / 6, now = sg_now_ms();
	sg_loop_arm_expiry(&c->loop, stop_at > now ? stop_at - now : 0);
}

/* Heartbeat: renew the lease every lease/3. A holder that cannot renew
 * before its lease runs out cancels everything (exit 3): after expiry
 * another instance may take over, and two must never migrate at once. */
static void renew_tick(void *data)
{
	struct coord *c = data;
	uint64_t sent = sg_now_ms();
	bool ours = false;
	struct sg_error e = {0};
	int rc = sg_lease_renew(c->lock, c->cfg->table, sg_instance_id(), lease_ms(c), &ours, &e);
	if (rc == 0 && ours) {
		lease_extended(c, sent + lease_ms(c));
		return;
	}
	uint64_t margin = lease_ms(c) / 6;
	if (rc == 0 && !ours) {
		sg_errorlog("lease_lost", "the lease on %s expired and was taken by another instance; aborting",
			    c->cfg->table);
		sg_loop_cancel(&c->loop, SG_CANCEL_LEASE);
	} else if (sg_now_ms() + margin >= c->lease_until) {
		sg_errorlog("lease_lost", "could not renew the lease on %s before it runs out (%s); aborting",
			    c->cfg->table, e.msg);
		sg_loop_cancel(&c->loop, SG_CANCEL_LEASE);
	} else {
		sg_warn("lease_renew", "renewing the lease failed, retrying: %s", e.msg);
	}
}

/* Before each migration: the lease must be ours, freshly extended. */
static int lease_check(struct coord *c, struct sg_error *err)
{
	if (c->cfg->lock_mode != SG_LOCK_TABLE || !c->locked)
		return 0;
	uint64_t sent = sg_now_ms();
	bool ours = false;
	if (sg_lease_renew(c->lock, c->cfg->table, sg_instance_id(), lease_ms(c), &ours, err) != 0)
		return sg_error_prefix(err, "renewing the lease");
	if (!ours)
		return sg_fail(err, SG_EXIT_TIMEOUT, "the lease on %s expired and was taken by another instance",
			       c->cfg->table);
	lease_extended(c, sent + lease_ms(c));
	return 0;
}

static int lock_attempt(struct coord *c, bool *acquired, struct sg_error *err)
{
	if (c->cfg->lock_mode != SG_LOCK_TABLE)
		return c->drv->try_lock(c->lock, c->cfg->table, acquired, err);
	uint64_t sent = sg_now_ms();
	char previous[256];
	if (sg_lease_try_acquire(c->lock, c->cfg->table, sg_instance_id(), lease_ms(c), acquired, previous,
				 sizeof(previous), err) != 0) {
		/* SQLite: the holder's migration has the file locked; a miss */
		if (err->kind != SG_ERRK_TRANSIENT)
			return -1;
		sg_error_clear(err);
		*acquired = false;
		return 0;
	}
	if (*acquired) {
		lease_extended(c, sent + lease_ms(c));
		if (previous[0])
			sg_warn("lease_takeover", "took over the expired lease of %s (it stopped renewing: killed or "
				"cut off)", previous);
		sg_loop_start_heartbeat(&c->loop, lease_ms(c) / 3, renew_tick, c);
	}
	return 0;
}

/* Has another instance brought the database to the target? 1 yes (and
 * the state is READY), 0 not yet, -1 error. */
static int winner_finished(struct coord *c, uint64_t t0, struct sg_error *err)
{
	struct sg_history h;
	struct sg_plan p;
	struct sg_error e = {0};
	if (read_plan(c, &h, &p, &e) != 0) {
		if (e.kind == SG_ERRK_CANCELED || sg_loop_canceled(&c->loop))
			return canceled_error(c, err, "waiting for the lock");
		if (e.kind == SG_ERRK_TRANSIENT)
			return 0; /* SQLite: the winner is committing */
		*err = e;
		return -1;
	}
	int ready = waiter_check(c, &p, false, &e);
	if (ready == 1) {
		struct sg_log_fields f = {.waited_ms = (int64_t)elapsed_since(t0), .duration_ms = -1};
		sg_log(SG_LOG_INFO, "winner_finished", &f, "another instance brought the database to the target");
		log_ready(&p);
		transition(c, ST_READY, "another instance finished the work");
	}
	free_plan(&h, &p);
	if (ready < 0)
		*err = e;
	return ready;
}

/*
 * Contend for the lock. Returns 1 with the lock held, 0 when (recheck) the
 * winner already brought the database to the target, -1 on error.
 */
static int contend(struct coord *c, bool recheck, struct sg_error *err)
{
	const struct sg_config *cfg = c->cfg;
	if (cfg->lock_mode == SG_LOCK_NONE) {
		transition(c, ST_APPLYING, "--lock=none: the operator guarantees exclusivity");
		return 1;
	}
	if (cfg->lock_mode == SG_LOCK_TABLE) {
		/* the lease lives on its own connection so it can be renewed
		 * while the work connection runs a statement */
		if (connect_with_retry(c, &c->lock, "lease connection", lease_ms(c) / 3, err) != 0)
			return -1;
		if (sg_lease_ensure(c->lock, cfg->table, err) != 0)
			return -1;
	} else if (sg_conn_can(c->work, SG_CAP_DEDICATED_LOCK_CONN)) {
		if (connect_with_retry(c, &c->lock, "lock connection", 0, err) != 0)
			return -1;
	} else {
		c->lock = c->work;
	}
	transition(c, ST_CONTENDING, recheck ? "migrations are pending" : "this command writes");
	start_listening(c, c->lock);

	uint64_t t0 = sg_now_ms(), last_log = t0;
	for (bool first = true;; first = false) {
		/* After a miss and a wait (or a notification), look at the
		 * history before trying again: a waiter woken by the winner
		 * then exits without ever taking the lock. */
		if (recheck && !first) {
			int done = winner_finished(c, t0, err);
			if (done != 0)
				return done < 0 ? -1 : 0;
		}
		bool acquired = false;
		if (lock_attempt(c, &acquired, err) != 0) {
			if (err->kind == SG_ERRK_CANCELED || sg_loop_canceled(&c->loop))
				return canceled_error(c, err, "taking the lock");
			return sg_error_prefix(err, "taking the lock");
		}
		if (acquired) {
			c->locked = true;
			struct sg_log_fields f = {.waited_ms = (int64_t)elapsed_since(t0), .duration_ms = -1};
			sg_log(SG_LOG_INFO, "lock_acquired", &f, "lock acquired after %llums",
			       (unsigned long long)elapsed_since(t0));
			transition(c, ST_APPLYING, "lock acquired");
			return 1;
		}
		uint64_t waited = elapsed_since(t0);
		if (waited >= cfg->lock_timeout_ms) {
			char holder[256];
			describe_holder(c, holder, sizeof(holder));
			return sg_fail(err, SG_EXIT_TIMEOUT, "lock timeout: waited %llums for the migration lock on %s%s%s",
				       (unsigned long long)waited, cfg->table, holder[0] ? ", held by " : "", holder);
		}
		if (elapsed_since(last_log) >= HOLDER_LOG_INTERVAL_MS) {
			char holder[256];
			describe_holder(c, holder, sizeof(holder));
			struct sg_log_fields f = {.holder = holder[0] ? holder : NULL, .waited_ms = (int64_t)waited,
						  .duration_ms = -1};
			sg_log(SG_LOG_INFO, "lock_wait", &f, "still waiting for the lock after %llus%s%s",
			       (unsigned long long)(waited / 1000), holder[0] ? ", held by " : "", holder);
			last_log = sg_now_ms();
		}
		if (wait_interval(c, c->lock, cfg->lock_timeout_ms - waited, err) != 0)
			return -1;
	}
}

static int release(struct coord *c, struct sg_error *err)
{
	if (!c->locked)
		return 0;
	c->locked = false;
	if (c->cfg->lock_mode == SG_LOCK_TABLE) {
		sg_loop_stop_heartbeat(&c->loop);
		sg_loop_disarm_expiry(&c->loop);
		if (sg_lease_release(c->lock, c->cfg->table, sg_instance_id(), err) != 0)
			return sg_error_prefix(err, "releasing the lease");
	} else if (c->drv->unlock(c->lock, c->cfg->table, err) != 0) {
		return sg_error_prefix(err, "releasing the lock");
	}
	sg_debug("lock_released", "lock released");
	return 0;
}

/* ---- applying ------------------------------------------------------------ */

static void record_failure_event(struct coord *c, const char *event, const char *version, const char *error)
{
	struct sg_error e = {0};
	if (sg_event_record(c->work, c->cfg->table, event, version, "failed", error, &e) != 0)
		sg_debug("event", "could not record the failure event: %s", e.msg);
}

/*
 * Run a script statement by statement. With progress (apply), the history
 * row says "partial" and how many statements are done after each one, so
 * a crash leaves an exact record. Returns 0 or -1; *done = statements run.
 */
static int run_statements(struct coord *c, const struct sg_migration *m, const struct sg_statement_list *list,
			  bool progress, long *done, struct sg_error *err)
{
	*done = 0;
	int rc = 0;
	if (c->drv->before_script && c->drv->before_script(c->work, err) != 0)
		rc = -1;
	if (rc == 0 && progress)
		rc = sg_history_record(c->work, c->cfg->table, m, "partial", 0, 0, NULL, err);
	for (size_t i = 0; rc == 0 && i < list->count; i++) {
		if (sg_conn_exec(c->work, list->items[i].sql, err) != 0) {
			char head[160];
			sg_statement_head(list->items[i].sql, head, sizeof(head));
			sg_error_prefix(err, "statement %zu (line %d: %s)", i + 1, list->items[i].line, head);
			rc = -1;
			break;
		}
		*done = (long)i + 1;
		if (progress)
			rc = sg_history_record(c->work, c->cfg->table, m, "partial", *done, 0, NULL, err);
	}
	if (rc == 0 && c->drv->after_script && c->drv->after_script(c->work, err) != 0)
		rc = -1;
	return rc;
}

static int apply_in_transaction(struct coord *c, const struct sg_migration *m, uint64_t t0, struct sg_error *err)
{
	if (sg_conn_begin(c->work, err) != 0)
		return -1;
	char dur[32];
	if (sg_conn_exec(c->work, m->up_sql, err) == 0 &&
	    sg_history_record(c->work, c->cfg->table, m, "applied", 0, (long)elapsed_since(t0), NULL, err) == 0 &&
	    (snprintf(dur, sizeof(dur), "%llums", (unsigned long long)elapsed_since(t0)), 1) &&
	    sg_event_record(c->work, c->cfg->table, "apply", m->version, "ok", dur, err) == 0 &&
	    sg_conn_commit(c->work, err) == 0)
		return 0;
	begin_cleanup_if_canceled(c);
	struct sg_error e = {0};
	if (sg_conn_rollback(c->work, &e) != 0)
		sg_debug("rollback", "rollback failed: %s", e.msg);
	return -1;
}

static int apply_one(struct coord *c, const struct sg_migration *m, struct sg_error *err)
{
	struct sg_log_fields f = {.version = m->version, .name = m->name, .duration_ms = -1, .waited_ms = -1};
	sg_log(SG_LOG_INFO, "apply_start", &f, "applying %s%s", m->up_file,
	       m->up_no_tx ? " (no transaction)" : "");
	uint64_t t0 = sg_now_ms();
	/* the loader decided (MySQL, no-transaction scripts) and split it offline */
	bool transactional = !m->up_split;
	int rc;
	if (transactional) {
		uint64_t backoff = 500;
		for (int attempt = 1;; attempt++) {
			rc = apply_in_transaction(c, m, t0, err);
			if (rc == 0 || err->kind != SG_ERRK_LOCK_TIMEOUT || attempt >= DDL_LOCK_RETRIES)
				break;
			/* Rolled back: live traffic was never queued behind us for
			 * longer than --ddl-lock-timeout. Try again shortly. */
			sg_log(SG_LOG_WARN, "ddl_lock_retry", &f, "%s: could not get a table lock within %llums "
			       "(attempt %d of %d); rolled back, retrying in ~%llums", m->up_file,
			       (unsigned long long)c->cfg->ddl_lock_timeout_ms, attempt, DDL_LOCK_RETRIES,
			       (unsigned long long)backoff);
			if (sg_io_sleep(&c->loop.io, jitter(backoff)) == SG_IO_CANCELED)
				return canceled_error(c, err, "waiting to retry a migration");
			backoff = backoff * 2 > 8000 ? 8000 : backoff * 2;
			t0 = sg_now_ms();
		}
		if (rc != 0) {
			if (err->kind == SG_ERRK_CANCELED || sg_loop_canceled(&c->loop))
				return canceled_error(c, err, "applying a migration (rolled back)");
			sg_error_prefix(err, "applying %s", m->up_file);
			if (err->exit_code != SG_EXIT_DATABASE && err->exit_code != SG_EXIT_TIMEOUT)
				err->exit_code = SG_EXIT_MIGRATION;
			record_failure_event(c, "failure", m->version, err->msg);
			return -1;
		}
	} else {
		long done = 0;
		rc = run_statements(c, m, &m->up_statements, true, &done, err);
		if (rc == 0)
			rc = sg_history_record(c->work, c->cfg->table, m, "applied", done, (long)elapsed_since(t0), NULL, err);
		if (rc != 0) {
			bool canceled = err->kind == SG_ERRK_CANCELED || sg_loop_canceled(&c->loop);
			begin_cleanup_if_canceled(c);
			sg_error_prefix(err, "applying %s", m->up_file);
			struct sg_error e = {0};
			/* the statements before the failing one are committed: say so precisely */
			if (sg_history_record(c->work, c->cfg->table, m, "failed", done, (long)elapsed_since(t0),
					      err->msg, &e) != 0)
				sg_warn("history", "could not record the failure of %s: %s", m->version, e.msg);
			record_failure_event(c, "failure", m->version, err->msg);
			if (canceled) {
				struct sg_error ce = {0};
				canceled_error(c, &ce, "applying a migration");
				err->exit_code = ce.exit_code;
			} else {
				err->exit_code = SG_EXIT_MIGRATION;
			}
			char cause[SG_ERROR_MSG];
			memcpy(cause, err->msg, sizeof(cause));
			sg_fail(err, err->exit_code, "%s; %ld statement(s) were applied and stay applied; after fixing the "
				"database run `schemagate repair %s --applied` or `--reverted`", cause, done, m->version);
			return -1;
		}
		char dur[32];
		snprintf(dur, sizeof(dur), "%llums", (unsigned long long)elapsed_since(t0));
		struct sg_error e = {0};
		if (sg_event_record(c->work, c->cfg->table, "apply", m->version, "ok", dur, &e) != 0)
			sg_warn("event", "could not record the apply event: %s", e.msg);
	}
	f.duration_ms = (int64_t)elapsed_since(t0);
	sg_log(SG_LOG_INFO, "applied", &f, "applied %s in %lldms", m->up_file, (long long)f.duration_ms);
	c->applied++;
	return 0;
}

/* ---- reverting ----------------------------------------------------------- */

/* The down script comes from the directory (prepared by the loader) or
 * from the history table (prepared here, by the loader's rules). */
struct revert_item {
	char *version, *name, *checksum;
	const char *down_sql;
	bool split;
	const struct sg_statement_list *statements;
	struct sg_script stored;   /* owns a stored script's text and statements */
};

static int revert_one(struct coord *c, const struct revert_item *r, struct sg_error *err)
{
	struct sg_log_fields f = {.version = r->version, .name = r->name, .duration_ms = -1, .waited_ms = -1};
	sg_log(SG_LOG_INFO, "revert_start", &f, "reverting %s_%s", r->version, r->name);
	uint64_t t0 = sg_now_ms();
	struct sg_migration m = {.version = r->version, .name = r->name};
	snprintf(m.checksum, sizeof(m.checksum), "%s", r->checksum);
	int rc;
	if (!r->split) {
		rc = sg_conn_begin(c->work, err);
		if (rc == 0) {
			if (sg_conn_exec(c->work, r->down_sql, err) == 0 &&
			    sg_history_delete(c->work, c->cfg->table, r->version, err) == 0 &&
			    sg_event_record(c->work, c->cfg->table, "revert", r->version, "ok", NULL, err) == 0 &&
			    sg_conn_commit(c->work, err) == 0) {
				rc = 0;
			} else {
				begin_cleanup_if_canceled(c);
				struct sg_error e = {0};
				sg_conn_rollback(c->work, &e);
				rc = -1;
			}
		}
	} else {
		long done = 0;
		rc = run_statements(c, &m, r->statements, false, &done, err);
		if (rc == 0)
			rc = sg_history_delete(c->work, c->cfg->table, r->version, err);
		if (rc == 0) {
			struct sg_error e = {0};
			sg_event_record(c->work, c->cfg->table, "revert", r->version, "ok", NULL, &e);
		} else {
			begin_cleanup_if_canceled(c);
			sg_error_prefix(err, "%ld statement(s) of the down script ran", done);
			struct sg_error e = {0};
			if (sg_history_set_status(c->work, c->cfg->table, r->version, "failed", err->msg, &e) != 0)
				sg_warn("history", "could not record the failed revert of %s: %s", r->version, e.msg);
		}
	}
	if (rc != 0) {
		if (err->kind == SG_ERRK_CANCELED || sg_loop_canceled(&c->loop))
			return canceled_error(c, err, "reverting a migration");
		sg_error_prefix(err, "reverting %s", r->version);
		err->exit_code = SG_EXIT_MIGRATION;
		record_failure_event(c, "failure", r->version, err->msg);
		return -1;
	}
	f.duration_ms = (int64_t)elapsed_since(t0);
	sg_log(SG_LOG_INFO, "reverted", &f, "reverted %s_%s in %lldms", r->version, r->name, (long long)f.duration_ms);
	c->applied++;
	return 0;
}

static void free_revert_items(struct revert_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(items[i].version);
		free(items[i].name);
		free(items[i].checksum);
		sg_script_free(&items[i].stored);
	}
	free(items);
}

/*
 * Collect what `down` or `rollback` reverts, newest first, with the down
 * script to run: rollback uses the script stored at apply time (the old
 * image does not have the newer files); down prefers the directory's file
 * and falls back to the stored one.
 */
static int collect_reverts(struct coord *c, const struct sg_history *h, struct revert_item **out, size_t *nout,
			   struct sg_error *err)
{
	const struct sg_config *cfg = c->cfg;
	struct revert_item *items = sg_calloc(h->count + 1, sizeof(*items));
	size_t n = 0;
	for (size_t i = h->count; i-- > 0;) {
		const struct sg_history_row *r = &h->rows[i];
		const struct sg_migration *m = sg_migration_find(&c->set, r->version);
		if (strcmp(r->status, "applied") != 0 && strcmp(r->status, "baselined") != 0) {
			free_revert_items(items, n);
			return sg_fail(err, SG_EXIT_INTEGRITY, "migration %s is %s; repair it first with `schemagate "
				       "repair %s --applied|--reverted`", r->version, r->status, r->version);
		}
		if (cfg->command == SG_CMD_ROLLBACK && m)
			continue;
		if (cfg->command == SG_CMD_DOWN) {
			if (cfg->down_to && sg_version_cmp(r->version, cfg->down_to) <= 0)
				break;
			if (!cfg->down_to && (int)n >= cfg->down_steps)
				break;
		}
		struct revert_item *it = &items[n++];
		it->version = sg_strdup(r->version);
		it->name = sg_strdup(r->name);
		it->checksum = sg_strdup(r->checksum);
		if (cfg->command == SG_CMD_DOWN && m && m->down_sql) {
			it->down_sql = m->down_sql;
			it->split = m->down_split;
			it->statements = &m->down_statements;
			continue;
		}
		char *stored = NULL;
		if (sg_history_down_sql(c->work, cfg->table, r->version, &stored, err) != 0) {
			free_revert_items(items, n);
			return -1;
		}
		if (!stored) {
			free_revert_items(items, n);
			return sg_fail(err, SG_EXIT_INTEGRITY, "cannot revert %s: no down script in the directory or "
				       "recorded in %s when it was applied", r->version, cfg->table);
		}
		/* the rules the loader applies to a file, before anything runs */
		char *what = sg_asprintf("the down script of %s stored in %s", r->version, cfg->table);
		int prc = sg_script_prepare(stored, false, c->set.dialect, what, &it->stored, err);
		free(what);
		free(stored);
		if (prc != 0) {
			free_revert_items(items, n);
			return -1;
		}
		it->down_sql = it->stored.sql;
		it->split = it->stored.split;
		it->statements = &it->stored.statements;
	}
	*out = items;
	*nout = n;
	return 0;
}

/* ---- the work done under the lock, per command --------------------------- */

static int baseline_upto(struct coord *c, const struct sg_history *h, const char *upto, struct sg_error *err)
{
	int n = 0;
	for (size_t i = 0; i < c->set.count; i++) {
		const struct sg_migration *m = &c->set.items[i];
		if (sg_version_cmp(m->version, upto) > 0)
			break;
		if (sg_history_find(h, m->version))
			continue;
		if (sg_history_record(c->work, c->cfg->table, m, "baselined", 0, 0, NULL, err) != 0 ||
		    sg_event_record(c->work, c->cfg->table, "baseline", m->version, "ok", NULL, err) != 0)
			return -1;
		n++;
	}
	sg_info("baselined", "recorded %d migration(s) up to %s as applied without running them", n, upto);
	return 0;
}

/* ADOPTION (under the lock): before any writing command first touches the history. */
static int adopt(struct coord *c, struct sg_error *err)
{
	return sg_adopt_record(c->work, c->cfg->adopt, c->cfg->table, &c->set, err);
}

static int work_up(struct coord *c, struct sg_error *err)
{
	const struct sg_config *cfg = c->cfg;
	bool existed = false;
	if (adopt(c, err) != 0)
		return -1;
	if (c->drv->table_exists(c->work, cfg->table, &existed, err) != 0)
		return -1;
	if (sg_history_ensure(c->work, cfg->table, err) != 0)
		return -1;
	struct sg_history h;
	struct sg_plan p;
	if (!existed && cfg->baseline_version) {
		bool any = true;
		if (c->drv->has_user_tables && c->drv->has_user_tables(c->work, cfg->table, &any, err) != 0)
			return -1;
		if (any) {
			if (sg_history_read(c->work, cfg->table, &h, err) != 0)
				return -1;
			int rc = baseline_upto(c, &h, cfg->baseline_version, err);
			sg_history_free(&h);
			if (rc != 0)
				return -1;
		}
	}
	/* re-read under the lock: the previous holder may have done part */
	if (read_plan(c, &h, &p, err) != 0)
		return -1;
	int rc = sg_plan_check(&p, cfg->strict, cfg->allow_out_of_order, err);
	for (size_t i = 0; rc == 0 && i < p.count; i++)
		if (p.items[i].state == SG_M_PENDING) {
			rc = lease_check(c, err);
			if (rc == 0)
				rc = apply_one(c, p.items[i].m, err);
		}
	free_plan(&h, &p);
	return rc;
}

static int work_revert(struct coord *c, struct sg_error *err)
{
	struct sg_history h;
	if (adopt(c, err) != 0)
		return -1;
	if (sg_history_read(c->work, c->cfg->table, &h, err) != 0)
		return -1;
	struct revert_item *items = NULL;
	size_t n = 0;
	int rc = collect_reverts(c, &h, &items, &n, err);
	sg_history_free(&h);
	if (rc != 0)
		return -1;
	if (n == 0)
		sg_info("nothing_to_revert", "nothing to revert");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = lease_check(c, err);
		if (rc == 0)
			rc = revert_one(c, &items[i], err);
	}
	free_revert_items(items, n);
	return rc;
}

static int work_baseline(struct coord *c, struct sg_error *err)
{
	if (adopt(c, err) != 0)
		return -1;
	if (sg_history_ensure(c->work, c->cfg->table, err) != 0)
		return -1;
	struct sg_history h;
	if (sg_history_read(c->work, c->cfg->table, &h, err) != 0)
		return -1;
	int rc = baseline_upto(c, &h, c->cfg->baseline_version, err);
	sg_history_free(&h);
	return rc;
}

static int work_repair(struct coord *c, struct sg_error *err)
{
	const struct sg_config *cfg = c->cfg;
	struct sg_history h;
	if (sg_history_read(c->work, cfg->table, &h, err) != 0)
		return -1;
	int rc = 0;
	if (!h.exists) {
		rc = sg_fail(err, SG_EXIT_USAGE, "nothing to repair: history table %s does not exist", cfg->table);
	} else if (cfg->repair_action == SG_REPAIR_ACCEPT_CHECKSUMS) {
		int n = 0;
		for (size_t i = 0; rc == 0 && i < h.count; i++) {
			const struct sg_migration *m = sg_migration_find(&c->set, h.rows[i].version);
			if (!m || strcmp(m->checksum, h.rows[i].checksum) == 0)
				continue;
			char *detail = sg_asprintf("checksum %s -> %s (%s)", h.rows[i].checksum, m->checksum, m->up_file);
			rc = sg_history_set_checksum(c->work, cfg->table, h.rows[i].version, m->checksum, err);
			if (rc == 0)
				rc = sg_event_record(c->work, cfg->table, "repair", h.rows[i].version, "accept-checksum",
						     detail, err);
			if (rc == 0)
				sg_info("repaired", "accepted the current checksum of %s", m->up_file);
			free(detail);
			n++;
		}
		if (rc == 0 && n == 0)
			sg_info("repaired", "every checksum already matches");
	} else {
		const struct sg_history_row *r = sg_history_find(&h, cfg->repair_version);
		if (!r) {
			rc = sg_fail(err, SG_EXIT_USAGE, "nothing to repair: version %s is not in %s", cfg->repair_version,
				     cfg->table);
		} else if (strcmp(r->status, "failed") != 0 && strcmp(r->status, "partial") != 0) {
			rc = sg_fail(err, SG_EXIT_USAGE, "version %s is %s, not failed or partial: nothing to repair",
				     r->version, r->status);
		} else {
			bool applied = cfg->repair_action == SG_REPAIR_APPLIED;
			char *detail = sg_asprintf("was %s after %ld statement(s): %s", r->status, r->statements_done,
						   r->error ? r->error : "");
			rc = applied ? sg_history_set_status(c->work, cfg->table, r->version, "applied", NULL, err)
				     : sg_history_delete(c->work, cfg->table, r->version, err);
			if (rc == 0)
				rc = sg_event_record(c->work, cfg->table, "repair", r->version,
						     applied ? "marked-applied" : "marked-reverted", detail, err);
			if (rc == 0)
				sg_info("repaired", "version %s marked %s", r->version, applied ? "applied" : "reverted");
			free(detail);
		}
	}
	sg_history_free(&h);
	return rc;
}

/* Take the lock, do the command's work, release: the shape every writing
 * command shares. Returns 0 (ready) or -1. */
static int under_lock(struct coord *c, bool recheck, int (*work)(struct coord *, struct sg_error *),
		      struct sg_error *err)
{
	int got = contend(c, recheck, err);
	if (got < 0)
		transition(c, ST_FAILED, err->msg);
	if (got <= 0)
		return got;
	int rc = work(c, err);
	if (rc != 0)
		begin_cleanup_if_canceled(c);
	if (c->applied > 0 && rc == 0 && c->lock && sg_conn_can(c->lock, SG_CAP_NOTIFY)) {
		struct sg_error e = {0};
		if (c->drv->notify(c->work, c->cfg->table, &e) != 0)
			sg_debug("notify", "NOTIFY failed: %s", e.msg);
	}
	if (c->cfg->lock_mode == SG_LOCK_NONE) {
		transition(c, rc == 0 ? ST_READY : ST_FAILED, rc == 0 ? "work done" : err->msg);
		return rc;
	}
	transition(c, ST_RELEASING, rc == 0 ? "work done" : "work failed");
	struct sg_error re = {0};
	if (release(c, &re) != 0) {
		if (rc == 0) {
			*err = re;
			rc = -1;
		} else {
			sg_warn("unlock", "%s", re.msg);
		}
	}
	if (rc != 0)
		transition(c, ST_FAILED, err->msg);
	return rc;
}

/* ---- commands ------------------------------------------------------------ */

/* After this instance changed the database: read it back and check. */
static int verify_after(struct coord *c, struct sg_error *err)
{
	struct sg_history h;
	struct sg_plan p;
	if (read_plan(c, &h, &p, err) != 0)
		return -1;
	int ready = ready_check(c, &p, true, err);
	if (ready == 0)
		sg_fail(err, SG_EXIT_INTEGRITY, "after applying, %zu migration(s) are still pending", p.npending);
	if (ready == 1)
		log_ready(&p);
	free_plan(&h, &p);
	return ready == 1 ? 0 : -1;
}

static int cmd_up(struct coord *c, struct sg_error *err)
{
	struct sg_history h;
	struct sg_plan p;
	if (read_plan(c, &h, &p, err) != 0)
		return -1;
	/* a failed or partial row may be a winner at work: contend, and
	 * judge it under the lock */
	int ready = waiter_check(c, &p, false, err);
	/* creating the history (baseline bootstrap, adoption) needs the lock */
	bool bootstrap = (!h.exists && c->cfg->baseline_version) || h.nadopted > 0;
	if (ready == 1 && !bootstrap)
		log_ready(&p);
	free_plan(&h, &p);
	if (ready < 0) {
		transition(c, ST_FAILED, err->msg);
		return -1;
	}
	if (ready == 1 && !bootstrap) {
		/* the pod-restart path: one read, no lock */
		transition(c, ST_READY, "fast path: nothing pending, checksums match");
		return 0;
	}
	if (under_lock(c, true, work_up, err) != 0)
		return -1;
	if (c->state == ST_READY)
		return 0; /* the winner's work, verified by contend() */
	transition(c, ST_READY, "lock released");
	return verify_after(c, err);
}

static int cmd_locked(struct coord *c, int (*work)(struct coord *, struct sg_error *), struct sg_error *err)
{
	if (under_lock(c, false, work, err) != 0)
		return -1;
	if (c->state == ST_RELEASING)
		transition(c, ST_READY, "lock released");
	return 0;
}

static int cmd_wait(struct coord *c, struct sg_error *err)
{
	const struct sg_config *cfg = c->cfg;
	transition(c, ST_WAITING, "waiting for the database to reach the target");
	start_listening(c, c->work);
	uint64_t t0 = sg_now_ms(), last_log = t0;
	for (;;) {
		struct sg_history h;
		struct sg_plan p;
		struct sg_error e = {0};
		if (read_plan(c, &h, &p, &e) == 0) {
			int ready = waiter_check(c, &p, true, &e);
			size_t pending = p.npending + p.nfailed;
			free_plan(&h, &p);
			if (ready == 1) {
				transition(c, ST_READY, "target reached");
				return verify_after(c, err);
			}
			if (ready < 0) {
				*err = e;
				transition(c, ST_FAILED, err->msg);
				return -1;
			}
			if (elapsed_since(last_log) >= HOLDER_LOG_INTERVAL_MS) {
				struct sg_log_fields f = {.waited_ms = (int64_t)elapsed_since(t0), .duration_ms = -1};
				sg_log(SG_LOG_INFO, "wait", &f, "waiting: %zu migration(s) pending", pending);
				last_log = sg_now_ms();
			}
		} else if (e.kind == SG_ERRK_CANCELED || sg_loop_canceled(&c->loop)) {
			canceled_error(c, err, "waiting");
			transition(c, ST_FAILED, err->msg);
			return -1;
		} else if (e.kind != SG_ERRK_TRANSIENT) {
			*err = e;
			transition(c, ST_FAILED, err->msg);
			return -1;
		}
		uint64_t waited = elapsed_since(t0);
		if (waited >= cfg->lock_timeout_ms) {
			sg_fail(err, SG_EXIT_TIMEOUT, "wait timeout: the database did not reach version %s within %llums",
				c->set.count ? c->set.items[c->set.count - 1].version : "0", (unsigned long long)waited);
			transition(c, ST_FAILED, err->msg);
			return -1;
		}
		if (wait_interval(c, c->work, cfg->lock_timeout_ms - waited, err) != 0) {
			transition(c, ST_FAILED, err->msg);
			return -1;
		}
	}
}

static int cmd_verify(struct coord *c, struct sg_error *err)
{
	struct sg_history h;
	struct sg_plan p;
	if (read_plan(c, &h, &p, err) != 0)
		return -1;
	int ready = ready_check(c, &p, c->cfg->allow_out_of_order, err);
	if (ready == 0)
		sg_fail(err, SG_EXIT_PENDING, "not ready: %zu migration(s) pending (target %s)", p.npending,
			p.target ? p.target : "0");
	if (ready == 1) {
		warn_if_ahead(&p);
		sg_info("ready", "database is at version %s (%zu applied), checksums match", p.target ? p.target : "0",
			p.napplied);
	}
	free_plan(&h, &p);
	transition(c, ready == 1 ? ST_READY : ST_FAILED, ready == 1 ? "verified" : err->msg);
	return ready == 1 ? 0 : -1;
}

static void print_status_json(struct coord *c, const struct sg_history *h, const struct sg_plan *p)
{
	struct sg_buf b = {0};
	sg_buf_puts(&b, "{\"database\":");
	sg_buf_json_string(&b, c->url.redacted);
	sg_buf_puts(&b, ",\"table\":");
	sg_buf_json_string(&b, c->cfg->table);
	sg_buf_printf(&b, ",\"history_exists\":%s,\"target\":", h->exists ? "true" : "false");
	sg_buf_json_string(&b, p->target);
	sg_buf_printf(&b, ",\"at_target\":%s,\"counts\":{\"applied\":%zu,\"pending\":%zu,\"failed\":%zu,"
			  "\"changed\":%zu,\"unknown\":%zu},\"migrations\":[",
		      p->npending == 0 && p->nfailed == 0 && p->nchanged == 0 ? "true" : "false", p->napplied,
		      p->npending, p->nfailed, p->nchanged, p->nunknown);
	for (size_t i = 0; i < p->count; i++) {
		const struct sg_plan_item *it = &p->items[i];
		sg_buf_puts(&b, i ? ",{\"version\":" : "{\"version\":");
		sg_buf_json_string(&b, it->version);
		sg_buf_puts(&b, ",\"name\":");
		sg_buf_json_string(&b, it->m ? it->m->name : it->row->name);
		sg_buf_puts(&b, ",\"state\":");
		sg_buf_json_string(&b, sg_mstate_name(it->state));
		sg_buf_puts(&b, ",\"file\":");
		sg_buf_json_string(&b, it->m ? it->m->up_file : NULL);
		sg_buf_puts(&b, ",\"status\":");
		sg_buf_json_string(&b, it->row ? it->row->status : NULL);
		sg_buf_puts(&b, ",\"applied_at\":");
		sg_buf_json_string(&b, it->row ? it->row->applied_at : NULL);
		sg_buf_puts(&b, ",\"applied_by\":");
		sg_buf_json_string(&b, it->row ? it->row->applied_by : NULL);
		sg_buf_puts(&b, ",\"checksum_recorded\":");
		sg_buf_json_string(&b, it->row ? it->row->checksum : NULL);
		sg_buf_puts(&b, ",\"checksum_file\":");
		sg_buf_json_string(&b, it->m ? it->m->checksum : NULL);
		if (it->row)
			sg_buf_printf(&b, ",\"statements_done\":%ld,\"duration_ms\":%ld", it->row->statements_done,
				      it->row->duration_ms);
		sg_buf_puts(&b, ",\"error\":");
		sg_buf_json_string(&b, it->row ? it->row->error : NULL);
		sg_buf_printf(&b, ",\"out_of_order\":%s}", it->out_of_order ? "true" : "false");
	}
	sg_buf_puts(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	sg_buf_free(&b);
}

static void print_status_text(struct coord *c, const struct sg_history *h, const struct sg_plan *p)
{
	printf("%-16s %-14s %-32s %-26s %s\n", "VERSION", "STATE", "NAME", "APPLIED AT", "APPLIED BY");
	for (size_t i = 0; i < p->count; i++) {
		const struct sg_plan_item *it = &p->items[i];
		const char *name = it->m ? it->m->name : it->row->name;
		printf("%-16s %-14s %-32s %-26s %s\n", it->version, sg_mstate_name(it->state), name,
		       it->row && it->row->applied_at ? it->row->applied_at : "-",
		       it->row && it->row->applied_by ? it->row->applied_by : "-");
		if (it->state == SG_M_FAILED && it->row)
			printf("%16s %s after %ld statement(s): %s\n", "", it->row->status, it->row->statements_done,
			       it->row->error ? it->row->error : "");
		if (it->state == SG_M_CHANGED && it->row && it->m)
			printf("%16s checksum recorded %s, file has %s\n", "", it->row->checksum, it->m->checksum);
	}
	printf("%s: target %s; %zu applied, %zu pending, %zu failed, %zu changed, %zu unknown%s\n", c->cfg->table,
	       p->target ? p->target : "-", p->napplied, p->npending, p->nfailed, p->nchanged, p->nunknown,
	       h->exists ? "" : " (history table does not exist yet)");
}

static int cmd_status(struct coord *c, struct sg_error *err)
{
	struct sg_history h;
	struct sg_plan p;
	if (read_plan(c, &h, &p, err) != 0)
		return -1;
	if (c->cfg->json)
		print_status_json(c, &h, &p);
	else
		print_status_text(c, &h, &p);
	fflush(stdout);
	free_plan(&h, &p);
	transition(c, ST_READY, "status printed");
	return 0;
}

static int dispatch(struct coord *c, struct sg_error *err)
{
	transition(c, ST_CONNECTING, "migration directory is valid");
	if (connect_with_retry(c, &c->work, "work connection", 0, err) != 0) {
		transition(c, ST_FAILED, err->msg);
		return -1;
	}
	transition(c, ST_CHECKING, "connected");
	/* MariaDB behind a mysql:// URL: its own files, validated offline too */
	if (c->drv->dialect)
		sg_migration_select(&c->set, c->drv->dialect(c->work));
	switch (c->cfg->command) {
	case SG_CMD_UP: return cmd_up(c, err);
	case SG_CMD_WAIT: return cmd_wait(c, err);
	case SG_CMD_VERIFY: return cmd_verify(c, err);
	case SG_CMD_STATUS: return cmd_status(c, err);
	case SG_CMD_DOWN:
	case SG_CMD_ROLLBACK: return cmd_locked(c, work_revert, err);
	case SG_CMD_BASELINE: return cmd_locked(c, work_baseline, err);
	case SG_CMD_REPAIR: return cmd_locked(c, work_repair, err);
	default: return sg_fail(err, SG_EXIT_USAGE, "command %s needs no database", c->cfg->command_name);
	}
}

int sg_run(const struct sg_config *cfg, struct sg_error *err)
{
	if (cfg->command == SG_CMD_NEW)
		return sg_migration_new(cfg->dir, cfg->new_name, cfg->dialect, cfg->new_single_file, err) == 0
			       ? SG_EXIT_OK : (err->exit_code ? err->exit_code : SG_EXIT_USAGE);
	if (cfg->command == SG_CMD_LINT)
		return sg_migration_lint(cfg->dir, cfg->dialect, cfg->strict, cfg->json, err) == 0 ? SG_EXIT_OK
												: SG_EXIT_USAGE;

	srand((unsigned)(time(NULL) ^ (getpid() << 8)));
	struct coord c = {.cfg = cfg, .state = ST_INIT};
	snprintf(c.app_name, sizeof(c.app_name), "schemagate/%s", sg_instance_id());
	int rc = -1;
	if (sg_url_parse(cfg->database_url, &c.url, err) != 0) {
		err->exit_code = SG_EXIT_USAGE;
		return SG_EXIT_USAGE;
	}
	sg_log_add_secret(c.url.password);
	sg_log_add_secret(cfg->password);
	c.drv = sg_driver_for(c.url.engine);
	if (!c.drv) {
		sg_fail(err, SG_EXIT_USAGE, "no driver for %s", c.url.redacted);
		goto out_url;
	}
	if (sg_migration_load(cfg->dir, c.url.engine, &c.set, err) != 0) {
		err->exit_code = SG_EXIT_USAGE;
		goto out_url;
	}
	if (sg_loop_init(&c.loop, cfg->timeout_ms, err) != 0)
		goto out_set;

	rc = dispatch(&c, err);
	if (rc != 0 && sg_loop_canceled(&c.loop) && err->kind != SG_ERRK_CANCELED)
		canceled_error(&c, err, "working");
	if (c.locked) {
		begin_cleanup_if_canceled(&c);
		struct sg_error e = {0};
		if (release(&c, &e) != 0)
			sg_warn("unlock", "%s", e.msg);
	}
	if (c.lock != c.work)
		sg_conn_close(c.lock);
	sg_conn_close(c.work);
	sg_loop_close(&c.loop);
out_set:
	sg_migration_set_free(&c.set);
out_url:
	sg_url_free(&c.url);
	if (rc == 0)
		return SG_EXIT_OK;
	return err->exit_code ? err->exit_code : SG_EXIT_MIGRATION;
}
