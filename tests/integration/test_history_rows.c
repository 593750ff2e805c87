/*
 * test_history_rows.c - the history row as a closed state machine (README
 * "The history row"), one test per case of issue 21 on every engine where
 * it applies: a baseline killed half way, a partial row whose file was
 * edited, repair --resume after a failed revert, and repair --resume
 * recording the file it ran (and printing exactly what it runs).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schemagate/migration.h"
#include "sgdb.h"
#include "sgtest.h"

static const enum eng engines[] = {ENG_LITE, ENG_PG, ENG_MY};

static void open_db(struct tdb *d, enum eng eng)
{
	tdb_create(d, eng, tdb_server_for(eng));
}

/* "status/statements_done" of version's row, or "(none)"; malloc'd. */
static char *row_of(struct tdb *d, const char *version)
{
	char *v = tdb_value(d, "SELECT %s FROM schemagate_migrations WHERE version = '%s'",
			    d->eng == ENG_LITE ? "status || '/' || statements_done" : "concat(status, '/', statements_done)",
			    version);
	return v ? v : strdup("(none)");
}

static void expect_row(struct tdb *d, const char *version, const char *want)
{
	char *got = row_of(d, version);
	cr_expect_str_eq(got, want, "%s: the row of %s is %s, expected %s", tdb_eng_name(d->eng), version, got, want);
	free(got);
}

static long tables_named(struct tdb *d, const char *name)
{
	char sql[400];
	if (d->eng == ENG_LITE)
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'", name);
	else if (d->eng == ENG_PG)
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '%s'",
			 name);
	else
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
			 "AND TABLE_NAME = '%s'", name);
	return tdb_long(d, sql);
}

/* The no-transaction directive where the engine runs scripts in one
 * transaction (MySQL runs every script statement by statement anyway). */
static const char *no_tx(void) { return "-- schemagate:no-transaction\n"; }

/* ---- case 1: up --baseline-version killed between the tables and the rows -- */

/*
 * The run that created the history table died before it recorded the
 * baseline: the tables exist, with no row and no event. The next
 * `up --baseline-version` must still baseline, never re-apply 0001 on a
 * database that has it.
 */
static void baseline_after_a_kill(enum eng eng)
{
	struct tdb d;
	open_db(&d, eng);
	free(tdb_value(&d, "CREATE TABLE legacy (id INT)"));
	sgt_write(d.mig, "0001_legacy.up.sql", "CREATE TABLE legacy (id INT);\n");
	sgt_write(d.mig, "0002_next.up.sql", "CREATE TABLE next_one (id INT);\n");
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", "--baseline-version", "0001", "--target", "0001", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	/* what a kill between the CREATE and the baseline rows left */
	free(tdb_value(&d, "DELETE FROM schemagate_migrations"));
	free(tdb_value(&d, "DELETE FROM schemagate_events"));
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", "--baseline-version", "0001", NULL), 0, "%s: %s", tdb_eng_name(eng),
		     r.err);
	sgt_result_free(&r);
	expect_row(&d, "0001", "baselined/0");
	expect_row(&d, "0002", eng == ENG_MY ? "applied/1" : "applied/0");   /* MySQL counts statements */
	cr_expect_eq(tables_named(&d, "next_one"), 1);
	tdb_drop(&d);
}

Test(history_rows, baseline_killed_before_its_rows_is_redone_not_reapplied, .timeout = 120)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		baseline_after_a_kill(engines[i]);
}

/* ---- case 2: a partial row whose file was edited ------------------------- */

/*
 * A no-transaction script stopped after statement 1 leaves a partial row
 * (written here as the killed writer left it). The developer edits the
 * file. The next up must not run the tail of the new file: exit 4 naming
 * the repair, nothing touched. Restoring the file lets it resume.
 */
static void partial_row_and_edited_file(enum eng eng)
{
	struct tdb d;
	open_db(&d, eng);
	char *old = sg_asprintf("%sCREATE TABLE b1 (id INT);\nCREATE TABLE b2 (id INT);\n", no_tx());
	char sum[65];
	sg_checksum(old, strlen(old), sum);
	sgt_write(d.mig, "0000_init.up.sql", "CREATE TABLE init (id INT);\n");
	sgt_write(d.mig, "0001_b.up.sql", old);
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", "--target", "0000", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	free(tdb_value(&d, "CREATE TABLE b1 (id INT)"));
	free(tdb_value(&d, "INSERT INTO schemagate_migrations (version, name, checksum, status, statements_done, "
			   "applied_by, error) VALUES ('0001', 'b', '%s', 'partial', 1, 'gone/1/abcdef', 'next: statement "
			   "2 of 2')", sum));
	sgt_write(d.mig, "0001_b.up.sql", "CREATE TABLE b1 (id INT);\nCREATE TABLE b3 (id INT);\n");
	char *before = tdb_fingerprint(&d);
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", NULL), 4, "%s: %s", tdb_eng_name(eng), r.err);
	cr_expect(strstr(r.err, "file changed") && strstr(r.err, "repair 0001 --applied"), "%s", r.err);
	sgt_result_free(&r);
	char *after = tdb_fingerprint(&d);
	cr_expect_str_eq(after, before, "%s: the refused up changed the database", tdb_eng_name(eng));
	free(before);
	free(after);
	cr_expect_eq(tdb_run(&d, NULL, &r, "verify", NULL), 4, "%s", r.err);
	sgt_result_free(&r);
	/* the file that ran is back: the rest of it runs */
	sgt_write(d.mig, "0001_b.up.sql", old);
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	expect_row(&d, "0001", "applied/2");
	cr_expect_eq(tables_named(&d, "b2"), 1);
	cr_expect_eq(tables_named(&d, "b3"), 0);
	free(old);
	tdb_drop(&d);
}

Test(history_rows, partial_row_with_an_edited_file_is_refused_naming_the_repair, .timeout = 120)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		partial_row_and_edited_file(engines[i]);
}

/* ---- case 3: repair --resume after a failed revert ------------------------ */

/*
 * The down script fails at its second statement: the row is
 * failed-revert (not a failed apply), up names `repair --resume` for the
 * down script, and repair --resume runs the rest of the down script once
 * (its --dry-run --sql shows exactly that), leaving no row.
 */
static void failed_revert_resumed(enum eng eng)
{
	struct tdb d;
	open_db(&d, eng);
	sgt_write(d.mig, "0001_ab.up.sql", "CREATE TABLE a (id INT);\nCREATE TABLE b (id INT);\n");
	char *down = sg_asprintf("%sDROP TABLE b;\nDROP TABLE nope;\nDROP TABLE a;\n", no_tx());
	sgt_write(d.mig, "0001_ab.down.sql", down);
	free(down);
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tdb_run(&d, NULL, &r, "down", "--steps", "1", NULL), 1, "%s", r.err);
	sgt_result_free(&r);
	expect_row(&d, "0001", "failed-revert/1");
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", NULL), 4, "%s", r.err);
	cr_expect(strstr(r.err, "while reverting") && strstr(r.err, "repair 0001 --resume") &&
		  strstr(r.err, "down script"), "%s: the refusal does not name the down script's repair:\n%s",
		  tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	/* exactly the statements after the one done by hand */
	cr_expect_eq(tdb_run(&d, NULL, &r, "repair", "0001", "--resume", "--dry-run", "--sql", NULL), 6, "%s", r.err);
	cr_expect(strstr(r.out, "DROP TABLE a") && !strstr(r.out, "DROP TABLE b") && !strstr(r.out, "nope"),
		  "%s: the dry run shows what it will not run:\n%s", tdb_eng_name(eng), r.out);
	sgt_result_free(&r);
	cr_expect_eq(tdb_run(&d, NULL, &r, "repair", "0001", "--resume", NULL), 0, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	expect_row(&d, "0001", "(none)");
	cr_expect_eq(tables_named(&d, "a"), 0, "%s: the down script was not resumed", tdb_eng_name(eng));
	cr_expect_eq(tables_named(&d, "b"), 0);
	/* and the version applies again from the start */
	cr_expect_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tables_named(&d, "a") + tables_named(&d, "b"), 2);
	tdb_drop(&d);
}

Test(history_rows, repair_resume_after_a_failed_revert_resumes_the_down_script, .timeout = 120)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		failed_revert_resumed(engines[i]);
}

/* ---- case 8: repair --resume records the file it ran ---------------------- */

/*
 * Statement 2 fails; the developer fixes the file and does statement 2 by
 * hand; repair --resume runs statement 3 and records the fixed file's
 * checksum, so verify passes. Its --dry-run --sql printed statement 3 only.
 */
static void resume_records_the_fixed_file(enum eng eng)
{
	struct tdb d;
	open_db(&d, eng);
	char *broken = sg_asprintf("%sCREATE TABLE x1 (id INT);\nINSERT INTO nope VALUES (1);\nCREATE TABLE x2 (id INT);\n",
				   no_tx());
	sgt_write(d.mig, "0001_x.up.sql", broken);
	free(broken);
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 1, "%s", r.err);
	sgt_result_free(&r);
	expect_row(&d, "0001", "failed/1");
	char *fixed = sg_asprintf("%sCREATE TABLE x1 (id INT);\nCREATE TABLE nope (id INT);\nCREATE TABLE x2 (id INT);\n",
				  no_tx());
	sgt_write(d.mig, "0001_x.up.sql", fixed);
	free(tdb_value(&d, "CREATE TABLE nope (id INT)"));
	cr_expect_eq(tdb_run(&d, NULL, &r, "repair", "0001", "--resume", "--dry-run", "--sql", NULL), 6, "%s", r.err);
	cr_expect(strstr(r.out, "CREATE TABLE x2") && !strstr(r.out, "CREATE TABLE x1") && !strstr(r.out, "nope"),
		  "%s: the dry run shows statements it will not run:\n%s", tdb_eng_name(eng), r.out);
	sgt_result_free(&r);
	cr_expect_eq(tdb_run(&d, NULL, &r, "repair", "0001", "--resume", NULL), 0, "%s", r.err);
	sgt_result_free(&r);
	expect_row(&d, "0001", "applied/3");
	char sum[65];
	sg_checksum(fixed, strlen(fixed), sum);
	char *recorded = tdb_value(&d, "SELECT checksum FROM schemagate_migrations WHERE version = '0001'");
	cr_expect(recorded && strcmp(recorded, sum) == 0, "%s: recorded checksum %s, the file has %s", tdb_eng_name(eng),
		  recorded ? recorded : "(none)", sum);
	free(recorded);
	cr_expect_eq(tdb_run(&d, NULL, &r, "verify", NULL), 0, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	free(fixed);
	tdb_drop(&d);
}

Test(history_rows, repair_resume_records_the_checksum_of_the_file_it_ran, .timeout = 120)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		resume_records_the_fixed_file(engines[i]);
}

/* status prints what it sees even when a dirty golang-migrate history
 * keeps it from previewing the adoption (text and JSON), then exits 4. */
Test(history_rows, status_prints_what_it_sees_beside_a_dirty_golang_migrate_history, .timeout = 60)
{
	struct tdb d;
	open_db(&d, ENG_LITE);
	sgt_write(d.mig, "0001_a.up.sql", "CREATE TABLE a (id INT);\n");
	free(tdb_value(&d, "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"));
	free(tdb_value(&d, "INSERT INTO schema_migrations VALUES (1, 1)"));
	struct sgt_result r;
	cr_expect_eq(tdb_run(&d, NULL, &r, "status", NULL), 4, "%s", r.err);
	cr_expect(strstr(r.out, "0001") && strstr(r.out, "pending"), "status printed:\n%s", r.out);
	cr_expect(strstr(r.err, "dirty"), "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(tdb_run(&d, NULL, &r, "status", "--json", NULL), 4, "%s", r.err);
	cr_expect(strstr(r.out, "\"version\":\"0001\""), "status --json printed:\n%s", r.out);
	sgt_result_free(&r);
	tdb_drop(&d);
}

/* ---- case 7: a migration deleted from the middle of the directory --------- */

/*
 * 0003 is applied and then deleted from the directory while 0005, newer,
 * is applied and still there: 0003 is not "a newer release's", it is
 * missing. up, verify and status --check exit 4 naming it; rollback refuses to
 * revert it under 0004 and 0005 (out of order) and touches nothing.
 */
static void deleted_middle_migration(enum eng eng)
{
	struct tdb d;
	open_db(&d, eng);
	static const char *const names[] = {"0001_a", "0002_b", "0003_c", "0004_d", "0005_e"};
	for (size_t i = 0; i < 5; i++) {
		char file[64], sql[96];
		snprintf(file, sizeof(file), "%s.up.sql", names[i]);
		snprintf(sql, sizeof(sql), "CREATE TABLE t%zu (id INT);\n", i + 1);
		sgt_write(d.mig, file, sql);
		snprintf(file, sizeof(file), "%s.down.sql", names[i]);
		snprintf(sql, sizeof(sql), "DROP TABLE t%zu;\n", i + 1);
		sgt_write(d.mig, file, sql);
	}
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	char path[4096];
	snprintf(path, sizeof(path), "%s/0003_c.up.sql", d.mig);
	cr_assert_eq(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/0003_c.down.sql", d.mig);
	cr_assert_eq(unlink(path), 0);
	static const char *const cmds[] = {"up", "verify", "status", "rollback"};
	for (size_t i = 0; i < 4; i++) {
		cr_expect_eq(tdb_run(&d, NULL, &r, cmds[i], i == 2 ? "--check" : NULL, NULL), 4, "%s %s: %s", tdb_eng_name(eng), cmds[i], r.err);
		cr_expect(strstr(r.err, "0003") && strstr(r.err, "missing from the migration directory"), "%s %s: %s",
			  tdb_eng_name(eng), cmds[i], r.err);
		cr_expect(!strstr(r.err, "newer release migrated it"), "%s %s: %s", tdb_eng_name(eng), cmds[i], r.err);
		sgt_result_free(&r);
	}
	expect_row(&d, "0003", eng == ENG_MY ? "applied/1" : "applied/0");
	cr_expect_eq(tables_named(&d, "t3"), 1, "%s: rollback reverted 0003 under 0004 and 0005", tdb_eng_name(eng));
	/* a truly newer release's 0006 stays accepted, and rollback reverts it
	 * (and only it) once 0003 is back */
	sgt_write(d.mig, "0003_c.up.sql", "CREATE TABLE t3 (id INT);\n");
	sgt_write(d.mig, "0003_c.down.sql", "DROP TABLE t3;\n");
	sgt_write(d.mig, "0006_f.up.sql", "CREATE TABLE t6 (id INT);\n");
	sgt_write(d.mig, "0006_f.down.sql", "DROP TABLE t6;\n");
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	snprintf(path, sizeof(path), "%s/0006_f.up.sql", d.mig);
	cr_assert_eq(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/0006_f.down.sql", d.mig);
	cr_assert_eq(unlink(path), 0);
	cr_expect_eq(tdb_run(&d, NULL, &r, "verify", NULL), 0, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	cr_expect_eq(tdb_run(&d, NULL, &r, "verify", "--strict", NULL), 4, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	cr_expect_eq(tdb_run(&d, NULL, &r, "rollback", NULL), 0, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	expect_row(&d, "0006", "(none)");
	cr_expect_eq(tables_named(&d, "t6"), 0);
	cr_expect_eq(tables_named(&d, "t5"), 1);
	tdb_drop(&d);
}

Test(history_rows, a_deleted_middle_migration_is_missing_not_ahead_and_never_rolled_back, .timeout = 120)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		deleted_middle_migration(engines[i]);
}

/* ---- case 6: the name is part of a migration's identity -------------------- */

static void expect_name_refusal(struct tdb *d, struct sgt_result *r, const char *what)
{
	cr_expect(strstr(r->err, "0002") && strstr(r->err, "0002_team_a") && strstr(r->err, "0002_team_b.up.sql") &&
			  strstr(r->err, "another release applied a different migration"),
		  "%s %s: %s", tdb_eng_name(d->eng), what, r->err);
	cr_expect(!strstr(r->err, "if the edit is intended"), "%s %s sends the user to accept-checksums: %s",
		  tdb_eng_name(d->eng), what, r->err);
}

/*
 * Team A's release applied 0002_team_a; team B's directory ships a
 * different 0002_team_b (and then a pure rename of team A's file, same
 * checksum). up, verify, wait and status --check exit 4 naming the
 * version and both names; repair --accept-checksums refuses and leaves
 * the row team A's.
 */
static void two_releases_one_version(enum eng eng)
{
	struct tdb d;
	open_db(&d, eng);
	sgt_write(d.mig, "0001_base.up.sql", "CREATE TABLE base (id INT);\n");
	sgt_write(d.mig, "0002_team_a.up.sql", "CREATE TABLE team_a (id INT);\n");
	struct sgt_result r;
	cr_assert_eq(tdb_run(&d, NULL, &r, "up", NULL), 0, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	char path[4096];
	snprintf(path, sizeof(path), "%s/0002_team_a.up.sql", d.mig);
	cr_assert_eq(unlink(path), 0);
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: another migration; pass 1: the same file, renamed */
		sgt_write(d.mig, "0002_team_b.up.sql",
			  pass == 0 ? "CREATE TABLE team_b (id INT);\n" : "CREATE TABLE team_a (id INT);\n");
		static const char *const cmds[] = {"up", "verify", "wait", "status"};
		for (size_t i = 0; i < 4; i++) {
			cr_expect_eq(tdb_run(&d, NULL, &r, cmds[i], i == 3 ? "--check" : NULL, NULL), 4, "%s %s: %s",
				     tdb_eng_name(eng), cmds[i], r.err);
			expect_name_refusal(&d, &r, cmds[i]);
			if (i == 3)
				cr_expect(strstr(r.out, "0002_team_a") && strstr(r.out, "0002_team_b.up.sql"),
					  "%s status printed:\n%s", tdb_eng_name(eng), r.out);
			sgt_result_free(&r);
		}
		cr_expect_eq(tdb_run(&d, NULL, &r, "repair", "--accept-checksums", NULL), 4, "%s: %s", tdb_eng_name(eng),
			     r.err);
		expect_name_refusal(&d, &r, "repair --accept-checksums");
		sgt_result_free(&r);
		char *name = tdb_value(&d, "SELECT name FROM schemagate_migrations WHERE version = '0002'");
		cr_expect(name && strcmp(name, "team_a") == 0, "%s: the row's name is %s", tdb_eng_name(eng),
			  name ? name : "(none)");
		free(name);
		cr_expect_eq(tables_named(&d, "team_b"), 0);
	}
	/* renaming it back is the way out */
	snprintf(path, sizeof(path), "%s/0002_team_b.up.sql", d.mig);
	cr_assert_eq(unlink(path), 0);
	sgt_write(d.mig, "0002_team_a.up.sql", "CREATE TABLE team_a (id INT);\n");
	cr_expect_eq(tdb_run(&d, NULL, &r, "verify", NULL), 0, "%s: %s", tdb_eng_name(eng), r.err);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(history_rows, a_different_name_under_an_applied_version_is_an_integrity_error, .timeout = 120)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		two_releases_one_version(engines[i]);
}
