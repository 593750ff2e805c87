/*
 * loop.h - the libuv loop every command runs on.
 *
 * It owns the signal watchers (SIGINT/SIGTERM: first one cancels, second
 * exits at once), the overall --timeout deadline, and the sg_io a driver
 * uses to wait on its socket. The coordinator calls into drivers from
 * straight-line code; while a driver waits, the loop runs, so timers and
 * signals act during a connect or a long statement.
 */
#ifndef SCHEMAGATE_LOOP_H
#define SCHEMAGATE_LOOP_H

#include <uv.h>

#include "schemagate/driver.h"

enum sg_cancel_reason { SG_CANCEL_NONE = 0, SG_CANCEL_SIGNAL, SG_CANCEL_DEADLINE, SG_CANCEL_LEASE };

/* Runs between loop iterations, never inside a libuv callback, so it may
 * itself call a driver (which waits on the loop again). */
typedef void (*sg_tick_fn)(void *data);

struct sg_loop {
	uv_loop_t uv;
	uv_signal_t sigint, sigterm;
	uv_timer_t deadline;          /* --timeout */
	uv_timer_t heartbeat;         /* sets tick_due every interval */
	uv_idle_t kick;               /* makes the current uv_run() return */
	uv_timer_t expiry;            /* the lease runs out: cancel everything */
	struct sg_io io;
	enum sg_cancel_reason cancel; /* set by callbacks only, read by everyone */
	int signum;                   /* the signal that canceled, if any */
	/* heartbeat (lease renewal) */
	sg_tick_fn tick_fn;
	void *tick_data;
	bool tick_due, in_tick;
	/* after a cancel: I/O is allowed again until this deadline, so the
	 * coordinator can roll back and release the lock */
	bool cleaning;
	uint64_t cleanup_deadline_ms;
};

/* overall_timeout_ms 0 = none. Returns 0 or -1 with err (libuv failure). */
int sg_loop_init(struct sg_loop *l, uint64_t overall_timeout_ms, struct sg_error *err);
/* Close every handle and the loop (asserts the loop closes). */
void sg_loop_close(struct sg_loop *l);
static inline bool sg_loop_canceled(const struct sg_loop *l) { return l->cancel != SG_CANCEL_NONE; }
/* Call fn every interval_ms while the program waits on the loop (inside
 * sg_io_wait/sg_io_sleep). One heartbeat at a time. */
void sg_loop_start_heartbeat(struct sg_loop *l, uint64_t interval_ms, sg_tick_fn fn, void *data);
void sg_loop_stop_heartbeat(struct sg_loop *l);
/* Cancel everything (SG_CANCEL_LEASE) delay_ms from now, unless re-armed
 * or disarmed first: fires even while a renewal is itself blocked. */
void sg_loop_arm_expiry(struct sg_loop *l, uint64_t delay_ms);
void sg_loop_disarm_expiry(struct sg_loop *l);
/* Cancel everything from straight-line code (e.g. the lease was lost). */
void sg_loop_cancel(struct sg_loop *l, enum sg_cancel_reason why);
/* After a cancel, let drivers do I/O for budget_ms more to roll back
 * and release the lock (SPEC: exit within 2 s of the signal). */
void sg_loop_begin_cleanup(struct sg_loop *l, uint64_t budget_ms);
/* Exit code for a cancellation: 130, 143 or 3 (deadline). */
int sg_loop_cancel_exit(const struct sg_loop *l);

#endif
