/*
 * test_scale.c - many schemagate processes at once against one database.
 *
 * What a rollout of a large Deployment looks like to the database: every
 * pod's initContainer starts within a second, far more clients than the
 * server accepts. The PostgreSQL and MariaDB tests start their own private
 * server with max_connections = 40 (tests/harness/pg.sh, mariadb.sh) so
 * "too many connections" is the normal case, not an accident; the
 * PgBouncer tests put a transaction-mode pooler (tests/harness/pgbouncer.sh)
 * in front of the shared server of tests/run.sh.
 *
 * Every migration INSERTs one row naming its version into a counter table
 * the test created beforehand (no key: a second application shows up as a
 * second row instead of an error). "Exactly once" is checked on those rows,
 * on the history table and with `schemagate verify`.
 *
 * While a herd runs, a thread of the test counts the server's client
 * connections every few milliseconds (pg_stat_activity, PROCESSLIST): an
 * instance holds one connection, waiting or working, so N instances never
 * show more than N + 1 (issue 17: waiters used to hold two each).
 *
 * SG_TEST_SCALE sets the number of processes of the big tests (default
 * 200; the sanitizer run may lower it). Each test prints its figures to
 * stderr.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "schemagate/url.h"
#include "sgdb.h"
#include "sgtest.h"

static int scale(void)
{
	const char *s = getenv("SG_TEST_SCALE");
	int n = s && *s ? atoi(s) : 200;
	return n > 0 ? n : 200;
}

/* Start n instances of `up` with the extra arguments (NULL-terminated
 * list in extra), logs in dir/up-<i>.log; wait for all. Returns the
 * number that did not exit 0 and fills codes (may be NULL). Prints the
 * first few failing logs. */
static int run_many(struct tdb *d, int n, const char *const *extra, int *codes, double *seconds)
{
	struct fleet f = {0};
	double t0 = sgt_now_ms();
	for (int i = 0; i < n; i++)
		fleet_add(&f, d, "up", extra);
	fleet_wait(&f, 600000);
	if (seconds)
		*seconds = (sgt_now_ms() - t0) / 1000.0;
	for (int i = 0; codes && i < n; i++)
		codes[i] = f.status[i];
	int failures = fleet_failures(&f, 3);
	fleet_free(&f);
	return failures;
}

/* ---- the server's connections, sampled during a herd ---------------------- */

#define SAMPLE_EVERY_MS 5

struct conn_sampler {
	enum eng eng;
	PGconn *pg;            /* the sampler's own connection */
	MYSQL *my;
	char sql[640];
	pthread_t thread;
	int stop;              /* set by the test, read by the thread (atomics) */
	long samples, errors;
	long max_total;        /* most client connections seen at once */
	long max_per_instance; /* PostgreSQL: most of one schemagate instance (application_name) */
	char first_error[256];
};

static void *sample_connections(void *arg)
{
	struct conn_sampler *s = arg;
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		long total = -1, per_instance = 0;
		if (s->eng == ENG_PG) {
			PGresult *res = PQexec(s->pg, s->sql);
			if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
				total = atol(PQgetvalue(res, 0, 0));
				per_instance = atol(PQgetvalue(res, 0, 1));
			} else if (!s->errors++) {
				snprintf(s->first_error, sizeof(s->first_error), "%s", PQerrorMessage(s->pg));
			}
			PQclear(res);
		} else if (mysql_query(s->my, s->sql) == 0) {
			MYSQL_RES *res = mysql_store_result(s->my);
			MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
			if (row && row[0])
				total = atol(row[0]);
			mysql_free_result(res);
		} else if (!s->errors++) {
			snprintf(s->first_error, sizeof(s->first_error), "%s", mysql_error(s->my));
		}
		if (total >= 0) {
			s->samples++;
			if (total > s->max_total)
				s->max_total = total;
			if (per_instance > s->max_per_instance)
				s->max_per_instance = per_instance;
		}
		struct timespec nap = {0, SAMPLE_EVERY_MS * 1000000L};
		nanosleep(&nap, NULL);
	}
	return NULL;
}

/* Start sampling d's server, leaving out the sampler's own connection and
 * the test's (d->pg, d->my). Connects here, so a failure is an assertion
 * of the test, not of the thread. */
static void sampler_start(struct conn_sampler *s, struct tdb *d)
{
	memset(s, 0, sizeof(*s));
	s->eng = d->eng;
	if (d->eng == ENG_PG) {
		s->pg = pg_open(d->url);
		snprintf(s->sql, sizeof(s->sql),
			 "SELECT coalesce(sum(n), 0), coalesce(max(n) FILTER (WHERE app LIKE 'schemagate/%%'), 0)"
			 " FROM (SELECT application_name AS app, count(*) AS n FROM pg_stat_activity"
			 " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> %d"
			 " GROUP BY application_name) s",
			 PQbackendPID(d->pg));
	} else {
		s->my = my_open(d->server_url, d->name);
		/* connections still authenticating count too ("unauthenticated user") */
		snprintf(s->sql, sizeof(s->sql),
			 "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
			 " AND ID <> %lu AND COMMAND <> 'Daemon' AND USER <> 'system user'",
			 mysql_thread_id(d->my));
	}
	cr_assert_eq(pthread_create(&s->thread, NULL, sample_connections, s), 0);
}

static void sampler_stop(struct conn_sampler *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	cr_assert_eq(pthread_join(s->thread, NULL), 0);
	if (s->pg)
		PQfinish(s->pg);
	if (s->my)
		mysql_close(s->my);
}

/* n instances never held more than n + 1 connections at once (and, where
 * the server names each instance, never two for one instance). */
static void assert_one_connection_per_instance(const struct conn_sampler *s, int n)
{
	cr_assert_eq(s->errors, 0, "sampling the server's connections failed %ld times: %s", s->errors,
		     s->first_error);
	cr_assert_geq(s->samples, 10, "only %ld samples of the server's connections during the herd", s->samples);
	cr_assert_leq(s->max_total, n + 1, "%ld connections at once for %d instances (at most %d allowed)",
		      s->max_total, n, n + 1);
	if (s->eng == ENG_PG)
		cr_assert_leq(s->max_per_instance, 1, "one schemagate instance held %ld connections at once",
			      s->max_per_instance);
}

/* ---- private servers with max_connections = 40 --------------------------- */

static struct private_server srv;

/* Criterion runs .fini even when an assertion failed. */
static void stop_private_server(void)
{
	private_server_stop(&srv);
}

static void many_ups_on_40_connections(enum eng eng)
{
	int n = scale();
	enum { M = 10 };
	struct tdb d;
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	tdb_create(&d, eng, srv.url);
	/* slow enough that most instances arrive while the winner works */
	write_migrations(&d, M, eng == ENG_PG ? "SELECT pg_sleep(0.1);" : "SELECT SLEEP(0.1);");
	const char *extra[] = { "--connect-timeout", "120s", "--lock-timeout", "120s", "--poll-interval", "500ms",
				NULL };
	double secs = 0;
	struct conn_sampler cs;
	sampler_start(&cs, &d);
	int failures = run_many(&d, n, extra, NULL, &secs);
	sampler_stop(&cs);
	long too_many = 0;
	{
		/* how often the instances met "too many connections" */
		char *cmd = NULL;
		cr_assert(asprintf(&cmd, "cat '%s'/up-*.log | grep -ci 'too many' || true", d.dir) > 0);
		char *out = sgt_sh(cmd, NULL);
		too_many = atol(out);
		free(out);
		free(cmd);
	}
	fprintf(stderr,
		"scale %s: instances=%d migrations=%d max_connections=40 failures=%d wall=%.1fs "
		"log lines mentioning 'too many'=%ld; connections sampled %ld times: at most %ld at once, "
		"%ld for one instance\n",
		eng == ENG_PG ? "postgres" : "mariadb", n, M, failures, secs, too_many, cs.samples, cs.max_total,
		cs.max_per_instance);
	cr_assert_eq(failures, 0, "%d of %d instances failed (logs above)", failures, n);
	assert_one_connection_per_instance(&cs, n);
	assert_exactly_once(&d, M, "after the rush");
	if (eng == ENG_MY)
		cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events WHERE event = 'apply'"), M);
	tdb_drop(&d);
}

static void start_private_pg(void)
{
	private_server_start(&srv, "pg.sh", "SG_PG_MAX_CONNECTIONS=40", "SG_TEST_PG_URL");
}

static void start_private_mariadb(void)
{
	private_server_start(&srv, "mariadb.sh", "SG_MARIADB_MAX_CONNECTIONS=40", "SG_TEST_MYSQL_URL");
}

Test(scale, postgres_many_ups_on_40_connections, .timeout = 170, .init = start_private_pg,
     .fini = stop_private_server)
{
	many_ups_on_40_connections(ENG_PG);
}

Test(scale, mariadb_many_ups_on_40_connections, .timeout = 170, .init = start_private_mariadb,
     .fini = stop_private_server)
{
	many_ups_on_40_connections(ENG_MY);
}

/*
 * A herd that fits in the server: with two connections per waiter, 30
 * instances want 60 and the server shows as many as it allows (38 and 39
 * with the coordinator of 264dc9a, failing this test); with one each it
 * shows at most 31. The herd must also be seen at once (most instances
 * connected together), or the bound would prove nothing.
 */
static void herd_holds_one_connection_per_instance(enum eng eng)
{
	enum { N = 30, M = 5 };
	struct tdb d;
	tdb_create(&d, eng, srv.url);
	/* long enough for every instance to connect while the winner works */
	write_migrations(&d, M, eng == ENG_PG ? "SELECT pg_sleep(0.4);" : "SELECT SLEEP(0.4);");
	const char *extra[] = { "--connect-timeout", "60s", "--lock-timeout", "60s", NULL };
	struct conn_sampler cs;
	sampler_start(&cs, &d);
	double secs = 0;
	int failures = run_many(&d, N, extra, NULL, &secs);
	sampler_stop(&cs);
	fprintf(stderr, "herd %s: instances=%d failures=%d wall=%.1fs; connections sampled %ld times: at most %ld "
		"at once, %ld for one instance\n", tdb_eng_name(eng), N, failures, secs, cs.samples, cs.max_total,
		cs.max_per_instance);
	cr_assert_eq(failures, 0, "%d of %d instances failed (logs above)", failures, N);
	assert_one_connection_per_instance(&cs, N);
	cr_assert_geq(cs.max_total, N / 2, "the sampler saw at most %ld of %d instances connected at once: the herd "
		      "was not observed", cs.max_total, N);
	assert_exactly_once(&d, M, "after the herd");
	tdb_drop(&d);
}

Test(scale, postgres_herd_holds_one_connection_per_instance, .timeout = 120, .init = start_private_pg,
     .fini = stop_private_server)
{
	herd_holds_one_connection_per_instance(ENG_PG);
}

Test(scale, mariadb_herd_holds_one_connection_per_instance, .timeout = 120, .init = start_private_mariadb,
     .fini = stop_private_server)
{
	herd_holds_one_connection_per_instance(ENG_MY);
}

/*
 * Instances that arrive while the winner finishes must wake on its
 * notification, never at their next poll. With a 30 s poll interval a
 * missed notification is a 30 s wait: a waiter that started to LISTEN
 * after the winner's NOTIFY, or whose notification came in with the
 * result of its last lock attempt (already off the socket), slept until
 * the next poll. Several herds, for the arrivals to fall on the window.
 */
Test(scale, postgres_waiters_never_miss_the_winners_notification, .timeout = 170)
{
	enum { N = 40, M = 20, ROUNDS = 5 };
	const char *server = tdb_server_for(ENG_PG);
	const char *extra[] = { "--poll-interval", "30s", "--lock-timeout", "60s", "--connect-timeout", "60s", NULL };
	for (int round = 0; round < ROUNDS; round++) {
		struct tdb d;
		tdb_create(&d, ENG_PG, server);
		write_migrations(&d, M, NULL);
		double secs = 0;
		int failures = run_many(&d, N, extra, NULL, &secs);
		fprintf(stderr, "herd %d of %d: instances=%d failures=%d wall=%.1fs (poll interval 30s)\n", round + 1,
			ROUNDS, N, failures, secs);
		cr_assert_eq(failures, 0, "%d of %d instances failed (logs above)", failures, N);
		cr_assert_lt(secs, 20.0, "the herd took %.1fs: a waiter slept to its next poll (30s) instead of waking "
			     "on the winner's notification", secs);
		assert_exactly_once(&d, M, "after the herd");
		tdb_drop(&d);
	}
}

/* ---- SQLite: one file, 20 processes ------------------------------------- */

static void sqlite_twenty(const char *lock)
{
	enum { N = 20, M = 10 };
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	write_migrations(&d, M, NULL);
	const char *extra_table[] = { "--lock", "table", "--lock-lease", "5s", "--poll-interval", "100ms", NULL };
	const char *extra_auto[] = { "--poll-interval", "100ms", NULL };
	double secs = 0;
	int failures = run_many(&d, N, lock ? extra_table : extra_auto, NULL, &secs);
	fprintf(stderr, "scale sqlite --lock=%s: instances=%d migrations=%d failures=%d wall=%.1fs\n",
		lock ? lock : "auto", N, M, failures, secs);
	cr_assert_eq(failures, 0, "%d of %d instances failed (logs above)", failures, N);
	assert_exactly_once(&d, M, lock ? "sqlite --lock=table" : "sqlite --lock=auto");
	tdb_drop(&d);
}

Test(scale, sqlite_twenty_processes_default_lock, .timeout = 120)
{
	sqlite_twenty(NULL);
}

Test(scale, sqlite_twenty_processes_lease_lock, .timeout = 120)
{
	sqlite_twenty("table");
}

/* ---- PgBouncer, transaction pooling -------------------------------------- */

static char *bouncer_dir;
static char *bouncer_base;   /* postgres://sg:...@127.0.0.1:PORT */

/* Start PgBouncer in front of the shared server of tests/run.sh, with
 * pool server connections per database and user. */
static void start_bouncer_pool(int pool, bool round_robin)
{
	const char *pg = sgt_require_server("SG_TEST_PG_URL");
	struct sg_url u = {0};
	struct sg_error err = {0};
	cr_assert_eq(sg_url_parse(pg, &u, &err), 0, "%s", err.msg);
	bouncer_dir = sgt_tempdir();
	chmod(bouncer_dir, 0755);
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "SG_TEST_PG_PORT=%d SG_PGBOUNCER_POOL_SIZE=%d SG_PGBOUNCER_ROUND_ROBIN=%d sh '%s/tests/harness/pgbouncer.sh' "
				 "start '%s/bouncer'", u.port ? u.port : 5432, pool, round_robin, SG_SOURCE_DIR, bouncer_dir) > 0);
	sg_url_free(&u);
	int st = 0;
	char *out = sgt_sh(cmd, &st);
	free(cmd);
	cr_assert_eq(st, 0, "pgbouncer.sh start failed");
	char *p = strstr(out, "export SG_TEST_PGBOUNCER_URL=");
	cr_assert(p, "pgbouncer.sh printed no URL: %s", out);
	p += strlen("export SG_TEST_PGBOUNCER_URL=");
	char *url = strndup(p, strcspn(p, "\n"));
	*strrchr(url, '/') = '\0';
	bouncer_base = url;
	free(out);
}

static void start_bouncer(void) { start_bouncer_pool(10, false); }

/* One server connection: the next client surely gets schemagate's backend. */
static void start_bouncer_one(void) { start_bouncer_pool(1, false); }

/* Server connections handed out in turn: an instance's transactions land
 * on different backends whenever two or more exist (PgBouncer's default,
 * LIFO, may give a lone client the same backend every time). */
static void start_bouncer_rotating(void) { start_bouncer_pool(10, true); }

static void stop_bouncer(void)
{
	if (!bouncer_dir)
		return;
	char *cmd = NULL;
	if (asprintf(&cmd, "sh '%s/tests/harness/pgbouncer.sh' stop '%s/bouncer' >/dev/null 2>&1", SG_SOURCE_DIR,
		     bouncer_dir) > 0 &&
	    system(cmd) != 0)
		fprintf(stderr, "could not stop pgbouncer in %s\n", bouncer_dir);
	free(cmd);
	sgt_rmrf(bouncer_dir);
	free(bouncer_dir);
	free(bouncer_base);
	bouncer_dir = bouncer_base = NULL;
}

/* The test database on the real server; schemagate goes through PgBouncer. */
static void bouncer_db(struct tdb *d)
{
	tdb_create(d, ENG_PG, getenv("SG_TEST_PG_URL"));
	free(d->url);
	cr_assert(asprintf(&d->url, "%s/%s", bouncer_base, d->name) > 0);
}

Test(scale, pgbouncer_transaction_mode_lease_lock_thirty_instances, .timeout = 170, .init = start_bouncer,
     .fini = stop_bouncer)
{
	enum { N = 30, M = 8 };
	struct tdb d;
	bouncer_db(&d);
	write_migrations(&d, M, "SELECT pg_sleep(0.1);");
	const char *extra[] = { "--lock", "table", "--lock-lease", "6s", "--poll-interval", "300ms",
				"--connect-timeout", "60s", "--lock-timeout", "60s", NULL };
	double secs = 0;
	int failures = run_many(&d, N, extra, NULL, &secs);
	fprintf(stderr, "pgbouncer --lock=table: instances=%d migrations=%d failures=%d wall=%.1fs\n", N, M,
		failures, secs);
	cr_assert_eq(failures, 0, "%d of %d instances failed through PgBouncer with --lock=table (logs above)",
		     failures, N);
	assert_exactly_once(&d, M, "through PgBouncer, --lock=table");
	tdb_drop(&d);
}

Test(scale, pgbouncer_transaction_mode_session_lock_fails_loudly, .timeout = 120, .init = start_bouncer_rotating,
     .fini = stop_bouncer)
{
	enum { N = 10, M = 5 };
	struct tdb d;
	bouncer_db(&d);
	write_migrations(&d, M, "SELECT pg_sleep(0.2);");
	const char *extra[] = { "--poll-interval", "200ms", "--lock-timeout", "10s", NULL };
	int codes[N];
	run_many(&d, N, extra, codes, NULL);

	/* An instance whose post-lock probe caught the pooler may be unable
	 * to free the advisory lock it stranded on a pooled server
	 * connection; later instances then wait for it and time out (exit 3,
	 * naming the lock). That is loud, not a race. */
	int zero = 0, five = 0, advised = 0, timed_out = 0, other = 0;
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "up-%03d.log", i);
		char *path = sgt_path(d.dir, name);
		char *log = sgt_slurp(path);
		if (codes[i] == 0)
			zero++;
		else if (codes[i] == 5)
			five++;
		else if (codes[i] == 3 && log && strstr(log, "lock timeout"))
			timed_out++;
		else
			other++;
		if (codes[i] == 5 && log && strstr(log, "--lock=table"))
			advised++;
		if (codes[i] != 0 && codes[i] != 5 && codes[i] != 3)
			fprintf(stderr, "---- instance %d exited %d:\n%s\n", i, codes[i], log ? log : "");
		free(log);
		free(path);
	}
	long rows = tdb_long(&d, "SELECT count(*) FROM applied_log");
	long distinct = tdb_long(&d, "SELECT count(DISTINCT v) FROM applied_log");
	fprintf(stderr,
		"pgbouncer --lock=auto: instances=%d migrations=%d exit0=%d exit5=%d (with --lock=table advice: %d) "
		"lock-timeout=%d other=%d counter rows=%ld distinct=%ld\n",
		N, M, zero, five, advised, timed_out, other, rows, distinct);
	cr_assert_geq(advised, 1, "no instance refused the session lock through PgBouncer with the --lock=table advice");
	cr_assert_eq(rows, distinct, "a migration was applied twice through PgBouncer with --lock=auto");
	cr_assert_eq(other, 0, "%d instances exited with neither 0, 5 nor a lock timeout (raced instead of refusing)",
		     other);
	if (zero > 0) {
		/* an instance that said "ready" must have been right */
		assert_exactly_once(&d, M, "an instance exited 0 through PgBouncer");
	}
	tdb_drop(&d);
}

/* ---- no session state left in the pool (issue 11, item 5) ----------------- */

/* Every setting schemagate changes on PostgreSQL (src/drivers/postgres.c
 * pg_begin: SET LOCAL, so each ends with its transaction), and the usual
 * ones a session SET would leave behind. */
static const char *const pooled_settings[] = {
	"lock_timeout", "client_connection_check_interval", "statement_timeout",
	"idle_in_transaction_session_timeout", "search_path", NULL,
};

static char *show_setting(PGconn *c, const char *name)
{
	char sql[96];
	snprintf(sql, sizeof(sql), "SHOW %s", name);
	PGresult *res = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(res));
	char *v = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

static long pooled_backend_pid(const char *url)
{
	PGconn *c = pg_open(url);
	PGresult *res = PQexec(c, "SELECT pg_backend_pid()");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
	long pid = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
	return pid;
}

/* Through a transaction-mode PgBouncer with ONE server connection, the
 * client after schemagate runs on the very backend schemagate used: it must
 * find every setting at the server's default. The test first shows that a
 * session-level SET does reach the next client there (so a leak would be
 * seen), then runs `up --lock=table --ddl-lock-timeout 2s` (which sets
 * lock_timeout and client_connection_check_interval for each migration's
 * transaction) and looks. application_name is a startup parameter, not a
 * SET: PgBouncer itself keeps it per client (it is not checked here). */
Test(scale, pgbouncer_transaction_mode_no_setting_leaks_to_the_next_client, .timeout = 120,
     .init = start_bouncer_one, .fini = stop_bouncer)
{
	struct tdb d;
	bouncer_db(&d);
	write_migrations(&d, 3, NULL);
	char **defaults = calloc(sizeof(pooled_settings) / sizeof(pooled_settings[0]), sizeof(char *));
	for (int i = 0; pooled_settings[i]; i++)
		defaults[i] = show_setting(d.pg, pooled_settings[i]);   /* straight to the server */

	/* the setup can see a leak: a session SET lands on the one backend */
	long before = pooled_backend_pid(d.url);
	PGconn *c = pg_open(d.url);
	PQclear(PQexec(c, "SET lock_timeout = '1234ms'"));
	PQfinish(c);
	c = pg_open(d.url);
	char *leaked = show_setting(c, "lock_timeout");
	cr_assert_str_eq(leaked, "1234ms", "a session SET did not reach the next client: this pool cannot show a leak");
	free(leaked);
	PQclear(PQexec(c, "DISCARD ALL"));
	char *reset = show_setting(c, "lock_timeout");
	cr_assert_str_eq(reset, defaults[0], "DISCARD ALL did not reset lock_timeout");
	free(reset);
	PQfinish(c);

	const char *argv[] = { "--database-url", d.url, "--dir", d.mig, "--lock", "table", "--ddl-lock-timeout", "2s",
			       "--connect-timeout", "30s", "--lock-timeout", "60s", "up", NULL };
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 0, "up through PgBouncer exited %d:\n%s", r.status, r.err);
	sgt_result_free(&r);
	assert_exactly_once(&d, 3, "through PgBouncer with one server connection");

	cr_assert_eq(pooled_backend_pid(d.url), before, "PgBouncer opened a second server connection");
	c = pg_open(d.url);
	for (int i = 0; pooled_settings[i]; i++) {
		char *now = show_setting(c, pooled_settings[i]);
		cr_expect_str_eq(now, defaults[i], "%s is %s on the pooled backend after schemagate, the server's default "
			       "is %s: a session setting leaked", pooled_settings[i], now, defaults[i]);
		free(now);
		free(defaults[i]);
	}
	free(defaults);
	PQfinish(c);
	tdb_drop(&d);
}
