/*
 * test_outcomes.c - what a failure in the middle of a no-transaction
 * script leaves behind is decided once and is true (issue 21, cases 4
 * and 5):
 *
 *   - a statement fails inside the script's own BEGIN: the script's
 *     transaction is rolled back before the failed row and the event are
 *     written (on PostgreSQL the aborted transaction would swallow them);
 *   - the server cancels a statement on its own (statement_timeout,
 *     pg_cancel_backend, a DBA's KILL QUERY): a failure of the statement,
 *     recorded as one, never "we stopped" (which leaves the row partial
 *     for an endless resume loop);
 *   - the lock check before a statement fails: LOCK_LOST, the row is not
 *     rewritten to failed (the statement never ran).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdb.h"
#include "sgtest.h"

static int run(struct tdb *d, const char *command, struct sgt_result *r)
{
	return tdb_run(d, NULL, r, "--poll-interval", "200ms", "--lock-timeout", "20s", command, NULL);
}

/* "status/statements_done" of version's row, or "(none)". Malloc'd. */
static char *row_of(struct tdb *d, const char *version)
{
	char *row = tdb_value(d, d->eng == ENG_MY ? "SELECT concat(status, '/', statements_done) FROM schemagate_migrations "
						   "WHERE version = '%s'"
						 : "SELECT status || '/' || statements_done FROM schemagate_migrations WHERE version = '%s'",
			      version);
	return row ? row : strdup("(none)");
}

static long failure_events(struct tdb *d, const char *version)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM schemagate_events WHERE event = 'failure' AND version = '%s'",
		 version);
	return tdb_long(d, sql);
}

/* The row is failed after `done` statements, its error names the file
 * and the statement, there is one failure event, and the next `up` asks
 * for a human at once (exit 4) instead of resuming. */
static void expect_recorded_failure(struct tdb *d, const char *file, long done, const char *statement)
{
	char want[32];
	snprintf(want, sizeof(want), "failed/%ld", done);
	char *row = row_of(d, "0001");
	cr_expect_str_eq(row, want, "history row of 0001: %s, expected %s", row, want);
	free(row);
	char *error = tdb_value(d, "SELECT error FROM schemagate_migrations WHERE version = '0001'");
	cr_expect(error && strstr(error, file) && strstr(error, statement), "stored error names neither %s nor %s: %s",
		  file, statement, error ? error : "(none)");
	free(error);
	cr_expect_eq(failure_events(d, "0001"), 1, "the failure event is missing");
	struct sgt_result r;
	int st = run(d, "up", &r);
	cr_expect_eq(st, 4, "the next up exited %d (a failed row needs a repair, not a resume):\n%s", st, r.err);
	cr_expect(strstr(r.err, "repair"), "the next up does not name the repair:\n%s", r.err);
	sgt_result_free(&r);
}

/* ---- case 4: a failure inside the script's own transaction ---------------- */

struct engine_param {
	enum eng eng;
};

ParameterizedTestParameters(outcomes, failure_inside_the_scripts_own_begin_is_recorded)
{
	static struct engine_param p[] = {{ENG_PG}, {ENG_MY}, {ENG_LITE}};
	return cr_make_param_array(struct engine_param, p, sizeof(p) / sizeof(p[0]));
}

ParameterizedTest(struct engine_param *p, outcomes, failure_inside_the_scripts_own_begin_is_recorded, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, p->eng, tdb_server_for(p->eng));
	/* MySQL runs every script statement by statement; the others need
	 * the directive */
	sgt_write(d.mig, "0001_own_txn.up.sql",
		  "-- schemagate:no-transaction\n"
		  "CREATE TABLE c4_kept (id INT);\n"
		  "BEGIN;\n"
		  "INSERT INTO c4_kept VALUES (1);\n"
		  "INSERT INTO c4_missing VALUES (1);\n"
		  "COMMIT;\n");
	struct sgt_result r;
	int st = run(&d, "up", &r);
	cr_expect_eq(st, 1, "up exited %d on %s:\n%s", st, tdb_eng_name(p->eng), r.err);
	sgt_result_free(&r);
	/* the script's transaction was rolled back: its INSERT is gone and
	 * only the CREATE before its BEGIN counts */
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM c4_kept"), 0, "the script's own transaction was not rolled back");
	expect_recorded_failure(&d, "0001_own_txn.up.sql", 1, "statement 4 of 5");
	tdb_drop(&d);
}

/* ---- case 5: a cancel schemagate did not ask for --------------------------- */

/* The database's own statement_timeout cancels a statement of the
 * script: the statement failed (exit 1), recorded; no resume loop. */
Test(outcomes, postgres_statement_timeout_in_a_no_transaction_script_is_a_recorded_failure, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	free(tdb_value(&d, "ALTER DATABASE \"%s\" SET statement_timeout = '700ms'", d.name));
	sgt_write(d.mig, "0001_slow.up.sql",
		  "-- schemagate:no-transaction\n"
		  "CREATE TABLE c5_first (id INT);\n"
		  "SELECT pg_sleep(5);\n"
		  "CREATE TABLE c5_never (id INT);\n");
	struct sgt_result r;
	int st = run(&d, "up", &r);
	cr_expect_eq(st, 1, "up exited %d:\n%s", st, r.err);
	cr_expect(strstr(r.err, "0001_slow.up.sql") && strstr(r.err, "statement 2 of 3"),
		  "the message names neither the file nor the statement:\n%s", r.err);
	sgt_result_free(&r);
	expect_recorded_failure(&d, "0001_slow.up.sql", 1, "statement 2 of 3");
	tdb_drop(&d);
}

/* The session running `like` in d, or NULL. Malloc'd. */
static char *session_running(struct tdb *d, const char *like)
{
	if (d->eng == ENG_PG)
		return tdb_value(d, "SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND query LIKE '%s%%'", d->name,
				 like);
	return tdb_value(d, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '%s' AND INFO LIKE '%s%%'", d->name,
			 like);
}

/* A DBA cancels the running statement (pg_cancel_backend, KILL QUERY):
 * the same. like: how the statement starts. */
static void canceled_by_a_dba(enum eng eng, const char *slow, const char *like)
{
	struct tdb d;
	tdb_create(&d, eng, tdb_server_for(eng));
	char *script = NULL;
	cr_assert(asprintf(&script, "-- schemagate:no-transaction\nCREATE TABLE c5_first (id INT);\n%s\n", slow) > 0);
	sgt_write(d.mig, "0001_slow.up.sql", script);
	free(script);
	char *log = sgt_path(d.dir, "up.log");
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "up", NULL};
	pid_t pid = sgt_spawn(NULL, argv, log);
	char *session = NULL;
	for (double t0 = sgt_now_ms(); !session && sgt_now_ms() - t0 < 30000; sleep_ms(100))
		session = session_running(&d, like);
	cr_assert(session, "the statement never ran");
	if (eng == ENG_PG)
		free(tdb_value(&d, "SELECT pg_cancel_backend(%s)", session));
	else
		free(tdb_value(&d, "KILL QUERY %s", session));
	free(session);
	int st = sgt_wait(pid);
	char *out = sgt_slurp(log);
	cr_expect_eq(st, 1, "up exited %d:\n%s", st, out ? out : "");
	free(out);
	free(log);
	expect_recorded_failure(&d, "0001_slow.up.sql", 1, "statement 2 of 2");
	tdb_drop(&d);
}

Test(outcomes, postgres_pg_cancel_backend_in_a_no_transaction_script_is_a_recorded_failure, .timeout = 120)
{
	canceled_by_a_dba(ENG_PG, "SELECT pg_sleep(60);", "SELECT pg_sleep(60)");
}

Test(outcomes, mariadb_kill_query_in_a_migration_is_a_recorded_failure, .timeout = 120)
{
	/* MySQL runs every script statement by statement; a SLEEP inside DDL
	 * fails with 1317 when killed (a bare SELECT SLEEP returns 1) */
	canceled_by_a_dba(ENG_MY, "CREATE TABLE c5_slow AS SELECT SLEEP(60) AS x;", "CREATE TABLE c5_slow");
}

/* The same cancel in a statement-by-statement down script: the revert
 * failed (exit 1, a failure event), and the row says failed-revert after
 * the down statements that ran, not partial-revert as if schemagate had
 * stopped itself. */
static void revert_canceled_by_a_dba(enum eng eng, const char *slow, const char *like)
{
	struct tdb d;
	tdb_create(&d, eng, tdb_server_for(eng));
	sgt_write(d.mig, "0001_slow.up.sql", "-- schemagate:no-transaction\nCREATE TABLE c5_first (id INT);\n");
	char *script = NULL;
	cr_assert(asprintf(&script, "-- schemagate:no-transaction\nDROP TABLE c5_first;\n%s\n", slow) > 0);
	sgt_write(d.mig, "0001_slow.down.sql", script);
	free(script);
	struct sgt_result r;
	cr_assert_eq(run(&d, "up", &r), 0, "%s", r.err);
	sgt_result_free(&r);
	char *log = sgt_path(d.dir, "down.log");
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "down", "--steps", "1", NULL};
	pid_t pid = sgt_spawn(NULL, argv, log);
	char *session = NULL;
	for (double t0 = sgt_now_ms(); !session && sgt_now_ms() - t0 < 30000; sleep_ms(100))
		session = session_running(&d, like);
	cr_assert(session, "the statement never ran");
	free(tdb_value(&d, eng == ENG_PG ? "SELECT pg_cancel_backend(%s)" : "KILL QUERY %s", session));
	free(session);
	int st = sgt_wait(pid);
	char *out = sgt_slurp(log);
	cr_expect_eq(st, 1, "down exited %d:\n%s", st, out ? out : "");
	free(out);
	free(log);
	char *row = row_of(&d, "0001");
	cr_expect_str_eq(row, "failed-revert/1", "history row of 0001: %s, expected failed-revert/1", row);
	free(row);
	cr_expect_eq(failure_events(&d, "0001"), 1, "the failure event is missing");
	st = tdb_run(&d, NULL, &r, "down", "--steps", "1", NULL);
	cr_expect(st == 4 && strstr(r.err, "failed while reverting"), "the next down exited %d:\n%s", st, r.err);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(outcomes, postgres_pg_cancel_backend_in_a_no_transaction_down_script_is_a_failed_revert, .timeout = 120)
{
	revert_canceled_by_a_dba(ENG_PG, "SELECT pg_sleep(60);", "SELECT pg_sleep(60)");
}

Test(outcomes, mariadb_kill_query_in_a_down_script_is_a_failed_revert, .timeout = 120)
{
	revert_canceled_by_a_dba(ENG_MY, "CREATE TABLE c5_slow AS SELECT SLEEP(60) AS x;", "CREATE TABLE c5_slow");
}

/* ---- case 5: the lock check fails before a statement ------------------------- */

/* The script gives the session lock away (what a pooler moving the
 * session does); the check that commits with the statement fails: the
 * lock is lost, that statement is rolled back, the next one never runs,
 * and the row says so (partial after the first, not failed). A session
 * lock is lost only to something in between that no retry fixes: exit 5,
 * naming --lock=table. */
static void lock_given_away(enum eng eng, const char *give_away, const char *v2_exists, const char *partial)
{
	struct tdb d;
	tdb_create(&d, eng, tdb_server_for(eng));
	char *script = NULL;
	cr_assert(asprintf(&script, "-- schemagate:no-transaction\nCREATE TABLE v1 (id INT);\n%s\nCREATE TABLE v2 (id INT);\n",
			   give_away) > 0);
	sgt_write(d.mig, "0001_unlock.up.sql", script);
	free(script);
	struct sgt_result r;
	int st = run(&d, "up", &r);
	cr_expect_eq(st, 5, "up exited %d:\n%s", st, r.err);
	cr_expect(strstr(r.err, "--lock=table"), "no advice:\n%s", r.err);
	sgt_result_free(&r);
	char *row = row_of(&d, "0001");
	cr_expect_str_eq(row, partial, "history row of 0001: %s, expected %s", row, partial);
	free(row);
	cr_expect_eq(tdb_long(&d, v2_exists), 0, "the statement after the lost lock ran");
	cr_expect_eq(failure_events(&d, "0001"), 0, "a failure was recorded for a statement that never ran");
	tdb_drop(&d);
}

Test(outcomes, postgres_lock_check_failing_in_a_no_transaction_script_leaves_the_row_partial, .timeout = 120)
{
	lock_given_away(ENG_PG, "SELECT pg_advisory_unlock_all();",
			"SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND "
			"table_name = 'v2'", "partial/1");
}

Test(outcomes, mariadb_lock_check_failing_in_a_no_transaction_script_leaves_the_row_partial, .timeout = 120)
{
	lock_given_away(ENG_MY, "SELECT RELEASE_ALL_LOCKS();",
			"SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND "
			"table_name = 'v2'", "partial/1");
}

/* The same when the lock check shares its round trip with the statement
 * and its count (MariaDB, a statement that runs alone): the statement
 * that gave the lock away ran and is counted; the check that goes with
 * the next one stops that round trip before the statement. */
Test(outcomes, mariadb_lock_check_in_the_statements_round_trip_stops_it, .timeout = 120)
{
	lock_given_away(ENG_MY, "CREATE TABLE gone AS SELECT RELEASE_ALL_LOCKS() AS r;",
			"SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND "
			"table_name = 'v2'", "partial/2");
}
