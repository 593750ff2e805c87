/*
 * test_messages.c - the lines a user reads (issue 26), each checked whole
 * (after the timestamp) through the built binary: SQLite names the failing
 * statement by number and line, a pre-existing table suggests baseline,
 * a failure is printed once, a dry run with work is no failure, a URL
 * with two passwords is not garbled by its own masking, out of order
 * names the newest applied version (and status marks the row), a refused
 * password holding '#' says how to write it, a mistyped command suggests
 * the nearest, and the README lists the events the binary logs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/common.h"
#include "sgdb.h"
#include "sgtest.h"

/* The lines of text (stderr) holding `what`, each without its timestamp,
 * joined by '\n' (malloc'd; "" when none). */
static char *lines_with(const char *text, const char *what)
{
	struct sg_buf b = {0};
	sg_buf_puts(&b, "");
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		char *line = sg_strndup(p, n);
		if (strstr(line, what)) {
			const char *s = strchr(line, ' ');
			sg_buf_printf(&b, "%s%s", b.len ? "\n" : "", s ? s + 1 : line);
		}
		free(line);
		p += n + (p[n] == '\n');
	}
	return b.data;
}

static void expect_line(const char *text, const char *what, const char *want)
{
	char *got = lines_with(text, what);
	cr_assert_str_eq(got, want, "the %s line(s):\n%s\nin:\n%s", what, got, text);
	free(got);
}

static int count(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

Test(messages, sqlite_names_the_statement_by_number_and_line_not_the_comment)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	sgt_write(d.mig, "0001_a.up.sql", "-- the table\nCREATE TABLE a (x INTEGER);\n\n-- then a bad one\n"
					  "INSERT INTO nope VALUES (1);\n");
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	expect_line(r.err, "ERROR", "ERROR failed: up failed (error=\"applying 0001_a.up.sql: sqlite: no such table: "
				    "nope (statement 2, line 5: INSERT INTO nope VALUES (1);)\")");
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(messages, sqlite_table_already_there_suggests_baseline)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	free(tdb_value(&d, "CREATE TABLE sessions (id TEXT)"));
	sgt_write(d.mig, "0001_sessions.up.sql", "CREATE TABLE sessions (id TEXT);\n");
	sgt_write(d.mig, "0002_more.up.sql", "CREATE TABLE more_t (id TEXT);\n");
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	expect_line(r.err, "ERROR", "ERROR failed: up failed (error=\"applying 0001_sessions.up.sql: sqlite: table "
				    "sessions already exists (in statement: CREATE TABLE sessions (id TEXT);); if the "
				    "database predates schemagate, record what it already holds with `schemagate baseline "
				    "VERSION` (the newest migration whose changes it has), then run up again\")");
	sgt_result_free(&r);
	/* the advice works */
	tdb_run(&d, NULL, &r, "baseline", "1", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations"), 2);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(messages, a_failure_is_printed_once)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	sgt_write(d.mig, "0001_a.up.sql", "INSERT INTO nope VALUES (1);\n");
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_eq(count(r.err, "no such table: nope"), 1, "the error is printed more than once:\n%s", r.err);
	expect_line(r.err, "to \\\"failed\\\"", "");
	expect_line(r.err, "to \"failed\"",
		    "INFO  transition: transition from \"releasing\" to \"failed\": the work or the release failed");
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(messages, a_dry_run_with_work_is_an_answer_not_a_failure)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	sgt_write(d.mig, "0001_a.up.sql", "CREATE TABLE a (x INTEGER);\n");
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "up", "--dry-run", NULL);
	cr_assert_eq(r.status, 6, "%s", r.err);
	cr_assert_null(strstr(r.err, "failed"), "%s", r.err);
	cr_assert_null(strstr(r.err, "error="), "%s", r.err);
	expect_line(r.err, "pending", "INFO  pending: up: dry run: 1 action(s) would be taken; nothing was changed");
	expect_line(r.err, "to \"ready\"", "INFO  transition: transition from \"checking\" to \"ready\": dry run: 1 "
					  "action(s) would be taken; nothing was changed");
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(messages, a_password_given_twice_is_masked_not_garbled)
{
	struct sgt_result r;
	const char *argv[] = {"--database-url", "postgres://u:first-pw@h/db?password=second-pw", "status", NULL};
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 2, "%s", r.err);
	expect_line(r.err, "ERROR", "ERROR usage: --database-url: invalid database URL \"postgres://u:***@h/db?password=***\": "
				    "the password is given twice (in the user info and as the password parameter, or as two "
				    "password parameters); give it once (see schemagate status --help)");
	sgt_result_free(&r);
}

Test(messages, out_of_order_names_the_newest_applied_version)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	sgt_write(d.mig, "0001_a.up.sql", "CREATE TABLE a (x INTEGER);\n");
	sgt_write(d.mig, "0003_c.up.sql", "CREATE TABLE c (x INTEGER);\n");
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sgt_write(d.mig, "0002_b.up.sql", "CREATE TABLE b (x INTEGER);\n");
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 4, "%s", r.err);
	expect_line(r.err, "ERROR", "ERROR failed: up failed (error=\"pending migration 0002_b.up.sql is older than the "
				    "newest applied version 0003; pass --allow-out-of-order to apply it anyway\")");
	sgt_result_free(&r);
	tdb_run(&d, NULL, &r, "status", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	char *row = lines_with(r.out, "0002 ");
	cr_assert(strstr(row, "pending"), "%s", r.out);
	free(row);
	cr_assert(strstr(r.out, "\n                 out of order: older than the newest applied version 0003 "
				"(--allow-out-of-order applies it)\n0003 "), "status does not mark the row:\n%s", r.out);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(messages, a_refused_password_holding_a_hash_says_to_write_it_as_percent_23)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	const char *at = strrchr(d.url, '@');
	const char *scheme_end = strstr(d.url, "://");
	char *url = sg_asprintf("%.*ssg:sg-test#pw%s", (int)(scheme_end + 3 - d.url), d.url, at);
	sgt_write(d.mig, "0001_a.up.sql", "CREATE TABLE a (x INTEGER);\n");
	struct sgt_result r;
	const char *argv[] = {"--database-url", url, "--dir", d.mig, "status", NULL};
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 5, "%s", r.err);
	char *line = lines_with(r.err, "ERROR");
	cr_assert(strstr(line, "28P01 password authentication failed for user \\\"sg\\\" (the password holds '#', "
			       "which starts a URL fragment: anything that read the URL before schemagate may have "
			       "cut it there; write '#' as %23)\")"),
		  "%s", line);
	cr_assert_null(strstr(r.err, "sg-test#pw"), "the password is printed:\n%s", r.err);
	free(line);
	sgt_result_free(&r);
	free(url);
	tdb_drop(&d);
}

Test(messages, a_mistyped_command_suggests_the_nearest)
{
	struct sgt_result r;
	const char *argv[] = {"stauts", NULL};
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 2, "%s", r.err);
	expect_line(r.err, "ERROR", "ERROR usage: unknown command 'stauts' (did you mean 'status'?) (see schemagate --help)");
	sgt_result_free(&r);
}

/* The README's table of log events names the ones serve, events and
 * --create-database log. */
Test(messages, readme_lists_serve_and_new_events)
{
	char *readme = sgt_slurp(SG_SOURCE_DIR "/README.md");
	cr_assert(readme);
	const char *events[] = {"`listening`", "`serving`", "`stopped`", "`no_events`", "`database_created`",
				"`database_exists`"};
	const char *table = strstr(readme, "**Events:**");
	cr_assert(table, "no events table");
	const char *end = strstr(table, "**Termination log.**");
	cr_assert(end);
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		const char *hit = strstr(table, events[i]);
		cr_assert(hit && hit < end, "%s is not in the README's events table", events[i]);
	}
	free(readme);
}
