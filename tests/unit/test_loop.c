/*
 * test_loop.c - the loop drivers wait on: timeouts, readiness, deadlines
 * and signals must end a wait however stale the loop's clock is.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <unistd.h>

#include "schemagate/loop.h"
#include "sgtest.h"

static struct sg_loop loop;

static void init(uint64_t deadline_ms)
{
	struct sg_error err = {0};
	cr_assert_eq(sg_loop_init(&loop, deadline_ms, &err), 0, "%s", err.msg);
}

TestSuite(loop, .timeout = 10);

Test(loop, sleep_returns_after_its_timeout_even_with_a_stale_clock)
{
	init(0);
	usleep(150 * 1000); /* the loop has not run: its clock is 150 ms behind */
	double t0 = sgt_now_ms();
	cr_expect_eq(sg_io_sleep(&loop.io, 50), 0);
	double ms = sgt_now_ms() - t0;
	cr_expect_geq(ms, 45.0, "returned early: %.0f ms", ms);
	cr_expect_lt(ms, 1000.0, "returned late: %.0f ms", ms);
	sg_loop_close(&loop);
}

Test(loop, deadline_due_at_the_start_of_an_iteration_cancels_an_endless_wait)
{
	init(30);
	usleep(100 * 1000); /* the deadline is due before the loop first runs */
	double t0 = sgt_now_ms();
	cr_expect_eq(sg_io_wait(&loop.io, -1, 0, -1), SG_IO_CANCELED);
	cr_expect_lt(sgt_now_ms() - t0, 1000.0);
	cr_expect_eq(sg_exit_code(sg_loop_cancel_outcome(&loop)), 3);
	sg_loop_close(&loop);
}

Test(loop, readable_socket_ends_the_wait)
{
	init(0);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	cr_expect_eq(write(fds[1], "x", 1), 1);
	cr_expect_eq(sg_io_wait(&loop.io, fds[0], SG_IO_READ, 5000), SG_IO_READ);
	close(fds[0]);
	close(fds[1]);
	sg_loop_close(&loop);
}

Test(loop, sigterm_cancels_a_wait_and_maps_to_143)
{
	init(0);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t parent = getpid();
	if (fork() == 0) {
		usleep(100 * 1000);
		kill(parent, SIGTERM);
		_exit(0);
	}
	double t0 = sgt_now_ms();
	cr_expect_eq(sg_io_wait(&loop.io, fds[0], SG_IO_READ, -1), SG_IO_CANCELED);
	cr_expect_lt(sgt_now_ms() - t0, 2000.0);
	cr_expect_eq(sg_exit_code(sg_loop_cancel_outcome(&loop)), 143);
	close(fds[0]);
	close(fds[1]);
	sg_loop_close(&loop);
}

static int ticks;
static void count_tick(void *data)
{
	(void)data;
	ticks++;
}

Test(loop, heartbeat_runs_while_waiting_and_stops_when_asked)
{
	init(0);
	ticks = 0;
	sg_loop_start_heartbeat(&loop, 20, count_tick, NULL);
	cr_expect_eq(sg_io_sleep(&loop.io, 200), 0);
	cr_expect_geq(ticks, 5, "only %d ticks in 200 ms", ticks);
	sg_loop_stop_heartbeat(&loop);
	int seen = ticks;
	cr_expect_eq(sg_io_sleep(&loop.io, 100), 0);
	cr_expect_eq(ticks, seen);
	sg_loop_close(&loop);
}

/* ---- the side io of the progress probe ------------------------------------
 * A statement is in flight on a fake connection (its socket: a pipe);
 * the watch tick, nested in the statement's wait, waits on a socket of
 * its own that never answers, as a probe whose server hangs would. */

static bool fake_canceled;
static void fake_cancel(struct sg_conn *c)
{
	(void)c;
	fake_canceled = true;
}
static const struct sg_driver fake_driver = {.name = "fake", .cancel = fake_cancel};
static struct sg_conn fake_statement = {.driver = &fake_driver};

struct probe_seen {
	int fds[2];             /* the probe's socket: never ready */
	int statement_write;    /* written once the probe gave up, to end the statement */
	int rc;
	enum sg_side_end ended;
	double returned_ms;
	bool ran;
};

static void hanging_probe(void *data)
{
	struct probe_seen *p = data;
	if (p->ran)
		return;
	p->ran = true;
	struct sg_side_io side;
	sg_loop_side_io(&loop, &side, 5000);
	p->rc = sg_io_wait(&side.io, p->fds[0], SG_IO_READ, -1);
	p->ended = side.ended;
	p->returned_ms = sgt_now_ms();
	if (p->statement_write >= 0)
		cr_expect_eq(write(p->statement_write, "x", 1), 1);
}

Test(loop, a_probe_gives_way_the_moment_the_statement_it_looks_at_has_finished)
{
	init(0);
	int statement[2];
	struct probe_seen p = {.statement_write = -1};
	cr_assert_eq(pipe(statement), 0);
	cr_assert_eq(pipe(p.fds), 0);
	if (fork() == 0) {
		usleep(300 * 1000);   /* the statement finishes while the probe hangs */
		_exit(write(statement[1], "x", 1) == 1 ? 0 : 1);
	}
	sg_io_busy(&loop.io, &fake_statement, true);
	sg_loop_start_tick(&loop, SG_TICK_WATCH, 50, hanging_probe, &p);
	double t0 = sgt_now_ms();
	cr_expect_eq(sg_io_wait(&loop.io, statement[0], SG_IO_READ, 10000), SG_IO_READ);
	double done = sgt_now_ms();
	sg_io_busy(&loop.io, &fake_statement, false);
	cr_assert(p.ran);
	cr_expect_eq(p.rc, SG_IO_CANCELED);
	cr_expect_eq(p.ended, SG_SIDE_YIELDED);
	cr_expect_lt(done - t0, 2000.0, "the statement's end was seen after %.0f ms", done - t0);
	cr_expect_lt(done - p.returned_ms, 500.0);
	cr_expect_not(fake_canceled);
	sg_loop_stop_tick(&loop, SG_TICK_WATCH);
	for (int i = 0; i < 2; i++) {
		close(statement[i]);
		close(p.fds[i]);
	}
	sg_loop_close(&loop);
}

Test(loop, a_stop_ends_a_hanging_probe_at_once_and_still_cancels_the_statement)
{
	init(0);
	fake_canceled = false;
	int statement[2];
	cr_assert_eq(pipe(statement), 0);
	struct probe_seen p = {.statement_write = statement[1]};
	cr_assert_eq(pipe(p.fds), 0);
	pid_t parent = getpid();
	if (fork() == 0) {
		usleep(300 * 1000);
		kill(parent, SIGTERM);
		_exit(0);
	}
	sg_io_busy(&loop.io, &fake_statement, true);
	sg_loop_start_tick(&loop, SG_TICK_WATCH, 50, hanging_probe, &p);
	/* the statement "stops" when the probe has given up (hanging_probe
	 * writes its socket): within the cleanup window */
	cr_expect_eq(sg_io_wait(&loop.io, statement[0], SG_IO_READ, 10000), SG_IO_READ);
	sg_io_busy(&loop.io, &fake_statement, false);
	cr_assert(p.ran);
	cr_expect_eq(p.rc, SG_IO_CANCELED);
	cr_expect_eq(p.ended, SG_SIDE_STOPPED);
	cr_expect(fake_canceled, "the stop did not cancel the statement while the probe was in flight");
	cr_expect(sg_loop_canceled(&loop));
	cr_expect_lt(p.returned_ms - (double)(loop.cleanup_deadline_ms - SG_CLEANUP_BUDGET_MS), 500.0,
		     "the probe held the stop up");
	sg_loop_stop_tick(&loop, SG_TICK_WATCH);
	for (int i = 0; i < 2; i++) {
		close(statement[i]);
		close(p.fds[i]);
	}
	sg_loop_close(&loop);
}

Test(loop, a_probe_gives_up_after_its_budget)
{
	init(0);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	struct sg_side_io side;
	sg_loop_side_io(&loop, &side, 100);
	double t0 = sgt_now_ms();
	cr_expect_eq(sg_io_wait(&side.io, fds[0], SG_IO_READ, -1), SG_IO_CANCELED);
	cr_expect_eq(side.ended, SG_SIDE_TIMED_OUT);
	double ms = sgt_now_ms() - t0;
	cr_expect(ms >= 90 && ms < 2000, "%.0f ms", ms);
	close(fds[0]);
	close(fds[1]);
	sg_loop_close(&loop);
}

/* Work queued "soon" starts with the loop's next iteration (the first
 * wait of a connect), not at the call: the pool's start must not delay
 * the connect itself. It runs on the pool and completes on the loop. */
static bool soon_ran, soon_done;
static int soon_status = -1;
static void soon_work(uv_work_t *req) { (void)req; soon_ran = true; }
static void soon_after(uv_work_t *req, int status)
{
	(void)req;
	soon_status = status;
	soon_done = true;
}

Test(loop, work_queued_soon_starts_with_the_next_wait_and_completes_on_the_loop)
{
	init(0);
	uv_work_t req;
	sg_loop_queue_work_soon(&loop, &req, soon_work, soon_after);
	usleep(50 * 1000);
	cr_expect(!soon_ran, "the work started before the loop ran");
	cr_expect_eq(sg_io_sleep(&loop.io, 1), 0);
	sg_loop_run_until(&loop, &soon_done);
	cr_expect(soon_ran);
	cr_expect_eq(soon_status, 0);
	sg_loop_close(&loop);
}
