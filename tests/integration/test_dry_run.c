/*
 * test_dry_run.c - see before you change: --dry-run on every writing command
 * and engine prints the plan and leaves the database exactly as it was;
 * baseline refuses what it must; rollback refuses before reverting
 * anything when a down script is missing.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sgdb.h"
#include "sgtest.h"

static void three(struct tdb *d)
{
	sgt_write(d->mig, "0001_a.up.sql", "CREATE TABLE a (id INT);\n");
	sgt_write(d->mig, "0001_a.down.sql", "DROP TABLE a;\n");
	sgt_write(d->mig, "0002_b.up.sql", "CREATE TABLE b (id INT);\n");
	sgt_write(d->mig, "0002_b.down.sql", "DROP TABLE b;\n");
	sgt_write(d->mig, "0003_c.up.sql", "CREATE TABLE c (id INT);\n");
	sgt_write(d->mig, "0003_c.down.sql", "DROP TABLE c;\n");
}

/* The dry run of a command: exit `code`, stdout holding each `expect`,
 * and the database as it was. */
static void dry(struct tdb *d, const char *dir, int code, const char *const *expect, ...)
{
	char *before = tdb_fingerprint(d);
	va_list ap;
	va_start(ap, expect);
	const char *command = va_arg(ap, const char *);
	va_end(ap);
	struct sgt_result r;
	va_start(ap, expect);
	tdb_vrun(d, dir, &r, ap, "--dry-run");
	va_end(ap);
	char *after = tdb_fingerprint(d);
	cr_expect_eq(r.status, code, "%s: exit %d\n%s\n%s", command, r.status, r.out, r.err);
	cr_expect_str_eq(after, before, "%s --dry-run changed the database", command);
	for (const char *const *e = expect; e && *e; e++)
		cr_expect(strstr(r.out, *e), "%s --dry-run: no \"%s\" in\n%s", command, *e, r.out);
	sgt_result_free(&r);
	free(before);
	free(after);
}

static void every_command(enum eng eng, const char *url)
{
	struct tdb d;
	tdb_create(&d, eng, url);
	three(&d);
	/* a fresh database: nothing created */
	dry(&d, NULL, 6, (const char *[]){"would create the history table", "0001", "0003", "apply", NULL}, "up", NULL);
	dry(&d, NULL, 6, (const char *[]){"record as baselined", "0002", NULL}, "baseline", "0002", NULL);
	dry(&d, NULL, 0, (const char *[]){"0 change(s)", NULL}, "down", NULL);
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	/* a migrated database: rows and schema unchanged */
	dry(&d, NULL, 0, (const char *[]){"0 change(s)", NULL}, "up", NULL);
	dry(&d, NULL, 6, (const char *[]){"0003", "revert", "DROP TABLE c", NULL}, "down", "--sql", NULL);
	dry(&d, NULL, 6, (const char *[]){"0002", "0003", "revert", NULL}, "down", "--to", "1", NULL);
	dry(&d, NULL, 0, (const char *[]){"0 change(s)", NULL}, "rollback", NULL);
	dry(&d, NULL, 0, (const char *[]){"0 change(s)", NULL}, "repair", "--accept-checksums", NULL);
	/* an older image's directory: rollback shows the stored down scripts */
	char *old = sgt_path(d.dir, "old");
	cr_assert_eq(mkdir(old, 0755), 0);
	sgt_write(old, "0001_a.up.sql", "CREATE TABLE a (id INT);\n");
	dry(&d, old, 6, (const char *[]){"0003", "0002", "stored in the history table", "DROP TABLE c", "DROP TABLE b",
					 NULL},
	    "rollback", "--sql", NULL);
	/* --json: one document */
	char *before = tdb_fingerprint(&d);
	cr_assert_eq(tdb_run(&d, old, &r, "rollback", "--dry-run", "--json", NULL), 6);
	cr_expect(r.out[0] == '{' && strstr(r.out, "\"dry_run\":true") && strstr(r.out, "\"changes\":2"), "%s", r.out);
	sgt_result_free(&r);
	char *after = tdb_fingerprint(&d);
	cr_expect_str_eq(after, before);
	free(before);
	free(after);
	free(old);
	tdb_drop(&d);
}

Test(dry_run, every_command_on_postgres_changes_nothing, .timeout = 120)
{
	every_command(ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
}

Test(dry_run, every_command_on_mariadb_changes_nothing, .timeout = 120)
{
	every_command(ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
}

Test(dry_run, every_command_on_sqlite_changes_nothing, .timeout = 120)
{
	every_command(ENG_LITE, NULL);
}

/* A repair's dry run says what each choice would do. */
Test(dry_run, repair_choices_are_described, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	sgt_write(d.mig, "0001_x.up.sql", "CREATE TABLE x1 (id INT);\nINSERT INTO nope VALUES (1);\nCREATE TABLE x2 (id INT);\n");
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 1, "%s", r.err);
	sgt_result_free(&r);
	dry(&d, NULL, 6, (const char *[]){"mark applied", NULL}, "repair", "0001", "--applied", NULL);
	dry(&d, NULL, 6, (const char *[]){"delete its row", NULL}, "repair", "0001", "--reverted", NULL);
	dry(&d, NULL, 6, (const char *[]){"count statement 2 as done by hand", "CREATE TABLE x2", NULL}, "repair", "0001",
	    "--resume", "--sql", NULL);
	tdb_drop(&d);
}

/* ---- baseline ------------------------------------------------------------- */

Test(dry_run, baseline_of_a_version_not_in_the_directory_exits_2_and_records_nothing, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	three(&d);
	char *before = tdb_fingerprint(&d);
	struct sgt_result r;
	cr_expect_eq(tdb_run(&d, NULL, &r, "baseline", "0050", NULL), 2, "%s", r.err);
	cr_expect(strstr(r.err, "no version 0050"), "%s", r.err);
	sgt_result_free(&r);
	char *after = tdb_fingerprint(&d);
	cr_expect_str_eq(after, before, "the database was touched");
	free(before);
	free(after);
	tdb_drop(&d);
}

Test(dry_run, baseline_below_applied_versions_exits_2, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	three(&d);
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", "--target", "0002", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_eq(tdb_run(&d, NULL, &r, "down", "--to", "1", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	free(tdb_value(&d, "INSERT INTO schemagate_migrations (version, name, checksum, status) VALUES ('0003', 'c', "
			   "'x', 'applied')"));
	char *before = tdb_fingerprint(&d);
	cr_expect_eq(tdb_run(&d, NULL, &r, "baseline", "0002", NULL), 2, "%s", r.err);
	cr_expect(strstr(r.err, "already has version 0003 applied"), "%s", r.err);
	sgt_result_free(&r);
	char *after = tdb_fingerprint(&d);
	cr_expect_str_eq(after, before);
	free(before);
	free(after);
	tdb_drop(&d);
}

/* up --baseline-version counts only the tables of the history table's
 * schema: a table elsewhere does not make a fresh database "existing". */
Test(dry_run, baseline_version_ignores_tables_in_other_schemas, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	three(&d);
	/* the counter table of the fixture lives in public: move it away */
	free(tdb_value(&d, "CREATE SCHEMA elsewhere"));
	free(tdb_value(&d, "ALTER TABLE applied_log SET SCHEMA elsewhere"));
	struct sgt_result r;
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", "--baseline-version", "0002", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'baselined'"), 0,
		     "migrations recorded as baselined that never ran");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
				  "('a', 'b', 'c')"), 3, "the migrations did not run");
	tdb_drop(&d);
}

/* ---- rollback refuses before reverting anything ----------------------------- */

Test(dry_run, rollback_with_a_missing_down_script_exits_4_and_reverts_nothing, .timeout = 60)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	sgt_write(d.mig, "0001_a.up.sql", "CREATE TABLE a (id INT);\n");
	sgt_write(d.mig, "0002_b.up.sql", "CREATE TABLE b (id INT);\n");   /* no down script */
	sgt_write(d.mig, "0003_c.up.sql", "CREATE TABLE c (id INT);\n");
	sgt_write(d.mig, "0003_c.down.sql", "DROP TABLE c;\n");
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	char *old = sgt_path(d.dir, "old");
	cr_assert_eq(mkdir(old, 0755), 0);
	sgt_write(old, "0001_a.up.sql", "CREATE TABLE a (id INT);\n");
	cr_expect_eq(tdb_run(&d, old, &r, "rollback", NULL), 4, "%s", r.err);
	cr_expect(strstr(r.err, "cannot revert 0002"), "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations"), 3, "something was reverted");
	cr_expect_eq(tdb_long(&d, "SELECT count(*) FROM sqlite_master WHERE name = 'c'"), 1, "0003 was reverted");
	free(old);
	tdb_drop(&d);
}

/* A baseline cannot slide under a newer baseline either: on every engine,
 * baseline 0003 then baseline 0002 exits 2 naming the newer row, and
 * touches nothing. */
Test(dry_run, baseline_below_baselined_versions_exits_2, .timeout = 120)
{
	static const enum eng engines[] = { ENG_PG, ENG_MY, ENG_LITE };
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		struct tdb d;
		tdb_create(&d, engines[i], tdb_server_for(engines[i]));
		three(&d);
		struct sgt_result r;
		cr_assert_eq(tdb_run(&d, NULL, &r, "baseline", "0003", NULL), 0, "%s: %s", tdb_eng_name(d.eng), r.err);
		sgt_result_free(&r);
		char *before = tdb_fingerprint(&d);
		cr_expect_eq(tdb_run(&d, NULL, &r, "baseline", "0002", NULL), 2, "%s: %s", tdb_eng_name(d.eng), r.err);
		cr_expect(strstr(r.err, "already has version 0003 baselined"), "%s: %s", tdb_eng_name(d.eng), r.err);
		sgt_result_free(&r);
		char *after = tdb_fingerprint(&d);
		cr_expect_str_eq(after, before, "%s: the database was touched", tdb_eng_name(d.eng));
		free(before);
		free(after);
		tdb_drop(&d);
	}
}
