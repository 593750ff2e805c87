/*
 * progress.c - what a long migration statement is doing: a `progress`
 * line every 10 s, and serve's statement metrics (SPEC 8).
 *
 * While a migration runs, a tick on the loop (the watch slot) looks once
 * a second at how long the run's connection has had a statement in
 * flight. From --progress-interval (10 s) on, every interval, it asks the server what that
 * statement does - phase, counts, percent, what it waits for and who
 * blocks it - through the driver's progress(), on a short-lived
 * connection of its own: the run's connection is busy with the statement.
 *
 * The probe never holds the migration up or changes its course: its waits
 * go through a side io that gives way the moment the statement's own wait
 * has something to do, ends at once on a stop and after PROBE_BUDGET_MS
 * in any case; the driver then drops the probe's connection. A probe that
 * fails says so once per migration (a warning; then debug lines) and is
 * tried again at the next report.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "schemagate/log.h"
#include "schemagate/run.h"

/* How often the watch looks at the clock (and tells serve's metrics how
 * long the statement has run); reports come every --progress-interval. */
#define WATCH_TICK_MS 1000
/* One probe, connection included. */
#define PROBE_BUDGET_MS 3000

static uint64_t interval(const struct sg_run *r) { return r->cfg->progress_interval_ms; }

static void tell_observer(struct sg_run *r, double seconds)
{
	if (r->observer.statement)
		r->observer.statement(r->observer.ctx, seconds, r->watch.ratio);
}

/* "CREATE INDEX CONCURRENTLY, building index: scanning table, blocks 100
 * of 250 (40.0%); waiting for Lock:relation, blocked by pid 7 (...)" */
static void describe(const struct sg_progress *p, struct sg_buf *b)
{
	const char *sep = "";
	if (p->command[0]) {
		sg_buf_puts(b, p->command);
		sep = ", ";
	}
	if (p->stage > 0 && p->max_stage > 0) {
		sg_buf_printf(b, "%sstage %d of %d", sep, p->stage, p->max_stage);
		sep = p->phase[0] ? ": " : ", ";
	}
	if (p->phase[0]) {
		sg_buf_printf(b, "%s%s", sep, p->phase);
		sep = ", ";
	}
	if (p->blocks_total > 0 && p->blocks_done >= 0) {
		sg_buf_printf(b, "%sblocks %lld of %lld", sep, (long long)p->blocks_done, (long long)p->blocks_total);
		sep = ", ";
	}
	if (p->tuples_total > 0 && p->tuples_done >= 0) {
		sg_buf_printf(b, "%stuples %lld of %lld", sep, (long long)p->tuples_done, (long long)p->tuples_total);
		sep = ", ";
	}
	if (p->percent >= 0) {
		sg_buf_printf(b, "%s%.1f%%", sep, p->percent);
		sep = ", ";
	}
	if (!b->len)
		sg_buf_puts(b, "the server reports no progress for it");
	if (p->wait[0])
		sg_buf_printf(b, "; waiting for %s", p->wait);
	if (p->blockers[0] && p->blockers_guessed)
		sg_buf_printf(b, "; sessions whose open transaction began before it (one of them holds the lock): %s",
			      p->blockers);
	else if (p->blockers[0])
		sg_buf_printf(b, "%s blocked by %s", p->wait[0] ? "," : ";", p->blockers);
}

static void report(struct sg_run *r, uint64_t running_ms)
{
	struct sg_progress_watch *w = &r->watch;
	struct sg_progress p = {.seconds = -1, .stage = -1, .max_stage = -1, .blocks_done = -1, .blocks_total = -1,
				.tuples_done = -1, .tuples_total = -1, .percent = -1};
	struct sg_side_io side;
	sg_loop_side_io(&r->loop, &side, PROBE_BUDGET_MS);
	struct sg_error e = {0};
	int rc = sg_session_progress(r, &side.io, PROBE_BUDGET_MS, &p, &e);
	struct sg_log_fields f = {.version = w->version, .name = w->name, .duration_ms = (int64_t)running_ms,
				  .waited_ms = -1};
	if (rc != 0 && side.ended == SG_SIDE_YIELDED) {
		/* the statement ended while we asked: nothing to report */
		sg_debug("progress", "%s: the statement ended during the progress probe", w->file);
		return;
	}
	if (rc != 0 && side.ended == SG_SIDE_STOPPED)
		return;
	if (rc != 0) {
		const char *why = side.ended == SG_SIDE_TIMED_OUT ? "no answer within 3s" : e.msg;
		sg_log(w->warned ? SG_LOG_DEBUG : SG_LOG_WARN, "progress", &f, "%s: statement running for %llus; "
		       "could not ask the server what it does (%s); asking again in %llus", w->file,
		       (unsigned long long)(running_ms / 1000), why, (unsigned long long)(interval(r) / 1000));
		w->warned = true;
		return;
	}
	w->ratio = p.found && p.percent >= 0 ? p.percent / 100.0 : NAN;
	struct sg_buf what = {0};
	char percent[32];
	if (p.found) {
		describe(&p, &what);
		f.phase = p.phase[0] ? p.phase : NULL;
		f.wait = p.wait[0] ? p.wait : NULL;
		f.blocked_by = p.blockers[0] ? p.blockers : NULL;
		if (p.percent >= 0) {
			snprintf(percent, sizeof(percent), "%.1f", p.percent);
			f.percent = percent;
		}
	} else {
		sg_buf_puts(&what, "the server shows no statement running on the session (it is ending)");
	}
	sg_log(SG_LOG_INFO, "progress", &f, "%s: statement running for %llus: %s", w->file,
	       (unsigned long long)(running_ms / 1000), what.data);
	sg_buf_free(&what);
	tell_observer(r, (double)running_ms / 1000.0);
}

static void watch_tick(void *data)
{
	struct sg_run *r = data;
	struct sg_progress_watch *w = &r->watch;
	uint64_t since = r->conn ? sg_loop_busy_since(&r->loop, r->conn) : 0;
	if (since == 0) {
		if (w->since != 0) {
			w->since = 0;
			w->ratio = NAN;
			tell_observer(r, 0);
		}
		return;
	}
	if (since != w->since) {
		/* another statement: its own reports, from its 10th second */
		w->since = since;
		w->next_ms = interval(r);
		w->ratio = NAN;
	}
	uint64_t running = sg_now_ms() - since;
	if (running < w->next_ms) {
		tell_observer(r, (double)running / 1000.0);
		return;
	}
	w->next_ms = (running / interval(r) + 1) * interval(r);
	report(r, running);
}

void sg_progress_watch_begin(struct sg_run *r, const char *file, const char *version, const char *name)
{
	r->watch = (struct sg_progress_watch){.file = file, .version = version, .name = name, .ratio = NAN};
	if (!interval(r) || !r->drv->progress || !r->conn || !sg_conn_can(r->conn, SG_CAP_POLLABLE))
		return;
	sg_loop_start_tick(&r->loop, SG_TICK_WATCH, interval(r) < WATCH_TICK_MS ? interval(r) : WATCH_TICK_MS,
			   watch_tick, r);
}

void sg_progress_watch_end(struct sg_run *r)
{
	sg_loop_stop_tick(&r->loop, SG_TICK_WATCH);
	if (r->watch.since != 0) {
		r->watch.ratio = NAN;
		tell_observer(r, 0);
	}
	r->watch = (struct sg_progress_watch){.ratio = NAN};
}
