/*
 * loop.c - the libuv loop, signal handling and the sg_io drivers wait on.
 *
 * Callbacks only record what happened (a signal, a deadline, a ready
 * socket); the straight-line code that called sg_io_wait() acts on it.
 * That keeps every decision at one place and uv_run() never reentered.
 */
#include "schemagate/loop.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "schemagate/log.h"

static void on_kick(uv_idle_t *h) { (void)h; }

/*
 * A callback that changed something the waiting code looks at calls
 * this. libuv 1.44 runs due timers at the start of an iteration and then
 * polls with a timeout computed afterwards: without an active idle
 * handle, a flag set by such a timer would sit unseen while the poll
 * blocks (forever, when no other timer is armed).
 */
static void kick(struct sg_loop *l)
{
	uv_idle_start(&l->kick, on_kick);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct sg_loop *l = h->data;
	kick(l);
	if (l->cancel == SG_CANCEL_SIGNAL) {
		/* Second signal: the operator wants out now. The database
		 * rolls back an interrupted transaction on disconnect. */
		_exit(128 + signum);
	}
	if (l->cancel == SG_CANCEL_NONE) {
		l->cancel = SG_CANCEL_SIGNAL;
		l->signum = signum;
		sg_warn("signal", "received %s: canceling, rolling back, releasing the lock",
			signum == SIGTERM ? "SIGTERM" : "SIGINT");
	}
}

static void on_deadline(uv_timer_t *h)
{
	struct sg_loop *l = h->data;
	kick(l);
	if (l->cancel == SG_CANCEL_NONE)
		l->cancel = SG_CANCEL_DEADLINE;
}

/* One sg_io_wait() call. Waits nest (a heartbeat renews the lease on the
 * lock connection while the work connection waits for a statement), so
 * every call has its own handles, on its own stack frame; they are closed
 * and the close completed before the frame goes away. */
struct wait_call {
	struct sg_loop *loop;
	uv_poll_t poll;
	uv_timer_t timer;
	int ready_events;
	bool woke;
};

static void on_wake(uv_timer_t *h)
{
	struct wait_call *w = h->data;
	w->woke = true;
	kick(w->loop);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct wait_call *w = h->data;
	/* An error on the socket counts as ready: the driver's next read
	 * reports the real failure. */
	if (status < 0)
		events = UV_READABLE | UV_WRITABLE;
	if (events & UV_READABLE)
		w->ready_events |= SG_IO_READ;
	if (events & UV_WRITABLE)
		w->ready_events |= SG_IO_WRITE;
	kick(w->loop);
}

static void on_heartbeat(uv_timer_t *h)
{
	struct sg_loop *l = h->data;
	l->tick_due = true;
	kick(l);
}

static void on_expiry(uv_timer_t *h)
{
	struct sg_loop *l = h->data;
	kick(l);
	if (l->cancel == SG_CANCEL_NONE)
		l->cancel = SG_CANCEL_LEASE;
}

static void run_due_tick(struct sg_loop *l)
{
	if (!l->tick_due || l->in_tick || !l->tick_fn || l->cleaning || sg_loop_canceled(l))
		return;
	l->tick_due = false;
	l->in_tick = true;
	l->tick_fn(l->tick_data);
	l->in_tick = false;
}

static bool may_continue(const struct sg_loop *l)
{
	return l->cleaning || !sg_loop_canceled(l);
}

static int io_wait(struct sg_io *io, int fd, int events, int64_t timeout_ms)
{
	struct sg_loop *l = io->data;
	if (l->cleaning) {
		uint64_t now = sg_now_ms();
		if (now >= l->cleanup_deadline_ms)
			return SG_IO_CANCELED;
		int64_t left = (int64_t)(l->cleanup_deadline_ms - now);
		if (timeout_ms < 0 || timeout_ms > left)
			timeout_ms = left;
	} else if (sg_loop_canceled(l)) {
		return SG_IO_CANCELED;
	}
	struct wait_call w = {.loop = l};
	bool polling = fd >= 0 && events;
	if (polling) {
		int uvev = ((events & SG_IO_READ) ? UV_READABLE : 0) | ((events & SG_IO_WRITE) ? UV_WRITABLE : 0);
		if (uv_poll_init(&l->uv, &w.poll, fd) != 0)
			return events; /* let the driver find the error itself */
		w.poll.data = &w;
		uv_poll_start(&w.poll, uvev, on_poll);
	}
	uv_timer_init(&l->uv, &w.timer);
	w.timer.data = &w;
	/* the loop's clock is only refreshed per iteration; a timer armed
	 * from a stale clock would fire early */
	uv_update_time(&l->uv);
	if (timeout_ms >= 0)
		uv_timer_start(&w.timer, on_wake, (uint64_t)timeout_ms, 0);
	while (!w.ready_events && !w.woke && may_continue(l)) {
		uv_run(&l->uv, UV_RUN_ONCE);
		uv_idle_stop(&l->kick);
		run_due_tick(l);
	}
	if (polling)
		uv_close((uv_handle_t *)&w.poll, NULL);
	uv_close((uv_handle_t *)&w.timer, NULL);
	/* complete the closes before this frame (and maybe the fd) goes away */
	uv_run(&l->uv, UV_RUN_NOWAIT);
	if (w.ready_events)
		return w.ready_events;
	if (sg_loop_canceled(l) && (!l->cleaning || sg_now_ms() >= l->cleanup_deadline_ms))
		return SG_IO_CANCELED;
	return 0;
}

static int io_check(struct sg_io *io)
{
	struct sg_loop *l = io->data;
	uv_run(&l->uv, UV_RUN_NOWAIT);
	uv_idle_stop(&l->kick);
	if (l->cleaning)
		return sg_now_ms() >= l->cleanup_deadline_ms ? SG_IO_CANCELED : 0;
	return sg_loop_canceled(l) ? SG_IO_CANCELED : 0;
}

static int io_sleep(struct sg_io *io, uint64_t ms)
{
	int rc = io_wait(io, -1, 0, (int64_t)ms);
	return rc == SG_IO_CANCELED ? SG_IO_CANCELED : 0;
}

int sg_loop_init(struct sg_loop *l, uint64_t overall_timeout_ms, struct sg_error *err)
{
	memset(l, 0, sizeof(*l));
	int rc = uv_loop_init(&l->uv);
	if (rc != 0)
		return sg_fail(err, SG_EXIT_DATABASE, "libuv: %s", uv_strerror(rc));
	uv_signal_init(&l->uv, &l->sigint);
	uv_signal_init(&l->uv, &l->sigterm);
	uv_timer_init(&l->uv, &l->deadline);
	uv_timer_init(&l->uv, &l->heartbeat);
	uv_idle_init(&l->uv, &l->kick);
	uv_timer_init(&l->uv, &l->expiry);
	l->expiry.data = l;
	l->sigint.data = l->sigterm.data = l->deadline.data = l->heartbeat.data = l;
	uv_signal_start(&l->sigint, on_signal, SIGINT);
	uv_signal_start(&l->sigterm, on_signal, SIGTERM);
	/* The signal handles stay referenced: uv_run(NOWAIT), which the
	 * SQLite progress handler calls, only looks at I/O (the signal pipe)
	 * while the loop has an active handle. */
	if (overall_timeout_ms > 0)
		uv_timer_start(&l->deadline, on_deadline, overall_timeout_ms, 0);
	l->io.wait = io_wait;
	l->io.check = io_check;
	l->io.sleep = io_sleep;
	l->io.data = l;
	return 0;
}

void sg_loop_close(struct sg_loop *l)
{
	uv_close((uv_handle_t *)&l->sigint, NULL);
	uv_close((uv_handle_t *)&l->sigterm, NULL);
	uv_close((uv_handle_t *)&l->deadline, NULL);
	uv_close((uv_handle_t *)&l->heartbeat, NULL);
	uv_close((uv_handle_t *)&l->kick, NULL);
	uv_close((uv_handle_t *)&l->expiry, NULL);
	uv_run(&l->uv, UV_RUN_DEFAULT);
	if (uv_loop_close(&l->uv) != 0)
		sg_debug("loop", "loop closed with handles still open");
}

void sg_loop_start_heartbeat(struct sg_loop *l, uint64_t interval_ms, sg_tick_fn fn, void *data)
{
	l->tick_fn = fn;
	l->tick_data = data;
	l->tick_due = false;
	uv_timer_start(&l->heartbeat, on_heartbeat, interval_ms, interval_ms);
}

void sg_loop_stop_heartbeat(struct sg_loop *l)
{
	uv_timer_stop(&l->heartbeat);
	l->tick_fn = NULL;
	l->tick_due = false;
}

void sg_loop_arm_expiry(struct sg_loop *l, uint64_t delay_ms)
{
	uv_update_time(&l->uv);
	uv_timer_start(&l->expiry, on_expiry, delay_ms, 0);
}

void sg_loop_disarm_expiry(struct sg_loop *l)
{
	uv_timer_stop(&l->expiry);
}

void sg_loop_cancel(struct sg_loop *l, enum sg_cancel_reason why)
{
	if (l->cancel == SG_CANCEL_NONE)
		l->cancel = why;
}

void sg_loop_begin_cleanup(struct sg_loop *l, uint64_t budget_ms)
{
	if (l->cleaning)
		return;
	l->cleaning = true;
	l->cleanup_deadline_ms = sg_now_ms() + budget_ms;
}

int sg_loop_cancel_exit(const struct sg_loop *l)
{
	if (l->cancel == SG_CANCEL_DEADLINE || l->cancel == SG_CANCEL_LEASE)
		return SG_EXIT_TIMEOUT;
	return l->signum == SIGINT ? SG_EXIT_SIGINT : SG_EXIT_SIGTERM;
}
