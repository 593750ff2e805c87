/*
 * test_faults.c - the lock, stopping and reconnecting under the faults that
 * break them in production: a lock session killed from outside, an idle
 * timeout shorter than a migration, a paused server, a server restarted
 * while a herd migrates, replicas that share a hostname and pid 1.
 *
 * Tests that pause or restart a server start a private one (tests/harness)
 * so the other tests running in parallel never see it; the others use the
 * shared servers of tests/run.sh, each in a scratch database.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sgdb.h"
#include "sgtest.h"

/* ---- private servers ------------------------------------------------------ */

static struct private_server srv;

static void start_pg(void) { private_server_start(&srv, "pg.sh", NULL, "SG_TEST_PG_URL"); }
static void start_mariadb(void) { private_server_start(&srv, "mariadb.sh", NULL, "SG_TEST_MYSQL_URL"); }
static void server_stop(void) { private_server_stop(&srv); }
static void server_signal(const char *sig) { private_server_signal(&srv, sig); }

/* ---- running schemagate ------------------------------------------------------ */

#define MAXARGS 40

/* schemagate --database-url d->url --dir d->mig ARGS... in the background */
static pid_t spawn(struct tdb *d, const char *log, const char *const *env, ...)
{
	const char *argv[MAXARGS];
	int n = 0;
	argv[n++] = "--database-url";
	argv[n++] = d->url;
	argv[n++] = "--dir";
	argv[n++] = d->mig;
	va_list ap;
	va_start(ap, env);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < MAXARGS - 1)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return sgt_spawn(env, argv, log);
}

static char *log_path(struct tdb *d, const char *name)
{
	return sgt_path(d->dir, name);
}

/* Wait until the PostgreSQL backend of a schemagate instance runs a
 * statement matching `like` in d's database; returns that backend's pid. */
static long pg_busy_backend(struct tdb *d, const char *like, double timeout_ms)
{
	double t0 = sgt_now_ms();
	while (sgt_now_ms() - t0 < timeout_ms) {
		char *pid = tdb_value(d,
				      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = "
				      "'active' AND query LIKE '%s' AND application_name LIKE 'schemagate/%%' LIMIT 1",
				      like);
		if (pid) {
			long n = atol(pid);
			free(pid);
			return n;
		}
		sleep_ms(20);
	}
	cr_assert_fail("no schemagate backend ran %s within %.0f ms", like, timeout_ms);
	return 0;
}

/* ---- the lock session killed from outside --------------------------------- */

/*
 * The winner runs a 4 s migration; a second instance waits. The backend
 * holding the advisory lock is terminated. The lock and the migration live
 * on that one session, so the migration is rolled back with it; the winner
 * reconnects and contends again, and the work is done exactly once. Nobody
 * blames a pooler, nobody asks for a repair.
 */
Test(faults, postgres_lock_session_killed_during_up_applies_once, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	sgt_write(d.mig, "0001_slow.up.sql",
		  "INSERT INTO applied_log (v) VALUES ('0001');\nSELECT pg_sleep(4);\n");
	char *log_a = log_path(&d, "a.log"), *log_b = log_path(&d, "b.log");
	pid_t a = spawn(&d, log_a, NULL, "--poll-interval", "300ms", "up", NULL);
	long backend = pg_busy_backend(&d, "%pg_sleep%", 15000);
	pid_t b = spawn(&d, log_b, NULL, "--poll-interval", "300ms", "up", NULL);
	sleep_ms(500);
	free(tdb_value(&d, "SELECT pg_terminate_backend(%ld)", backend));
	int sa = sgt_wait(a), sb = sgt_wait(b);
	if (sa != 0 || sb != 0) {
		dump_log("first instance", log_a);
		dump_log("second instance", log_b);
	}
	cr_expect_eq(sa, 0, "the instance whose session was killed exited %d", sa);
	cr_expect_eq(sb, 0, "the waiting instance exited %d", sb);
	for (int i = 0; i < 2; i++) {
		const char *log = i ? log_b : log_a;
		cr_expect(!file_has(log, "pooler"), "%s blames a pooler", log);
		cr_expect(!file_has(log, "repair"), "%s asks for a repair", log);
	}
	cr_expect(file_has(log_a, "connection lost"), "the first instance did not notice its session died");
	assert_exactly_once(&d, 1, "after the lock session was killed");
	free(log_a);
	free(log_b);
	tdb_drop(&d);
}

/* The same for `down --to 0001`: a down script that decrements a counter
 * must run exactly once, although two instances revert to the same
 * version and one loses its session in the middle of the script. */
Test(faults, postgres_lock_session_killed_during_down_reverts_once, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	sgt_write(d.mig, "0001_counter.up.sql", "CREATE TABLE counter (n int);\nINSERT INTO counter VALUES (10);\n");
	sgt_write(d.mig, "0001_counter.down.sql", "DROP TABLE counter;\n");
	sgt_write(d.mig, "0002_step.up.sql", "SELECT 1;\n");
	sgt_write(d.mig, "0002_step.down.sql", "UPDATE counter SET n = n - 1;\nSELECT pg_sleep(4);\n");
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "up", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);

	char *log_a = log_path(&d, "a.log"), *log_b = log_path(&d, "b.log");
	pid_t a = spawn(&d, log_a, NULL, "--poll-interval", "300ms", "down", "--to", "0001", NULL);
	long backend = pg_busy_backend(&d, "%pg_sleep%", 15000);
	pid_t b = spawn(&d, log_b, NULL, "--poll-interval", "300ms", "down", "--to", "0001", NULL);
	sleep_ms(500);
	free(tdb_value(&d, "SELECT pg_terminate_backend(%ld)", backend));
	int sa = sgt_wait(a), sb = sgt_wait(b);
	if (sa != 0 || sb != 0) {
		dump_log("first instance", log_a);
		dump_log("second instance", log_b);
	}
	cr_expect_eq(sa, 0, "the instance whose session was killed exited %d", sa);
	cr_expect_eq(sb, 0, "the second instance exited %d", sb);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM pg_tables WHERE tablename = 'counter'"), 1, "0001 was reverted too");
	cr_expect_eq(tdb_long(&d, "SELECT n FROM counter"), 9, "the down script did not run exactly once");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations"), 1, "history after one revert");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE version = '0001'"), 1);
	free(log_a);
	free(log_b);
	tdb_drop(&d);
}

/*
 * MariaDB closes sessions idle for wait_timeout (3 s here) while a
 * migration takes 6 s. The lock lives on the session that runs the
 * statements, which is never idle that long, and the waiter waits inside
 * GET_LOCK: both finish, the work is done once, nobody is told to repair
 * a migration that another instance is applying.
 */
Test(faults, mariadb_wait_timeout_shorter_than_the_migration, .timeout = 180, .init = start_mariadb,
     .fini = server_stop)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, srv.url);
	free(tdb_value(&d, "SET GLOBAL wait_timeout = 3"));
	free(tdb_value(&d, "SET GLOBAL interactive_timeout = 3"));
	sgt_write(d.mig, "0001_slow.up.sql",
		  "DO SLEEP(3);\nDO SLEEP(3);\nINSERT INTO applied_log (v) VALUES ('0001');\n");
	sgt_write(d.mig, "0002_next.up.sql", "INSERT INTO applied_log (v) VALUES ('0002');\n");
	char *log_a = log_path(&d, "a.log"), *log_b = log_path(&d, "b.log");
	pid_t a = spawn(&d, log_a, NULL, "up", NULL);
	sleep_ms(800);
	pid_t b = spawn(&d, log_b, NULL, "up", NULL);
	int sa = sgt_wait(a), sb = sgt_wait(b);
	if (sa != 0 || sb != 0) {
		dump_log("first instance", log_a);
		dump_log("second instance", log_b);
	}
	cr_expect_eq(sa, 0, "first instance exited %d", sa);
	cr_expect_eq(sb, 0, "second instance exited %d", sb);
	cr_expect(!file_has(log_a, "repair") && !file_has(log_b, "repair"), "an instance asked for a repair");
	/* our own test connection was idle longer than wait_timeout */
	mysql_close(d.my);
	d.my = my_open(srv.url, d.name);
	assert_exactly_once(&d, 2, "with wait_timeout 3s");
	free(log_a);
	free(log_b);
	tdb_drop(&d);
}

/* ---- stopping whatever the server does ------------------------------------ */

/*
 * The server stops answering (every server process SIGSTOPped) while a
 * migration runs. SIGTERM must still end schemagate with 143 within 2 s:
 * the cancel request and the cleanup cannot get an answer, so the loop's
 * cleanup deadline (and, behind it, the hard exit timer) ends the run.
 * After SIGCONT nothing is recorded and the next `up` applies it.
 */
static void sigterm_with_server_paused(enum eng eng, const char *sleep_sql)
{
	struct tdb d;
	tdb_create(&d, eng, srv.url);
	sgt_write(d.mig, "0001_base.up.sql", "INSERT INTO applied_log (v) VALUES ('0001');\n");
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "up", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);

	char *slow = NULL;
	cr_assert(asprintf(&slow, "%s\nINSERT INTO applied_log (v) VALUES ('0002');\n", sleep_sql) > 0);
	sgt_write(d.mig, "0002_slow.up.sql", slow);
	free(slow);
	char *log = log_path(&d, "up.log");
	pid_t pid = spawn(&d, log, NULL, "up", NULL);
	double t0 = sgt_now_ms();
	while (!file_has(log, "apply_start") && sgt_now_ms() - t0 < 15000)
		sleep_ms(20);
	cr_assert(file_has(log, "apply_start"), "the migration did not start");
	sleep_ms(500);
	server_signal("STOP");
	sleep_ms(300);
	double killed = sgt_now_ms();
	kill(pid, SIGTERM);
	int st = sgt_wait(pid);
	double ms = sgt_now_ms() - killed;
	server_signal("CONT");
	fprintf(stderr, "%s: exit %d %.0f ms after SIGTERM with the server paused\n", eng == ENG_PG ? "postgres" : "mariadb",
		st, ms);
	if (st != 143)
		dump_log("schemagate", log);
	cr_expect_eq(st, 143, "exit %d", st);
	cr_expect_lt(ms, 2000.0, "took %.0f ms to exit after SIGTERM", ms);

	/* the server answers again: the test's own session may have been
	 * cut by the pause; reconnect */
	if (eng == ENG_MY) {
		mysql_close(d.my);
		d.my = my_open(srv.url, d.name);
	} else {
		PQfinish(d.pg);
		d.pg = pg_open(d.url);
	}
	/* the interrupted migration was rolled back (PostgreSQL) or never got
	 * past its sleep (MariaDB): not recorded, and the next run applies it */
	double w0 = sgt_now_ms();
	while (tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE version = '0002'") != 0 &&
	       sgt_now_ms() - w0 < 5000)
		sleep_ms(50);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE version = '0002' AND status = "
				  "'applied'"), 0, "the interrupted migration is recorded as applied");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM applied_log WHERE v = '0002'"), 0);
	sgt_run(&r, NULL, argv);
	cr_expect_eq(r.status, 0, "the next up failed: %s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM applied_log WHERE v = '0002'"), 1);
	free(log);
	tdb_drop(&d);
}

Test(faults, sigterm_with_postgres_paused_exits_143_within_2s, .timeout = 120, .init = start_pg, .fini = server_stop)
{
	sigterm_with_server_paused(ENG_PG, "SELECT pg_sleep(20);");
}

Test(faults, sigterm_with_mariadb_paused_exits_143_within_2s, .timeout = 120, .init = start_mariadb,
     .fini = server_stop)
{
	sigterm_with_server_paused(ENG_MY, "DO SLEEP(20);");
}

/* ---- a restart in the middle of a herd ------------------------------------ */

/*
 * PostgreSQL restarted with -m immediate (a crash, a failover) while 20
 * instances run `up` (one applying a slow migration, the rest waiting)
 * and 5 run `wait`. Every one reconnects and goes on: all exit 0, every
 * migration exactly once.
 */
Test(faults, postgres_restart_during_a_herd_everyone_exits_0, .timeout = 240, .init = start_pg, .fini = server_stop)
{
	enum { UPS = 20, WAITS = 5 };
	struct tdb d;
	tdb_create(&d, ENG_PG, srv.url);
	write_migrations(&d, 3, NULL);
	sgt_write(d.mig, "0002_step_2.up.sql", "SELECT pg_sleep(3);\nINSERT INTO applied_log (v) VALUES ('0002');\n");
	pid_t pids[UPS + WAITS];
	char *logs[UPS + WAITS];
	for (int i = 0; i < UPS + WAITS; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%s-%d.log", i < UPS ? "up" : "wait", i);
		logs[i] = log_path(&d, name);
		pids[i] = spawn(&d, logs[i], NULL, "--poll-interval", "500ms", "--connect-timeout", "60s",
				i < UPS ? "up" : "wait", NULL);
	}
	pg_busy_backend(&d, "%pg_sleep%", 30000);
	PQfinish(d.pg);
	d.pg = NULL;
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D '%s/server/data' -m "
				 "immediate -w -t 60 restart >/dev/null 2>&1", srv.dir) > 0);
	double t0 = sgt_now_ms();
	int st = system(cmd);
	free(cmd);
	cr_assert_eq(st, 0, "pg_ctl restart failed");
	fprintf(stderr, "restarted in %.0f ms\n", sgt_now_ms() - t0);
	int failures = 0, reconnected = 0;
	for (int i = 0; i < UPS + WAITS; i++) {
		int code = sgt_wait(pids[i]);
		reconnected += file_has(logs[i], "connection lost");
		if (code != 0) {
			if (failures++ < 3)
				dump_log("failed instance", logs[i]);
			fprintf(stderr, "instance %d exited %d\n", i, code);
		}
		free(logs[i]);
	}
	d.pg = pg_open(d.url);
	fprintf(stderr, "%d of %d instances lost their connection and went on\n", reconnected, UPS + WAITS);
	cr_expect_eq(failures, 0, "%d of %d instances failed after the restart", failures, UPS + WAITS);
	cr_expect_geq(reconnected, 1, "no instance noticed the restart: the test did not test it");
	assert_exactly_once(&d, 3, "after a restart in the middle of a herd");
	tdb_drop(&d);
}

/* ---- identities ----------------------------------------------------------- */

/*
 * Two compose replicas with the same hostname, each pid 1 in its own PID
 * namespace (unshare -fp), hold a lease on one table. They must be two
 * holders, not one: the second waits while the first migrates.
 */
Test(faults, same_hostname_and_pid_1_are_distinct_holders, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	sgt_write(d.mig, "0001_slow.up.sql", "SELECT pg_sleep(2);\nINSERT INTO applied_log (v) VALUES ('0001');\n");
	char *logs[2];
	pid_t pids[2];
	for (int i = 0; i < 2; i++) {
		char name[32];
		snprintf(name, sizeof(name), "replica-%d.log", i);
		logs[i] = log_path(&d, name);
		pids[i] = fork();
		cr_assert(pids[i] >= 0);
		if (pids[i] == 0) {
			int fd = open(logs[i], O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0)
				_exit(99);
			dup2(fd, 1);
			dup2(fd, 2);
			setenv("POD_NAME", "replica", 1);
			execlp("unshare", "unshare", "-fp", SG_BINARY, "--database-url", d.url, "--dir", d.mig, "--lock",
			       "table", "--lock-lease", "6s", "--poll-interval", "300ms", "--log-format", "json", "up",
			       (char *)NULL);
			_exit(127);
		}
		sleep_ms(i == 0 ? 600 : 0);
	}
	for (int i = 0; i < 2; i++) {
		int st = sgt_wait(pids[i]);
		if (st != 0)
			dump_log("replica", logs[i]);
		cr_expect_eq(st, 0, "replica %d exited %d", i, st);
	}
	/* both saw themselves as pid 1, with distinct identities */
	char *ids[2];
	for (int i = 0; i < 2; i++) {
		char *s = sgt_slurp(logs[i]);
		cr_assert(s);
		char *p = strstr(s, "\"instance\":\"");
		cr_assert(p, "no instance in %s", s);
		p += 12;
		ids[i] = strndup(p, strcspn(p, "\""));
		cr_expect(strncmp(ids[i], "replica/1/", 10) == 0, "instance id %s is not replica/1/...", ids[i]);
		free(s);
	}
	cr_expect_str_neq(ids[0], ids[1], "two replicas share the identity %s", ids[0]);
	assert_exactly_once(&d, 1, "two replicas with the same hostname and pid");
	for (int i = 0; i < 2; i++) {
		free(ids[i]);
		free(logs[i]);
	}
	tdb_drop(&d);
}

/* ---- the lease ------------------------------------------------------------ */

/* "x" and "public.x" name one table, so they are one lease: the second
 * waits for the first. */
Test(faults, lease_on_x_and_public_x_exclude_each_other, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	sgt_write(d.mig, "0001_slow.up.sql", "SELECT pg_sleep(2);\nINSERT INTO applied_log (v) VALUES ('0001');\n");
	char *log_a = log_path(&d, "a.log"), *log_b = log_path(&d, "b.log");
	pid_t a = spawn(&d, log_a, NULL, "--lock", "table", "--table", "hist", "up", NULL);
	pg_busy_backend(&d, "%pg_sleep%", 15000);
	double t0 = sgt_now_ms();
	pid_t b = spawn(&d, log_b, NULL, "--lock", "table", "--table", "public.hist", "--poll-interval", "200ms", "up",
			NULL);
	int sb = sgt_wait(b);
	double waited = sgt_now_ms() - t0;
	int sa = sgt_wait(a);
	if (sa || sb) {
		dump_log("x", log_a);
		dump_log("public.x", log_b);
	}
	cr_expect_eq(sa, 0);
	cr_expect_eq(sb, 0);
	cr_expect(file_has(log_b, "winner_finished"), "public.hist did not wait for hist's holder");
	cr_expect_gt(waited, 800.0, "public.hist finished %.0f ms after starting: it did not wait", waited);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 1);
	free(log_a);
	free(log_b);
	tdb_drop(&d);
}

/* A role that may read but not insert into the lease table: exit 5 at
 * once, not a five-minute wait. */
Test(faults, lease_without_insert_privilege_exits_5_at_once, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	sgt_write(d.mig, "0001_t.up.sql", "CREATE TABLE t (x int);\n");
	char role[80];
	snprintf(role, sizeof(role), "ro_%s", d.name);
	free(tdb_value(&d, "CREATE ROLE %s LOGIN PASSWORD 'ro-lease-pw'", role));
	free(tdb_value(&d, "CREATE TABLE schemagate_lock (lock_key VARCHAR(255) PRIMARY KEY, holder VARCHAR(255) NOT "
			   "NULL, acquired_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)"));
	free(tdb_value(&d, "GRANT SELECT ON schemagate_lock TO %s", role));
	free(tdb_value(&d, "GRANT CREATE, USAGE ON SCHEMA public TO %s", role));
	char *url = NULL;
	const char *at = strchr(d.url, '@');
	cr_assert(at);
	cr_assert(asprintf(&url, "postgres://%s:ro-lease-pw%s", role, at) > 0);
	const char *argv[] = {"--database-url", url, "--dir", d.mig, "--lock", "table", "up", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_expect_eq(r.status, 5, "exit %d: %s", r.status, r.err);
	cr_expect_lt(r.seconds, 5.0, "took %.1f s", r.seconds);
	cr_expect(strstr(r.err, "permission denied") != NULL, "%s", r.err);
	cr_expect(strstr(r.err, "ro-lease-pw") == NULL, "password printed: %s", r.err);
	sgt_result_free(&r);
	free(url);
	free(tdb_value(&d, "DROP OWNED BY %s", role));
	tdb_drop(&d);
	PGconn *c = pg_open(sgt_require_server("SG_TEST_PG_URL"));
	char sql[120];
	snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", role);
	PQclear(PQexec(c, sql));
	PQfinish(c);
}

/* ---- SIGKILL at random moments over the one-message transactions ---------
 * A fresh `up` on PostgreSQL sends each migration with its history row,
 * audit event and lock check in one message. Killed at any instant, every
 * migration is applied and recorded, or absent: its table, its counter
 * row and its history row exist together or not at all, in one snapshot.
 * The seed is printed (SG_TEST_SEED replays a run). */
/* Drop what the migrations made and forget them: a fresh apply again. */
static void start_over(struct tdb *d)
{
	char *stmt = tdb_value(d, "SELECT 'DROP TABLE ' || string_agg(tablename, ', ') FROM pg_tables "
				  "WHERE schemaname = 'public' AND tablename LIKE 'k\\_%%'");
	if (stmt)
		PQclear(PQexec(d->pg, stmt));
	free(stmt);
	PQclear(PQexec(d->pg, "TRUNCATE applied_log, schemagate_migrations"));
}

Test(faults, postgres_sigkill_at_random_moments_leaves_each_migration_whole_or_absent, .timeout = 240)
{
	enum { MIGRATIONS = 150, KILLS = 25 };
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	for (int i = 1; i <= MIGRATIONS; i++) {
		char name[64], sql[256];
		snprintf(name, sizeof(name), "%04d_k.up.sql", i);
		snprintf(sql, sizeof(sql), "CREATE TABLE k_%04d (x INTEGER);\nINSERT INTO applied_log (v) VALUES ('%04d');\n",
			 i, i);
		sgt_write(d.mig, name, sql);
	}
	const char *seed_env = getenv("SG_TEST_SEED");
	unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
	fprintf(stderr, "postgres sigkill loop: SG_TEST_SEED=%u\n", seed);
	srand(seed);
	/* one snapshot: versions whose table, counter row and history row do not agree */
	const char *torn =
		"SELECT count(*) FROM (SELECT h.version AS hv, a.v AS av, to_regclass('k_' || coalesce(h.version, a.v)) AS t "
		"FROM schemagate_migrations h FULL JOIN applied_log a ON a.v = h.version) x "
		"WHERE hv IS NULL OR av IS NULL OR t IS NULL";
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "up", NULL};
	/* kill moments spread over the time a whole run takes here and now
	 * (a loaded machine, ASan, valgrind) */
	double t0 = sgt_now_ms();
	cr_assert_eq(sgt_wait(sgt_spawn(NULL, argv, NULL)), 0);
	long whole_run_ms = (long)(sgt_now_ms() - t0) + 1;
	start_over(&d);
	int killed_mid_way = 0;
	for (int k = 0; k < KILLS; k++) {
		pid_t pid = sgt_spawn(NULL, argv, NULL);
		sleep_ms(rand() % whole_run_ms);
		kill(pid, SIGKILL);
		sgt_wait(pid);
		/* the table exists once schemagate created it under the lock */
		if (tdb_long(&d, "SELECT count(*) FROM pg_tables WHERE tablename = 'schemagate_migrations'") == 0)
			continue;
		long applied = tdb_long(&d, "SELECT count(*) FROM schemagate_migrations");
		cr_assert_eq(tdb_long(&d, torn), 0, "kill %d (seed %u): a migration is torn", k, seed);
		cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status <> 'applied'"), 0,
			     "kill %d (seed %u): a row is not 'applied'", k, seed);
		cr_assert_eq(tdb_long(&d, "SELECT count(*) - count(DISTINCT v) FROM applied_log"), 0,
			     "kill %d (seed %u): a migration ran twice", k, seed);
		if (applied > 0 && applied < MIGRATIONS)
			killed_mid_way++;
		if (applied == MIGRATIONS)
			start_over(&d);   /* so later kills land mid-way too */
	}
	fprintf(stderr, "postgres sigkill loop: %d of %d kills landed mid-way\n", killed_mid_way, KILLS);
	cr_assert_gt(killed_mid_way, 0, "no kill landed between the first and the last migration (seed %u)", seed);
	/* and the run after the kills finishes the work, each migration once */
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	assert_exactly_once(&d, MIGRATIONS, "after the kills");
	tdb_drop(&d);
}
