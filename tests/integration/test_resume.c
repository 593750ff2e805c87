/*
 * test_resume.c - statement-by-statement migrations (MySQL; no-transaction
 * scripts) stopped by a signal, a kill or a lost connection are resumed
 * by the next instance, exactly once, with no human.
 *
 * The random rounds are seeded (SG_RESUME_SEED, printed) so a failure can
 * be replayed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "schemagate/migration.h"
#include "sgdb.h"
#include "sgtest.h"

static unsigned seed(void)
{
	const char *s = getenv("SG_RESUME_SEED");
	unsigned v = s && *s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
	fprintf(stderr, "SG_RESUME_SEED=%u\n", v);
	return v;
}

static int up(struct tdb *d, const char *log, double *seconds)
{
	const char *argv[] = {"--database-url", d->url, "--dir", d->mig, "--poll-interval", "200ms", "up", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	if (log) {
		FILE *f = fopen(log, "a");
		if (f) {
			fputs(r.err, f);
			fclose(f);
		}
	}
	if (seconds)
		*seconds = r.seconds;
	int st = r.status;
	if (st != 0)
		fprintf(stderr, "up exited %d:\n%s\n", st, r.err);
	sgt_result_free(&r);
	return st;
}

static pid_t spawn_up(struct tdb *d, const char *log, const char *extra1, const char *extra2)
{
	const char *argv[] = {"--database-url", d->url, "--dir", d->mig, "--poll-interval", "200ms", "up", extra1, extra2,
			      NULL};
	return sgt_spawn(NULL, argv, log);
}

/* Polls sql (a count) until it reaches at_least or timeout_ms passes;
 * returns the last count. */
static long poll_until(struct tdb *d, const char *sql, long at_least, double timeout_ms)
{
	double t0 = sgt_now_ms();
	long n;
	while ((n = tdb_long(d, sql)) < at_least && sgt_now_ms() - t0 < timeout_ms)
		sleep_ms(50);
	return n;
}

/* The history row of version, "status/statements_done", is want. */
static void expect_row(struct tdb *d, const char *version, const char *want)
{
	char *row = tdb_value(d, "SELECT concat(status, '/', statements_done) FROM schemagate_migrations WHERE "
			      "version = '%s'", version);
	cr_expect(row && strcmp(row, want) == 0, "history row of %s: %s, expected %s", version, row ? row : "(none)",
		  want);
	free(row);
}

static long tables_named_t(struct tdb *d)
{
	if (d->eng == ENG_MY)
		return tdb_long(d, "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
				   "TABLE_NAME LIKE 't_'");
	return tdb_long(d, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 't_'");
}

/* ---- SIGTERM: stop at a statement boundary -------------------------------- */

/*
 * Five DDL statements with a one-second statement between each. SIGTERM
 * at a random moment: the running statement finishes (well inside the
 * grace), its completion is recorded, the lock goes back, exit 143; the
 * next `up` finishes the migration with every table exactly once.
 */
Test(resume, mariadb_sigterm_at_random_moments_needs_no_human, .timeout = 600)
{
	srand(seed());
	const char *url = sgt_require_server("SG_TEST_MYSQL_URL");
	int stopped = 0;
	for (int round = 0; round < 10; round++) {
		struct tdb d;
		tdb_create(&d, ENG_MY, url);
		sgt_write(d.mig, "0001_five.up.sql",
			  "CREATE TABLE t1 (id INT);\nSELECT SLEEP(1);\nCREATE TABLE t2 (id INT);\nSELECT SLEEP(1);\n"
			  "CREATE TABLE t3 (id INT);\nSELECT SLEEP(1);\nCREATE TABLE t4 (id INT);\nSELECT SLEEP(1);\n"
			  "CREATE TABLE t5 (id INT);\n");
		char *log = sgt_path(d.dir, "up.log");
		pid_t pid = spawn_up(&d, log, NULL, NULL);
		long at = 200 + rand() % 3800;
		sleep_ms(at);
		double t0 = sgt_now_ms();
		kill(pid, SIGTERM);
		int st = sgt_wait(pid);
		double ms = sgt_now_ms() - t0;
		fprintf(stderr, "round %d: SIGTERM at %ld ms -> exit %d after %.0f ms\n", round, at, st, ms);
		if (st != 0 && st != 143)
			dump_log("stopped instance", log);
		cr_expect(st == 143 || st == 0, "round %d: exit %d", round, st);
		cr_expect_lt(ms, 5000.0, "round %d: %.0f ms to stop: a 1 s statement should have finished", round, ms);
		stopped += st == 143;
		char *after = sgt_path(d.dir, "after.log");
		cr_expect_eq(up(&d, after, NULL), 0, "round %d: the next up failed", round);
		char *text = sgt_slurp(after);
		cr_expect(!text || !strstr(text, "repair"), "round %d: asked for a repair:\n%s", round, text);
		free(text);
		cr_expect_eq(tables_named_t(&d), 5, "round %d: tables t1..t5", round);
		cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied' AND "
					  "statements_done = 9"), 1, "round %d: history", round);
		free(after);
		free(log);
		tdb_drop(&d);
	}
	cr_expect_geq(stopped, 5, "only %d of 10 rounds were stopped mid-migration: the test did not test", stopped);
}

/*
 * Grouped DML gets no grace: a slow INSERT ... SELECT (a row a second,
 * twenty rows) between two DDL statements. SIGTERM while it runs cancels
 * it at once, InnoDB rolls back the rows it had written, and the row
 * records it as not done: not in doubt, so the next `up` just runs it.
 */
Test(resume, mariadb_sigterm_cancels_grouped_dml_at_once_and_it_is_not_in_doubt, .timeout = 180)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	sgt_write(d.mig, "0001_fill.up.sql",
		  "CREATE TABLE items (id INT, note VARCHAR(16));\n"
		  "INSERT INTO items (id, note) WITH RECURSIVE q (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM q WHERE "
		  "n < 20) SELECT n, 'slow' FROM q WHERE SLEEP(1) = 0;\n"
		  "CREATE TABLE t1 (id INT);\n");
	char *log = sgt_path(d.dir, "up.log");
	pid_t pid = spawn_up(&d, log, NULL, NULL);   /* the default --stop-grace, 20 s */
	poll_until(&d, "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
		   "TABLE_NAME = 'items'", 1, 15000);
	/* the INSERT's rows before it commits */
	free(tdb_value(&d, "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED"));
	long written = poll_until(&d, "SELECT count(*) FROM items", 2, 30000);
	free(tdb_value(&d, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"));
	cr_assert_geq(written, 2, "the INSERT never got going");
	double t0 = sgt_now_ms();
	kill(pid, SIGTERM);
	int st = sgt_wait(pid);
	double ms = sgt_now_ms() - t0;
	fprintf(stderr, "SIGTERM with %ld of 20 rows written -> exit %d after %.0f ms\n", written, st, ms);
	if (st != 143)
		dump_log("stopped instance", log);
	cr_expect_eq(st, 143);
	/* given the grace, it would have run its remaining ~17 s */
	cr_expect_lt(ms, 8000.0 * sgt_slowdown(), "%.0f ms to stop: the INSERT was not canceled at once", ms);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM items"), 0, "the canceled INSERT's rows were kept");
	expect_row(&d, "0001", "partial/1");
	char *note = tdb_value(&d, "SELECT error FROM schemagate_migrations WHERE version = '0001'");
	cr_expect(note && strstr(note, "statement 2 of 3 was rolled back") && !strstr(note, "doubt"), "stored note: %s",
		  note ? note : "(none)");
	free(note);
	char *after = sgt_path(d.dir, "after.log");
	cr_expect_eq(up(&d, after, NULL), 0);
	char *text = sgt_slurp(after);
	cr_expect(text && strstr(text, "resuming") && !strstr(text, "in_doubt_resolved"), "the next up:\n%s", text);
	free(text);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM items"), 20, "the INSERT ran twice or not at all");
	cr_expect_eq(tdb_long(&d, "SELECT count(DISTINCT id) FROM items"), 20);
	cr_expect_eq(tables_named_t(&d), 1);
	expect_row(&d, "0001", "applied/3");
	free(after);
	free(log);
	tdb_drop(&d);
}

/* ---- SIGKILL: at most one statement in doubt, resolved automatically ------ */

/*
 * Each DDL statement takes half a second (CREATE TABLE ... AS SELECT
 * SLEEP), so a kill often lands inside one: the server finishes it, the
 * row still names it as the next statement, and the next `up` runs it
 * again, sees "table exists" and counts it as done. On MariaDB a statement
 * that runs alone shares its round trip with the lock check and the record
 * that counts it, and the server finishes that round trip after the
 * client is gone: a kill leaves nothing in doubt there. The statement by
 * statement round trips that can (the lease lock, --lock=table, checked
 * on the client's clock, has no lock check as a statement) run in every
 * other round.
 */
Test(resume, mariadb_sigkill_at_random_moments_next_up_always_finishes, .timeout = 900)
{
	srand(seed());
	const char *url = sgt_require_server("SG_TEST_MYSQL_URL");
	int resolved = 0;
	for (int round = 0; round < 20; round++) {
		struct tdb d;
		tdb_create(&d, ENG_MY, url);
		sgt_write(d.mig, "0001_five.up.sql",
			  "CREATE TABLE t1 AS SELECT SLEEP(0.5) AS x;\nINSERT INTO applied_log (v) VALUES ('a');\n"
			  "CREATE TABLE t2 AS SELECT SLEEP(0.5) AS x;\nINSERT INTO applied_log (v) VALUES ('b');\n"
			  "CREATE TABLE t3 AS SELECT SLEEP(0.5) AS x;\nINSERT INTO applied_log (v) VALUES ('c');\n"
			  "CREATE TABLE t4 AS SELECT SLEEP(0.5) AS x;\nINSERT INTO applied_log (v) VALUES ('d');\n"
			  "CREATE TABLE t5 AS SELECT SLEEP(0.5) AS x;\n");
		bool lease = round % 2 == 0;
		pid_t pid = spawn_up(&d, NULL, lease ? "--lock" : NULL, lease ? "table" : NULL);
		long at = 100 + rand() % 2600;
		sleep_ms(at);
		kill(pid, SIGKILL);
		sgt_wait(pid);
		char *after = sgt_path(d.dir, "after.log");
		int st = up(&d, after, NULL);
		char *text = sgt_slurp(after);
		bool in_doubt = text && strstr(text, "in_doubt_resolved");
		resolved += in_doubt;
		fprintf(stderr, "round %d%s: SIGKILL at %ld ms -> next up %d%s\n", round, lease ? " (--lock=table)" : "", at, st,
			in_doubt ? " (statement in doubt, resolved)" : "");
		cr_expect_eq(st, 0, "round %d: the next up failed:\n%s", round, text);
		free(text);
		cr_expect_eq(tables_named_t(&d), 5, "round %d", round);
		cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 4, "round %d: an INSERT ran twice or "
			     "never", round);
		cr_expect_eq(tdb_long(&d, "SELECT count(DISTINCT v) FROM applied_log"), 4, "round %d", round);
		free(after);
		tdb_drop(&d);
	}
	fprintf(stderr, "in-doubt statements resolved: %d of 20 rounds\n", resolved);
	cr_expect_geq(resolved, 1, "no kill ever left a statement in doubt: the resolution was not exercised");
}

/* ---- round trips ------------------------------------------------------------ */

/* The requests schemagate sent for its migrations' statements and their
 * bookkeeping (the lock check, the history row, the audit event), from
 * the server's general log: one row per round trip, however many
 * statements it carries. */
static long bookkeeping_round_trips(struct tdb *d)
{
	char *n = tdb_value(d, "SELECT count(*) FROM mysql.general_log WHERE command_type = 'Query' AND thread_id IN "
			    "(SELECT thread_id FROM mysql.general_log WHERE argument LIKE 'SELECT GET_LOCK(''schemagate:%s.%%') "
			    "AND (argument LIKE '%%CREATE TABLE t%%' OR argument LIKE '%%CREATE INDEX%%' OR argument LIKE "
			    "'%%IS_USED_LOCK(%%' OR argument LIKE '%%`schemagate_migrations` (version%%' OR argument LIKE "
			    "'%%UPDATE `schemagate_migrations`%%' OR argument LIKE '%%`schemagate_events` (at%%' OR "
			    "argument LIKE 'SELECT status, applied_by%%')", d->name);
	long v = n ? atol(n) : -1;
	free(n);
	return v;
}

/*
 * A fresh apply on MariaDB: each statement that runs alone (DDL) goes in
 * one round trip with the lock check and the record that counts it; the
 * first also carries the history row's insert, the last the row's move
 * to applied and the audit event. Two DDL statements: two round trips
 * (ten before: the row check, its insert, and per statement the lock
 * check, the statement and its count, then the applied row and the event).
 */
Test(resume, mariadb_fresh_apply_sends_each_statement_with_its_bookkeeping)
{
	const char *url = sgt_require_server("SG_TEST_MYSQL_URL");
	struct tdb d;
	tdb_create(&d, ENG_MY, url);
	for (int i = 1; i <= 3; i++) {
		char name[32], sql[160];
		snprintf(name, sizeof(name), "000%d_t%d.up.sql", i, i);
		snprintf(sql, sizeof(sql), "CREATE TABLE t%d (id INT PRIMARY KEY, name VARCHAR(20));\n"
			 "CREATE INDEX t%d_name ON t%d (name);\n", i, i, i);
		sgt_write(d.mig, name, sql);
	}
	free(tdb_value(&d, "SET GLOBAL log_output = 'TABLE'"));
	free(tdb_value(&d, "SET GLOBAL general_log = 1"));
	int st = up(&d, NULL, NULL);
	free(tdb_value(&d, "SET GLOBAL general_log = 0"));
	cr_assert_eq(st, 0);
	long trips = bookkeeping_round_trips(&d);
	cr_expect_eq(trips, 6, "%ld round trips for 3 migrations of 2 DDL statements (2 each expected)", trips);
	for (int i = 1; i <= 3; i++) {
		char v[8];
		snprintf(v, sizeof(v), "000%d", i);
		expect_row(&d, v, "applied/2");
		char *ev = tdb_value(&d, "SELECT concat(event, '/', outcome, '/', detail REGEXP '^[0-9]+ms$') FROM "
				     "schemagate_events WHERE version = '%s'", v);
		cr_expect(ev && strcmp(ev, "apply/ok/1") == 0, "event of %s: %s", v, ev ? ev : "(none)");
		free(ev);
	}
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events"), 3);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE duration_ms < 0 OR error IS NOT NULL"),
		     0);
	tdb_drop(&d);
}

/* ---- wait never hangs behind an orphan ------------------------------------ */

static void orphan_row(struct tdb *d)
{
	sgt_write(d->mig, "0001_a.up.sql", "CREATE TABLE a (id INT);\n");
	cr_assert_eq(up(d, NULL, NULL), 0);
	const char *b = "CREATE TABLE b1 (id INT);\nCREATE TABLE b2 (id INT);\n";
	sgt_write(d->mig, "0002_b.up.sql", b);
	/* what a writer killed after its first statement leaves behind */
	char sum[65];
	sg_checksum(b, strlen(b), sum);
	free(tdb_value(d, "INSERT INTO schemagate_migrations (version, name, checksum, status, statements_done, "
			  "applied_by, error) VALUES ('0002', 'b', '%s', 'partial', 1, 'gone/1/abcdef', 'next: "
			  "statement 2 of 2')", sum));
}

static void wait_against_orphan(enum eng eng, const char *url)
{
	struct tdb d;
	tdb_create(&d, eng, url);
	orphan_row(&d);
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "--poll-interval", "500ms", "wait", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_expect_eq(r.status, 4, "wait exited %d: %s", r.status, r.err);
	cr_expect_lt(r.seconds, 3.0, "wait took %.1f s", r.seconds);
	cr_expect(strstr(r.err, "0002") && strstr(r.err, "no instance holds the lock"), "%s", r.err);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(resume, wait_exits_4_at_once_behind_an_orphaned_partial_row_mariadb, .timeout = 60)
{
	wait_against_orphan(ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
}

Test(resume, wait_exits_4_at_once_behind_an_orphaned_partial_row_sqlite, .timeout = 60)
{
	wait_against_orphan(ENG_LITE, NULL);
}

/* A partial row whose writer is alive is work in progress: wait waits. */
Test(resume, wait_waits_behind_a_partial_row_whose_writer_is_alive, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	sgt_write(d.mig, "0001_slow.up.sql", "CREATE TABLE t1 (id INT);\nCREATE TABLE t2 AS SELECT SLEEP(3) AS x;\n");
	char *log = sgt_path(d.dir, "up.log");
	pid_t pid = spawn_up(&d, log, NULL, NULL);
	poll_until(&d, "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
		   "TABLE_NAME = 'schemagate_migrations'", 1, 10000);
	poll_until(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'partial'", 1, 10000);
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "--poll-interval", "300ms", "wait", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_expect_eq(r.status, 0, "wait exited %d: %s", r.status, r.err);
	sgt_result_free(&r);
	cr_expect_eq(sgt_wait(pid), 0);
	free(log);
	tdb_drop(&d);
}

/* ---- a failure is always recorded ------------------------------------------ */

/* The failing statement holds bytes that are not UTF-8; the server's error
 * quotes it. The failed row and the audit event are still written, with
 * the statement number and the bytes escaped. */
static void invalid_utf8_failure(enum eng eng, const char *url, const char *header)
{
	struct tdb d;
	tdb_create(&d, eng, url);
	char *script = NULL;
	cr_assert(asprintf(&script, "%sCREATE TABLE ok1 (id INT);\nSELEC 'caf\xe9 \xff\xfe' AS broken;\n", header) > 0);
	sgt_write(d.mig, "0001_bad.up.sql", script);
	free(script);
	int st = up(&d, NULL, NULL);
	cr_expect_eq(st, 1, "up exited %d", st);
	expect_row(&d, "0001", "failed/1");
	char *error = tdb_value(&d, "SELECT error FROM schemagate_migrations WHERE version = '0001'");
	cr_expect(error && strstr(error, "statement 2 of 2") && strstr(error, "\\x"), "stored error: %s",
		  error ? error : "(none)");
	free(error);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events WHERE event = 'failure' AND version = '0001'"),
		     1, "no audit event for the failure");
	tdb_drop(&d);
}

Test(resume, invalid_utf8_in_a_failing_statement_is_recorded_mariadb, .timeout = 60)
{
	invalid_utf8_failure(ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"), "");
}

Test(resume, invalid_utf8_in_a_failing_statement_is_recorded_postgres, .timeout = 60)
{
	/* statement by statement, so a failure leaves a failed row */
	invalid_utf8_failure(ENG_PG, sgt_require_server("SG_TEST_PG_URL"), "-- schemagate:no-transaction\n");
}

/* ---- repair VERSION --resume: a human did the one statement ------------------ */

/*
 * Six statements, each leaving a trace (a table t1..t3 or a counter
 * row); the third reads a table this database does not have. It fails,
 * and every later run refuses. The human does what it was meant to do,
 * and `repair --resume` runs the three after it, once.
 */
Test(resume, repair_resume_runs_once_the_statements_after_the_one_done_by_hand, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	sgt_write(d.mig, "0001_orders.up.sql",
		  "CREATE TABLE t1 (id INT);\nINSERT INTO applied_log (v) VALUES ('s2');\n"
		  "CREATE TABLE t2 AS SELECT id FROM legacy_orders;\nCREATE TABLE t3 (id INT);\n"
		  "INSERT INTO applied_log (v) VALUES ('s5');\nINSERT INTO applied_log (v) VALUES ('s6');\n");
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 1, "%s", r.err);
	cr_expect(strstr(r.err, "statement 3 of 6") && strstr(r.err, "legacy_orders"), "%s", r.err);
	sgt_result_free(&r);
	expect_row(&d, "0001", "failed/2");
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", NULL), 4, "%s", r.err);
	cr_expect(strstr(r.err, "--resume"), "the refusal does not offer --resume:\n%s", r.err);
	sgt_result_free(&r);
	/* by hand: what statement 3 was meant to do */
	free(tdb_value(&d, "CREATE TABLE t2 (id INT)"));
	cr_expect_eq(tdb_run(&d, NULL, &r, "repair", "0001", "--resume", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tables_named_t(&d), 3);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 3, "a statement ran twice, or never");
	cr_expect_eq(tdb_long(&d, "SELECT count(DISTINCT v) FROM applied_log"), 3);
	expect_row(&d, "0001", "applied/6");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events WHERE event = 'repair' AND outcome = 'resume' "
				  "AND version = '0001' AND detail LIKE 'statement 3 %'"), 1, "no audit event for the resume");
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 3, "the next up ran something again");
	tdb_drop(&d);
}

/*
 * The statement in doubt is one whose second run proves nothing: renaming
 * a column that is already renamed answers "unknown column". It waits for
 * a reader's metadata lock, SIGTERM with no grace cancels it (in doubt),
 * and the server turns out to have done it anyway (here the test does it
 * for the server, as when the cancel arrives a moment too late). The next
 * `up` stops with exit 4 naming it; a human sees the new column and runs
 * `repair --resume`.
 */
Test(resume, repair_resume_after_a_statement_in_doubt_that_a_human_checked, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	sgt_write(d.mig, "0001_a.up.sql", "CREATE TABLE a (x INT);\n");
	cr_assert_eq(up(&d, NULL, NULL), 0);
	sgt_write(d.mig, "0002_rename.up.sql",
		  "CREATE TABLE t1 (id INT);\nALTER TABLE a CHANGE COLUMN x y INT;\nCREATE TABLE t2 (id INT);\n"
		  "INSERT INTO applied_log (v) VALUES ('after');\n");
	MYSQL *reader = my_open(d.server_url, d.name);
	cr_assert_eq(mysql_query(reader, "START TRANSACTION"), 0);
	cr_assert_eq(mysql_query(reader, "SELECT * FROM a"), 0, "%s", mysql_error(reader));
	mysql_free_result(mysql_store_result(reader));
	char *log = sgt_path(d.dir, "up.log");
	pid_t pid = spawn_up(&d, log, "--stop-grace", "0");
	cr_assert_eq(poll_until(&d, "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'ALTER TABLE "
				    "a %' AND STATE = 'Waiting for table metadata lock'", 1, 15000), 1,
		     "the ALTER never waited for the reader");
	kill(pid, SIGTERM);
	int st = sgt_wait(pid);
	if (st != 143)
		dump_log("stopped instance", log);
	cr_expect_eq(st, 143);
	expect_row(&d, "0002", "partial/1");
	char *note = tdb_value(&d, "SELECT error FROM schemagate_migrations WHERE version = '0002'");
	cr_expect(note && strstr(note, "in doubt") && strstr(note, "statement 2 of 4"), "stored note: %s",
		  note ? note : "(none)");
	free(note);
	cr_assert_eq(mysql_query(reader, "COMMIT"), 0);
	mysql_close(reader);
	free(tdb_value(&d, "ALTER TABLE a CHANGE COLUMN x y INT"));
	struct sgt_result r;
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", NULL), 4, "%s", r.err);
	cr_expect(strstr(r.err, "statement 2 of 4") && strstr(r.err, "Unknown column"), "%s", r.err);
	sgt_result_free(&r);
	expect_row(&d, "0002", "failed/1");
	cr_expect_eq(tdb_run(&d, NULL, &r, "repair", "0002", "--resume", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tables_named_t(&d), 2);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM applied_log WHERE v = 'after'"), 1);
	expect_row(&d, "0002", "applied/4");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events WHERE event = 'repair' AND outcome = 'resume' "
				  "AND version = '0002'"), 1, "no audit event for the resume");
	free(log);
	tdb_drop(&d);
}

/* After --resume nothing is in doubt: the statement after the one done by
 * hand never ran, so a clash ("table exists") is a failure naming it, not
 * proof that it had taken effect. */
Test(resume, repair_resume_fails_on_a_clash_in_the_statements_after_the_one_done_by_hand, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	sgt_write(d.mig, "0001_orders.up.sql",
		  "CREATE TABLE t1 (id INT);\nCREATE TABLE t2 AS SELECT id FROM legacy_orders;\n"
		  "CREATE TABLE t3 (id INT);\nINSERT INTO applied_log (v) VALUES ('s4');\n");
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 1, "%s", r.err);
	sgt_result_free(&r);
	free(tdb_value(&d, "CREATE TABLE t2 (id INT)"));
	/* and someone else's t3, not what statement 3 would create */
	free(tdb_value(&d, "CREATE TABLE t3 (other VARCHAR(8))"));
	cr_expect_eq(tdb_run(&d, NULL, &r, "repair", "0001", "--resume", NULL), 1, "%s", r.err);
	cr_expect(strstr(r.err, "statement 3 of 4") && strstr(r.err, "already exists") &&
		  !strstr(r.err, "in_doubt_resolved"), "%s", r.err);
	sgt_result_free(&r);
	expect_row(&d, "0001", "failed/2");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 0, "the statements after the clash ran");
	tdb_drop(&d);
}

/* --resume refuses, touching nothing, a version that is applied, one the
 * directory does not have (a newer release's), and one never recorded. */
Test(resume, repair_resume_refuses_what_it_cannot_resume_and_changes_nothing, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	const char *first = "CREATE TABLE t1 (id INT);\nINSERT INTO applied_log (v) VALUES ('a');\n";
	sgt_write(d.mig, "0001_a.up.sql", first);
	cr_assert_eq(up(&d, NULL, NULL), 0);
	char *newer = sgt_path(d.dir, "newer");
	cr_assert_eq(mkdir(newer, 0755), 0);
	sgt_write(newer, "0001_a.up.sql", first);
	sgt_write(newer, "0002_b.up.sql", "CREATE TABLE t2 (id INT);\nINSERT INTO nope VALUES (1);\n");
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, newer, &r, "up", NULL), 1, "%s", r.err);
	sgt_result_free(&r);
	char *before = tdb_fingerprint(&d);
	static const char *const cases[][2] = {
		{"0001", "0001 is applied"},
		{"0002", "this directory does not have it"},
		{"0009", "0009 is not in"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_expect_eq(tdb_run(&d, NULL, &r, "repair", cases[i][0], "--resume", NULL), 2, "repair %s: %s",
			     cases[i][0], r.err);
		cr_expect(strstr(r.err, cases[i][1]), "repair %s: no \"%s\" in\n%s", cases[i][0], cases[i][1], r.err);
		sgt_result_free(&r);
		char *after = tdb_fingerprint(&d);
		cr_expect_str_eq(after, before, "repair %s --resume changed the database", cases[i][0]);
		free(after);
	}
	free(before);
	free(newer);
	tdb_drop(&d);
}

/* ---- PostgreSQL: CREATE INDEX CONCURRENTLY interrupted ---------------------- */

/* A table big enough, and an index expression slow enough (about 3 s),
 * that the build can be interrupted. */
static void cic_setup(struct tdb *d)
{
	sgt_write(d->mig, "0001_table.up.sql",
		  "CREATE TABLE items (id int);\nINSERT INTO items SELECT generate_series(1, 300);\n"
		  "CREATE FUNCTION slow_id(int) RETURNS int IMMUTABLE LANGUAGE sql AS "
		  "'SELECT $1 FROM pg_sleep(0.01)';\n");
	cr_assert_eq(up(d, NULL, NULL), 0);
	sgt_write(d->mig, "0002_index.up.sql",
		  "-- schemagate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_slow ON items "
		  "(slow_id(id));\n");
}

static bool index_valid(struct tdb *d)
{
	return tdb_long(d, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = "
			   "'items_slow' AND i.indisvalid") == 1;
}

static void wait_for_cic(struct tdb *d)
{
	poll_until(d, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE "
		   "'CREATE INDEX CONCURRENTLY%' AND state = 'active'", 1, 15000);
	sleep_ms(500);
}

Test(resume, postgres_create_index_concurrently_after_sigterm, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	cic_setup(&d);
	char *log = sgt_path(d.dir, "up.log");
	/* no grace: the build is canceled and leaves an invalid index */
	pid_t pid = spawn_up(&d, log, "--stop-grace", "0");
	wait_for_cic(&d);
	kill(pid, SIGTERM);
	int st = sgt_wait(pid);
	if (st != 143)
		dump_log("up", log);
	cr_expect_eq(st, 143);
	cr_expect(!index_valid(&d), "the canceled build left a valid index: nothing to test");
	char *after = sgt_path(d.dir, "after.log");
	cr_expect_eq(up(&d, after, NULL), 0);
	cr_expect(index_valid(&d), "the index is not valid after the next up");
	char *text = sgt_slurp(after);
	cr_expect(text && strstr(text, "invalid_index"), "the invalid index was not rebuilt:\n%s", text);
	free(text);
	free(after);
	free(log);
	tdb_drop(&d);
}

Test(resume, postgres_create_index_concurrently_after_sigkill, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	cic_setup(&d);
	pid_t pid = spawn_up(&d, NULL, NULL, NULL);
	wait_for_cic(&d);
	kill(pid, SIGKILL);
	sgt_wait(pid);
	/* the node is gone with its connection: the build dies with it */
	free(tdb_value(&d, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
			   "AND query LIKE 'CREATE INDEX CONCURRENTLY%%'"));
	sleep_ms(300);
	cr_expect_eq(up(&d, NULL, NULL), 0);
	cr_expect(index_valid(&d), "the index is not valid after the next up");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE version = '0002' AND status = "
				  "'applied'"), 1);
	tdb_drop(&d);
}

/* The check after the script catches an index that was already invalid
 * before the script ran (IF NOT EXISTS would keep it): it is rebuilt. */
Test(resume, postgres_invalid_index_from_before_is_rebuilt, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	sgt_write(d.mig, "0001_table.up.sql", "CREATE TABLE items (id int);\nINSERT INTO items VALUES (1), (1);\n");
	cr_assert_eq(up(&d, NULL, NULL), 0);
	/* a failed unique build leaves an invalid index */
	PGresult *res = PQexec(d.pg, "CREATE UNIQUE INDEX CONCURRENTLY items_slow ON items (id)");
	PQclear(res);
	cr_assert(!index_valid(&d));
	free(tdb_value(&d, "DELETE FROM items WHERE ctid = (SELECT max(ctid) FROM items)"));
	sgt_write(d.mig, "0002_index.up.sql",
		  "-- schemagate:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_slow ON items (id);\n");
	cr_expect_eq(up(&d, NULL, NULL), 0);
	cr_expect(index_valid(&d), "the invalid index from before survived");
	tdb_drop(&d);
}

/* ---- a 50 MB data migration ----------------------------------------------------- */

/*
 * Issue 12's motivating case: 120,000 single-row INSERTs, about 54 MB, and
 * a small down script. The INSERTs share transactions and round trips (it
 * took 85 s when progress was written after each). The time is printed;
 * the bound only catches the pathological.
 */
#define BIG_ROWS 120000
#define BIG_PAYLOAD 400

Test(resume, mariadb_50mb_data_migration_applies_every_row_once, .timeout = 600)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	size_t cap = (size_t)BIG_ROWS * (BIG_PAYLOAD + 64) + 256, len = 0;
	char *sql = malloc(cap);
	cr_assert(sql);
	len += (size_t)snprintf(sql, cap, "CREATE TABLE big (id INT NOT NULL, payload VARCHAR(%d) NOT NULL);\n",
				BIG_PAYLOAD);
	char payload[BIG_PAYLOAD + 1];
	payload[BIG_PAYLOAD] = '\0';
	for (int i = 1; i <= BIG_ROWS; i++) {
		memset(payload, 'a' + i % 26, BIG_PAYLOAD);
		len += (size_t)snprintf(sql + len, cap - len, "INSERT INTO big (id, payload) VALUES (%d, '%s');\n", i,
					payload);
	}
	cr_assert_gt(len, 50000000u);
	sgt_write(d.mig, "0001_start.up.sql", "CREATE TABLE t1 (id INT);\n");
	sgt_write(d.mig, "0002_big.up.sql", sql);
	sgt_write(d.mig, "0002_big.down.sql", "DROP TABLE big;\n");
	free(sql);
	double seconds = 0;
	int st = up(&d, NULL, &seconds);
	cr_log_info("MariaDB, %d single-row INSERTs (%.1f MB) in one migration: up took %.1f s", BIG_ROWS, len / 1e6,
		    seconds);
	cr_expect_eq(st, 0);
	cr_expect_lt(seconds, 120.0 * sgt_slowdown(), "%.1f s for a 50 MB migration", seconds);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM big"), BIG_ROWS, "a row is missing or doubled");
	cr_expect_eq(tdb_long(&d, "SELECT count(DISTINCT id) FROM big"), BIG_ROWS);
	cr_expect_eq(tdb_long(&d, "SELECT min(id) + max(id) FROM big"), 1 + BIG_ROWS);
	cr_expect_eq(tdb_long(&d, "SELECT sum(length(payload)) FROM big"), (long)BIG_ROWS * BIG_PAYLOAD);
	char row[64];
	snprintf(row, sizeof(row), "applied/%d", BIG_ROWS + 1);
	expect_row(&d, "0002", row);
	/* the down script was stored with it: the image from before can revert it */
	char *before = sgt_path(d.dir, "before");
	cr_assert_eq(mkdir(before, 0755), 0);
	sgt_write(before, "0001_start.up.sql", "CREATE TABLE t1 (id INT);\n");
	struct sgt_result r;
	cr_expect_eq(tdb_run(&d, before, &r, "rollback", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	free(before);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
				  "TABLE_NAME = 'big'"), 0, "rollback left the table");
	tdb_drop(&d);
}
