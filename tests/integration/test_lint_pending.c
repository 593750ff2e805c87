/*
 * test_lint_pending.c - `lint --pending` and `up --lint` through the built
 * binary against the private PostgreSQL, MariaDB and SQLite: lint reads
 * the history (read only: the database is unchanged) and applies the
 * rules to exactly the versions up would apply; an applied migration's
 * findings are history, not advice. up --lint refuses a pending
 * migration with an error-severity finding (exit 4, nothing applied)
 * until the file ignores it; without --lint up applies it (off by default).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/common.h"
#include "sgdb.h"
#include "sgtest.h"

static void expect(struct tdb *d, struct sgt_result *r, int want, const char *what)
{
	cr_assert_eq(r->status, want, "%s on %s: exit %d, want %d\nstdout: %s\nstderr: %s", what,
		     tdb_eng_name(d->eng), r->status, want, r->out, r->err);
}

/* How many findings of rule the JSON document names for file. */
static int count(const char *json, const char *file, const char *rule)
{
	char file_key[128], rule_key[96];
	snprintf(file_key, sizeof(file_key), "\"file\":\"%s\"", file);
	snprintf(rule_key, sizeof(rule_key), "\"rule\":\"%s\"", rule);
	int n = 0;
	for (const char *p = strstr(json, file_key); p; p = strstr(p + 1, file_key)) {
		const char *end = strchr(p, '}');
		const char *r = strstr(p, rule_key);
		n += r && end && r < end;
	}
	return n;
}

static void run_pending(enum eng eng)
{
	struct tdb d;
	tdb_create(&d, eng, tdb_server_for(eng));
	struct sgt_result r;
	sgt_write(d.mig, "0001_t.up.sql", "CREATE TABLE lp_t (id BIGINT PRIMARY KEY, email TEXT, name TEXT);\n");
	sgt_write(d.mig, "0002_drop_email.up.sql", "ALTER TABLE lp_t DROP COLUMN email;\n");
	sgt_write(d.mig, "0003_rename.up.sql", "ALTER TABLE lp_t RENAME TO lp_u;\n");

	/* nothing applied yet: everything is pending, and lint creates nothing */
	char *before = tdb_fingerprint(&d);
	tdb_run(&d, NULL, &r, "lint", "--pending", "--json", NULL);
	expect(&d, &r, 4, "lint --pending on an empty database");
	cr_expect_eq(count(r.out, "0002_drop_email.up.sql", "ban-drop-column"), 1, "%s", r.out);
	cr_expect_eq(count(r.out, "0003_rename.up.sql", "renaming-table"), 1, "%s", r.out);
	sgt_result_free(&r);
	char *after = tdb_fingerprint(&d);
	cr_expect_str_eq(after, before, "lint --pending changed the database on %s", tdb_eng_name(eng));
	free(before);
	free(after);

	tdb_run(&d, NULL, &r, "up", "--target", "0002", NULL);
	expect(&d, &r, 0, "up --target 0002");
	sgt_result_free(&r);

	/* 0001 and 0002 are history: only 0003 is linted */
	before = tdb_fingerprint(&d);
	tdb_run(&d, NULL, &r, "lint", "--pending", "--json", NULL);
	expect(&d, &r, 4, "lint --pending with 0003 pending");
	cr_expect_eq(count(r.out, "0002_drop_email.up.sql", "ban-drop-column"), 0, "applied 0002 linted: %s", r.out);
	cr_expect_eq(count(r.out, "0003_rename.up.sql", "renaming-table"), 1, "%s", r.out);
	sgt_result_free(&r);
	after = tdb_fingerprint(&d);
	cr_expect_str_eq(after, before, "lint --pending changed the database on %s", tdb_eng_name(eng));
	free(before);
	free(after);

	/* the gate refuses 0003, applies nothing, names the rule */
	tdb_run(&d, NULL, &r, "up", "--lint", NULL);
	expect(&d, &r, 4, "up --lint with a rename pending");
	cr_expect(strstr(r.err, "0003_rename.up.sql:1:1: renaming-table"), "%s", r.err);
	sgt_result_free(&r);
	tdb_run(&d, NULL, &r, "status", "--json", NULL);
	cr_expect(strstr(r.out, "\"pending\"") != NULL, "0003 applied despite the gate: %s", r.out);
	sgt_result_free(&r);

	/* ignored in the file: the gate lets it through, and then nothing is pending */
	sgt_write(d.mig, "0003_rename.up.sql",
		  "-- schemagate:lint-ignore renaming-table (no release reads lp_t any more)\n"
		  "ALTER TABLE lp_t RENAME TO lp_u;\n");
	tdb_run(&d, NULL, &r, "up", "--lint", NULL);
	expect(&d, &r, 0, "up --lint with the rename ignored");
	sgt_result_free(&r);
	tdb_run(&d, NULL, &r, "lint", "--pending", "--json", NULL);
	expect(&d, &r, 0, "lint --pending with nothing pending");
	cr_expect_null(strstr(r.out, "\"rule\":\""), "a rule finding with nothing pending: %s", r.out);
	sgt_result_free(&r);

	/* off by default: up applies an error-severity migration without --lint */
	sgt_write(d.mig, "0004_drop_name.up.sql", "ALTER TABLE lp_u DROP COLUMN name;\n");
	tdb_run(&d, NULL, &r, "up", NULL);
	expect(&d, &r, 0, "up without --lint");
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(lint_pending, lints_exactly_the_pending_versions_postgres) { run_pending(ENG_PG); }
Test(lint_pending, lints_exactly_the_pending_versions_mariadb) { run_pending(ENG_MY); }
Test(lint_pending, lints_exactly_the_pending_versions_sqlite) { run_pending(ENG_LITE); }

/* --pending needs a URL; --since needs a version */
Test(lint_pending, pending_without_a_url_is_a_usage_error)
{
	char *dir = sgt_tempdir();
	sgt_write(dir, "0001_a.up.sql", "SELECT 1;\n");
	struct sgt_result r;
	const char *argv[] = {"lint", "--pending", "--dir", dir, NULL};
	const char *env[] = {NULL};
	sgt_run(&r, env, argv);
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(strstr(r.err, "no database URL"), "%s", r.err);
	sgt_result_free(&r);
	const char *argv2[] = {"lint", "--since", "v3", "--dir", dir, NULL};
	sgt_run(&r, env, argv2);
	cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
	cr_expect(strstr(r.err, "invalid --since 'v3'"), "%s", r.err);
	sgt_result_free(&r);
	sgt_rmrf(dir);
	free(dir);
}
