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
 * SG_TEST_SCALE sets the number of processes of the big tests (default
 * 200; the sanitizer run may lower it). Each test prints its figures to
 * stderr.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <libpq-fe.h>
#include <mysql.h>
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
#include "sgtest.h"

/* ---- one test database on some engine ------------------------------------ */

enum eng { ENG_PG, ENG_MY, ENG_LITE };

struct tdb {
	enum eng eng;
	char name[64];     /* database name (PG, MariaDB) */
	char *server_url;  /* PG: .../postgres, MariaDB: mysql://.../ */
	char *url;         /* what schemagate gets */
	char *dir;         /* scratch directory */
	char *mig;         /* dir/migrations */
	char *file;        /* SQLite file */
	PGconn *pg;        /* open on the test database */
	MYSQL *my;
};

static PGconn *pg_open(const char *url)
{
	PGconn *c = PQconnectdb(url);
	cr_assert(PQstatus(c) == CONNECTION_OK, "connecting to PostgreSQL: %s", PQerrorMessage(c));
	return c;
}

static MYSQL *my_open(const char *url, const char *db)
{
	struct sg_url u = {0};
	struct sg_error err = {0};
	cr_assert_eq(sg_url_parse(url, &u, &err), 0, "%s", err.msg);
	MYSQL *m = mysql_init(NULL);
	cr_assert(m);
	MYSQL *ok = mysql_real_connect(m, u.host ? u.host : "127.0.0.1", u.user, u.password, db,
				       (unsigned)(u.port ? u.port : 3306), NULL, 0);
	cr_assert(ok, "connecting to MariaDB: %s", mysql_error(m));
	sg_url_free(&u);
	return m;
}

/* First value of the first row of sql (malloc'd), NULL when no row/NULL. */
static char *tdb_value(struct tdb *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *tdb_value(struct tdb *d, const char *fmt, ...)
{
	char *sql = NULL;
	va_list ap;
	va_start(ap, fmt);
	cr_assert(vasprintf(&sql, fmt, ap) > 0);
	va_end(ap);
	char *out = NULL;
	if (d->eng == ENG_PG) {
		PGresult *res = PQexec(d->pg, sql);
		ExecStatusType st = PQresultStatus(res);
		cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(res));
		if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
			out = strdup(PQgetvalue(res, 0, 0));
		PQclear(res);
	} else if (d->eng == ENG_MY) {
		cr_assert_eq(mysql_query(d->my, sql), 0, "%s: %s", sql, mysql_error(d->my));
		MYSQL_RES *res = mysql_store_result(d->my);
		if (res) {
			MYSQL_ROW row = mysql_fetch_row(res);
			if (row && row[0])
				out = strdup(row[0]);
			mysql_free_result(res);
		}
	} else {
		sqlite3 *db = NULL;
		cr_assert_eq(sqlite3_open(d->file, &db), SQLITE_OK);
		sqlite3_busy_timeout(db, 10000);
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
		rc = sqlite3_step(st);
		cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
		if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			out = strdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	free(sql);
	return out;
}

static long tdb_long(struct tdb *d, const char *sql)
{
	char *v = tdb_value(d, "%s", sql);
	long n = v ? atol(v) : -1;
	free(v);
	return n;
}

static void tdb_create(struct tdb *d, enum eng eng, const char *server_url)
{
	static int counter;
	memset(d, 0, sizeof(*d));
	d->eng = eng;
	d->dir = sgt_tempdir();
	chmod(d->dir, 0755);
	d->mig = sgt_path(d->dir, "migrations");
	cr_assert_eq(mkdir(d->mig, 0755), 0);
	snprintf(d->name, sizeof(d->name), "sc_%ld_%d_%x", (long)getpid(), counter++, (unsigned)rand() & 0xffff);
	if (eng == ENG_LITE) {
		d->file = sgt_path(d->dir, "app.db");
		cr_assert(asprintf(&d->url, "sqlite:%s", d->file) > 0);
	} else if (eng == ENG_PG) {
		d->server_url = strdup(server_url);
		PGconn *c = pg_open(server_url);
		char *sql = NULL;
		cr_assert(asprintf(&sql, "CREATE DATABASE %s", d->name) > 0);
		PGresult *res = PQexec(c, sql);
		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(c);
		free(sql);
		const char *slash = strrchr(server_url, '/');
		cr_assert(slash && !strchr(slash, '?'), "the PostgreSQL URL must end in /DATABASE");
		cr_assert(asprintf(&d->url, "%.*s/%s", (int)(slash - server_url), server_url, d->name) > 0);
		d->pg = pg_open(d->url);
	} else {
		d->server_url = strdup(server_url);
		MYSQL *m = my_open(server_url, NULL);
		char *sql = NULL;
		cr_assert(asprintf(&sql, "CREATE DATABASE %s", d->name) > 0);
		cr_assert_eq(mysql_query(m, sql), 0, "%s", mysql_error(m));
		mysql_close(m);
		free(sql);
		size_t n = strlen(server_url);
		cr_assert(asprintf(&d->url, "%s%s%s", server_url, server_url[n - 1] == '/' ? "" : "/", d->name) > 0);
		d->my = my_open(server_url, d->name);
	}
	/* the counter: no key, so a second application is a second row */
	free(tdb_value(d, "CREATE TABLE applied_log (v VARCHAR(32) NOT NULL)"));
}

static void tdb_drop(struct tdb *d)
{
	if (d->pg) {
		PQfinish(d->pg);
		PGconn *c = pg_open(d->server_url);
		char *sql = NULL;
		cr_assert(asprintf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->name) > 0);
		PQclear(PQexec(c, sql));
		PQfinish(c);
		free(sql);
	}
	if (d->my) {
		char *sql = NULL;
		cr_assert(asprintf(&sql, "DROP DATABASE IF EXISTS %s", d->name) > 0);
		mysql_query(d->my, sql);
		mysql_close(d->my);
		free(sql);
	}
	sgt_rmrf(d->dir);
	free(d->server_url);
	free(d->url);
	free(d->dir);
	free(d->mig);
	free(d->file);
}

/* n migrations 0001..n; each records itself in applied_log. slow is an
 * engine statement put in front of the INSERT (NULL: none). */
static void write_migrations(struct tdb *d, int n, const char *slow)
{
	for (int i = 1; i <= n; i++) {
		char name[64], sql[512];
		snprintf(name, sizeof(name), "%04d_step_%d.up.sql", i, i);
		snprintf(sql, sizeof(sql), "%s%sINSERT INTO applied_log (v) VALUES ('%04d');\n", slow ? slow : "",
			 slow ? "\n" : "", i);
		sgt_write(d->mig, name, sql);
	}
}

/* Every migration 1..n exactly once: counter rows, history, verify.
 * Prints the versions applied more than once before failing. */
static void assert_exactly_once(struct tdb *d, int n, const char *what)
{
	long rows = tdb_long(d, "SELECT count(*) FROM applied_log");
	long distinct = tdb_long(d, "SELECT count(DISTINCT v) FROM applied_log");
	if (rows != distinct) {
		char *dup = tdb_value(d, "SELECT v FROM applied_log GROUP BY v HAVING count(*) > 1 ORDER BY v");
		fprintf(stderr, "%s: applied more than once, e.g. version %s\n", what, dup ? dup : "?");
		free(dup);
	}
	cr_assert_eq(rows, distinct, "%s: %ld counter rows for %ld migrations: some ran twice", what, rows, distinct);
	cr_assert_eq(distinct, n, "%s: %ld of %d migrations applied", what, distinct, n);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'"), n,
		     "%s: history incomplete", what);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations"), n, "%s: extra history rows", what);
	const char *argv[] = { "--database-url", d->url, "--dir", d->mig, "verify", NULL };
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 0, "%s: verify exited %d: %s", what, r.status, r.err);
	sgt_result_free(&r);
}

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
	pid_t *pids = calloc((size_t)n, sizeof(pid_t));
	char **logs = calloc((size_t)n, sizeof(char *));
	double t0 = sgt_now_ms();
	for (int i = 0; i < n; i++) {
		const char *argv[40];
		int k = 0;
		argv[k++] = "--database-url";
		argv[k++] = d->url;
		argv[k++] = "--dir";
		argv[k++] = d->mig;
		for (int j = 0; extra && extra[j] && k < 38; j++)
			argv[k++] = extra[j];
		argv[k++] = "up";
		argv[k] = NULL;
		char name[32];
		snprintf(name, sizeof(name), "up-%03d.log", i);
		logs[i] = sgt_path(d->dir, name);
		pids[i] = sgt_spawn(NULL, argv, logs[i]);
	}
	int failures = 0;
	for (int i = 0; i < n; i++) {
		int st = sgt_wait(pids[i]);
		if (codes)
			codes[i] = st;
		if (st != 0) {
			if (failures < 3) {
				char *log = sgt_slurp(logs[i]);
				fprintf(stderr, "---- instance %d exited %d (%s):\n%s\n", i, st, logs[i], log ? log : "");
				free(log);
			}
			failures++;
		}
		free(logs[i]);
	}
	if (seconds)
		*seconds = (sgt_now_ms() - t0) / 1000.0;
	free(pids);
	free(logs);
	return failures;
}

/* ---- private servers with max_connections = 40 --------------------------- */

struct private_server {
	char *dir;       /* server directory, removed at the end */
	char *url;
	const char *script;  /* pg.sh / mariadb.sh */
};

static struct private_server srv;

/* Run tests/harness/<script> start into a temporary directory with a
 * small max_connections; take the URL from the line naming url_var. */
static void private_start(const char *script, const char *maxconn_var, const char *url_var)
{
	srv.script = script;
	srv.dir = sgt_tempdir();
	chmod(srv.dir, 0755);
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "%s=40 sh '%s/tests/harness/%s' start '%s/server'", maxconn_var, SG_SOURCE_DIR,
			   script, srv.dir) > 0);
	int st = 0;
	char *out = sgt_sh(cmd, &st);
	free(cmd);
	cr_assert_eq(st, 0, "%s start failed", script);
	char key[64];
	snprintf(key, sizeof(key), "export %s=", url_var);
	char *p = strstr(out, key);
	cr_assert(p, "%s printed no %s: %s", script, url_var, out);
	p += strlen(key);
	srv.url = strndup(p, strcspn(p, "\n"));
	free(out);
}

static void private_stop(void)
{
	if (!srv.dir)
		return;
	char *cmd = NULL;
	if (asprintf(&cmd, "sh '%s/tests/harness/%s' stop '%s/server' >/dev/null 2>&1", SG_SOURCE_DIR, srv.script,
		     srv.dir) > 0 &&
	    system(cmd) != 0)
		fprintf(stderr, "could not stop the private server in %s\n", srv.dir);
	free(cmd);
	sgt_rmrf(srv.dir);
	free(srv.dir);
	free(srv.url);
	memset(&srv, 0, sizeof(srv));
}

/* Criterion runs .fini even when an assertion failed. */
static void stop_private_server(void)
{
	private_stop();
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
	int failures = run_many(&d, n, extra, NULL, &secs);
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
		"log lines mentioning 'too many'=%ld\n",
		eng == ENG_PG ? "postgres" : "mariadb", n, M, failures, secs, too_many);
	cr_assert_eq(failures, 0, "%d of %d instances failed (logs above)", failures, n);
	assert_exactly_once(&d, M, "after the rush");
	if (eng == ENG_MY)
		cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events WHERE event = 'apply'"), M);
	tdb_drop(&d);
}

static void start_private_pg(void)
{
	private_start("pg.sh", "SG_PG_MAX_CONNECTIONS", "SG_TEST_PG_URL");
}

static void start_private_mariadb(void)
{
	private_start("mariadb.sh", "SG_MARIADB_MAX_CONNECTIONS", "SG_TEST_MYSQL_URL");
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

/* Start PgBouncer in front of the shared server of tests/run.sh. */
static void start_bouncer(void)
{
	const char *pg = sgt_require_server("SG_TEST_PG_URL");
	struct sg_url u = {0};
	struct sg_error err = {0};
	cr_assert_eq(sg_url_parse(pg, &u, &err), 0, "%s", err.msg);
	bouncer_dir = sgt_tempdir();
	chmod(bouncer_dir, 0755);
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "SG_TEST_PG_PORT=%d sh '%s/tests/harness/pgbouncer.sh' start '%s/bouncer'",
			   u.port ? u.port : 5432, SG_SOURCE_DIR, bouncer_dir) > 0);
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

Test(scale, pgbouncer_transaction_mode_session_lock_fails_loudly, .timeout = 120, .init = start_bouncer,
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
