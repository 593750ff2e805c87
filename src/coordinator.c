/*
 * coordinator.c - the state machine that runs one command (SPEC section 5).
 *
 * Every state has one activity: it does what decides the next state
 * (connect, read the history, try the lock once, apply) and names it and
 * why. The transition table below lists every allowed move (24 rows) with
 * the action that is the move's effect (14 of them have one): announcing
 * the lock, the NOTIFY and the release on the way out of RELEASING, the
 * command's report on reaching READY, dropping a lost connection. step()
 * runs that action, logs the transition once (event "transition", from,
 * to, reason) and only then commits the new state, in the manner of
 * pg_auto_failover's fsm.c. No state loops on its own: one more poll is
 * a self-transition (WAITING -> WAITING "not at the target yet",
 * CONTENDING -> CONTENDING "the lock is busy") whose action waits one
 * interval, driven by the one loop in drive(); those are logged at DEBUG
 * only, so a waiting pod's log grows by the lock_wait line every 10 s,
 * not a line a poll. What happens when the connection or the lock is lost
 * is read off the table, not found in nested calls.
 *
 * The machine is the same for every engine and every command; a command
 * plugs in what it checks, does under the lock and reports (commands.c).
 */
#include "schemagate/coordinator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "schemagate/log.h"
#include "schemagate/run.h"

#define HOLDER_LOG_INTERVAL_MS 10000
/* A writer on a read-only server connects again this often, looking for
 * a primary (the next host of a list, a service moved to the new one). */
#define READ_ONLY_RECONNECT_MS 5000

static const char *const state_names[] = {
	[SG_ST_INIT] = "init",
	[SG_ST_CONNECTING] = "connecting",
	[SG_ST_CHECKING] = "checking",
	[SG_ST_WAITING] = "waiting",
	[SG_ST_CONTENDING] = "contending",
	[SG_ST_APPLYING] = "applying",
	[SG_ST_RELEASING] = "releasing",
	[SG_ST_READY] = "ready",
	[SG_ST_FAILED] = "failed",
};

static uint64_t elapsed_since(uint64_t t0) { return sg_now_ms() - t0; }

/* ---- waiting one poll interval ------------------------------------------- */

/* Sleep one poll interval (or wake_poll_ms, for engines that cannot
 * notify), less if a notification arrives. */
static int wait_interval(struct sg_run *r, uint64_t max_ms, struct sg_error *err)
{
	uint64_t ms = sg_jitter(r->cfg->poll_interval_ms);
	if (r->drv->wake_poll_ms && ms > r->drv->wake_poll_ms)
		ms = r->drv->wake_poll_ms;
	if (ms > max_ms)
		ms = max_ms;
	int rc;
	if (r->listening) {
		/* a notification that came in with an earlier query's results is
		 * off the socket already, queued in the driver: it would not wake
		 * the wait below */
		bool queued = false;
		if (r->drv->consume_notifications(r->conn, &queued, err) != 0)
			return -1;
		if (queued) {
			sg_debug("notify", "woken by the winner's notification");
			return 0;
		}
		rc = sg_io_wait(&r->loop.io, r->drv->socket(r->conn), SG_IO_READ, (int64_t)ms);
		if (rc > 0) {
			bool got = false;
			if (r->drv->consume_notifications(r->conn, &got, err) != 0)
				return -1;
			if (got)
				sg_debug("notify", "woken by the winner's notification");
		}
	} else {
		rc = sg_io_sleep(&r->loop.io, ms);
	}
	if (rc == SG_IO_CANCELED)
		return sg_stopped_error(r, err, "waiting");
	return 0;
}

/* PostgreSQL waiters LISTEN; the winner NOTIFYs after its last commit.
 * Returns true when listening began just now: a winner that committed
 * between the last read of the history and the LISTEN notified nobody, so
 * the caller reads the history once more before it sleeps. */
static bool start_listening(struct sg_run *r)
{
	if (r->listening || !sg_conn_can(r->conn, SG_CAP_NOTIFY) || !sg_lock_session_is_stable(r->lock))
		return false;
	struct sg_error e = {0};
	if (r->drv->listen(r->conn, r->cfg->table, &e) == 0)
		r->listening = true;
	else
		sg_debug("listen", "LISTEN failed, polling only: %s", e.msg);
	return r->listening;
}

static uint64_t deadline_left(struct sg_run *r)
{
	uint64_t waited = elapsed_since(r->contend_started_ms);
	return waited >= r->cfg->lock_timeout_ms ? 0 : r->cfg->lock_timeout_ms - waited;
}

/* Every HOLDER_LOG_INTERVAL_MS of waiting, one INFO line says so (and who
 * holds the lock): a waiting pod's log grows by that, not by its polls. */
static void log_waiting(struct sg_run *r, const char *what)
{
	if (elapsed_since(r->wait_logged_ms) < HOLDER_LOG_INTERVAL_MS)
		return;
	char holder[256];
	sg_lock_describe(r->lock, r->conn, holder, sizeof(holder));
	uint64_t waited = elapsed_since(r->contend_started_ms);
	struct sg_log_fields f = {.holder = holder[0] ? holder : NULL, .waited_ms = (int64_t)waited, .duration_ms = -1};
	sg_log(SG_LOG_INFO, "lock_wait", &f, "still %s after %llus%s%s", what, (unsigned long long)(waited / 1000),
	       holder[0] ? ", lock held by " : "", holder);
	r->wait_logged_ms = sg_now_ms();
}

/* ---- transition actions -------------------------------------------------- */

/* Connected: say what to, where the reason cannot (a Galera cluster and
 * the lock it needs, a node whose DDL method matters). */
static int describe_server(struct sg_run *r, struct sg_error *err)
{
	if (r->server.cluster_size > 0 && sg_lock_use_lease(r->lock))
		sg_info("galera", "Galera cluster of %d node%s (this is %s): using the lease lock, GET_LOCK is node-local",
			r->server.cluster_size, r->server.cluster_size == 1 ? "" : "s",
			r->server.node[0] ? r->server.node : "an unnamed node");
	if (r->server.osu_method[0])
		sg_warn("galera", "this node's wsrep_OSU_method is %s: schemagate's session runs TOI, so every node "
			"gets each migration's DDL (a migration that sets %s itself diverges the nodes)",
			r->server.osu_method, r->server.osu_method);
	return 0;
}

/* Not at the target yet: wait one poll interval (less if notified), then
 * look again. */
static int wait_for_target(struct sg_run *r, struct sg_error *err)
{
	log_waiting(r, "waiting for the target");
	return wait_interval(r, deadline_left(r), err);
}

/* The lock is busy: wait one poll interval, then try again. A lock that
 * waits in the server (GET_LOCK) waited in the attempt itself. */
static int wait_for_lock(struct sg_run *r, struct sg_error *err)
{
	log_waiting(r, "waiting for the lock");
	if (!sg_lock_waits_in_server(r->lock))
		return wait_interval(r, deadline_left(r), err);
	if (sg_loop_canceled(&r->loop))
		return sg_stopped_error(r, err, "waiting for the lock");
	return 0;
}

/* The lock is ours: say so, with how long it took, to the log and to an
 * observer (serve's metrics). */
static int announce_lock(struct sg_run *r, struct sg_error *err)
{
	sg_lock_announce(r->lock, r->lock_waited_ms);
	if (r->observer.lock_acquired)
		r->observer.lock_acquired(r->observer.ctx, r->lock_waited_ms);
	return 0;
}

/* The session is gone, and with it its transaction and its session lock:
 * forget them and connect again. */
static int drop_connection(struct sg_run *r, struct sg_error *err)
{
	sg_session_drop(r);
	return 0;
}

/* The lock is no longer ours (its migration was rolled back): contend
 * again from the start. */
static int forget_lock(struct sg_run *r, struct sg_error *err)
{
	sg_lock_forget(r->lock);
	sg_session_forget_view(r);
	return 0;
}

static int enter_ready(struct sg_run *r, struct sg_error *err)
{
	return r->cmd->report(r, err);
}

/* The work is done: waiters wake at once instead of at their next poll
 * (NOTIFY), the lock goes back, and the command reports. */
static int release_and_report(struct sg_run *r, struct sg_error *err)
{
	if (r->changed > 0 && sg_conn_can(r->conn, SG_CAP_NOTIFY) && sg_lock_session_is_stable(r->lock)) {
		struct sg_error e = {0};
		if (r->drv->notify(r->conn, r->cfg->table, &e) != 0)
			sg_debug("notify", "NOTIFY failed: %s", e.msg);
	}
	if (sg_lock_release(r->lock, err) != 0)
		return -1;
	return enter_ready(r, err);
}

/* The work failed: the lock goes back before the run reports it. */
static int give_back_lock(struct sg_run *r, struct sg_error *err)
{
	struct sg_error re = {0};
	if (sg_lock_release(r->lock, &re) != 0)
		sg_warn("unlock", "%s", re.msg);
	return 0;
}

/* ---- the table ----------------------------------------------------------- */

struct transition {
	enum sg_state from, to;
	const char *reason;   /* the default; the activity usually says more */
	int (*action)(struct sg_run *r, struct sg_error *err);
};

static const struct transition transitions[] = {
	/* from               to                 reason                                           action */
	/* the directory is validated on the thread pool meanwhile; a bad
	 * one ends the run from whatever state it reached, before any lock */
	{SG_ST_INIT,          SG_ST_CONNECTING,  "the migration directory is valid",              NULL},
	{SG_ST_INIT,          SG_ST_FAILED,      "the migration directory is invalid",            NULL},

	{SG_ST_CONNECTING,    SG_ST_CHECKING,    "connected",                                     describe_server},
	{SG_ST_CONNECTING,    SG_ST_FAILED,      "could not connect",                             NULL},

	/* the fast path: pods restarting on an up-to-date schema never
	 * touch the lock */
	{SG_ST_CHECKING,      SG_ST_READY,       "at the target, checksums match",                enter_ready},
	{SG_ST_CHECKING,      SG_ST_CONTENDING,  "there is work to do",                           NULL},
	{SG_ST_CHECKING,      SG_ST_WAITING,     "waiting for another instance to migrate",       NULL},
	{SG_ST_CHECKING,      SG_ST_CONNECTING,  "connection lost",                               drop_connection},
	{SG_ST_CHECKING,      SG_ST_FAILED,      "integrity error, pending migrations or stop",   NULL},

	/* one more poll: never logged at INFO, the lock_wait line every
	 * 10 s says it */
	{SG_ST_WAITING,       SG_ST_WAITING,     "not at the target yet",                         wait_for_target},
	{SG_ST_WAITING,       SG_ST_READY,       "the target was reached",                        enter_ready},
	/* a writer that waited on a read-only server: it takes writes now
	 * (a standby promoted, read_only switched off) */
	{SG_ST_WAITING,       SG_ST_CONTENDING,  "the server takes writes now",                   NULL},
	/* lost, or a read-only server a writer leaves to look for a primary */
	{SG_ST_WAITING,       SG_ST_CONNECTING,  "connection lost; waiting goes on",              drop_connection},
	{SG_ST_WAITING,       SG_ST_FAILED,      "wait timeout, integrity error or stop",         NULL},

	{SG_ST_CONTENDING,    SG_ST_CONTENDING,  "the lock is busy",                              wait_for_lock},
	{SG_ST_CONTENDING,    SG_ST_APPLYING,    "lock acquired",                                 announce_lock},
	{SG_ST_CONTENDING,    SG_ST_READY,       "another instance finished the work",            enter_ready},
	{SG_ST_CONTENDING,    SG_ST_CONNECTING,  "connection lost; contending goes on",           drop_connection},
	{SG_ST_CONTENDING,    SG_ST_FAILED,      "lock timeout or stop",                          NULL},

	/* done or failed, the lock goes back either way */
	{SG_ST_APPLYING,      SG_ST_RELEASING,   "work done",                                     NULL},
	/* the lock was lost (a lease taken over, another instance's row):
	 * what was not committed was rolled back (a transactional migration
	 * entirely; statements already done by a no-transaction one stay
	 * done, for the next holder to resume); contend again */
	{SG_ST_APPLYING,      SG_ST_CONTENDING,  "lost the lock; uncommitted work rolled back",   forget_lock},
	/* the session died, its transaction and its session lock with it */
	{SG_ST_APPLYING,      SG_ST_CONNECTING,  "connection lost; contending again",             drop_connection},

	{SG_ST_RELEASING,     SG_ST_READY,       "lock released",                                 release_and_report},
	{SG_ST_RELEASING,     SG_ST_FAILED,      "the work or the release failed",                give_back_lock},
};

static const struct transition *find_transition(enum sg_state from, enum sg_state to)
{
	for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++)
		if (transitions[i].from == from && transitions[i].to == to)
			return &transitions[i];
	return NULL;
}

/* Run the row's action; on success log the transition and commit the
 * state. Returns 0, or -1 with err when the action failed (the state is
 * unchanged). */
static int step(struct sg_run *r, enum sg_state to, const char *reason, struct sg_error *err)
{
	const struct transition *t = find_transition(r->state, to);
	if (!t) {
		sg_errorlog("bug", "transition from \"%s\" to \"%s\" is not in the table", state_names[r->state],
			    state_names[to]);
		abort();
	}
	if (t->action && t->action(r, err) != 0)
		return -1;
	struct sg_log_fields f = {.from = state_names[r->state], .to = state_names[to],
				  .reason = reason ? reason : t->reason, .duration_ms = -1, .waited_ms = -1};
	/* a self-transition is one more poll: at INFO a waiting pod's log
	 * would grow by a line a poll */
	sg_log(to == r->state ? SG_LOG_DEBUG : SG_LOG_INFO, "transition", &f, "transition from \"%s\" to \"%s\": %s",
	       f.from, f.to, f.reason);
	if (to != r->state) {
		/* entering a state: its polls start over */
		r->polls = 0;
		r->wait_logged_ms = sg_now_ms();
	}
	r->state = to;
	return 0;
}

/* ---- activities: one per state ------------------------------------------- */

/* A state's activity does the state's work and returns where to go next,
 * with *reason (NULL = the table's) and, for FAILED, err. */
typedef enum sg_state (*activity_fn)(struct sg_run *r, const char **reason, struct sg_error *err);

static char reason_buf[SG_ERROR_MSG + 96];

/* "<what> (<detail>)<tail>", kept until the next transition. */
static const char *say(const char *what, const char *detail, const char *tail)
{
	snprintf(reason_buf, sizeof(reason_buf), "%s (%s)%s", what, detail, tail);
	return reason_buf;
}

/* ---- the directory's verdict ----------------------------------------------
 * The directory is read, hashed and validated on libuv's thread pool while
 * the run connects and reads the history: on a large directory the two
 * take about as long as each other. A bad directory stops the loop at once
 * (SG_CANCEL_DIRECTORY: a connect being retried or a read in flight ends),
 * so its verdict never waits for the database; nothing that takes the
 * lock or writes runs before directory_verdict() said yes. */

static void load_directory(uv_work_t *req)
{
	struct sg_run *r = req->data;
	r->dir_rc = sg_migration_load(r->cfg->dir, r->url.engine, &r->set, &r->dir_err);
}

static void directory_loaded(uv_work_t *req, int status)
{
	struct sg_run *r = req->data;
	r->dir_done = true;
	if (status != 0 && r->dir_rc == 0)
		r->dir_rc = sg_fail(&r->dir_err, SG_OUTCOME_USAGE, "validating %s: %s", r->cfg->dir, uv_strerror(status));
	if (r->dir_rc == 0 && r->cmd->validate)
		r->dir_rc = r->cmd->validate(r, &r->dir_err);
	if (r->dir_rc != 0) {
		r->dir_err.outcome = SG_OUTCOME_USAGE;
		sg_loop_cancel(&r->loop, SG_CANCEL_DIRECTORY);
	}
}

/* Wait for the verdict: 0 valid, -1 with the directory's error (exit 2). */
static int directory_verdict(struct sg_run *r, struct sg_error *err)
{
	sg_loop_run_until(&r->loop, &r->dir_done);
	if (r->dir_rc == 0)
		return 0;
	*err = r->dir_err;
	return -1;
}

static enum sg_state do_init(struct sg_run *r, const char **reason, struct sg_error *err)
{
	if (r->cmd->no_directory) {
		r->dir_done = true;   /* nothing to validate */
		*reason = "this command reads no migration directory";
		return SG_ST_CONNECTING;
	}
	r->dir_work.data = r;
	/* queued when the loop first runs: with the connect in flight */
	sg_loop_queue_work_soon(&r->loop, &r->dir_work, load_directory, directory_loaded);
	r->dir_started = true;
	*reason = "validating the migration directory while connecting";
	return SG_ST_CONNECTING;
}

static enum sg_state do_connecting(struct sg_run *r, const char **reason, struct sg_error *err)
{
	/* an engine whose connect may create the database (SQLite's file),
	 * or up --create-database, connects for a writing command only once
	 * the directory is valid */
	if (((r->drv->caps & SG_CAP_CONNECT_CREATES) || r->cfg->create_database) && !r->cmd->read_only &&
	    directory_verdict(r, err) != 0)
		return SG_ST_FAILED;
	if (sg_session_connect(r, err) != 0)
		return SG_ST_FAILED;
	if (r->server.where[0]) {
		/* the host reached, which a list of hosts does not tell */
		snprintf(reason_buf, sizeof(reason_buf), "connected to %s%s%s", r->server.where,
			 r->server.read_only ? ", a read-only server: " : "", r->server.read_only_why);
		*reason = reason_buf;
	}
	return SG_ST_CHECKING;
}

/*
 * Writers need a primary (SPEC section 5): a writer whose work is pending
 * on a read-only server (a standby, read_only=ON) takes no lock there. It
 * waits as `wait` does - done when another instance brings the replica to
 * the target - and leaves for CONTENDING once the server takes writes.
 */
static enum sg_state writer_on_read_only(struct sg_run *r, enum sg_state next, const char **reason)
{
	if (next != SG_ST_CONTENDING || !r->server.read_only)
		return next;
	if (!r->said_read_only) {
		sg_warn("read_only_server", "connected to a read-only server (%s) at %s; waiting for a primary",
			r->server.read_only_why, r->server.where);
		r->said_read_only = true;
	}
	if (!r->read_only_since_ms)
		r->read_only_since_ms = sg_now_ms();
	*reason = say("the server is read-only", r->server.read_only_why, "; waiting for a primary");
	return SG_ST_WAITING;
}

/* A read failed: a lost connection means connecting again (unless the
 * command is a one-shot probe), anything else is the run's failure. */
static enum sg_state read_failed(struct sg_run *r, const char **reason, struct sg_error *err, const char *doing)
{
	enum sg_state next = sg_outcome_next(r, err, doing);
	if (next == SG_ST_CONNECTING) {
		*reason = say("connection lost", err->msg, "");
		sg_error_clear(err);
	}
	return next;
}

static enum sg_state do_checking(struct sg_run *r, const char **reason, struct sg_error *err)
{
	if (r->cmd->no_directory)
		return writer_on_read_only(r, r->cmd->check(r, reason, err), reason);
	/* the history's read is read only: it overlaps the directory's check */
	if (sg_session_read_history(r, err) != 0)
		return read_failed(r, reason, err, "reading the history");
	if (directory_verdict(r, err) != 0) {
		sg_history_free(&r->hist);
		return SG_ST_FAILED;
	}
	/* MariaDB behind a mysql:// URL: its own files, validated offline too */
	if (r->drv->dialect)
		sg_migration_select(&r->set, r->drv->dialect(r->conn));
	if (sg_session_build_view(r, err) != 0)
		return read_failed(r, reason, err, "reading the history");
	return writer_on_read_only(r, r->cmd->check(r, reason, err), reason);
}

/*
 * A writer waiting on a read-only server with its work still pending: has
 * the server become writable (CONTENDING)? If not, every
 * READ_ONLY_RECONNECT_MS it connects again (CONNECTING), for a list of
 * hosts or a service name may lead to the primary now; else it waits on.
 */
static enum sg_state still_read_only(struct sg_run *r, const char **reason, struct sg_error *err)
{
	if (sg_session_learn_server(r, err) != 0)
		return read_failed(r, reason, err, "asking the server whether it takes writes");
	if (!r->server.read_only) {
		sg_info("primary", "%s takes writes now", r->server.where);
		r->said_read_only = false;
		r->read_only_since_ms = 0;
		return SG_ST_CONTENDING;
	}
	if (elapsed_since(r->read_only_since_ms) >= READ_ONLY_RECONNECT_MS) {
		r->read_only_since_ms = 0;
		*reason = say("the server is still read-only", r->server.read_only_why,
			      "; connecting again to look for a primary");
		return SG_ST_CONNECTING;
	}
	return SG_ST_WAITING;
}

/* One look at the history; the table's WAITING -> WAITING waits before
 * the next. On entry the first look comes after one wait, unless LISTEN
 * began just now (see start_listening). */
static enum sg_state do_waiting(struct sg_run *r, const char **reason, struct sg_error *err)
{
	if (!r->contend_started_ms)
		r->contend_started_ms = sg_now_ms();
	if (r->polls++ == 0 && !start_listening(r))
		return SG_ST_WAITING;
	if (sg_session_read(r, err) != 0)
		return read_failed(r, reason, err, "waiting");
	enum sg_state next = r->cmd->check(r, reason, err);
	if (next == SG_ST_CONTENDING)
		next = still_read_only(r, reason, err);
	if (next != SG_ST_WAITING)
		return next;
	if (deadline_left(r) == 0) {
		sg_fail(err, SG_OUTCOME_TIMEOUT, "wait timeout: the database did not reach version %s within %llums "
			"(%zu migration(s) pending)", r->plan.target ? r->plan.target : "0",
			(unsigned long long)r->cfg->lock_timeout_ms, r->plan.npending + r->plan.npartial);
		return SG_ST_FAILED;
	}
	return SG_ST_WAITING;
}

/* The winner may have finished: 1 yes (READY), 0 no, -1 error. */
static int winner_finished(struct sg_run *r, const char **reason, struct sg_error *err)
{
	if (!r->cmd->recheck)
		return 0;
	if (sg_session_read(r, err) != 0)
		return -1;
	enum sg_state next = r->cmd->check(r, reason, err);
	if (next == SG_ST_FAILED)
		return -1;
	if (next != SG_ST_READY)
		return 0;
	struct sg_log_fields f = {.waited_ms = (int64_t)elapsed_since(r->contend_started_ms), .duration_ms = -1};
	sg_log(SG_LOG_INFO, "winner_finished", &f, "another instance brought the database to the target");
	*reason = NULL;
	return 1;
}

/* One attempt at the lock; the table's CONTENDING -> CONTENDING waits
 * before the next. */
static enum sg_state do_contending(struct sg_run *r, const char **reason, struct sg_error *err)
{
	if (!r->contend_started_ms)
		r->contend_started_ms = sg_now_ms();
	bool first = r->polls++ == 0;
	/* After a miss and a wait (or a notification), look at the history
	 * before trying again: a waiter woken by the winner then exits
	 * without ever taking the lock. On entry, only if LISTEN began just
	 * now. */
	if (!first || start_listening(r)) {
		int done = winner_finished(r, reason, err);
		if (done < 0)
			return read_failed(r, reason, err, "waiting for the lock");
		if (done)
			return SG_ST_READY;
	}
	uint64_t left = deadline_left(r);
	bool acquired = false;
	uint64_t wait_ms = sg_lock_waits_in_server(r->lock) ? (r->cfg->poll_interval_ms < left ? r->cfg->poll_interval_ms : left) : 0;
	if (sg_lock_acquire(r->lock, r->conn, wait_ms, &acquired, err) != 0) {
		sg_error_prefix(err, "taking the lock");
		return read_failed(r, reason, err, "taking the lock");
	}
	if (acquired && !first) {
		/* woken by the holder letting go (MySQL): did it finish? Then
		 * the lock was taken only to find so: give it back */
		int done = winner_finished(r, reason, err);
		if (done != 0) {
			struct sg_error re = {0};
			if (sg_lock_release(r->lock, &re) != 0)
				sg_warn("unlock", "%s", re.msg);
			if (done < 0)
				return read_failed(r, reason, err, "reading the history");
			return SG_ST_READY;
		}
	}
	if (acquired) {
		r->lock_waited_ms = elapsed_since(r->contend_started_ms);
		snprintf(reason_buf, sizeof(reason_buf), "%s lock acquired after %llums", sg_lock_kind_name(r->lock),
			 (unsigned long long)r->lock_waited_ms);
		*reason = reason_buf;
		return SG_ST_APPLYING;
	}
	if (deadline_left(r) == 0) {
		char holder[256];
		sg_lock_describe(r->lock, r->conn, holder, sizeof(holder));
		sg_fail(err, SG_OUTCOME_TIMEOUT, "lock timeout: waited %llums for the migration lock on %s%s%s",
			(unsigned long long)elapsed_since(r->contend_started_ms), r->cfg->table,
			holder[0] ? ", held by " : "", holder);
		return SG_ST_FAILED;
	}
	return SG_ST_CONTENDING;
}

static enum sg_state do_applying(struct sg_run *r, const char **reason, struct sg_error *err)
{
	if (r->cmd->work(r, err) == 0)
		return SG_ST_RELEASING;
	enum sg_state next = sg_outcome_next(r, err, "working under the lock");
	if (next == SG_ST_CONTENDING) {
		*reason = say("lost the lock", err->msg, "; uncommitted work was rolled back, contending again");
		sg_warn("lock_lost", "%s", err->msg);
		sg_error_clear(err);
		return SG_ST_CONTENDING;
	}
	if (next == SG_ST_CONNECTING) {
		*reason = say("connection lost", err->msg, "; contending again");
		sg_warn("connection_lost", "%s", err->msg);
		sg_error_clear(err);
		return SG_ST_CONNECTING;
	}
	/* the lock goes back before the run reports the failure */
	r->work_err = *err;
	r->work_failed = true;
	*reason = "work failed";
	return SG_ST_RELEASING;
}

/* The lock goes back either way (the rows' actions): a failed work's
 * error is the run's. */
static enum sg_state do_releasing(struct sg_run *r, const char **reason, struct sg_error *err)
{
	if (!r->work_failed)
		return SG_ST_READY;
	*err = r->work_err;
	return SG_ST_FAILED;
}

static const activity_fn activities[] = {
	[SG_ST_INIT] = do_init,
	[SG_ST_CONNECTING] = do_connecting,
	[SG_ST_CHECKING] = do_checking,
	[SG_ST_WAITING] = do_waiting,
	[SG_ST_CONTENDING] = do_contending,
	[SG_ST_APPLYING] = do_applying,
	[SG_ST_RELEASING] = do_releasing,
};

/* ---- the run -------------------------------------------------------------- */

static void drive(struct sg_run *r, struct sg_error *err)
{
	while (r->state != SG_ST_READY && r->state != SG_ST_FAILED) {
		const char *reason = NULL;
		sg_error_clear(err);
		enum sg_state next = activities[r->state](r, &reason, err);
		if (next == r->state) {
			/* one more poll: the row's action waits an interval */
			if (step(r, next, reason, err) == 0)
				continue;
			/* the wait failed: the connection was lost, or a stop */
			reason = NULL;
			next = read_failed(r, &reason, err, r->state == SG_ST_WAITING ? "waiting" : "waiting for the lock");
		}
		/* a bad directory beats whatever else went wrong meanwhile (a
		 * refused password, a connect timeout): it is what to fix */
		if (next == SG_ST_FAILED)
			directory_verdict(r, err);
		/* what the failure means, decided once (outcome.c) */
		if (next == SG_ST_FAILED && err->outcome == SG_OUTCOME_OK)
			err->outcome = sg_outcome_of(r, err, false);
		/* a failure's reason is its error, which main logs once, as the
		 * ERROR line: the transition says only which row of the table
		 * it took, never what an earlier check of the activity said */
		if (next == SG_ST_FAILED)
			reason = NULL;
		if (step(r, next, reason, err) != 0) {
			/* the action `next` needed failed (a release, a report) */
			if (err->outcome == SG_OUTCOME_OK)
				err->outcome = sg_outcome_of(r, err, false);
			step(r, SG_ST_FAILED, NULL, err);
		}
	}
}

static int lock_connect(void *ctx, uint64_t lock_wait_ms, struct sg_conn **out, struct sg_error *err)
{
	return sg_session_open_extra(ctx, lock_wait_ms, out, err);
}

int sg_run_open(const struct sg_config *cfg, enum sg_command as, struct sg_run **out, struct sg_error *err)
{
	*out = NULL;
	const struct sg_command_plan *plan = sg_command_plan_for(as, cfg->dry_run);
	if (!plan)
		return sg_fail(err, SG_OUTCOME_USAGE, "command %s needs no database", cfg->command_name);
	struct sg_run *r = sg_calloc(1, sizeof(*r));
	r->cfg = cfg;
	r->cmd = plan;
	r->state = SG_ST_INIT;
	snprintf(r->app_name, sizeof(r->app_name), "schemagate/%s", sg_instance_id());
	if (sg_url_parse(cfg->database_url, &r->url, err) != 0) {
		free(r);
		err->outcome = SG_OUTCOME_USAGE;
		return -1;
	}
	sg_log_add_secret(r->url.password);
	sg_log_add_secret(cfg->password);
	r->drv = sg_driver_for(r->url.engine);
	if (!r->drv || (r->drv->check_url && r->drv->check_url(&r->url, err) != 0) ||
	    sg_loop_init(&r->loop, cfg->timeout_ms, err) != 0) {
		if (!r->drv)
			sg_fail(err, SG_OUTCOME_USAGE, "no driver for %s", r->url.redacted);
		sg_url_free(&r->url);
		free(r);
		return -1;
	}
	r->loop_ready = true;
	struct sg_lock_params lp = {
		.mode = cfg->lock_mode, .driver_caps = r->drv->caps, .table = cfg->table, .lease_ms = cfg->lock_lease_ms,
		.loop = &r->loop, .connect = lock_connect, .connect_ctx = r,
	};
	r->lock = sg_lock_open(&lp);
	*out = r;
	return 0;
}

enum sg_outcome sg_run_drive(struct sg_run *r, struct sg_error *err)
{
	drive(r, err);
	enum sg_outcome code = r->state == SG_ST_READY ? SG_OUTCOME_OK : sg_outcome_of(r, err, false);
	if (r->state == SG_ST_READY && r->answer.outcome) {
		/* ready, with an answer that is not OK (a dry run with work) */
		*err = r->answer;
		code = r->answer.outcome;
	}
	if (sg_lock_held(r->lock)) {
		/* a failure on the way (an action that could not run) */
		struct sg_error e = {0};
		if (sg_lock_release(r->lock, &e) != 0)
			sg_warn("unlock", "%s", e.msg);
	}
	/* nothing is held once the run is over: not the lock, not a
	 * connection (serve checks on connections of its own) */
	sg_session_drop(r);
	return code;
}

void sg_run_close(struct sg_run *r)
{
	if (!r)
		return;
	/* the worker writes into r->set until it is done */
	if (r->dir_started)
		sg_loop_run_until(&r->loop, &r->dir_done);
	sg_lock_close(r->lock);
	sg_session_forget_view(r);
	sg_conn_close(r->conn);
	if (r->loop_ready)
		sg_loop_close(&r->loop);
	sg_migration_set_free(&r->set);
	free(r->down_to);
	sg_url_free(&r->url);
	free(r);
}

enum sg_outcome sg_run(const struct sg_config *cfg, struct sg_error *err)
{
	struct sg_run *r = NULL;
	if (sg_run_open(cfg, cfg->command, &r, err) != 0)
		return err->outcome ? err->outcome : SG_OUTCOME_USAGE;
	enum sg_outcome code = sg_run_drive(r, err);
	sg_run_close(r);
	return code;
}
