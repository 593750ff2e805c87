/*
 * test_serve.c - `schemagate serve` end to end against PostgreSQL, MariaDB
 * and SQLite: /readyz while the run migrates and after, /metrics against
 * the history, the periodic check (a newer release, a changed checksum, a
 * failed or reverted migration), connections between checks, stopping.
 *
 * Each test starts the built binary with --listen 127.0.0.1:0 and reads the
 * bound address from its log. A test that fails while serve runs kills it
 * in the suite's fini.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sgdb.h"
#include "sghttp.h"
#include "sgtest.h"

static uv_loop_t loop;        /* the HTTP client's (sghttp.h) */
static pid_t running = -1;    /* a serve still running when a test fails */

static void suite_init(void)
{
	uv_loop_init(&loop);
	sgh_loop_start(&loop);
}

static void suite_fini(void)
{
	if (running > 0) {
		kill(running, SIGKILL);
		waitpid(running, NULL, 0);
		running = -1;
	}
	sgh_loop_close(&loop);
}

TestSuite(serve, .init = suite_init, .fini = suite_fini, .timeout = 120);

/* A statement that takes about 0.4 s, put in front of each migration. */
static const char *slow_statement(enum eng eng)
{
	switch (eng) {
	case ENG_PG: return "SELECT pg_sleep(0.4);";
	case ENG_MY: return "SELECT SLEEP(0.4);";
	default:
		return "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
		       "WHERE x < 1200000) SELECT x FROM c);";
	}
}

/* The engine label of schemagate_schema_info. */
static const char *engine_label(enum eng eng)
{
	return eng == ENG_PG ? "postgres" : eng == ENG_MY ? "mysql" : "sqlite";
}

/* ---- a serve process --------------------------------------------------- */

struct served {
	pid_t pid;
	char *log;
	char address[80];
};

/* Start `serve` on d with --dir dir, --listen 127.0.0.1:0 and args (NULL-
 * terminated, may be NULL); returns once it is listening. */
static void serve_start(struct served *s, struct tdb *d, const char *dir, const char *interval,
			const char *const *args)
{
	const char *argv[24] = {"--database-url", d->url, "--dir", dir, "--poll-interval", "200ms", "serve",
				"--listen", "127.0.0.1:0", "--check-interval", interval};
	size_t n = 11;
	for (; args && *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	memset(s, 0, sizeof(*s));
	s->log = sgt_path(d->dir, "serve.log");
	s->pid = sgt_spawn(NULL, argv, s->log);
	running = s->pid;
	const char *marker = "serving /livez, /readyz and /metrics on ";
	for (int i = 0; i < 1000; i++) {
		char *text = sgt_slurp(s->log);
		const char *at = text ? strstr(text, marker) : NULL;
		if (at) {
			at += strlen(marker);
			size_t len = strcspn(at, " \n");
			cr_assert_lt(len, sizeof(s->address));
			memcpy(s->address, at, len);
			free(text);
			return;
		}
		int st;
		pid_t done = waitpid(s->pid, &st, WNOHANG);
		if (done == s->pid) {
			running = -1;
			cr_assert_fail("serve exited before listening: %s", text ? text : "");
		}
		free(text);
		sleep_ms(10);
	}
	cr_assert_fail("serve did not start listening within 10 s");
}

static void served_free(struct served *s)
{
	free(s->log);
}

static char *serve_log(const struct served *s)
{
	char *text = sgt_slurp(s->log);
	return text ? text : strdup("");
}

/* SIGTERM: serve must exit with expect within 2 s. Returns its log (malloc'd). */
static char *serve_stop(struct served *s, int expect)
{
	double t0 = sgt_now_ms();
	kill(s->pid, SIGTERM);
	int code = sgt_wait(s->pid);
	double ms = sgt_now_ms() - t0;
	running = -1;
	char *log = serve_log(s);
	cr_expect_eq(code, expect, "exit %d, not %d: %s", code, expect, log);
	cr_expect_lt(ms, 2000, "took %.0f ms after SIGTERM", ms);
	return log;
}

/* GET path; the whole response (malloc'd), *status its code. */
static char *get(const struct served *s, const char *path, int *status)
{
	char req[256];
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: schemagate\r\n\r\n", path);
	char *r = sgh_exchange(&loop, s->address, req);
	*status = sgh_status(r);
	return r;
}

/* The value of the sample written exactly as series ("schemagate_ready",
 * "schemagate_schema_info{...}"); NAN when there is none. */
static double sample(const char *metrics, const char *series)
{
	size_t n = strlen(series);
	for (const char *line = metrics; line && *line;) {
		if (strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NAN;
}

/* schemagate_schema_info{applied,target,engine}: 1, or NAN when absent. */
static double schema_info(const char *metrics, const char *applied, const char *target, enum eng eng)
{
	char series[160];
	snprintf(series, sizeof(series), "schemagate_schema_info{applied=\"%s\",target=\"%s\",engine=\"%s\"}",
		 applied, target, engine_label(eng));
	return sample(metrics, series);
}

static char *metrics_now(const struct served *s)
{
	int status;
	char *r = get(s, "/metrics", &status);
	cr_assert_eq(status, 200, "GET /metrics: %s", r);
	return r;
}

/* Poll /metrics until series has value (within timeout_ms); returns the
 * matching response (malloc'd). */
static char *await_sample(const struct served *s, const char *series, double value, double timeout_ms)
{
	double end = sgt_now_ms() + timeout_ms;
	for (;;) {
		char *m = metrics_now(s);
		if (sample(m, series) == value)
			return m;
		if (sgt_now_ms() > end) {
			char *log = serve_log(s);
			cr_assert_fail("%s did not become %g within %.0f ms:\n%s\nlog:\n%s", series, value, timeout_ms, m,
				       log);
		}
		free(m);
		sleep_ms(50);
	}
}

/* Poll /readyz until it answers status; returns the body's copy. */
static char *await_readyz(const struct served *s, int want, double timeout_ms)
{
	double end = sgt_now_ms() + timeout_ms;
	for (;;) {
		int status;
		char *r = get(s, "/readyz", &status);
		if (status == want) {
			char *body = strdup(sgh_body(r));
			free(r);
			return body;
		}
		if (sgt_now_ms() > end) {
			char *log = serve_log(s);
			cr_assert_fail("/readyz did not answer %d within %.0f ms: %s\nlog:\n%s", want, timeout_ms, r, log);
		}
		free(r);
		sleep_ms(50);
	}
}

static double last_check(const struct served *s)
{
	char *m = metrics_now(s);
	double t = sample(m, "schemagate_last_check_timestamp_seconds");
	free(m);
	return t;
}

/* Wait until a check that started after now has finished. */
static void await_next_check(const struct served *s, double timeout_ms)
{
	double before = last_check(s);
	double end = sgt_now_ms() + timeout_ms;
	while (last_check(s) <= before) {
		cr_assert_lt(sgt_now_ms(), end, "no check within %.0f ms", timeout_ms);
		sleep_ms(50);
	}
}

/* Run a schemagate command on d with --dir dir; asserts the exit code. */
static void schemagate(struct tdb *d, const char *dir, const char *cmd, int expect)
{
	const char *argv[] = {"--database-url", d->url, "--dir", dir, cmd, NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, expect, "%s exited %d, not %d: %s", cmd, r.status, expect, r.err);
	sgt_result_free(&r);
}

/* A fresh database on eng with migrations 0001..n, and serve on it, ready. */
static void serve_ready(struct tdb *d, struct served *s, enum eng eng, int n, const char *interval,
			const char *const *args)
{
	tdb_create(d, eng, tdb_server_for(eng));
	write_migrations(d, n, NULL);
	serve_start(s, d, d->mig, interval, args);
	free(await_readyz(s, 200, 30000));
}

/* SIGTERM (exit 0 within 2 s), then drop everything. */
static void serve_done(struct tdb *d, struct served *s)
{
	free(serve_stop(s, 0));
	served_free(s);
	tdb_drop(d);
}

/* The same migrations as write_migrations(d, n, NULL), in another directory. */
static char *newer_directory(struct tdb *d, int n)
{
	char *dir = sgt_path(d->dir, "newer");
	cr_assert_eq(mkdir(dir, 0755), 0);
	char *mig = d->mig;
	d->mig = dir;
	write_migrations(d, n, NULL);
	d->mig = mig;
	return dir;
}

/* ---- /readyz while migrating, /metrics against the history ------------- */

static void migrates_then_ready(enum eng eng)
{
	struct tdb d;
	tdb_create(&d, eng, tdb_server_for(eng));
	write_migrations(&d, 3, slow_statement(eng));
	struct served s;
	serve_start(&s, &d, d.mig, "1s", NULL);

	/* the run takes about 1.2 s: the first answers are 503 with a
	 * reason, /livez answers all along, then 200 and never 503 again */
	int n503 = 0, n200 = 0, status;
	double pending_seen = 0;
	double end = sgt_now_ms() + 60000;
	while (n200 < 3) {
		char *r = get(&s, "/readyz", &status);
		cr_assert(status == 200 || status == 503, "%s", r);
		if (status == 503) {
			cr_assert_eq(n200, 0, "/readyz went back to 503 after 200: %s", r);
			cr_assert(strncmp(sgh_body(r), "not ready: ", 11) == 0, "503 without a reason: %s", r);
			n503++;
			char *live = get(&s, "/livez", &status);
			cr_assert_eq(status, 200, "/livez during the migration: %s", live);
			free(live);
			/* the metrics follow the run's own reads of the history */
			char *m = metrics_now(&s);
			double pending = sample(m, "schemagate_migrations_pending");
			pending_seen = pending > pending_seen ? pending : pending_seen;
			free(m);
		} else {
			/* the check after the run has filled /metrics in */
			cr_assert_str_eq(sgh_body(r), "ready: database at version 0003, target 0003\n", "%s", r);
			n200++;
		}
		free(r);
		cr_assert_lt(sgt_now_ms(), end, "never ready");
		sleep_ms(30);
	}
	cr_assert_geq(n503, 3, "/readyz answered 503 only %d time(s) while migrating", n503);
	cr_expect_eq(pending_seen, 3, "schemagate_migrations_pending while migrating: at most %g", pending_seen);

	char *m = metrics_now(&s);
	long applied = tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'");
	cr_assert_eq(applied, 3);
	cr_expect_eq(sample(m, "schemagate_ready"), 1, "%s", m);
	cr_expect_eq(sample(m, "schemagate_migrations_applied"), (double)applied, "%s", m);
	cr_expect_eq(sample(m, "schemagate_migrations_pending"), 0, "%s", m);
	cr_expect_eq(sample(m, "schemagate_migrations_failed"), 0, "%s", m);
	cr_expect_eq(sample(m, "schemagate_database_ahead"), 0, "%s", m);
	cr_expect_eq(sample(m, "schemagate_check_errors_total"), 0, "%s", m);
	cr_expect_eq(schema_info(m, "0003", "0003", eng), 1, "%s", m);
	/* this process applied all three: their durations, as the history has them */
	cr_expect_eq(sample(m, "schemagate_migration_duration_seconds_count"), 3, "%s", m);
	cr_expect_eq(sample(m, "schemagate_migration_duration_seconds_bucket{le=\"+Inf\"}"), 3, "%s", m);
	double history_s = (double)tdb_long(&d, "SELECT sum(duration_ms) FROM schemagate_migrations") / 1000.0;
	double sum = sample(m, "schemagate_migration_duration_seconds_sum");
	cr_expect(fabs(sum - history_s) < 0.3, "duration sum %.3f s, history %.3f s", sum, history_s);
	if (eng != ENG_LITE) {
		cr_expect_geq(sum, 1.2, "%s", m);
		cr_expect_eq(sample(m, "schemagate_migration_duration_seconds_bucket{le=\"0.25\"}"), 0, "%s", m);
	}
	double wait = sample(m, "schemagate_lock_wait_seconds");
	cr_expect(wait >= 0 && wait < 5, "lock wait %g", wait);
	double checked = sample(m, "schemagate_last_check_timestamp_seconds");
	double now = (double)time(NULL);
	cr_expect(checked > now - 60 && checked < now + 2, "last check %f, now %f", checked, now);
	free(m);
	serve_done(&d, &s);
}

Test(serve, postgres_readyz_503_while_migrating_then_200_metrics_match_history)
{
	migrates_then_ready(ENG_PG);
}

Test(serve, mariadb_readyz_503_while_migrating_then_200_metrics_match_history)
{
	migrates_then_ready(ENG_MY);
}

Test(serve, sqlite_readyz_503_while_migrating_then_200_metrics_match_history)
{
	migrates_then_ready(ENG_LITE);
}

/* ---- the periodic check ------------------------------------------------ */

/*
 * serve has 0001-0002. Another instance with a newer directory applies
 * 0003: the database is ahead, /readyz stays 200. Then what this image
 * knows changes under it: a checksum, a failed row, a reverted row: 503
 * each time with the reason, and 200 again once it is put back.
 */
static void checks_follow_the_database(enum eng eng)
{
	struct tdb d;
	struct served s;
	serve_ready(&d, &s, eng, 2, "300ms", NULL);
	char *newer = newer_directory(&d, 3);
	char *m = await_sample(&s, "schemagate_migrations_applied", 2, 5000);
	cr_expect_eq(sample(m, "schemagate_database_ahead"), 0, "%s", m);
	free(m);

	schemagate(&d, newer, "up", 0);
	m = await_sample(&s, "schemagate_database_ahead", 1, 5000);
	cr_expect_eq(schema_info(m, "0003", "0002", eng), 1, "%s", m);
	cr_expect_eq(sample(m, "schemagate_ready"), 1, "%s", m);
	cr_expect_eq(sample(m, "schemagate_migrations_applied"), 2, "%s", m);
	cr_expect_eq(sample(m, "schemagate_migrations_pending"), 0, "%s", m);
	free(m);
	int status;
	char *r = get(&s, "/readyz", &status);
	cr_expect_eq(status, 200, "a database ahead of the image stays ready: %s", r);
	cr_expect(strstr(r, "1 newer version(s) this image does not know"), "%s", r);
	free(r);

	/* a checksum this image knows changes */
	char *sum = tdb_value(&d, "SELECT checksum FROM schemagate_migrations WHERE version = '0001'");
	free(tdb_value(&d, "UPDATE schemagate_migrations SET checksum = 'edited' WHERE version = '0001'"));
	char *body = await_readyz(&s, 503, 5000);
	cr_expect(strstr(body, "checksum mismatch: 0001_step_1.up.sql was applied with checksum edited"), "%s", body);
	free(body);
	m = metrics_now(&s);
	cr_expect_eq(sample(m, "schemagate_ready"), 0, "%s", m);
	free(m);
	free(tdb_value(&d, "UPDATE schemagate_migrations SET checksum = '%s' WHERE version = '0001'", sum));
	free(await_readyz(&s, 200, 5000));

	/* a migration this image knows failed */
	free(tdb_value(&d, "UPDATE schemagate_migrations SET status = 'failed' WHERE version = '0002'"));
	body = await_readyz(&s, 503, 5000);
	cr_expect(strstr(body, "migration 0002_step_2.up.sql is failed"), "%s", body);
	free(body);
	m = await_sample(&s, "schemagate_migrations_failed", 1, 5000);
	free(m);
	free(tdb_value(&d, "UPDATE schemagate_migrations SET status = 'applied' WHERE version = '0002'"));
	free(await_readyz(&s, 200, 5000));

	/* a migration of a newer release failed: its business, not ours */
	free(tdb_value(&d, "UPDATE schemagate_migrations SET status = 'failed' WHERE version = '0003'"));
	m = await_sample(&s, "schemagate_migrations_failed", 1, 5000);
	cr_expect_eq(sample(m, "schemagate_ready"), 1, "%s", m);
	free(m);

	/* reverted by hand */
	free(tdb_value(&d, "DELETE FROM schemagate_migrations WHERE version = '0002'"));
	body = await_readyz(&s, 503, 5000);
	cr_expect(strstr(body, "migration 0002_step_2.up.sql is not applied any more"), "%s", body);
	free(body);
	m = await_sample(&s, "schemagate_migrations_pending", 1, 5000);
	free(m);

	/* a serve that was ready exits 0, even when not ready any more */
	char *log = serve_stop(&s, 0);
	cr_expect(strstr(log, "not_ready") && strstr(log, "checksum mismatch"), "readiness changes are logged: %s",
		  log);
	free(log);
	free(sum);
	free(newer);
	served_free(&s);
	tdb_drop(&d);
}

Test(serve, postgres_newer_release_is_ahead_and_ready_checksum_failure_revert_are_503)
{
	checks_follow_the_database(ENG_PG);
}

Test(serve, mariadb_newer_release_is_ahead_and_ready_checksum_failure_revert_are_503)
{
	checks_follow_the_database(ENG_MY);
}

Test(serve, sqlite_newer_release_is_ahead_and_ready_checksum_failure_revert_are_503)
{
	checks_follow_the_database(ENG_LITE);
}

Test(serve, strict_makes_a_database_ahead_not_ready)
{
	struct tdb d;
	struct served s;
	const char *args[] = {"--strict", NULL};
	serve_ready(&d, &s, ENG_LITE, 1, "300ms", args);
	char *newer = newer_directory(&d, 2);
	schemagate(&d, newer, "up", 0);
	char *body = await_readyz(&s, 503, 5000);
	cr_expect(strstr(body, "--strict: the database has version 0002"), "%s", body);
	free(body);
	free(newer);
	serve_done(&d, &s);
}

/*
 * A version below one this image has, applied by a directory that has it
 * while this image's directory lacks it (deleted or renamed): not a newer
 * release's, so not "ahead". The check classifies it as the CLI does
 * (`up` refuses it with exit 4): schemagate_database_ahead stays 0 and
 * /readyz says what is missing.
 */
Test(serve, a_deleted_middle_version_is_not_ahead)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	write_migrations(&d, 3, NULL);
	char *other = newer_directory(&d, 3);
	char *gone = sgt_path(d.mig, "0002_step_2.up.sql");
	cr_assert_eq(unlink(gone), 0);
	struct served s;
	serve_start(&s, &d, d.mig, "300ms", NULL);
	free(await_readyz(&s, 200, 30000));

	const char *argv[] = {"--database-url", d.url, "--dir", other, "up", "--allow-out-of-order", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *body = await_readyz(&s, 503, 5000);
	cr_expect(strstr(body, "applied version 0002 is missing"), "%s", body);
	free(body);
	char *m = metrics_now(&s);
	cr_expect_eq(sample(m, "schemagate_database_ahead"), 0, "%s", m);
	cr_expect_eq(sample(m, "schemagate_migrations_applied"), 3, "%s", m);
	cr_expect_eq(schema_info(m, "0003", "0003", ENG_LITE), 1, "%s", m);
	free(m);
	schemagate(&d, d.mig, "up", 4);
	free(gone);
	free(other);
	free(serve_stop(&s, 0));
	served_free(&s);
	tdb_drop(&d);
}

/* A check that cannot reach the database is counted and changes nothing
 * else; the next one that can updates the timestamp again. */
Test(serve, failed_check_counts_an_error_and_keeps_readiness)
{
	struct tdb d;
	struct served s;
	serve_ready(&d, &s, ENG_LITE, 2, "200ms", NULL);
	await_next_check(&s, 5000);
	char *away = sgt_path(d.dir, "away.db");
	cr_assert_eq(rename(d.file, away), 0);
	char *m = await_sample(&s, "schemagate_check_errors_total", 2, 5000);
	double stale = sample(m, "schemagate_last_check_timestamp_seconds");
	cr_expect_eq(sample(m, "schemagate_ready"), 1, "an unreachable database is not a schema change: %s", m);
	cr_expect_eq(sample(m, "schemagate_migrations_applied"), 2, "the last values stay: %s", m);
	free(m);
	int status;
	char *r = get(&s, "/readyz", &status);
	cr_expect_eq(status, 200, "%s", r);
	free(r);
	cr_assert_eq(rename(away, d.file), 0);
	await_next_check(&s, 5000);
	cr_expect_gt(last_check(&s), stale);
	char *log = serve_log(&s);
	cr_expect(strstr(log, "schema check failed (readiness stays 200)"), "%s", log);
	free(log);
	free(away);
	serve_done(&d, &s);
}

/* The HTTP limits hold in the real binary while a driver waits on the
 * loop (tests/unit/test_http.c tries each of them in depth). */
Test(serve, idle_flood_and_oversized_heads_while_migrating)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	write_migrations(&d, 1, "SELECT pg_sleep(8);");
	struct served s;
	serve_start(&s, &d, d.mig, "1s", NULL);
	/* 200 idle clients: the server keeps 64 and closes the oldest idle
	 * ones as the others arrive (some only after the kernel's SYN-ACK
	 * retransmission, as the accept queue holds 128) */
	int idle[200];
	bool closed[200] = {0};
	for (int i = 0; i < 200; i++) {
		idle[i] = sgh_connect(s.address);
		cr_assert(idle[i] >= 0, "connect %d: %s", i, strerror(-idle[i]));
	}
	int nclosed = 0;
	for (double end = sgt_now_ms() + 6000; nclosed < 200 - 64 && sgt_now_ms() < end;) {
		for (int i = 0; i < 200; i++)
			if (!closed[i] && sgh_peer_closed(idle[i])) {
				closed[i] = true;
				nclosed++;
			}
		sleep_ms(50);
	}
	cr_expect_geq(nclosed, 200 - 64, "the cap of 64: only %d of 200 idle connections closed", nclosed);
	int status;
	char *r = get(&s, "/livez", &status);
	cr_expect_eq(status, 200, "/livez past 200 idle connections: %s", r);
	free(r);
	r = get(&s, "/readyz", &status);
	cr_expect_eq(status, 503, "/readyz while migrating: %s", r);
	free(r);
	char head[9 * 1024];
	memset(head, 'a', sizeof(head));
	static const char start_line[] = "GET /livez HTTP/1.1\r\nX-Big: ";
	memcpy(head, start_line, sizeof(start_line) - 1);
	head[sizeof(head) - 1] = '\0';
	r = sgh_exchange(&loop, s.address, head);
	cr_expect_eq(sgh_status(r), 431, "%s", r);
	free(r);
	for (int i = 0; i < 200; i++)
		close(idle[i]);
	free(await_readyz(&s, 200, 30000));
	serve_done(&d, &s);
}

/* ---- connections ----------------------------------------------------- */

static long schemagate_backends(struct tdb *d)
{
	char *v = tdb_value(d, "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND application_name "
			    "LIKE 'schemagate/%%'", d->name);
	long n = atol(v);
	free(v);
	return n;
}

/* Between two checks serve has no session on the server; each check
 * opens one and closes it. */
Test(serve, postgres_holds_no_connection_between_checks)
{
	struct tdb d;
	struct served s;
	serve_ready(&d, &s, ENG_PG, 2, "3s", NULL);
	/* ready after the check that follows the run: nothing until the
	 * next one, about 3 s later */
	cr_assert_gt(last_check(&s), 0);
	double first = last_check(&s);
	int samples = 0;
	for (double end = sgt_now_ms() + 1500; sgt_now_ms() < end; samples++) {
		long n = schemagate_backends(&d);
		cr_assert_eq(n, 0, "a connection is held between checks (%ld in pg_stat_activity)", n);
		sleep_ms(20);
	}
	cr_assert_gt(samples, 20);
	/* across the next checks: at most the check's own, briefly */
	int busy = 0;
	samples = 0;
	for (double end = sgt_now_ms() + 7000; sgt_now_ms() < end; samples++) {
		long n = schemagate_backends(&d);
		cr_assert_leq(n, 1, "%ld connections at once", n);
		busy += n > 0;
		sleep_ms(20);
	}
	cr_expect_gt(last_check(&s), first + 4, "two more checks ran");
	cr_expect_lt(busy * 10, samples, "a connection was open in %d of %d samples", busy, samples);
	cr_expect_eq(schemagate_backends(&d), 0);
	serve_done(&d, &s);
}

/* ---- stopping ---------------------------------------------------------- */

/* An idle connection and a request in flight do not hold SIGTERM up. */
static void sigterm_exits_zero(enum eng eng)
{
	struct tdb d;
	struct served s;
	serve_ready(&d, &s, eng, 2, "200ms", NULL);
	int idle = sgh_connect(s.address);
	int partial = sgh_connect(s.address);
	cr_assert(idle >= 0 && partial >= 0);
	sgh_send(partial, "GET /livez HTTP/1.1\r\n", 21);
	sleep_ms(250);   /* and a check under way, likely */
	char *log = serve_stop(&s, 0);
	cr_expect(strstr(log, "serve stopped"), "%s", log);
	cr_expect_null(strstr(log, "check_failed"), "a stop is not a failed check: %s", log);
	/* the sidecar's expected end is no warning (issue 26) */
	cr_expect(strstr(log, "Z INFO  signal: received SIGTERM: stopping\n"), "%s", log);
	cr_expect_null(strstr(log, " WARN "), "%s", log);
	close(idle);
	close(partial);
	free(log);
	served_free(&s);
	tdb_drop(&d);
}

Test(serve, postgres_sigterm_exits_0_within_2s)
{
	sigterm_exits_zero(ENG_PG);
}

Test(serve, mariadb_sigterm_exits_0_within_2s)
{
	sigterm_exits_zero(ENG_MY);
}

Test(serve, sqlite_sigterm_exits_0_within_2s)
{
	sigterm_exits_zero(ENG_LITE);
}

/* SIGTERM during the migration: the run's own stop (rolled back, exit 143). */
Test(serve, sigterm_during_the_migration_exits_143_and_rolls_back)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	write_migrations(&d, 1, "SELECT pg_sleep(30);");
	struct served s;
	serve_start(&s, &d, d.mig, "1s", NULL);
	double end = sgt_now_ms() + 20000;
	while (tdb_long(&d, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND "
			    "application_name LIKE 'schemagate/%'") < 1) {
		cr_assert_lt(sgt_now_ms(), end, "the migration did not start");
		sleep_ms(50);
	}
	int status;
	char *r = get(&s, "/readyz", &status);
	cr_expect_eq(status, 503, "%s", r);
	cr_expect(strstr(r, "not ready: migrating (1 pending, target 0001)"), "%s", r);
	free(r);
	char *log = serve_stop(&s, 143);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations"), 0, "rolled back");
	/* a stop in the middle of the work is worth a warning */
	cr_expect(strstr(log, "Z WARN  signal: received SIGTERM: stopping\n"), "%s", log);
	free(log);
	served_free(&s);
	tdb_drop(&d);
}

/* ---- the run's outcome ------------------------------------------------- */

Test(serve, failed_migration_exits_with_the_runs_code)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	sgt_write(d.mig, "0001_bad.up.sql", "SELEC 1;\n");
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "serve", "--listen", "127.0.0.1:0", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
	cr_expect(strstr(r.err, "serve failed") && strstr(r.err, "0001_bad.up.sql"), "%s", r.err);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(serve, port_in_use_exits_2_before_touching_the_database)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	write_migrations(&d, 1, NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	socklen_t len = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &len);
	char listen_at[64];
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%u", ntohs(a.sin_port));
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "serve", "--listen", listen_at, NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	char want[96];
	snprintf(want, sizeof(want), "cannot listen on %s", listen_at);
	cr_expect(strstr(r.err, want), "%s", r.err);
	cr_expect_not(tdb_has_schemagate_tables(&d), "the database was touched");
	sgt_result_free(&r);
	close(fd);
	tdb_drop(&d);
}

/* --timeout bounds the run, not the sidecar's life. */
Test(serve, timeout_does_not_end_the_steady_state)
{
	struct tdb d;
	struct served s;
	const char *args[] = {"--timeout", "1s", NULL};
	serve_ready(&d, &s, ENG_LITE, 1, "300ms", args);
	sleep_ms(1500);
	cr_assert_eq(waitpid(s.pid, NULL, WNOHANG), 0, "serve ended at --timeout");
	free(await_readyz(&s, 200, 1000));
	serve_done(&d, &s);
}

/* serve --wait never writes: 503 until another instance migrates. */
static void wait_mode(enum eng eng)
{
	struct tdb d;
	tdb_create(&d, eng, tdb_server_for(eng));
	write_migrations(&d, 2, NULL);
	struct served s;
	const char *args[] = {"--wait", NULL};
	serve_start(&s, &d, d.mig, "300ms", args);
	sleep_ms(800);
	char *body = await_readyz(&s, 503, 1000);
	cr_expect(strstr(body, "not ready: waiting for another instance to migrate (2 pending, target 0002)"), "%s",
		  body);
	free(body);
	char *m = metrics_now(&s);
	cr_expect_eq(sample(m, "schemagate_migrations_pending"), 2, "%s", m);
	cr_expect_eq(sample(m, "schemagate_ready"), 0, "%s", m);
	free(m);
	cr_expect_not(tdb_has_schemagate_tables(&d), "serve --wait wrote");
	schemagate(&d, d.mig, "up", 0);
	free(await_readyz(&s, 200, 10000));
	m = await_sample(&s, "schemagate_migrations_applied", 2, 5000);
	cr_expect_eq(sample(m, "schemagate_migration_duration_seconds_count"), 0, "it applied nothing: %s", m);
	free(m);
	serve_done(&d, &s);
}

Test(serve, postgres_wait_is_503_until_another_instance_migrates)
{
	wait_mode(ENG_PG);
}

Test(serve, sqlite_wait_is_503_until_another_instance_migrates)
{
	wait_mode(ENG_LITE);
}

/* A migration statement that runs for seconds: /metrics says how long it
 * has run and how far it got (the progress report's ratio), and both fall
 * back once it is done. The index key sleeps 0.1 s per row, one row per
 * page: a concurrent build of about 8 s. */
Test(serve, postgres_metrics_show_a_long_statement_and_its_progress)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	free(tdb_value(&d, "CREATE TABLE slow_rows (id int PRIMARY KEY, pad text) WITH (fillfactor = 10); "
			   "INSERT INTO slow_rows SELECT i, repeat('x', 1000) FROM generate_series(1, 80) i; "
			   "CREATE FUNCTION slow_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
			   "$$ BEGIN PERFORM pg_sleep(0.1); RETURN i; END $$"));
	sgt_write(d.mig, "0001_slow_index.up.sql",
		  "-- schemagate:no-transaction\nCREATE INDEX CONCURRENTLY slow_rows_key ON slow_rows (slow_key(id));\n");
	struct served s;
	const char *args[] = {"--progress-interval", "2s", NULL};
	serve_start(&s, &d, d.mig, "30s", args);
	double seconds = 0, ratio = NAN, end = sgt_now_ms() + 30000;
	while (sgt_now_ms() < end) {
		char *m = metrics_now(&s);
		seconds = sample(m, "schemagate_statement_seconds");
		ratio = sample(m, "schemagate_statement_progress_ratio");
		free(m);
		if (ratio > 0 && ratio < 1)
			break;
		sleep_ms(200);
	}
	cr_assert(ratio > 0 && ratio < 1, "no progress ratio while the index was built (ratio %g, seconds %g)", ratio,
		  seconds);
	cr_expect_geq(seconds, 2, "the statement had run %g s at its first report", seconds);
	char *m = await_sample(&s, "schemagate_ready", 1, 60000);
	cr_expect_eq(sample(m, "schemagate_statement_seconds"), 0, "%s", m);
	cr_expect(strstr(m, "\nschemagate_statement_progress_ratio NaN\n"), "%s", m);
	free(m);
	serve_done(&d, &s);
}

/* A repeatable migration serve applied, whose text the database no longer
 * records (another release's text ran): pending and not ready until an up
 * of this image's text; the metrics count it as pending. */
Test(serve, a_changed_repeatable_is_pending_and_not_ready)
{
	struct tdb d;
	struct served s;
	tdb_create(&d, ENG_LITE, NULL);
	write_migrations(&d, 1, NULL);
	sgt_write(d.mig, "R__rv.sql", "DROP VIEW IF EXISTS rv;\nCREATE VIEW rv AS SELECT 1 AS one;\n");
	serve_start(&s, &d, d.mig, "300ms", NULL);
	free(await_readyz(&s, 200, 30000));
	char *m = metrics_now(&s);
	cr_expect_eq(sample(m, "schemagate_migrations_pending"), 0, "%s", m);
	free(m);
	char *sum = tdb_value(&d, "SELECT checksum FROM schemagate_migrations WHERE version = 'R__rv'");
	cr_assert(sum, "serve did not apply R__rv.sql");
	free(tdb_value(&d, "UPDATE schemagate_migrations SET checksum = 'other' WHERE version = 'R__rv'"));
	char *body = await_readyz(&s, 503, 5000);
	cr_expect(strstr(body, "not ready: repeatable migration R__rv.sql is changed: not re-applied yet"), "%s", body);
	free(body);
	free(await_sample(&s, "schemagate_migrations_pending", 1, 5000));
	schemagate(&d, d.mig, "up", 0);
	free(await_readyz(&s, 200, 5000));
	char *again = tdb_value(&d, "SELECT checksum FROM schemagate_migrations WHERE version = 'R__rv'");
	cr_expect(again && strcmp(again, sum) == 0, "up recorded %s, not %s", again, sum);
	free(again);
	free(sum);
	serve_done(&d, &s);
}
