/*
 * test_adopt.c - adopting the history table of golang-migrate, dbmate,
 * pop/popx and goose (SPEC section 4, issue 10), on PostgreSQL, MariaDB
 * and SQLite through the built binary.
 *
 * Each test builds the database a tool would have left: its own history
 * table, created with the tool's own DDL and holding the rows the tool
 * writes, and the tables of the migrations it ran, each of which also put
 * a row into applied_log (no key: a migration run twice shows up twice).
 * `up` must then apply only the rest, exactly once, record the adopted
 * versions as baselined and audit them, and never touch the foreign table.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sgdb.h"
#include "sgtest.h"

/* Run SQL statements in order (tdb_value runs one each). */
static void exec_all(struct tdb *d, const char *const *sql)
{
	for (; *sql; sql++)
		free(tdb_value(d, "%s", *sql));
}

/* 0001..0004: each creates tN and records itself in applied_log. */
static void four_migrations(struct tdb *d)
{
	for (int i = 1; i <= 4; i++) {
		char name[64], up[160], down[64];
		snprintf(name, sizeof(name), "%04d_t%d.up.sql", i, i);
		snprintf(up, sizeof(up), "CREATE TABLE t%d (a INTEGER);\nINSERT INTO applied_log (v) VALUES ('%04d');\n", i, i);
		sgt_write(d->mig, name, up);
		snprintf(name, sizeof(name), "%04d_t%d.down.sql", i, i);
		snprintf(down, sizeof(down), "DROP TABLE t%d;\n", i);
		sgt_write(d->mig, name, down);
	}
}

/* What the tool did before: migrations 1 and 2 ran. */
static void tool_ran_two(struct tdb *d)
{
	exec_all(d, (const char *[]){"CREATE TABLE t1 (a INTEGER)", "INSERT INTO applied_log (v) VALUES ('0001')",
				     "CREATE TABLE t2 (a INTEGER)", "INSERT INTO applied_log (v) VALUES ('0002')", NULL});
}

/* ---- each tool's history table, as the tool creates and fills it ---------- */

static void golang_migrate_table(struct tdb *d, const char *version, bool dirty)
{
	/* golang-migrate's postgres, mysql and sqlite3 drivers (ensureVersionTable, SetVersion) */
	if (d->eng == ENG_PG)
		free(tdb_value(d, "CREATE TABLE IF NOT EXISTS \"schema_migrations\" (version bigint not null primary key, "
				  "dirty boolean not null)"));
	else if (d->eng == ENG_MY)
		free(tdb_value(d, "CREATE TABLE `schema_migrations` (version bigint not null primary key, dirty boolean not "
				  "null)"));
	else
		exec_all(d, (const char *[]){"CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool)",
					     "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)",
					     NULL});
	free(tdb_value(d, "INSERT INTO schema_migrations (version, dirty) VALUES (%s, %s)", version,
		       dirty ? "TRUE" : "FALSE"));
}

static void dbmate_table(struct tdb *d, const char *const *versions)
{
	/* dbmate's CreateMigrationsTable: the same on its postgres, mysql and sqlite drivers */
	free(tdb_value(d, "%s", d->eng == ENG_PG ? "create table if not exists public.schema_migrations (version "
						   "varchar(128) primary key)"
						 : "create table if not exists schema_migrations (version varchar(128) "
						   "primary key)"));
	for (; *versions; versions++)
		free(tdb_value(d, "insert into schema_migrations (version) values ('%s')", *versions));
}

static void pop_table(struct tdb *d, const char *const *versions)
{
	/* popx's createTransactionalMigrationTable */
	exec_all(d, (const char *[]){"CREATE TABLE schema_migration (version VARCHAR (48) NOT NULL, version_self INT NOT "
				     "NULL DEFAULT 0)",
				     "CREATE UNIQUE INDEX schema_migration_version_idx ON schema_migration (version)",
				     "CREATE INDEX schema_migration_version_self_idx ON schema_migration (version_self)",
				     NULL});
	for (; *versions; versions++)
		free(tdb_value(d, "INSERT INTO schema_migration (version) VALUES ('%s')", *versions));
}

static void goose_table(struct tdb *d, const char *const *rows)
{
	/* goose's dialectquery CreateTable, then InsertVersion(0, true) as goose does first */
	if (d->eng == ENG_LITE)
		free(tdb_value(d, "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER "
				  "NOT NULL, is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')))"));
	else
		free(tdb_value(d, "CREATE TABLE goose_db_version (id serial NOT NULL, version_id bigint NOT NULL, "
				  "is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id))"));
	free(tdb_value(d, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, TRUE)"));
	/* "V:1" applied, "V:0" rolled back (goose before v3.16 inserted a row for each down) */
	for (; *rows; rows++) {
		char v[32];
		snprintf(v, sizeof(v), "%.*s", (int)strcspn(*rows, ":"), *rows);
		free(tdb_value(d, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (%s, %s)", v,
			       strchr(*rows, ':')[1] == '1' ? "TRUE" : "FALSE"));
	}
}

/* The foreign table's content, to prove it was never changed. */
static char *dump(struct tdb *d, const char *table, const char *col1, const char *col2)
{
	char *v;
	if (d->eng == ENG_PG)
		v = tdb_value(d, "SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT concat_ws(',', %s, %s) x FROM %s) s",
			      col1, col2 ? col2 : "''", table);
	else if (d->eng == ENG_MY)
		v = tdb_value(d, "SELECT GROUP_CONCAT(x ORDER BY x SEPARATOR ';') FROM (SELECT CONCAT_WS(',', %s, %s) x "
				 "FROM %s) s", col1, col2 ? col2 : "''", table);
	else
		v = tdb_value(d, "SELECT group_concat(x, ';') FROM (SELECT %s || ',' || %s x FROM %s ORDER BY 1)", col1,
			      col2 ? col2 : "''", table);
	return v ? v : strdup("");
}

static void sg(struct sgt_result *r, struct tdb *d, const char *const *args)
{
	const char *argv[20] = {"--database-url", d->url, "--dir", d->mig};
	int k = 4;
	for (; *args && k < 19; args++)
		argv[k++] = *args;
	argv[k] = NULL;
	sgt_run(r, NULL, argv);
}
#define SG(r, d, ...) sg((r), (d), (const char *[]){__VA_ARGS__, NULL})

/*
 * The database a tool left (migrations 1 and 2 ran): read-only commands
 * see the adoption without writing; `up` adopts 1 and 2 and applies 3 and
 * 4 exactly once; a second `up` changes nothing; the foreign table is as
 * it was.
 */
static void adopt_then_up(struct tdb *d, const char *table, const char *col1, const char *col2, const char *tool)
{
	char *before = dump(d, table, col1, col2);
	struct sgt_result r;

	SG(&r, d, "status", "--json");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"version\":\"0002\",\"name\":\"t2\",\"state\":\"applied\"") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "\"version\":\"0003\",\"name\":\"t3\",\"state\":\"pending\"") != NULL, "%s", r.out);
	sgt_result_free(&r);
	SG(&r, d, "verify");
	cr_assert_eq(r.status, 6, "verify sees 2 pending: %s", r.err);
	sgt_result_free(&r);
	cr_assert_not(tdb_has_schemagate_tables(d), "%s: a read-only command wrote", tool);

	SG(&r, d, "up");
	cr_assert_eq(r.status, 0, "%s on %s: %s", tool, tdb_eng_name(d->eng), r.err);
	char adopted[96];
	snprintf(adopted, sizeof(adopted), "adopted 2 versions from %s's %s", tool, table);
	cr_assert(strstr(r.err, adopted) != NULL, "%s", r.err);
	sgt_result_free(&r);
	SG(&r, d, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);

	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM applied_log"), 4, "%s: a migration ran twice or not at all", tool);
	cr_assert_eq(tdb_long(d, "SELECT count(DISTINCT v) FROM applied_log"), 4);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'baselined' AND version IN "
				 "('0001', '0002')"), 2);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied' AND version IN "
				 "('0003', '0004')"), 2);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations"), 4);
	char *sum = tdb_value(d, "SELECT count(*) FROM schemagate_events WHERE event = 'adopt' AND outcome = 'baselined' "
				 "AND detail LIKE '%s%%'", tool);
	cr_assert_str_eq(sum, "2", "%s: adopt events", tool);
	free(sum);
	SG(&r, d, "verify");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *after = dump(d, table, col1, col2);
	cr_assert_str_eq(after, before, "%s's table changed", tool);
	free(before);
	free(after);
	/* the adopted versions revert like baselined ones, with the directory's down scripts */
	SG(&r, d, "down", "--to", "0");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations"), 0);
}

static void golang_migrate(enum eng e)
{
	struct tdb d;
	tdb_create(&d, e, tdb_server_for(e));
	four_migrations(&d);
	tool_ran_two(&d);
	golang_migrate_table(&d, "2", false);
	adopt_then_up(&d, "schema_migrations", "version", "dirty", "golang-migrate");
	tdb_drop(&d);
}

Test(adopt, golang_migrate_on_postgres) { golang_migrate(ENG_PG); }
Test(adopt, golang_migrate_on_mariadb) { golang_migrate(ENG_MY); }
Test(adopt, golang_migrate_on_sqlite) { golang_migrate(ENG_LITE); }

static void dbmate(enum eng e)
{
	struct tdb d;
	tdb_create(&d, e, tdb_server_for(e));
	four_migrations(&d);
	tool_ran_two(&d);
	dbmate_table(&d, (const char *[]){"0001", "0002", NULL});
	adopt_then_up(&d, "schema_migrations", "version", NULL, "dbmate");
	tdb_drop(&d);
}

Test(adopt, dbmate_on_postgres) { dbmate(ENG_PG); }
Test(adopt, dbmate_on_mariadb) { dbmate(ENG_MY); }
Test(adopt, dbmate_on_sqlite) { dbmate(ENG_LITE); }

static void pop(enum eng e)
{
	struct tdb d;
	tdb_create(&d, e, tdb_server_for(e));
	four_migrations(&d);
	tool_ran_two(&d);
	pop_table(&d, (const char *[]){"0001", "0002", NULL});
	adopt_then_up(&d, "schema_migration", "version", NULL, "pop");
	tdb_drop(&d);
}

Test(adopt, pop_on_postgres) { pop(ENG_PG); }
Test(adopt, pop_on_mariadb) { pop(ENG_MY); }
Test(adopt, pop_on_sqlite) { pop(ENG_LITE); }

static void goose(enum eng e)
{
	struct tdb d;
	tdb_create(&d, e, tdb_server_for(e));
	four_migrations(&d);
	tool_ran_two(&d);
	/* 3 was applied and rolled back again: its latest row decides */
	goose_table(&d, (const char *[]){"1:1", "2:1", "3:1", "3:0", NULL});
	adopt_then_up(&d, "goose_db_version", "version_id", "is_applied", "goose");
	tdb_drop(&d);
}

Test(adopt, goose_on_postgres) { goose(ENG_PG); }
Test(adopt, goose_on_mariadb) { goose(ENG_MY); }
Test(adopt, goose_on_sqlite) { goose(ENG_LITE); }

/* ---- refusals ---------------------------------------------------------------- */

static void dirty(enum eng e)
{
	struct tdb d;
	tdb_create(&d, e, tdb_server_for(e));
	four_migrations(&d);
	tool_ran_two(&d);
	golang_migrate_table(&d, "2", true);
	char *before = dump(&d, "schema_migrations", "version", "dirty");
	const char *cmds[] = {"up", "status", "verify"};
	for (size_t i = 0; i < 3; i++) {
		struct sgt_result r;
		SG(&r, &d, cmds[i]);
		cr_assert_eq(r.status, 4, "%s on %s: %s", cmds[i], tdb_eng_name(e), r.err);
		cr_assert(strstr(r.err, "golang-migrate's schema_migrations says version 2 is dirty") != NULL, "%s", r.err);
		sgt_result_free(&r);
	}
	cr_assert_not(tdb_has_schemagate_tables(&d), "nothing may change");
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 2);
	char *after = dump(&d, "schema_migrations", "version", "dirty");
	cr_assert_str_eq(after, before);
	free(before);
	free(after);
	tdb_drop(&d);
}

Test(adopt, dirty_golang_migrate_exits_4_and_changes_nothing_on_postgres) { dirty(ENG_PG); }
Test(adopt, dirty_golang_migrate_exits_4_and_changes_nothing_on_mariadb) { dirty(ENG_MY); }
Test(adopt, dirty_golang_migrate_exits_4_and_changes_nothing_on_sqlite) { dirty(ENG_LITE); }

Test(adopt, two_candidates_under_auto_exit_2_until_one_is_chosen)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	four_migrations(&d);
	tool_ran_two(&d);
	golang_migrate_table(&d, "2", false);
	goose_table(&d, (const char *[]){"1:1", NULL});
	struct sgt_result r;
	SG(&r, &d, "up");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "golang-migrate's schema_migrations and goose's goose_db_version") &&
		  strstr(r.err, "--adopt=golang-migrate or --adopt=goose"), "%s", r.err);
	sgt_result_free(&r);
	cr_assert_not(tdb_has_schemagate_tables(&d));
	const char *env[] = {"SCHEMAGATE_ADOPT=golang-migrate", NULL};
	const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "up", NULL};
	sgt_run(&r, env, argv);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 4);
	tdb_drop(&d);
}

Test(adopt, explicit_tool_with_the_wrong_table_shape_exits_2)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	four_migrations(&d);
	golang_migrate_table(&d, "2", false);
	struct sgt_result r;
	SG(&r, &d, "--adopt", "dbmate", "status");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "has golang-migrate's dirty column") != NULL, "%s", r.err);
	sgt_result_free(&r);
	SG(&r, &d, "--adopt", "goose", "status");
	cr_assert_eq(r.status, 0, "no goose table: nothing to adopt: %s", r.err);
	cr_assert(strstr(r.out, "0 applied, 4 pending") != NULL, "%s", r.out);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(adopt, none_leaves_the_other_history_alone)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	four_migrations(&d);
	dbmate_table(&d, (const char *[]){"0001", "0002", NULL});   /* a stale table: nothing ran */
	struct sgt_result r;
	SG(&r, &d, "--adopt", "none", "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 4);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events WHERE event = 'adopt'"), 0);
	tdb_drop(&d);
}

/* ---- versions the directory lacks; concurrency; a cut-short adoption --------- */

Test(adopt, versions_the_directory_lacks_follow_the_database_ahead_rule)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	four_migrations(&d);
	tool_ran_two(&d);
	exec_all(&d, (const char *[]){"CREATE TABLE t3 (a INTEGER)", "INSERT INTO applied_log (v) VALUES ('0003')",
				      "CREATE TABLE t4 (a INTEGER)", "INSERT INTO applied_log (v) VALUES ('0004')", NULL});
	/* a newer release's dbmate ran 0005, which this image does not have */
	dbmate_table(&d, (const char *[]){"0001", "0002", "0003", "0004", "0005", NULL});
	struct sgt_result r;
	SG(&r, &d, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "adopted 5 versions") && strstr(r.err, "database_ahead"), "%s", r.err);
	sgt_result_free(&r);
	SG(&r, &d, "--strict", "verify");
	cr_assert_eq(r.status, 4, "%s", r.err);
	sgt_result_free(&r);
	/* the newer image brings 0005: the adopted row matches it */
	sgt_write(d.mig, "0005_t5.up.sql", "CREATE TABLE t5 (a INTEGER);\nINSERT INTO applied_log (v) VALUES ('0005');\n");
	SG(&r, &d, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	SG(&r, &d, "--strict", "verify");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 4, "0005 must not run: dbmate ran it");
	tdb_drop(&d);
}

Test(adopt, many_instances_adopt_once)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	four_migrations(&d);
	tool_ran_two(&d);
	golang_migrate_table(&d, "2", false);
	pid_t pids[8];
	for (int i = 0; i < 8; i++) {
		const char *argv[] = {"--database-url", d.url, "--dir", d.mig, "--poll-interval", "100ms", "up", NULL};
		pids[i] = sgt_spawn(NULL, argv, NULL);
	}
	for (int i = 0; i < 8; i++)
		cr_assert_eq(sgt_wait(pids[i]), 0, "instance %d", i);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 4);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events WHERE event = 'adopt'"), 2);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations"), 4);
	tdb_drop(&d);
}

Test(adopt, an_empty_history_without_events_is_adopted_one_with_events_is_not)
{
	/* MySQL commits CREATE TABLE on its own: a kill right after it leaves
	 * the history table empty, and the next run must still adopt */
	struct tdb d;
	tdb_create(&d, ENG_MY, tdb_server_for(ENG_MY));
	four_migrations(&d);
	tool_ran_two(&d);
	dbmate_table(&d, (const char *[]){"0001", "0002", NULL});
	struct sgt_result r;
	SG(&r, &d, "--adopt", "none", "baseline", "0001");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	/* the tables exist; take the row and the event away: "created, then nothing" */
	exec_all(&d, (const char *[]){"DELETE FROM schemagate_migrations", "DELETE FROM schemagate_events", NULL});
	SG(&r, &d, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "adopted 2 versions from dbmate") != NULL, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 4);
	/* after down --to 0 the history is empty again, but it has events: no second adoption */
	SG(&r, &d, "down", "--to", "0");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	SG(&r, &d, "status");
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "0 applied, 4 pending") != NULL, "%s", r.out);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(adopt, popx_legacy_fourteen_digit_versions)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	sgt_write(d.mig, "20230101000000000001_a.up.sql", "INSERT INTO applied_log (v) VALUES ('a');\n");
	sgt_write(d.mig, "20230102000000000001_b.up.sql", "INSERT INTO applied_log (v) VALUES ('b');\n");
	/* popx recorded the first one under its old 14-digit version */
	pop_table(&d, (const char *[]){"20230101000000", NULL});
	struct sgt_result r;
	SG(&r, &d, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *ran = tdb_value(&d, "SELECT group_concat(v) FROM applied_log");
	cr_assert_str_eq(ran, "b");
	free(ran);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'baselined' AND version = "
				 "'20230101000000000001'"), 1);
	tdb_drop(&d);
}
