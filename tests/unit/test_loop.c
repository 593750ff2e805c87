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
