/*
 * serve.c - `schemagate serve`: a run of `up` (or `wait`) behind an HTTP
 * server on the same loop, then a sidecar that keeps checking the schema.
 *
 *   listening  the server is bound before anything touches the database
 *              (a port in use is exit 2 at once). The drivers wait inside
 *              the loop the server runs on, so /livez answers and /readyz
 *              says 503 with a reason while the run connects, waits for
 *              the lock and migrates.
 *   running    the coordinator drives up or wait to READY or FAILED; its
 *              observer feeds the duration histogram, the lock wait and
 *              the statement in flight (seconds, progress). A
 *              failed or interrupted run ends serve with the run's exit
 *              code, as `up` or `wait` would end: the kubelet restarts the
 *              sidecar, and the next run is the retry.
 *   checking   every --check-interval: one connection, one history read,
 *              the plan, the metrics, the connection closed; nothing is
 *              held in between. /readyz turns 503 only when a migration
 *              this image knows is reverted, failed, partial or changed
 *              (or, with --strict, when the database is ahead). A check
 *              that fails (database unreachable) is counted and leaves
 *              readiness as it was: an outage is not a schema change, and
 *              taking every pod out of its Services over it helps nobody.
 *   stopping   SIGTERM or SIGINT: the server stops accepting, finishes the
 *              responses in flight, and serve exits 0.
 */
#include "schemagate/serve.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "schemagate/http.h"
#include "schemagate/log.h"
#include "schemagate/metrics.h"
#include "schemagate/run.h"

struct serve {
	struct sg_run *run;
	struct sg_metrics metrics;     /* read by the HTTP handlers */
	struct sg_http_server *http;   /* NULL once stopped */
	bool http_stopped;
	bool checking;                 /* the run is over; views come from checks */
	bool judged;                   /* a check has judged readiness */
	int64_t ahead;                 /* database_ahead at the last view, to log a change once */
	int64_t to_apply;              /* pending when the run took the lock */
	int64_t applied;               /* migrations this process applied */
};

/*
 * Once its run is over, serve is a probe: a check connects once,
 * read-only (SQLite opens the file read-only), and a database that does
 * not answer is a failed check, not a reason to retry for
 * --connect-timeout. The run is never driven again, so the plan needs no
 * check, work or report.
 */
static const struct sg_command_plan check_plan = {
	.cmd = SG_CMD_SERVE, .read_only = true, .one_shot = true,
};

static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The metrics of a plan; the strings point into it. */
static void plan_schema(const struct sg_plan *p, struct sg_metrics_schema *out)
{
	*out = (struct sg_metrics_schema){.applied_version = "0", .target_version = p->target ? p->target : "0"};
	for (size_t i = 0; i < p->count; i++) {   /* in version order */
		const struct sg_plan_item *it = &p->items[i];
		switch (it->state) {
		case SG_M_PENDING: out->pending++; break;
		case SG_M_FAILED:
		case SG_M_PARTIAL: out->failed++; break;
		case SG_M_APPLIED:
		case SG_M_CHANGED:
			out->applied++;
			out->applied_version = it->version;
			break;
		case SG_M_MISSING: out->applied++; break;   /* lost, not ahead: readiness refuses it */
		case SG_M_UNKNOWN:
			out->database_ahead++;
			out->applied_version = it->version;
			break;
		case SG_M_BEYOND:
		case SG_M_REAPPLY: break;
		}
	}
	/* repeatable migrations to (re-)apply are pending too */
	for (size_t i = 0; i < p->nreps; i++)
		out->pending += p->reps[i].state == SG_M_PENDING || p->reps[i].state == SG_M_REAPPLY;
}

/* ---- what the run reports (observer) ---------------------------------- */

/* Every read of the history, by the run or by a check, updates the
 * metrics; while the run goes, /readyz also says where it is. */
static void on_viewed(void *ctx, const struct sg_run *r)
{
	struct serve *s = ctx;
	struct sg_metrics_schema schema;
	plan_schema(&r->plan, &schema);
	if (s->checking && schema.database_ahead > 0 && schema.database_ahead != s->ahead)
		sg_warn("database_ahead", "the database has %lld applied version(s) this image does not know "
			"(newest %s): a newer release migrated it", (long long)schema.database_ahead,
			schema.applied_version);
	s->ahead = schema.database_ahead;
	sg_metrics_set_schema(&s->metrics, &schema, unix_now());   /* copies the strings */
	if (s->checking)
		return;
	const char *doing = r->state == SG_ST_WAITING ? "waiting for another instance to migrate"
			  : r->state == SG_ST_CONTENDING ? "waiting for the migration lock"
			  : r->state == SG_ST_APPLYING ? "migrating"
			  : r->state == SG_ST_RELEASING ? "releasing the lock" : "checking the history";
	if (r->state == SG_ST_APPLYING)
		s->to_apply = schema.pending + schema.failed;   /* partial rows are resumed */
	char reason[256];
	snprintf(reason, sizeof(reason), "not ready: %s (%lld pending, target %s)", doing, (long long)schema.pending,
		 schema.target_version);
	sg_metrics_set_ready(&s->metrics, false, reason);
}

static void on_lock_acquired(void *ctx, uint64_t waited_ms)
{
	struct serve *s = ctx;
	sg_metrics_set_lock_wait(&s->metrics, (double)waited_ms / 1000.0);
}

static void on_statement(void *ctx, double seconds, double ratio)
{
	struct serve *s = ctx;
	sg_metrics_set_statement(&s->metrics, seconds, ratio);
}

static void on_applied(void *ctx, const struct sg_migration *m, uint64_t duration_ms)
{
	struct serve *s = ctx;
	sg_metrics_observe_migration(&s->metrics, (double)duration_ms / 1000.0);
	s->applied++;
	char reason[256];
	snprintf(reason, sizeof(reason), "not ready: migrating (applied %s in %llums; %lld to go)", m->up_file,
		 (unsigned long long)duration_ms, (long long)(s->to_apply > s->applied ? s->to_apply - s->applied : 0));
	sg_metrics_set_ready(&s->metrics, false, reason);
}

/* ---- one check ------------------------------------------------------------ */

/* Is the database still what this image needs? The first problem, in
 * version order, goes into reason. A failed or partial migration this
 * image does not know is a newer release's business: it shows in
 * schemagate_migrations_failed, not in this pod's readiness. */
static bool judge(const struct sg_run *r, const struct sg_metrics *m, char *reason, size_t n)
{
	const struct sg_plan *p = &r->plan;
	for (size_t i = 0; i < p->count; i++) {
		const struct sg_plan_item *it = &p->items[i];
		const struct sg_history_row *row = it->row;
		switch (it->state) {
		case SG_M_PENDING:
			snprintf(reason, n, "not ready: migration %s is not applied any more (reverted)", it->m->up_file);
			return false;
		case SG_M_FAILED:
		case SG_M_PARTIAL:
			if (!it->m)
				break;
			snprintf(reason, n, "not ready: migration %s is %s%s%s", it->m->up_file, row->status,
				 row->error ? ": " : "", row->error ? row->error : "");
			return false;
		case SG_M_CHANGED:
			snprintf(reason, n, "not ready: checksum mismatch: %s was applied with checksum %s but the file "
				 "now has %s", it->m->up_file, row->checksum, it->m->checksum);
			return false;
		case SG_M_MISSING:
			snprintf(reason, n, "not ready: applied version %s is missing from this image's migration "
				 "directory, below a version it has (deleted or renamed)", it->version);
			return false;
		case SG_M_UNKNOWN:
			if (!r->cfg->strict)
				break;
			snprintf(reason, n, "not ready: --strict: the database has version %s, which this image does "
				 "not know", it->version);
			return false;
		case SG_M_APPLIED:
		case SG_M_BEYOND:
		case SG_M_REAPPLY:
			break;
		}
	}
	for (size_t i = 0; i < p->nreps; i++) {
		const struct sg_plan_item *it = &p->reps[i];
		if (it->state == SG_M_PENDING || it->state == SG_M_REAPPLY) {
			snprintf(reason, n, "not ready: repeatable migration %s is %s", it->m->up_file,
				 it->row ? "changed: not re-applied yet" : "not applied yet");
			return false;
		}
	}
	int len = snprintf(reason, n, "ready: database at version %s, target %s", m->applied_version,
			   m->target_version);
	if (m->database_ahead > 0 && len > 0 && (size_t)len < n)
		snprintf(reason + len, n - (size_t)len, " (%lld newer version(s) this image does not know)",
			 (long long)m->database_ahead);
	return true;
}

/* The one place readiness changes after the run. A change is logged once
 * (the run itself has logged that it is ready). */
static void set_ready(struct serve *s, bool ready, const char *reason)
{
	if (ready != s->metrics.ready && (s->judged || !ready))
		sg_log(ready ? SG_LOG_INFO : SG_LOG_WARN, ready ? "ready" : "not_ready", SG_LOG_NOFIELDS, "%s", reason);
	sg_metrics_set_ready(&s->metrics, ready, reason);
	s->judged = true;
}

/* One check on a connection of its own, closed before returning (the
 * read updates the metrics through on_viewed). Returns 0, or -1 when the
 * database could not be read or serve is stopping. */
static int check(struct serve *s)
{
	struct sg_run *r = s->run;
	struct sg_error err = {0};
	if (sg_session_connect(r, &err) != 0 || sg_session_read(r, &err) != 0) {
		sg_session_drop(r);
		if (sg_loop_canceled(&r->loop))
			return -1;   /* stopping: not a failed check */
		sg_metrics_check_failed(&s->metrics);
		sg_warn("check_failed", "schema check failed (readiness stays %s): %s",
			s->judged && !s->metrics.ready ? "503" : "200", err.msg);
		return -1;
	}
	char reason[256];
	bool ready = judge(r, &s->metrics, reason, sizeof(reason));
	sg_debug("check", "%s; %lld pending, %lld failed", reason, (long long)s->metrics.pending,
		 (long long)s->metrics.failed);
	set_ready(s, ready, reason);
	sg_session_drop(r);
	return 0;
}

/* ---- the phases ----------------------------------------------------------- */

/* Bound before anything else: a port in use is a configuration error. */
static int start_http(struct serve *s, struct sg_error *err)
{
	s->http = sg_http_server_new(&s->run->loop.uv, NULL);
	if (sg_metrics_add_routes(s->http, &s->metrics) != 0)
		return sg_fail(err, SG_OUTCOME_USAGE, "serve: the HTTP route table is full");
	if (sg_http_server_listen(s->http, s->run->cfg->listen, err) != 0)
		return -1;
	char bound[80];
	sg_http_server_address(s->http, bound, sizeof(bound));
	sg_info("listening", "serving /livez, /readyz and /metrics on %s", bound);
	return 0;
}

/* up or wait, with /readyz saying what is going on. Returns the run's outcome. */
static enum sg_outcome run(struct serve *s, struct sg_error *err)
{
	struct sg_run *r = s->run;
	sg_metrics_set_ready(&s->metrics, false, "not ready: connecting to the database");
	r->observer = (struct sg_run_observer){
		.applied = on_applied, .lock_acquired = on_lock_acquired, .viewed = on_viewed,
		.statement = on_statement, .ctx = s,
	};
	enum sg_outcome code = sg_run_drive(r, err);
	if (code != SG_OUTCOME_OK) {
		sg_metrics_set_ready(&s->metrics, false, err->msg);
		return code;
	}
	/* --timeout bounds the run; the sidecar lives until it is stopped */
	sg_loop_disarm_deadline(&r->loop);
	return SG_OUTCOME_OK;
}

/* Check at once, so /readyz turns 200 with /metrics filled in, then every
 * --check-interval until a stop. */
static void keep_checking(struct serve *s)
{
	struct sg_run *r = s->run;
	r->cmd = &check_plan;
	s->checking = true;
	r->loop.signal_expected = true;   /* a sidecar ends with SIGTERM */
	sg_metrics_set_ready(&s->metrics, false, "not ready: the run reached the target; checking once more");
	sg_info("serving", "checking the schema every %llums", (unsigned long long)r->cfg->check_interval_ms);
	if (check(s) != 0 && !sg_loop_canceled(&r->loop))
		/* the run has just verified the database: ready all the same */
		set_ready(s, true, "ready: the database reached the target (the check after the run failed)");
	while (sg_io_sleep(&r->loop.io, r->cfg->check_interval_ms) != SG_IO_CANCELED)
		check(s);
}

static void on_http_stopped(void *data)
{
	struct serve *s = data;
	s->http_stopped = true;
}

/* Stop accepting, let the responses in flight finish (up to the server's
 * stop timeout, 1 s), and wait for the last close callback. */
static void stop_http(struct serve *s)
{
	sg_http_server_stop(s->http, on_http_stopped, s);
	s->http = NULL;
	sg_loop_run_until(&s->run->loop, &s->http_stopped);
}

enum sg_outcome sg_serve(const struct sg_config *cfg, struct sg_error *err)
{
	struct serve s = {0};
	if (sg_run_open(cfg, cfg->serve_wait ? SG_CMD_WAIT : SG_CMD_UP, &s.run, err) != 0)
		return err->outcome ? err->outcome : SG_OUTCOME_USAGE;
	sg_metrics_init(&s.metrics, sg_engine_name(s.run->url.engine));
	enum sg_outcome code = start_http(&s, err) == 0 ? run(&s, err) : (err->outcome ? err->outcome : SG_OUTCOME_USAGE);
	if (code == SG_OUTCOME_OK)
		keep_checking(&s);
	stop_http(&s);
	if (code == SG_OUTCOME_OK)
		sg_info("stopped", "serve stopped");
	sg_metrics_free(&s.metrics);
	sg_run_close(s.run);
	return code;
}
