/*
 * test_repeatable.c - repeatable migrations (R__NAME.sql, issue 26)
 * through the built binary against the private PostgreSQL, MariaDB and
 * SQLite: created, unchanged (not run again), changed (run exactly once
 * by 20 instances at once), failing (exit 1, the row keeps the previous
 * text, a failure event; nothing half-done where DDL is transactional),
 * `down` leaves them alone, and the old image's `rollback` brings back the
 * old image's definition (checked in the database's own catalog).
 *
 * Every text of the view INSERTs a row naming itself into rep_log, a
 * table with no key: a text that ran twice shows up as a second row.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "schemagate/common.h"
#include "schemagate/migration.h"
#include "sgdb.h"
#include "sgtest.h"

#define FLEET 20

static void expect(struct tdb *d, struct sgt_result *r, int want, const char *what)
{
	cr_assert_eq(r->status, want, "%s on %s: exit %d, want %d\nstdout: %s\nstderr: %s", what,
		     tdb_eng_name(d->eng), r->status, want, r->out, r->err);
}

static void run_ok(struct tdb *d, const char *dir, int want, const char *what, const char *a1, const char *a2)
{
	struct sgt_result r;
	tdb_run(d, dir, &r, a1, a2, NULL);
	expect(d, &r, want, what);
	sgt_result_free(&r);
}

/* The view's text number `tag`: `cols` columns of rt, and its rep_log row;
 * `tail` (may be "") after it. */
static char *view_text(const char *tag, const char *cols, const char *tail)
{
	return sg_asprintf("DROP VIEW IF EXISTS rv;\nCREATE VIEW rv AS SELECT %s FROM rt;\n"
			   "INSERT INTO rep_log (v) VALUES ('%s');\n%s", cols, tag, tail);
}

static void write_view(const char *dir, const char *tag, const char *cols, const char *tail)
{
	char *text = view_text(tag, cols, tail);
	sgt_write(dir, "R__rv.sql", text);
	free(text);
}

static char *checksum_of(const char *tag, const char *cols, const char *tail)
{
	char *text = view_text(tag, cols, tail);
	char sum[65];
	sg_checksum(text, strlen(text), sum);
	free(text);
	return sg_strdup(sum);
}

/* The view's columns, as the database's catalog has them. */
static long view_columns(struct tdb *d)
{
	if (d->eng == ENG_LITE)
		return tdb_long(d, "SELECT count(*) FROM pragma_table_info('rv')");
	if (d->eng == ENG_MY)
		return tdb_long(d, "SELECT count(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
				   "AND table_name = 'rv'");
	return tdb_long(d, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND "
			   "table_name = 'rv'");
}

static long ran(struct tdb *d, const char *tag)
{
	char *v = tdb_value(d, "SELECT count(*) FROM rep_log WHERE v = '%s'", tag);
	long n = v ? atol(v) : -1;
	free(v);
	return n;
}

static long events_of(struct tdb *d, const char *event)
{
	char *v = tdb_value(d, "SELECT count(*) FROM schemagate_events WHERE version = 'R__rv' AND event = '%s'", event);
	long n = v ? atol(v) : -1;
	free(v);
	return n;
}

static void expect_row(struct tdb *d, const char *checksum, const char *when)
{
	char *status = tdb_value(d, "SELECT status FROM schemagate_migrations WHERE version = 'R__rv'");
	char *sum = tdb_value(d, "SELECT checksum FROM schemagate_migrations WHERE version = 'R__rv'");
	cr_assert(status && strcmp(status, "repeatable") == 0, "%s, %s: row status %s", tdb_eng_name(d->eng), when,
		  status ? status : "(no row)");
	cr_assert(sum && strcmp(sum, checksum) == 0, "%s, %s: row checksum %s, want %s", tdb_eng_name(d->eng), when,
		  sum ? sum : "(none)", checksum);
	free(status);
	free(sum);
}

static void run_repeatable(enum eng eng)
{
	struct tdb d;
	tdb_create(&d, eng, tdb_server_for(eng));
	const char *name = tdb_eng_name(eng);
	sgt_write(d.mig, "0001_t.up.sql", "CREATE TABLE rt (a INTEGER, b INTEGER);\n"
					  "CREATE TABLE rep_log (v VARCHAR(10));\n");
	sgt_write(d.mig, "0001_t.down.sql", "DROP TABLE rep_log;\nDROP TABLE rt;\n");
	/* the old image: 0001 and the view's first text */
	char *old = sgt_path(d.dir, "old");
	cr_assert_eq(mkdir(old, 0755), 0);
	sgt_write(old, "0001_t.up.sql", "CREATE TABLE rt (a INTEGER, b INTEGER);\nCREATE TABLE rep_log (v VARCHAR(10));\n");
	sgt_write(old, "0001_t.down.sql", "DROP TABLE rep_log;\nDROP TABLE rt;\n");
	write_view(old, "v1", "a", "");

	/* created: after the versioned migration it needs */
	write_view(d.mig, "v1", "a", "");
	run_ok(&d, NULL, 0, "up (created)", "up", NULL);
	char *v1 = checksum_of("v1", "a", "");
	expect_row(&d, v1, "created");
	cr_assert_eq(view_columns(&d), 1, "%s: the view has %ld columns", name, view_columns(&d));
	cr_assert_eq(ran(&d, "v1"), 1, "%s", name);
	cr_assert_eq(events_of(&d, "apply"), 1, "%s", name);

	/* unchanged: not run again */
	run_ok(&d, NULL, 0, "up (unchanged)", "up", NULL);
	cr_assert_eq(ran(&d, "v1"), 1, "%s: the unchanged text ran again", name);
	cr_assert_eq(events_of(&d, "apply"), 1, "%s", name);

	/* changed: pending for verify and status, not an integrity error */
	write_view(d.mig, "v2", "a, b", "");
	char *v2 = checksum_of("v2", "a, b", "");
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "verify", NULL);
	expect(&d, &r, 6, "verify with a changed repeatable");
	sgt_result_free(&r);
	tdb_run(&d, NULL, &r, "status", NULL);
	expect(&d, &r, 0, "status");
	cr_assert(strstr(r.out, "R__rv            reapply        rv"), "%s: status:\n%s", name, r.out);
	char *line = sg_asprintf("changed: checksum recorded %s, file has %s; the next up re-applies it", v1, v2);
	cr_assert(strstr(r.out, line), "%s: status:\n%s", name, r.out);
	cr_assert(strstr(r.out, "; 1 repeatable (1 to apply)"), "%s: status:\n%s", name, r.out);
	free(line);
	sgt_result_free(&r);
	tdb_run(&d, NULL, &r, "status", "--json", NULL);
	expect(&d, &r, 0, "status --json");
	cr_assert(strstr(r.out, "\"repeatables\":[{\"version\":\"R__rv\",\"name\":\"rv\",\"state\":\"reapply\","
				"\"file\":\"R__rv.sql\",\"status\":\"repeatable\""), "%s: status --json:\n%s", name, r.out);
	sgt_result_free(&r);

	/* ... run exactly once by 20 instances at once */
	struct fleet f = {0};
	for (int i = 0; i < FLEET; i++)
		fleet_add(&f, &d, "rep", NULL);
	fleet_wait(&f, 300000);
	int failures = fleet_failures(&f, 3);
	fleet_free(&f);
	cr_assert_eq(failures, 0, "%s: %d of %d instances failed", name, failures, FLEET);
	cr_assert_eq(ran(&d, "v2"), 1, "%s: the changed text ran %ld times", name, ran(&d, "v2"));
	cr_assert_eq(events_of(&d, "apply"), 2, "%s: %ld apply events", name, events_of(&d, "apply"));
	cr_assert_eq(view_columns(&d), 2, "%s", name);
	expect_row(&d, v2, "changed");
	tdb_run(&d, NULL, &r, "status", "--json", NULL);
	cr_assert(strstr(r.out, "\"state\":\"applied\",\"file\":\"R__rv.sql\""), "%s: %s", name, r.out);
	sgt_result_free(&r);

	/* failing: exit 1, a failure event, the row keeps the previous text */
	write_view(d.mig, "v3", "a, b, a AS c", "INSERT INTO no_such_table VALUES (1);\n");
	tdb_run(&d, NULL, &r, "up", NULL);
	expect(&d, &r, 1, "up with a failing repeatable");
	cr_assert(strstr(r.err, "applying R__rv.sql") && strstr(r.err, "no_such_table"), "%s: %s", name, r.err);
	sgt_result_free(&r);
	cr_assert_eq(events_of(&d, "failure"), 1, "%s", name);
	tdb_run(&d, NULL, &r, "events", "--version", "R__rv", "--json", NULL);
	expect(&d, &r, 0, "events --version R__rv");
	cr_assert(strstr(r.out, "\"event\":\"failure\",\"version\":\"R__rv\",\"outcome\":\"failed\"") &&
		  !strstr(r.out, "\"version\":\"0001\""), "%s: events --version R__rv:\n%s", name, r.out);
	sgt_result_free(&r);
	expect_row(&d, v2, "after the failure");
	if (eng == ENG_MY) {
		/* MariaDB commits DDL at once: the new view stayed; the row
		 * still names v2, so the next up runs the whole file again */
		cr_assert_eq(view_columns(&d), 3, "%s", name);
	} else {
		/* nothing half-done: the view and rep_log rolled back with it */
		cr_assert_eq(view_columns(&d), 2, "%s: the failed text left the view changed", name);
		cr_assert_eq(ran(&d, "v3"), 0, "%s", name);
	}
	/* fixed: it runs again, whole */
	write_view(d.mig, "v3", "a, b, a AS c", "");
	char *v3 = checksum_of("v3", "a, b, a AS c", "");
	run_ok(&d, NULL, 0, "up after the fix", "up", NULL);
	expect_row(&d, v3, "fixed");
	cr_assert_eq(view_columns(&d), 3, "%s", name);

	/* a new release's versioned migration; down reverts it and never
	 * touches the repeatable */
	sgt_write(d.mig, "R__zz.sql", "DROP VIEW IF EXISTS rz;\nCREATE VIEW rz AS SELECT a FROM rt;\n");
	sgt_write(d.mig, "0002_u.up.sql", "CREATE TABLE rt2 (x INTEGER);\n");
	sgt_write(d.mig, "0002_u.down.sql", "DROP TABLE rt2;\n");
	run_ok(&d, NULL, 0, "up 0002", "up", NULL);
	run_ok(&d, NULL, 0, "down", "down", NULL);
	expect_row(&d, v3, "after down");
	cr_assert_eq(view_columns(&d), 3, "%s: down changed the view", name);
	long v3_runs = ran(&d, "v3");
	run_ok(&d, NULL, 0, "up 0002 again", "up", NULL);
	cr_assert_eq(ran(&d, "v3"), v3_runs, "%s: up after down ran the unchanged view again", name);

	/* the old image's rollback: 0002 reverted with its stored down
	 * script, then the old image's own text of the view comes back */
	run_ok(&d, old, 0, "rollback (old image)", "rollback", NULL);
	cr_assert_eq(view_columns(&d), 1, "%s: rollback left the view with %ld columns", name, view_columns(&d));
	expect_row(&d, v1, "after rollback");
	cr_assert_eq(ran(&d, "v1"), 2, "%s", name);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE version = '0002'"), 0, "%s", name);
	run_ok(&d, old, 0, "verify (old image)", "verify", NULL);
	/* a repeatable the old image does not have stays, row and all */
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE version = 'R__zz'"), 1, "%s", name);
	tdb_run(&d, old, &r, "status", "--json", NULL);
	expect(&d, &r, 0, "status (old image)");
	cr_assert(strstr(r.out, "{\"version\":\"R__zz\",\"name\":\"zz\",\"state\":\"unknown\",\"file\":null"),
		  "%s: %s", name, r.out);
	sgt_result_free(&r);
	/* and forward again */
	run_ok(&d, NULL, 0, "up (new image again)", "up", NULL);
	cr_assert_eq(view_columns(&d), 3, "%s", name);
	expect_row(&d, v3, "forward again");

	free(v1);
	free(v2);
	free(v3);
	free(old);
	tdb_drop(&d);
}

Test(repeatable, created_unchanged_changed_by_20_failing_rollback_postgres, .timeout = 600) { run_repeatable(ENG_PG); }
Test(repeatable, created_unchanged_changed_by_20_failing_rollback_mariadb, .timeout = 600) { run_repeatable(ENG_MY); }
Test(repeatable, created_unchanged_changed_by_20_failing_rollback_sqlite, .timeout = 600) { run_repeatable(ENG_LITE); }
