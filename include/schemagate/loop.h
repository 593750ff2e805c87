/*
 * loop.h - the libuv loop every command runs on, and the one way to stop.
 *
 * The loop owns every reason to stop (SIGTERM/SIGINT, the --timeout
 * deadline, a lost lease) and the single cleanup deadline that follows.
 * When a stop is decided, the loop itself cancels the statements in
 * flight by calling the driver's cancel() on every connection that is busy
 * (drivers report busy/idle through sg_io_busy()), then lets I/O continue
 * until the cleanup deadline so the coordinator can roll back and release
 * the lock. Past that deadline every wait fails at once and drivers
 * abandon their connections.
 *
 * Signals are real sigaction handlers, so they act even while the process
 * is stuck in a blocking call: the first one asks the loop to stop (through
 * a uv_async wake-up) and arms a hard exit timer; a second one exits at
 * once. The hard timer makes "exit within 2 s of SIGTERM" hold whatever
 * the server or the resolver does.
 *
 * During a non-transactional statement the coordinator opens a grace
 * window (sg_loop_grace_begin): a signal then only marks the run as
 * stopping, the statement may finish, and the cancel comes when the grace
 * runs out or a second signal arrives.
 *
 * One loop per process (the signal handlers are process-wide).
 */
#ifndef SCHEMAGATE_LOOP_H
#define SCHEMAGATE_LOOP_H

#include <uv.h>

#include "schemagate/driver.h"

/* SG_CANCEL_DIRECTORY: the migration directory, validated while the run
 * connects, turned out bad; whatever the connection was doing stops. */
enum sg_cancel_reason { SG_CANCEL_NONE = 0, SG_CANCEL_SIGNAL, SG_CANCEL_DEADLINE, SG_CANCEL_LEASE, SG_CANCEL_DIRECTORY };

/* How long statements get to stop and cleanup statements (ROLLBACK,
 * unlock, the failure record) get to run once the loop stops. */
#define SG_CLEANUP_BUDGET_MS 1500
/* After the first signal the process ends this long after the cleanup
 * budget (or the grace) at the latest, wherever it is stuck. */
#define SG_HARD_EXIT_MARGIN_MS 400

/* Runs between loop iterations, never inside a libuv callback, so it may
 * itself call a driver (which waits on the loop again). */
typedef void (*sg_tick_fn)(void *data);

#define SG_LOOP_MAX_BUSY 4

/* Periodic work between loop iterations, one per kind: the lease's
 * renewal (heartbeat) and the progress report of a long statement
 * (watch). Either may run inside a wait of the other. */
enum sg_tick_slot { SG_TICK_HEARTBEAT = 0, SG_TICK_WATCH, SG_TICK_SLOTS };

struct sg_loop_tick {
	uv_timer_t timer;             /* sets due every interval */
	sg_tick_fn fn;
	void *data;
	bool due, running;
};

/* One wait for a socket or a timer (loop.c); waits nest, innermost first. */
struct sg_wait_call;

struct sg_loop {
	uv_loop_t uv;
	uv_async_t wake;              /* the signal handler's way in */
	uv_timer_t deadline;          /* --timeout */
	uv_timer_t expiry;            /* the lease runs out: stop */
	uv_timer_t grace;             /* a graceful stop ran out of time */
	uv_idle_t kick;               /* makes the current uv_run() return */
	/* work for the thread pool, queued by the loop's next iteration
	 * (sg_loop_queue_work_soon) */
	uv_prepare_t soon;
	uv_work_t *soon_req;
	uv_work_cb soon_work;
	uv_after_work_cb soon_after;
	struct sg_io io;
	enum sg_cancel_reason cancel; /* set by the loop only, read by everyone */
	int signum;                   /* the signal that stopped us, if any */
	uint64_t cleanup_deadline_ms; /* set with cancel */
	/* graceful stop of a non-transactional statement */
	uint64_t grace_ms;            /* 0 = no grace window open */
	bool stopping;                /* a signal arrived inside the grace window */
	/* SIGTERM is how this run normally ends (serve, once serving): its
	 * "received" line is info, not a warning */
	bool signal_expected;
	/* connections with a statement in flight, canceled on stop, and
	 * since when (monotonic ms) */
	struct sg_conn *busy[SG_LOOP_MAX_BUSY];
	uint64_t busy_since[SG_LOOP_MAX_BUSY];
	struct sg_loop_tick ticks[SG_TICK_SLOTS];
	struct sg_wait_call *waits;   /* the innermost wait in progress */
};

/*
 * An sg_io for a connection on the side that must never hold anything up
 * (the progress probe): its waits end (SG_IO_CANCELED) at once when the
 * run stops, when its own budget is spent, or when an enclosing wait -
 * the statement the probe looks at - has something to do: the probe
 * gives way and its driver abandons the connection. It registers no busy
 * connection, so a stop never waits for it.
 */
enum sg_side_end { SG_SIDE_RUNNING = 0, SG_SIDE_STOPPED, SG_SIDE_TIMED_OUT, SG_SIDE_YIELDED };
struct sg_side_io {
	struct sg_io io;
	struct sg_loop *loop;
	uint64_t deadline_ms;
	enum sg_side_end ended;       /* why a wait ended early, if one did */
};
void sg_loop_side_io(struct sg_loop *l, struct sg_side_io *out, uint64_t budget_ms);

/* overall_timeout_ms 0 = none. Installs the signal handlers. Returns 0 or
 * -1 with err (libuv failure). */
int sg_loop_init(struct sg_loop *l, uint64_t overall_timeout_ms, struct sg_error *err);
/* Close every handle and the loop; restores default signal handling. */
void sg_loop_close(struct sg_loop *l);
/* Message written (raw, from the signal handler) when the hard exit timer
 * fires; main sets it once the log format is known. */
void sg_loop_set_hard_exit_message(const char *line);

static inline bool sg_loop_canceled(const struct sg_loop *l) { return l->cancel != SG_CANCEL_NONE; }
/* A signal asked to stop while a graceful statement runs: finish it, do
 * not start another. */
static inline bool sg_loop_stopping(const struct sg_loop *l) { return l->stopping || l->cancel != SG_CANCEL_NONE; }

/* Call fn every interval_ms while the program waits on the loop (inside
 * sg_io_wait/sg_io_sleep), never after a stop. One tick per slot. */
void sg_loop_start_tick(struct sg_loop *l, enum sg_tick_slot slot, uint64_t interval_ms, sg_tick_fn fn, void *data);
void sg_loop_stop_tick(struct sg_loop *l, enum sg_tick_slot slot);
static inline void sg_loop_start_heartbeat(struct sg_loop *l, uint64_t interval_ms, sg_tick_fn fn, void *data)
{
	sg_loop_start_tick(l, SG_TICK_HEARTBEAT, interval_ms, fn, data);
}
static inline void sg_loop_stop_heartbeat(struct sg_loop *l) { sg_loop_stop_tick(l, SG_TICK_HEARTBEAT); }
/* Since when (monotonic ms) c has had a statement in flight; 0 = none. */
uint64_t sg_loop_busy_since(const struct sg_loop *l, const struct sg_conn *c);
/* Stop everything (SG_CANCEL_LEASE) delay_ms from now, unless re-armed
 * or disarmed first: fires even while a renewal is itself blocked. */
void sg_loop_arm_expiry(struct sg_loop *l, uint64_t delay_ms);
void sg_loop_disarm_expiry(struct sg_loop *l);
/* The overall --timeout no longer applies (serve, once its run is over:
 * the deadline bounds the migration, not the sidecar's life). */
void sg_loop_disarm_deadline(struct sg_loop *l);
/* Run the loop until *done is true (a callback sets it), whether or not a
 * stop was decided: completes asynchronous closes such as an HTTP
 * server's graceful stop. Blocks in the loop's poll; never spins. */
void sg_loop_run_until(struct sg_loop *l, const bool *done);
/*
 * Queue work on libuv's thread pool at the loop's next iteration, not
 * now. The first work queued starts the pool, and libuv's start blocks
 * until every pool thread has run: queued from the loop, that wait falls
 * where the caller waits anyway (a connect in flight, the server forking
 * its backend) instead of before the caller even sent its connect. One
 * request at a time; `after` runs on the loop as with uv_queue_work
 * (status 0 also when the pool could not take it and `work` ran here).
 */
void sg_loop_queue_work_soon(struct sg_loop *l, uv_work_t *req, uv_work_cb work, uv_after_work_cb after);
/* Stop from straight-line code (the lease was found taken). */
void sg_loop_cancel(struct sg_loop *l, enum sg_cancel_reason why);

/* Open / close the grace window around a non-transactional statement. */
void sg_loop_grace_begin(struct sg_loop *l, uint64_t grace_ms);
void sg_loop_grace_end(struct sg_loop *l);

/* Exit code for a stop: 130, 143, 3 (deadline, lease) or 2 (directory). */
enum sg_outcome sg_loop_cancel_outcome(const struct sg_loop *l);

#endif
