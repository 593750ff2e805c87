/*
 * test_mysql.c - schemagate against a real MariaDB (tests/harness/mariadb.sh).
 *
 * MySQL commits DDL implicitly, so these tests are about what happens when
 * a migration stops half way: killed, failed, interrupted. Every test makes
 * its own database with the mariadb client and drives the built binary.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schemagate/url.h"
#include "sgtest.h"

struct mydb {
	char name[64];
	char *url;        /* SG_TEST_MYSQL_URL + name */
	char *dir;        /* scratch directory */
	char *migrations; /* dir/m */
};

static struct sg_url server;

/* Connect the mariadb client to the test server; the password travels in
 * MYSQL_PWD, never in argv. */
static void server_init(void)
{
	if (server.engine)
		return;
	const char *url = sgt_require_server("SG_TEST_MYSQL_URL");
	struct sg_error err = {0};
	cr_assert_eq(sg_url_parse(url, &server, &err), 0, "SG_TEST_MYSQL_URL: %s", err.msg);
	if (server.password)
		setenv("MYSQL_PWD", server.password, 1);
}

/* Run SQL through the mariadb client (batch mode, no headers); returns
 * its trimmed stdout, malloc'd. Asserts success unless status is wanted. */
static char *client_sql(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *client_sql(const char *db, const char *fmt, ...)
{
	char sqlfile[] = "/tmp/sgt-mysql-XXXXXX";
	int fd = mkstemp(sqlfile);
	cr_assert(fd >= 0);
	FILE *f = fdopen(fd, "w");
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);

	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "mariadb --no-defaults --protocol=tcp -h '%s' -P %d -u '%s' -N -B %s < %s 2>&1",
			   server.host ? server.host : "127.0.0.1", server.port ? server.port : 3306,
			   server.user ? server.user : "root", db ? db : "", sqlfile) > 0);
	int status = 0;
	char *out = sgt_sh(cmd, &status);
	cr_assert_eq(status, 0, "mariadb client failed: %s", out);
	unlink(sqlfile);
	free(cmd);
	size_t n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	return out;
}

static long client_long(const char *db, const char *sql)
{
	char *out = client_sql(db, "%s", sql);
	char *end;
	long v = strtol(out, &end, 10);
	cr_assert(end != out, "expected a number from `%s`, got: %s", sql, out);
	free(out);
	return v;
}

static void mydb_create(struct mydb *d)
{
	static int counter;
	server_init();
	snprintf(d->name, sizeof(d->name), "sgt_%ld_%d", (long)getpid(), counter++);
	free(client_sql(NULL, "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s;", d->name, d->name));
	const char *base = getenv("SG_TEST_MYSQL_URL");
	cr_assert(asprintf(&d->url, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/", d->name) > 0);
	d->dir = sgt_tempdir();
	d->migrations = sgt_path(d->dir, "m");
	cr_assert_eq(mkdir(d->migrations, 0755), 0);
}

static void mydb_drop(struct mydb *d)
{
	free(client_sql(NULL, "DROP DATABASE IF EXISTS %s;", d->name));
	sgt_rmrf(d->dir);
	free(d->url);
	free(d->dir);
	free(d->migrations);
}

/* schemagate --database-url URL CMD --dir DIR [extra...] */
static void run_cmd(struct sgt_result *r, const struct mydb *d, const char *cmd, const char *extra1,
		    const char *extra2)
{
	const char *argv[] = { "--database-url", d->url, cmd, "--dir", d->migrations, "--poll-interval", "200ms",
			       extra1, extra2, NULL };
	sgt_run(r, NULL, argv);
}

static pid_t spawn_up(const struct mydb *d, const char *log)
{
	const char *argv[] = { "--database-url", d->url, "up", "--dir", d->migrations, "--poll-interval", "200ms",
			       NULL };
	return sgt_spawn(NULL, argv, log);
}

/* Wait until the server runs a statement starting with prefix in db. */
static void wait_for_statement(const struct mydb *d, const char *prefix)
{
	for (int i = 0; i < 200; i++) {
		char *sql = NULL;
		cr_assert(asprintf(&sql, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '%s' "
				   "AND INFO LIKE '%s%%'", d->name, prefix) > 0);
		long n = client_long(NULL, sql);
		free(sql);
		if (n > 0)
			return;
		usleep(50 * 1000);
	}
	cr_assert_fail("`%s` never started in %s", prefix, d->name);
}

static long count_statement(const struct mydb *d, const char *prefix)
{
	char *sql = NULL;
	cr_assert(asprintf(&sql, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '%s' "
			   "AND INFO LIKE '%s%%'", d->name, prefix) > 0);
	long n = client_long(NULL, sql);
	free(sql);
	return n;
}

TestSuite(mysql, .timeout = 240);

Test(mysql, fifty_processes_apply_each_migration_exactly_once)
{
	struct mydb d;
	mydb_create(&d);
	sgt_write(d.migrations, "1_items.up.sql",
		  "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20));\n"
		  "INSERT INTO items (v) VALUES ('first');\n");
	sgt_write(d.migrations, "2_more.up.sql",
		  "ALTER TABLE items ADD COLUMN w INT;\n"
		  "INSERT INTO items (v, w) VALUES ('second', 2);\n");

	enum { N = 50 };
	pid_t pids[N];
	char *logs[N];
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof(name), "up-%d.log", i);
		logs[i] = sgt_path(d.dir, name);
		pids[i] = spawn_up(&d, logs[i]);
	}
	for (int i = 0; i < N; i++) {
		int st = sgt_wait(pids[i]);
		char *log = sgt_slurp(logs[i]);
		cr_expect_eq(st, 0, "instance %d exited %d:\n%s", i, st, log);
		free(log);
		free(logs[i]);
	}
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM items WHERE v = 'first'"), 1);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM items WHERE v = 'second'"), 1);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_migrations WHERE status = 'applied'"), 2);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_migrations"), 2);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_events WHERE event = 'apply'"), 2);
	mydb_drop(&d);
}

Test(mysql, two_databases_on_one_server_do_not_wait_on_each_other)
{
	struct mydb a, b;
	mydb_create(&a);
	mydb_create(&b);
	const char *slow = "CREATE TABLE t (id INT);\nSELECT SLEEP(2);\n";
	sgt_write(a.migrations, "1_slow.up.sql", slow);
	sgt_write(b.migrations, "1_slow.up.sql", slow);

	double t0 = sgt_now_ms();
	pid_t pa = spawn_up(&a, NULL), pb = spawn_up(&b, NULL);
	cr_assert_eq(sgt_wait(pa), 0);
	cr_assert_eq(sgt_wait(pb), 0);
	double ms = sgt_now_ms() - t0;
	/* one after the other would take over 4 s */
	cr_assert_lt(ms, 3800, "both migrations took %.0f ms: the databases contended", ms);
	cr_assert_eq(client_long(a.name, "SELECT COUNT(*) FROM schemagate_migrations WHERE status = 'applied'"), 1);
	cr_assert_eq(client_long(b.name, "SELECT COUNT(*) FROM schemagate_migrations WHERE status = 'applied'"), 1);
	mydb_drop(&a);
	mydb_drop(&b);
}

/* The winner dies in the middle of a migration whose first DDL statement
 * has committed. The history row says how far it got; the instances that
 * were waiting take the lock and resume from there, with no human. */
Test(mysql, winner_killed_mid_migration_is_resumed_by_a_waiter)
{
	struct mydb d;
	mydb_create(&d);
	sgt_write(d.migrations, "1_base.up.sql", "CREATE TABLE base (id INT);\n");
	sgt_write(d.migrations, "2_split.up.sql",
		  "CREATE TABLE k1 (id INT);\n"
		  "SELECT SLEEP(5);\n"
		  "CREATE TABLE k2 (id INT);\n");

	char *wlog = sgt_path(d.dir, "winner.log");
	pid_t winner = spawn_up(&d, wlog);
	wait_for_statement(&d, "SELECT SLEEP(5)");
	/* two more instances arrive while the winner works */
	char *log1 = sgt_path(d.dir, "w1.log"), *log2 = sgt_path(d.dir, "w2.log");
	pid_t w1 = spawn_up(&d, log1), w2 = spawn_up(&d, log2);
	usleep(300 * 1000);
	cr_assert_eq(kill(winner, SIGKILL), 0);
	cr_assert_eq(sgt_wait(winner), 128 + SIGKILL);
	cr_assert_eq(client_long(d.name, "SELECT statements_done FROM schemagate_migrations WHERE version = '2'"), 1,
		     "the killed winner's row does not say that k1 is done");

	int s1 = sgt_wait(w1), s2 = sgt_wait(w2);
	char *o1 = sgt_slurp(log1), *o2 = sgt_slurp(log2);
	cr_assert_eq(s1, 0, "waiter exited %d:\n%s", s1, o1);
	cr_assert_eq(s2, 0, "waiter exited %d:\n%s", s2, o2);
	cr_assert((strstr(o1, "resuming 2_split") != NULL) + (strstr(o2, "resuming 2_split") != NULL) == 1,
		  "exactly one waiter should resume:\n%s\n%s", o1, o2);
	cr_assert(!strstr(o1, "repair") && !strstr(o2, "repair"), "a waiter asked for a repair");
	free(o1);
	free(o2);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
					 "AND TABLE_NAME IN ('k1', 'k2')"), 2);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_migrations WHERE status = 'applied'"), 2);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_events WHERE event = 'resume'"), 1);
	struct sgt_result r;
	run_cmd(&r, &d, "verify", NULL, NULL);
	cr_assert_eq(r.status, 0, "verify: %s", r.err);
	sgt_result_free(&r);
	free(wlog);
	free(log1);
	free(log2);
	mydb_drop(&d);
}

Test(mysql, sigterm_during_statement_kills_query_and_frees_lock)
{
	struct mydb d;
	mydb_create(&d);
	sgt_write(d.migrations, "1_sleep.up.sql", "SELECT SLEEP(30);\n");

	/* no grace: the statement is canceled at once */
	char *log = sgt_path(d.dir, "up.log");
	const char *argv[] = { "--database-url", d.url, "up", "--dir", d.migrations, "--stop-grace", "0", NULL };
	pid_t pid = sgt_spawn(NULL, argv, log);
	wait_for_statement(&d, "SELECT SLEEP(30)");
	double t0 = sgt_now_ms();
	cr_assert_eq(kill(pid, SIGTERM), 0);
	int st = sgt_wait(pid);
	double ms = sgt_now_ms() - t0;
	char *out = sgt_slurp(log);
	cr_assert_eq(st, 143, "exit %d:\n%s", st, out);
	cr_assert_lt(ms, 2000, "took %.0f ms to exit after SIGTERM:\n%s", ms, out);
	free(out);

	cr_assert_eq(count_statement(&d, "SELECT SLEEP(30)"), 0, "the statement still runs on the server");
	char *sql = NULL;
	cr_assert(asprintf(&sql, "SELECT IS_FREE_LOCK('schemagate:%s.schemagate_migrations')", d.name) > 0);
	cr_assert_eq(client_long(NULL, sql), 1);
	free(sql);
	free(log);
	mydb_drop(&d);
}

Test(mysql, stored_procedure_with_delimiter_applies)
{
	struct mydb d;
	mydb_create(&d);
	sgt_write(d.migrations, "1_proc.up.sql",
		  "CREATE TABLE counters (name VARCHAR(20) PRIMARY KEY, n INT NOT NULL);\n"
		  "DELIMITER //\n"
		  "CREATE PROCEDURE bump(IN which VARCHAR(20))\n"
		  "BEGIN\n"
		  "  DECLARE seen INT DEFAULT 0; -- a comment; with a semicolon\n"
		  "  SELECT COUNT(*) INTO seen FROM counters WHERE name = which;\n"
		  "  IF seen = 0 THEN\n"
		  "    INSERT INTO counters VALUES (which, 1);\n"
		  "  ELSE\n"
		  "    UPDATE counters SET n = n + 1 WHERE name = which;\n"
		  "  END IF;\n"
		  "END //\n"
		  "DELIMITER ;\n"
		  "CALL bump('a');\n");
	sgt_write(d.migrations, "1_proc.down.sql", "DROP PROCEDURE bump;\nDROP TABLE counters;\n");

	struct sgt_result r;
	run_cmd(&r, &d, "up", NULL, NULL);
	cr_assert_eq(r.status, 0, "up exited %d:\n%s", r.status, r.err);
	sgt_result_free(&r);
	free(client_sql(d.name, "CALL bump('a'); CALL bump('b');"));
	char *rows = client_sql(d.name, "SELECT name, n FROM counters ORDER BY name;");
	cr_assert_str_eq(rows, "a\t2\nb\t1");
	free(rows);
	cr_assert_eq(client_long(d.name, "SELECT statements_done FROM schemagate_migrations WHERE version = '1'"), 3);
	mydb_drop(&d);
}

Test(mysql, wrong_password_exits_5_at_once_without_printing_it)
{
	struct mydb d;
	mydb_create(&d);
	sgt_write(d.migrations, "1_t.up.sql", "CREATE TABLE t (id INT);\n");
	const char *secret = "Wr0ng-S3cret-pw";
	char *bad = NULL;
	cr_assert(asprintf(&bad, "mysql://%s:%s@%s:%d/%s", server.user, secret, server.host, server.port, d.name) > 0);

	const char *argv[] = { "--database-url", bad, "up", "--dir", d.migrations, NULL };
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 5, "exit %d:\n%s", r.status, r.err);
	cr_assert_lt(r.seconds, 5.0, "took %.1f s: a bad password must not be retried", r.seconds);
	cr_assert(strstr(r.err, "1045"), "stderr:\n%s", r.err);
	cr_assert_null(strstr(r.err, secret), "password printed:\n%s", r.err);
	cr_assert_null(strstr(r.out, secret), "password printed:\n%s", r.out);
	sgt_result_free(&r);

	/* --password-file wins over the URL's password */
	sgt_write(d.dir, "pw", server.password);
	char *pwfile = sgt_path(d.dir, "pw");
	const char *argv2[] = { "--database-url", bad, "--password-file", pwfile, "up", "--dir", d.migrations, NULL };
	sgt_run(&r, NULL, argv2);
	cr_assert_eq(r.status, 0, "exit %d with --password-file:\n%s", r.status, r.err);
	cr_assert_null(strstr(r.err, server.password), "password printed:\n%s", r.err);
	sgt_result_free(&r);
	free(pwfile);
	free(bad);
	mydb_drop(&d);
}

Test(mysql, example_migrations_apply_verify_and_roll_back)
{
	struct mydb d;
	mydb_create(&d);
	sgt_rmrf(d.migrations);
	free(d.migrations);
	d.migrations = sgt_copy_example_migrations(d.dir);

	struct sgt_result r;
	run_cmd(&r, &d, "up", NULL, NULL);
	cr_assert_eq(r.status, 0, "up exited %d:\n%s", r.status, r.err);
	sgt_result_free(&r);
	long applied = client_long(d.name, "SELECT COUNT(*) FROM schemagate_migrations WHERE status = 'applied'");
	cr_assert_gt(applied, 0);
	long tables = client_long(d.name, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
					  "AND TABLE_NAME NOT LIKE 'schemagate%'");
	cr_assert_gt(tables, 0, "the example created no tables");

	run_cmd(&r, &d, "verify", NULL, NULL);
	cr_assert_eq(r.status, 0, "verify exited %d:\n%s", r.status, r.err);
	sgt_result_free(&r);

	run_cmd(&r, &d, "down", "--to", "0");
	cr_assert_eq(r.status, 0, "down --to 0 exited %d:\n%s", r.status, r.err);
	sgt_result_free(&r);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_migrations WHERE status = 'applied'"), 0);
	cr_assert_eq(client_long(d.name, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
					 "AND TABLE_NAME NOT LIKE 'schemagate%'"), 0, "down left tables behind");

	/* and forward again: the down scripts left a clean slate */
	run_cmd(&r, &d, "up", NULL, NULL);
	cr_assert_eq(r.status, 0, "second up exited %d:\n%s", r.status, r.err);
	sgt_result_free(&r);
	mydb_drop(&d);
}

Test(mysql, baseline_version_adopts_only_a_database_that_has_tables)
{
	struct mydb d;
	mydb_create(&d);
	sgt_write(d.migrations, "1_a.up.sql", "CREATE TABLE a (x INT);\n");
	sgt_write(d.migrations, "2_b.up.sql", "CREATE TABLE b (x INT);\n");
	/* a database that predates schemagate: 1's table is already there */
	free(client_sql(d.name, "CREATE TABLE a (x INT);"));
	struct sgt_result r;
	run_cmd(&r, &d, "up", "--baseline-version", "1");
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_migrations "
					 "WHERE version = '1' AND status = 'baselined'"), 1);
	cr_expect_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_migrations "
					 "WHERE version = '2' AND status = 'applied'"), 1);
	mydb_drop(&d);

	/* an empty database is not pre-existing: 1 runs for real */
	mydb_create(&d);
	sgt_write(d.migrations, "1_a.up.sql", "CREATE TABLE a (x INT);\n");
	run_cmd(&r, &d, "up", "--baseline-version", "1");
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(client_long(d.name, "SELECT COUNT(*) FROM schemagate_migrations WHERE status = 'applied'"), 1);
	cr_expect_eq(client_long(d.name, "SELECT COUNT(*) FROM information_schema.TABLES "
					 "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'a'"), 1);
	mydb_drop(&d);
}
