/*
 * loop.c - the libuv loop, the signal handlers, and the one way to stop.
 *
 * Callbacks only record what happened (a signal, a deadline, a ready
 * socket); the straight-line code that called sg_io_wait() acts on it.
 * The exception is stopping itself, which must not depend on the code
 * that is waiting: stop() cancels every statement in flight through the
 * drivers' cancel() and opens the cleanup window, wherever it is called.
 */
#include "schemagate/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "schemagate/log.h"

/* ---- process-wide signal state ------------------------------------------
 * Written by the handlers (async-signal-safe only: volatile flags,
 * timer_settime, uv_async_send, write, _exit) and read by the loop. */

static volatile sig_atomic_t signals_seen;
static volatile sig_atomic_t first_signal;
static volatile sig_atomic_t grace_open_ms;   /* mirror of loop->grace_ms for the handler */
static volatile sig_atomic_t hard_exit_code;
static uv_async_t *volatile wake_handle;
static timer_t hard_timer;
static bool hard_timer_ready;
static char hard_message[160] = "schemagate: cleanup did not finish in time; exiting\n";
static size_t hard_message_len = 52;

void sg_loop_set_hard_exit_message(const char *line)
{
	size_t n = strlen(line);
	if (n >= sizeof(hard_message) - 1)
		n = sizeof(hard_message) - 2;
	memcpy(hard_message, line, n);
	hard_message[n++] = '\n';
	hard_message[n] = '\0';
	hard_message_len = n;
}

static void arm_hard_exit(long ms, int code)
{
	if (!hard_timer_ready)
		return;
	hard_exit_code = code;
	struct itimerspec its = {0};
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (ms % 1000) * 1000000L;
	timer_settime(hard_timer, 0, &its, NULL);
}

static void on_hard_exit(int signum)
{
	(void)signum;
	ssize_t ignored = write(STDERR_FILENO, hard_message, hard_message_len);
	(void)ignored;
	_exit(hard_exit_code ? hard_exit_code : 143);
}

static void on_stop_signal(int signum)
{
	int saved = errno;
	signals_seen++;
	if (signals_seen == 1) {
		first_signal = signum;
		/* inside a grace window the statement may take the grace, then
		 * the cleanup; otherwise only the cleanup */
		arm_hard_exit(grace_open_ms + SG_CLEANUP_BUDGET_MS + SG_HARD_EXIT_MARGIN_MS, 128 + signum);
	} else if (signals_seen == 2 && grace_open_ms > 0) {
		/* second signal during a graceful stop: cancel now, clean up fast */
		arm_hard_exit(SG_CLEANUP_BUDGET_MS + SG_HARD_EXIT_MARGIN_MS, 128 + signum);
	} else {
		/* the operator wants out now; the database rolls back an open
		 * transaction and releases session locks when we disconnect */
		_exit(128 + signum);
	}
	if (wake_handle)
		uv_async_send(wake_handle);
	errno = saved;
}

/* What the process had before: a program exec'd after `--` gets it back
 * (an ignored signal survives exec). */
static struct sigaction saved_term, saved_int, saved_alrm, saved_pipe;

static void install_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, &saved_term);
	sigaction(SIGINT, &sa, &saved_int);
	sa.sa_handler = on_hard_exit;
	sigaction(SIGALRM, &sa, &saved_alrm);
	if (!hard_timer_ready) {
		struct sigevent sev;
		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_SIGNAL;
		sev.sigev_signo = SIGALRM;
		hard_timer_ready = timer_create(CLOCK_MONOTONIC, &sev, &hard_timer) == 0;
	}
	/* a write to a dead peer must be an error, not a silent death */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &saved_pipe);
}

static void restore_handlers(void)
{
	if (hard_timer_ready) {
		/* disarm; a later exec must not inherit a pending SIGALRM */
		struct itimerspec off = {0};
		timer_settime(hard_timer, 0, &off, NULL);
	}
	sigaction(SIGTERM, &saved_term, NULL);
	sigaction(SIGINT, &saved_int, NULL);
	sigaction(SIGALRM, &saved_alrm, NULL);
	sigaction(SIGPIPE, &saved_pipe, NULL);
}

/* ---- stopping ------------------------------------------------------------ */

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

/* The one place a run stops: record why, cancel what is running, and
 * give the cleanup a bounded window. */
static void stop(struct sg_loop *l, enum sg_cancel_reason why)
{
	kick(l);
	if (l->cancel != SG_CANCEL_NONE)
		return;
	l->cancel = why;
	l->cleanup_deadline_ms = sg_now_ms() + SG_CLEANUP_BUDGET_MS;
	if (why != SG_CANCEL_SIGNAL)
		arm_hard_exit(SG_CLEANUP_BUDGET_MS + SG_HARD_EXIT_MARGIN_MS, sg_exit_code(sg_loop_cancel_outcome(l)));
	uv_timer_stop(&l->grace);
	for (int i = 0; i < SG_LOOP_MAX_BUSY; i++)
		if (l->busy[i])
			sg_conn_cancel(l->busy[i]);
}

static const char *signal_name(int signum)
{
	return signum == SIGINT ? "SIGINT" : "SIGTERM";
}

static void on_grace_over(uv_timer_t *h)
{
	struct sg_loop *l = h->data;
	sg_warn("signal", "the statement did not finish within --stop-grace; canceling it");
	stop(l, SG_CANCEL_SIGNAL);
}

static void on_wake(uv_async_t *h)
{
	struct sg_loop *l = h->data;
	kick(l);
	int seen = signals_seen, signum = first_signal;
	if (seen == 0 || l->cancel != SG_CANCEL_NONE)
		return;
	l->signum = signum;
	if (l->grace_ms > 0 && seen == 1) {
		if (!l->stopping) {
			l->stopping = true;
			sg_warn("signal", "received %s during a non-transactional statement: letting it finish "
				"(up to %llus), then stopping", signal_name(signum),
				(unsigned long long)(l->grace_ms / 1000));
			uv_update_time(&l->uv);
			uv_timer_start(&l->grace, on_grace_over, l->grace_ms, 0);
		}
		return;
	}
	if (l->signal_expected && signum == SIGTERM)
		sg_info("signal", "received %s: stopping", signal_name(signum));
	else
		sg_warn("signal", "received %s: stopping", signal_name(signum));
	stop(l, SG_CANCEL_SIGNAL);
}

static void on_deadline(uv_timer_t *h)
{
	stop(h->data, SG_CANCEL_DEADLINE);
}

static void on_expiry(uv_timer_t *h)
{
	stop(h->data, SG_CANCEL_LEASE);
}

static void on_tick(uv_timer_t *h)
{
	struct sg_loop_tick *t = h->data;
	t->due = true;
	kick(h->loop->data);
}

void sg_loop_cancel(struct sg_loop *l, enum sg_cancel_reason why)
{
	stop(l, why);
}

void sg_loop_grace_begin(struct sg_loop *l, uint64_t grace_ms)
{
	l->grace_ms = grace_ms;
	grace_open_ms = (sig_atomic_t)(grace_ms > 600000 ? 600000 : grace_ms);
	if (l->stopping && l->cancel == SG_CANCEL_NONE) {
		uv_update_time(&l->uv);
		uv_timer_start(&l->grace, on_grace_over, grace_ms, 0);
	}
}

void sg_loop_grace_end(struct sg_loop *l)
{
	l->grace_ms = 0;
	grace_open_ms = 0;
	uv_timer_stop(&l->grace);
}

/* ---- waiting ------------------------------------------------------------- */

/* One sg_io_wait() call. Waits nest (a heartbeat renews the lease on the
 * lease connection while the work connection waits for a statement), so
 * every call has its own handles, on its own stack frame; they are closed
 * and the close completed before the frame goes away. */
struct sg_wait_call {
	struct sg_loop *loop;
	struct sg_wait_call *outer;   /* the wait this one runs inside, if any */
	uv_poll_t poll;
	uv_timer_t timer;
	int ready_events;
	bool woke;
};

static void on_wait_timer(uv_timer_t *h)
{
	struct sg_wait_call *w = h->data;
	w->woke = true;
	kick(w->loop);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sg_wait_call *w = h->data;
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

static void run_due_ticks(struct sg_loop *l)
{
	for (int i = 0; i < SG_TICK_SLOTS; i++) {
		struct sg_loop_tick *t = &l->ticks[i];
		if (!t->due || t->running || !t->fn || sg_loop_canceled(l))
			continue;
		t->due = false;
		t->running = true;
		t->fn(t->data);
		t->running = false;
	}
}

/* Has a wait this one runs inside got what it waited for? */
static bool outer_ready(const struct sg_wait_call *w)
{
	for (const struct sg_wait_call *o = w->outer; o; o = o->outer)
		if (o->ready_events || o->woke)
			return true;
	return false;
}

static bool any_busy(const struct sg_loop *l)
{
	for (int i = 0; i < SG_LOOP_MAX_BUSY; i++)
		if (l->busy[i])
			return true;
	return false;
}

/* After a stop, a statement in flight (or a cleanup statement) may still
 * be waited for until the cleanup deadline; anything else ends now. */
static bool stopped_for(const struct sg_loop *l, bool statement)
{
	if (!sg_loop_canceled(l))
		return false;
	return !statement || sg_now_ms() >= l->cleanup_deadline_ms;
}

/*
 * statement: a statement is in flight, so a stop leaves it the cleanup
 * window; yield: end (-1) as soon as an enclosing wait is ready. Returns
 * the ready events, 0 on timeout, SG_IO_CANCELED, or -1 (yielded).
 */
static int wait_on(struct sg_loop *l, int fd, int events, int64_t timeout_ms, bool statement, bool yield)
{
	if (stopped_for(l, statement))
		return SG_IO_CANCELED;
	if (sg_loop_canceled(l)) {
		int64_t left = (int64_t)(l->cleanup_deadline_ms - sg_now_ms());
		if (timeout_ms < 0 || timeout_ms > left)
			timeout_ms = left;
	}
	struct sg_wait_call w = {.loop = l, .outer = l->waits};
	if (yield && outer_ready(&w))
		return -1;
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
		uv_timer_start(&w.timer, on_wait_timer, (uint64_t)timeout_ms, 0);
	bool bounded = sg_loop_canceled(l), yielded = false;
	l->waits = &w;
	while (!w.ready_events && !w.woke && !stopped_for(l, statement) && !(yielded = yield && outer_ready(&w))) {
		uv_run(&l->uv, UV_RUN_ONCE);
		uv_idle_stop(&l->kick);
		run_due_ticks(l);
		if (!bounded && sg_loop_canceled(l)) {
			/* stopped during the wait: the statement gets until the
			 * cleanup deadline, not a moment longer */
			bounded = true;
			uint64_t now = sg_now_ms();
			uv_update_time(&l->uv);
			uv_timer_start(&w.timer, on_wait_timer,
				       l->cleanup_deadline_ms > now ? l->cleanup_deadline_ms - now : 0, 0);
		}
	}
	l->waits = w.outer;
	if (polling)
		uv_close((uv_handle_t *)&w.poll, NULL);
	uv_close((uv_handle_t *)&w.timer, NULL);
	/* complete the closes before this frame (and maybe the fd) goes away */
	uv_run(&l->uv, UV_RUN_NOWAIT);
	if (w.ready_events)
		return w.ready_events;
	if (yielded)
		return -1;
	if (sg_loop_canceled(l) && (!statement || sg_now_ms() >= l->cleanup_deadline_ms))
		return SG_IO_CANCELED;
	return 0;
}

static int io_wait(struct sg_io *io, int fd, int events, int64_t timeout_ms)
{
	struct sg_loop *l = io->data;
	return wait_on(l, fd, events, timeout_ms, any_busy(l), false);
}

static int io_check(struct sg_io *io)
{
	struct sg_loop *l = io->data;
	uv_run(&l->uv, UV_RUN_NOWAIT);
	uv_idle_stop(&l->kick);
	return stopped_for(l, true) ? SG_IO_CANCELED : 0;
}

static int io_sleep(struct sg_io *io, uint64_t ms)
{
	struct sg_loop *l = io->data;
	/* a sleep is never a statement: it ends at once on a stop (the
	 * statements in flight around it stay registered: the stop cancels
	 * them) */
	int rc = wait_on(l, -1, 0, (int64_t)ms, false, false);
	return rc == SG_IO_CANCELED ? SG_IO_CANCELED : 0;
}

static void io_busy(struct sg_io *io, struct sg_conn *c, bool busy)
{
	struct sg_loop *l = io->data;
	for (int i = 0; i < SG_LOOP_MAX_BUSY; i++) {
		if (busy && !l->busy[i]) {
			l->busy[i] = c;
			l->busy_since[i] = sg_now_ms();
			return;
		}
		if (!busy && l->busy[i] == c) {
			l->busy[i] = NULL;
			return;
		}
	}
}

uint64_t sg_loop_busy_since(const struct sg_loop *l, const struct sg_conn *c)
{
	for (int i = 0; i < SG_LOOP_MAX_BUSY; i++)
		if (c && l->busy[i] == c)
			return l->busy_since[i];
	return 0;
}

/* ---- the side connection's waits ----------------------------------------- */

static int side_wait(struct sg_io *io, int fd, int events, int64_t timeout_ms)
{
	struct sg_side_io *s = io->data;
	uint64_t now = sg_now_ms();
	if (sg_loop_canceled(s->loop))
		s->ended = SG_SIDE_STOPPED;
	else if (now >= s->deadline_ms)
		s->ended = SG_SIDE_TIMED_OUT;
	if (s->ended)
		return SG_IO_CANCELED;
	int64_t mine = (int64_t)(s->deadline_ms - now);
	bool own_deadline = timeout_ms < 0 || timeout_ms > mine;
	int rc = wait_on(s->loop, fd, events, own_deadline ? mine : timeout_ms, false, true);
	if (rc == -1)
		s->ended = SG_SIDE_YIELDED;
	else if (rc == SG_IO_CANCELED)
		s->ended = SG_SIDE_STOPPED;
	else if (rc == 0 && own_deadline)
		s->ended = SG_SIDE_TIMED_OUT;
	return s->ended ? SG_IO_CANCELED : rc;
}

static int side_sleep(struct sg_io *io, uint64_t ms)
{
	int rc = side_wait(io, -1, 0, (int64_t)ms);
	return rc == SG_IO_CANCELED ? SG_IO_CANCELED : 0;
}

static int io_resolve(struct sg_io *io, const char *host, char *addr, size_t addrsz, int64_t timeout_ms);

static int side_resolve(struct sg_io *io, const char *host, char *addr, size_t addrsz, int64_t timeout_ms)
{
	struct sg_side_io *s = io->data;
	uint64_t now = sg_now_ms();
	int64_t mine = s->deadline_ms > now ? (int64_t)(s->deadline_ms - now) : 0;
	return io_resolve(&s->loop->io, host, addr, addrsz, timeout_ms < 0 || timeout_ms > mine ? mine : timeout_ms);
}

void sg_loop_side_io(struct sg_loop *l, struct sg_side_io *out, uint64_t budget_ms)
{
	*out = (struct sg_side_io){
		.io = {.wait = side_wait, .check = io_check, .sleep = side_sleep, .resolve = side_resolve},
		.loop = l,
		.deadline_ms = sg_now_ms() + budget_ms,
	};
	out->io.data = out;
}

/* ---- resolving ----------------------------------------------------------
 * getaddrinfo() runs on libuv's thread pool. The request lives on the
 * heap: when we stop waiting for it (timeout, stop) the callback, which
 * libuv always calls, frees it. */

struct resolve_req {
	uv_getaddrinfo_t req;
	struct sg_loop *loop;
	bool done, abandoned;
	int status;
	char addr[INET6_ADDRSTRLEN];
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct resolve_req *r = req->data;
	r->done = true;
	r->status = status;
	if (status == 0 && res) {
		const void *a = res->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
							    : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
		if (!inet_ntop(res->ai_family, a, r->addr, sizeof(r->addr)))
			r->status = UV_EAI_FAIL;
	}
	uv_freeaddrinfo(res);
	if (r->abandoned)
		free(r);
	else
		kick(r->loop);
}

static int io_resolve(struct sg_io *io, const char *host, char *addr, size_t addrsz, int64_t timeout_ms)
{
	struct sg_loop *l = io->data;
	if (sg_loop_canceled(l))
		return SG_IO_CANCELED;
	struct resolve_req *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->loop = l;
	r->req.data = r;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
	int rc = uv_getaddrinfo(&l->uv, &r->req, on_resolved, host, NULL, &hints);
	if (rc != 0) {
		free(r);
		snprintf(addr, addrsz, "%s", uv_strerror(rc));
		return -1;
	}
	uint64_t until = timeout_ms < 0 ? UINT64_MAX : sg_now_ms() + (uint64_t)timeout_ms;
	while (!r->done && !sg_loop_canceled(l) && sg_now_ms() < until) {
		uint64_t left = until - sg_now_ms();
		io_sleep(io, left > 50 ? 50 : left);
	}
	if (!r->done) {
		bool canceled = sg_loop_canceled(l);
		/* libuv calls the callback either way (UV_ECANCELED for a
		 * request not started yet, the answer whenever the resolver
		 * gives one); it frees the request */
		r->abandoned = true;
		uv_cancel((uv_req_t *)&r->req);
		if (canceled)
			return SG_IO_CANCELED;
		snprintf(addr, addrsz, "no answer from the resolver within %lldms", (long long)timeout_ms);
		return -1;
	}
	rc = r->status;
	if (rc == 0)
		snprintf(addr, addrsz, "%s", r->addr);
	else
		snprintf(addr, addrsz, "%s", uv_strerror(rc));
	free(r);
	return rc == 0 ? 0 : -1;
}

/* ---- life cycle ---------------------------------------------------------- */

int sg_loop_init(struct sg_loop *l, uint64_t overall_timeout_ms, struct sg_error *err)
{
	memset(l, 0, sizeof(*l));
	int rc = uv_loop_init(&l->uv);
	if (rc != 0)
		return sg_fail(err, SG_OUTCOME_DATABASE, "libuv: %s", uv_strerror(rc));
	uv_async_init(&l->uv, &l->wake, on_wake);
	uv_timer_init(&l->uv, &l->deadline);
	uv_timer_init(&l->uv, &l->expiry);
	uv_timer_init(&l->uv, &l->grace);
	uv_idle_init(&l->uv, &l->kick);
	uv_prepare_init(&l->uv, &l->soon);
	l->wake.data = l->deadline.data = l->expiry.data = l->grace.data = l;
	l->uv.data = l;
	for (int i = 0; i < SG_TICK_SLOTS; i++) {
		uv_timer_init(&l->uv, &l->ticks[i].timer);
		l->ticks[i].timer.data = &l->ticks[i];
	}
	signals_seen = 0;
	first_signal = 0;
	grace_open_ms = 0;
	wake_handle = &l->wake;
	install_handlers();
	if (overall_timeout_ms > 0)
		uv_timer_start(&l->deadline, on_deadline, overall_timeout_ms, 0);
	l->io.wait = io_wait;
	l->io.check = io_check;
	l->io.sleep = io_sleep;
	l->io.busy = io_busy;
	l->io.resolve = io_resolve;
	l->io.data = l;
	return 0;
}

void sg_loop_close(struct sg_loop *l)
{
	wake_handle = NULL;
	restore_handlers();
	uv_close((uv_handle_t *)&l->wake, NULL);
	uv_close((uv_handle_t *)&l->deadline, NULL);
	for (int i = 0; i < SG_TICK_SLOTS; i++)
		uv_close((uv_handle_t *)&l->ticks[i].timer, NULL);
	uv_close((uv_handle_t *)&l->expiry, NULL);
	uv_close((uv_handle_t *)&l->grace, NULL);
	uv_close((uv_handle_t *)&l->kick, NULL);
	uv_close((uv_handle_t *)&l->soon, NULL);
	/* NOWAIT, not DEFAULT: an abandoned resolver request must not keep
	 * the process from exiting */
	for (int i = 0; i < 4; i++)
		uv_run(&l->uv, UV_RUN_NOWAIT);
	if (uv_loop_close(&l->uv) != 0)
		sg_debug("loop", "loop closed with requests still open (a resolver that did not answer)");
}

void sg_loop_start_tick(struct sg_loop *l, enum sg_tick_slot slot, uint64_t interval_ms, sg_tick_fn fn, void *data)
{
	struct sg_loop_tick *t = &l->ticks[slot];
	t->fn = fn;
	t->data = data;
	t->due = false;
	uv_update_time(&l->uv);
	uv_timer_start(&t->timer, on_tick, interval_ms, interval_ms);
}

void sg_loop_stop_tick(struct sg_loop *l, enum sg_tick_slot slot)
{
	struct sg_loop_tick *t = &l->ticks[slot];
	uv_timer_stop(&t->timer);
	t->fn = NULL;
	t->due = false;
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

void sg_loop_disarm_deadline(struct sg_loop *l)
{
	uv_timer_stop(&l->deadline);
}

static void on_soon(uv_prepare_t *h)
{
	struct sg_loop *l = h->loop->data;
	uv_prepare_stop(h);
	if (uv_queue_work(&l->uv, l->soon_req, l->soon_work, l->soon_after) != 0) {
		/* no thread pool: do it here, on the loop */
		l->soon_work(l->soon_req);
		l->soon_after(l->soon_req, 0);
	}
}

void sg_loop_queue_work_soon(struct sg_loop *l, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
	l->soon_req = req;
	l->soon_work = work;
	l->soon_after = after;
	uv_prepare_start(&l->soon, on_soon);
}

void sg_loop_run_until(struct sg_loop *l, const bool *done)
{
	while (!*done) {
		uv_run(&l->uv, UV_RUN_ONCE);
		/* a stop kicks the loop; left running, the kick would make
		 * every poll return at once */
		uv_idle_stop(&l->kick);
	}
}

enum sg_outcome sg_loop_cancel_outcome(const struct sg_loop *l)
{
	if (l->cancel == SG_CANCEL_DEADLINE || l->cancel == SG_CANCEL_LEASE)
		return SG_OUTCOME_TIMEOUT;
	if (l->cancel == SG_CANCEL_DIRECTORY)
		return SG_OUTCOME_USAGE;
	if (l->cancel == SG_CANCEL_NONE && !l->stopping)
		return SG_OUTCOME_OK;
	return l->signum == SIGINT ? SG_OUTCOME_INTERRUPTED : SG_OUTCOME_TERMINATED;
}
