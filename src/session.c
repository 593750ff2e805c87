/*
 * session.c - the run's connection: connecting, retrying, reconnecting
 * after an outage, and reading the database's state through it.
 *
 * A run holds one connection at a time. Waiters use it to read the
 * history, attempt the lock and listen; the winner runs its migrations on
 * the same session that holds the lock. When the connection is lost the
 * run drops it (the server rolled back whatever it was doing and released
 * its session lock) and the state machine connects again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/adopt.h"
#include "schemagate/log.h"
#include "schemagate/run.h"

#define CONNECT_ATTEMPT_MAX_MS 15000
#define RETRY_LOG_INTERVAL_MS 10000

uint64_t sg_jitter(uint64_t ms)
{
	return ms * (uint64_t)(80 + rand() % 41) / 100;
}

static uint64_t elapsed_since(uint64_t t0) { return sg_now_ms() - t0; }

static bool read_only(const struct sg_run *r)
{
	return r->cmd->read_only;
}

static struct sg_conn_opts conn_opts(struct sg_run *r, uint64_t lock_wait_ms)
{
	return (struct sg_conn_opts){
		.url = &r->url,
		.password = r->cfg->password,
		.application_name = r->app_name,
		.lock_wait_ms = lock_wait_ms,
		/* SQLite: readers and the migration's BEGIN IMMEDIATE wait for
		 * another writer as long as the lock may be waited for */
		.busy_wait_ms = r->cfg->lock_timeout_ms,
		.io = &r->loop.io,
		.read_only = read_only(r),
		.missing_is_empty = r->cmd->missing_is_empty,
		.history_table = r->cfg->table,
	};
}

/* What the server just reached is (info NULL: nobody asks); a failure
 * closes the connection and is retried like a failed connect when the
 * connection was lost on the way. */
static int learn_server(struct sg_run *r, struct sg_conn **conn, struct sg_server_info *info, struct sg_error *err)
{
	if (!info)
		return 0;
	memset(info, 0, sizeof(*info));
	if (!r->drv->server_info || r->drv->server_info(*conn, info, err) == 0)
		return 0;
	/* the caller's pointer goes with the connection: the run closes
	 * whatever r->conn holds when it ends */
	sg_conn_close(*conn);
	*conn = NULL;
	if (err->kind == SG_ERRK_CONNECTION)
		err->kind = SG_ERRK_TRANSIENT;
	return -1;
}

/*
 * The server says the URL's database does not exist. With up
 * --create-database, create it (once per run: a second "unknown database"
 * after that is the answer); without, say that the flag exists. 0 means
 * connect again; -1 leaves the error in e.
 */
static int create_database(struct sg_run *r, const struct sg_conn_opts *opts, bool *created_once, struct sg_error *e)
{
	const char *name = r->url.database ? r->url.database : "";
	if (!r->cfg->create_database || r->cfg->dry_run || *created_once) {
		if (!*created_once) {
			size_t n = strlen(e->msg);
			snprintf(e->msg + n, sizeof(e->msg) - n, "%s",
				 r->cfg->dry_run && r->cfg->create_database
					 ? " (--dry-run creates nothing, not even with --create-database)"
					 : " (schemagate up --create-database creates it)");
		}
		return -1;
	}
	bool created = false;
	struct sg_error ce = {0};
	if (r->drv->create_database(opts, &created, &ce) != 0) {
		*e = ce;   /* transient (the server busy): the retry loop tries again */
		return -1;
	}
	*created_once = true;
	if (created)
		sg_info("database_created", "created database %s (--create-database)", name);
	else
		sg_info("database_exists", "database %s exists now (another instance created it)", name);
	return 0;
}

/*
 * A refused password that holds '#': in a URL, '#' starts the fragment
 * for every other parser (Go's net/url, browsers, most shells' tools and
 * .env readers cut the text there), so the password that reached the
 * server is likely not the one meant. schemagate itself takes it as
 * written; the portable spelling is %23.
 */
static void explain_refused_password(struct sg_run *r, struct sg_error *e)
{
	const char *pw = r->cfg->password ? r->cfg->password : r->url.password;
	if (!pw || !strchr(pw, '#'))
		return;
	size_t n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, " (the password holds '#', which starts a URL fragment: "
		 "anything that read the URL before schemagate may have cut it there; write '#' as %%23)");
}

/* Connect with retries: transient failures (refused, DNS, starting up,
 * too many connections) are retried with backoff until --connect-timeout
 * has passed since this outage began; permanent ones fail at once. */
static int connect_with_retry(struct sg_run *r, struct sg_conn **out, uint64_t lock_wait_ms, const char *role,
			      struct sg_server_info *info, struct sg_error *err)
{
	const struct sg_config *cfg = r->cfg;
	struct sg_conn_opts opts = conn_opts(r, lock_wait_ms);
	uint64_t t0 = sg_now_ms(), backoff = 100, last_log = 0;
	int attempts = 0;
	bool created_once = false;
	for (;;) {
		uint64_t spent = elapsed_since(t0);
		uint64_t left = cfg->connect_timeout_ms > spent ? cfg->connect_timeout_ms - spent : 0;
		opts.attempt_timeout_ms = left < CONNECT_ATTEMPT_MAX_MS ? (left ? left : 1000) : CONNECT_ATTEMPT_MAX_MS;
		struct sg_error e = {0};
		attempts++;
		if (r->drv->connect(&opts, out, &e) == 0 && learn_server(r, out, info, &e) == 0) {
			if (attempts > 1)
				sg_info("connected", "connected to %s (%s) after %d attempts, %llums",
					info && info->where[0] ? info->where : r->url.redacted, role, attempts,
					(unsigned long long)elapsed_since(t0));
			return 0;
		}
		if (sg_loop_canceled(&r->loop) || e.kind == SG_ERRK_CANCELED)
			return sg_stopped_error(r, err, "connecting to the database");
		if (e.kind != SG_ERRK_TRANSIENT && r->drv->unknown_database && r->drv->unknown_database(&e) &&
		    create_database(r, &opts, &created_once, &e) == 0)
			continue;   /* created, or another instance did: connect again at once */
		if (e.kind != SG_ERRK_TRANSIENT && r->drv->auth_failed && r->drv->auth_failed(&e))
			explain_refused_password(r, &e);
		if (e.kind != SG_ERRK_TRANSIENT) {
			*err = e;
			sg_error_ours(err);
			return -1;
		}
		spent = elapsed_since(t0);
		/* verify and status are probes: a Kubernetes probe has its own
		 * timeout and retry, so they never wait */
		if (r->cmd->one_shot) {
			*err = e;
			return sg_fail(err, SG_OUTCOME_TIMEOUT, "could not connect to %s (%s makes one attempt): %s",
				       r->url.redacted, cfg->command_name, e.msg);
		}
		if (spent >= cfg->connect_timeout_ms) {
			*err = e;
			return sg_fail(err, SG_OUTCOME_TIMEOUT, "could not connect to %s within %llums (%d attempts): %s",
				       r->url.redacted, (unsigned long long)cfg->connect_timeout_ms, attempts, e.msg);
		}
		if (last_log == 0 || elapsed_since(last_log) >= RETRY_LOG_INTERVAL_MS) {
			sg_info("connect_retry", "database not ready (%s); retrying for up to %llus", e.msg,
				(unsigned long long)((cfg->connect_timeout_ms - spent) / 1000));
			last_log = sg_now_ms();
		}
		uint64_t nap = sg_jitter(backoff);
		if (nap > cfg->connect_timeout_ms - spent)
			nap = cfg->connect_timeout_ms - spent;
		if (sg_io_sleep(&r->loop.io, nap) == SG_IO_CANCELED)
			return sg_stopped_error(r, err, "waiting to reconnect");
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
}

int sg_session_connect(struct sg_run *r, struct sg_error *err)
{
	return connect_with_retry(r, &r->conn, r->cfg->ddl_lock_timeout_ms, "work connection", &r->server, err);
}

int sg_session_learn_server(struct sg_run *r, struct sg_error *err)
{
	if (!r->drv->server_info)
		return 0;
	return r->drv->server_info(r->conn, &r->server, err);
}

int sg_session_open_extra(void *run, uint64_t lock_wait_ms, struct sg_conn **out, struct sg_error *err)
{
	return connect_with_retry(run, out, lock_wait_ms, "lease connection", NULL, err);
}

int sg_session_progress(struct sg_run *r, struct sg_io *io, uint64_t budget_ms, struct sg_progress *out,
			struct sg_error *err)
{
	struct sg_conn_opts opts = conn_opts(r, 0);
	opts.io = io;
	opts.attempt_timeout_ms = budget_ms;
	opts.read_only = true;
	/* its own prefix: nothing that looks for schemagate/ sessions (the
	 * lock holder, a DBA's query) mistakes it for a run */
	char name[sizeof(r->app_name) + 16];
	snprintf(name, sizeof(name), "schemagate-progress/%s", sg_instance_id());
	opts.application_name = name;
	return r->drv->progress(r->conn, &opts, out, err);
}

void sg_session_drop(struct sg_run *r)
{
	if (r->lock)
		sg_lock_forget(r->lock);
	sg_conn_close(r->conn);
	r->conn = NULL;
	r->listening = false;
	sg_session_forget_view(r);
}

void sg_session_forget_view(struct sg_run *r)
{
	if (!r->have_view)
		return;
	sg_plan_free(&r->plan);
	sg_history_free(&r->hist);
	r->have_view = false;
}

int sg_session_read(struct sg_run *r, struct sg_error *err)
{
	if (sg_session_read_history(r, err) != 0)
		return -1;
	return sg_session_build_view(r, err);
}

int sg_session_read_history(struct sg_run *r, struct sg_error *err)
{
	sg_session_forget_view(r);
	return sg_history_read(r->conn, r->cfg->table, r->cfg->command == SG_CMD_STATUS, &r->hist, err);
}

int sg_session_build_view(struct sg_run *r, struct sg_error *err)
{
	/* another tool's history, as the rows adoption would record */
	memset(&r->unseen, 0, sizeof(r->unseen));
	if (sg_adopt_preview(r->conn, r->cfg->adopt, r->cfg->table, &r->set, &r->hist, err) != 0) {
		/* status prints what it can see, and then says what it cannot */
		if (r->cfg->command != SG_CMD_STATUS || err->outcome != SG_OUTCOME_INTEGRITY) {
			sg_history_free(&r->hist);
			return -1;
		}
		r->unseen = *err;
		memset(err, 0, sizeof(*err));
	}
	if (sg_plan_build(&r->set, &r->hist, r->cfg->target, &r->plan, err) != 0) {
		sg_history_free(&r->hist);
		return -1;
	}
	r->have_view = true;
	if (r->observer.viewed)
		r->observer.viewed(r->observer.ctx, r);
	return 0;
}
