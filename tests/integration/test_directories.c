/*
 * test_directories.c - real migration directories, read as their tools
 * read them (SPEC section 3, issue 10), through the built binary against
 * the private PostgreSQL, MariaDB and SQLite.
 *
 * Each fixture under tests/fixtures/ holds one rule. It is applied and
 * fully reverted (`down --to 0`) on every engine it names, and the tables
 * and columns in between are compared with what the original tool's rules
 * give. The bad directories exit 2 before any lock or write, whatever the
 * database does: nothing is created, not even the history table.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "schemagate/migration.h"
#include "sgdb.h"
#include "sgtest.h"

/* A scratch database on e whose migration directory is a copy of the fixture. */
static void fixture_db(struct tdb *d, enum eng e, const char *fixture)
{
	tdb_create(d, e, tdb_server_for(e));
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "cp -r '%s/tests/fixtures/%s/.' '%s'", SG_SOURCE_DIR, fixture, d->mig) > 0);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	free(cmd);
}

/* schemagate --database-url URL --dir DIR ARGS... */
static void run_args(struct sgt_result *r, const struct tdb *d, const char *dir, const char *const *args)
{
	const char *argv[24];
	int k = 0;
	argv[k++] = "--database-url";
	argv[k++] = d->url;
	argv[k++] = "--dir";
	argv[k++] = dir;
	for (; *args && k < 23; args++)
		argv[k++] = *args;
	argv[k] = NULL;
	sgt_run(r, NULL, argv);
}
#define SG(r, d, ...) run_args((r), (d), (d)->mig, (const char *[]){__VA_ARGS__, NULL})
#define SG_DIR(r, d, dir, ...) run_args((r), (d), (dir), (const char *[]){__VA_ARGS__, NULL})

/* Run a command that must exit `want`. */
static void expect_exit(struct tdb *d, int want, const char *const *args)
{
	struct sgt_result r;
	run_args(&r, d, d->mig, args);
	cr_assert_eq(r.status, want, "%s %s on %s: exit %d, want %d\n%s%s", args[0], args[1] ? args[1] : "",
		     tdb_eng_name(d->eng), r.status, want, r.out, r.err);
	sgt_result_free(&r);
}
#define EXPECT(d, want, ...) expect_exit((d), (want), (const char *[]){__VA_ARGS__, NULL})

/* The first value of sql's first row as text, "" for none (malloc'd). */
static char *text_of(struct tdb *d, const char *sql)
{
	char *v = tdb_value(d, "%s", sql);
	return v ? v : strdup("");
}

/* "table(col,col) table(col)" for everything but schemagate's and the test's own tables. */
static char *schema_of(struct tdb *d)
{
	static const char *const sql[] = {
		[ENG_PG] = "SELECT coalesce(string_agg(t, ' ' ORDER BY t), '') FROM (SELECT table_name || '(' || "
			   "string_agg(column_name, ',' ORDER BY ordinal_position) || ')' AS t FROM "
			   "information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE "
			   "'schemagate%' AND table_name <> 'applied_log' GROUP BY table_name) s",
		[ENG_MY] = "SELECT COALESCE(GROUP_CONCAT(t ORDER BY t SEPARATOR ' '), '') FROM (SELECT "
			   "CONCAT(TABLE_NAME, '(', GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION SEPARATOR ','), ')') "
			   "AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME NOT LIKE "
			   "'schemagate%' AND TABLE_NAME <> 'applied_log' GROUP BY TABLE_NAME) s",
		[ENG_LITE] = "SELECT coalesce(group_concat(t, ' '), '') FROM (SELECT m.name || '(' || (SELECT "
			     "group_concat(p.name, ',') FROM pragma_table_info(m.name) p) || ')' AS t FROM sqlite_master m "
			     "WHERE m.type = 'table' AND m.name NOT LIKE 'schemagate%' AND m.name NOT LIKE 'sqlite_%' "
			     "AND m.name <> 'applied_log' ORDER BY m.name)",
	};
	return text_of(d, sql[d->eng]);
}

static void expect_schema(struct tdb *d, const char *want, const char *when)
{
	char *got = schema_of(d);
	cr_assert_str_eq(got, want, "%s on %s: tables %s, want %s", when, tdb_eng_name(d->eng), got, want);
	free(got);
}

/* up, verify, the schema the tool's rules give, down --to 0, nothing left. */
static void apply_and_revert(struct tdb *d, const char *schema, const char *const *extra)
{
	const char *up[8] = {"up"}, *verify[8] = {"verify"}, *down[8] = {"down", "--to", "0"};
	for (int i = 0; extra && extra[i]; i++) {
		up[1 + i] = extra[i];
		verify[1 + i] = extra[i];
		down[3 + i] = extra[i];
	}
	expect_exit(d, 0, up);
	expect_exit(d, 0, verify);
	expect_schema(d, schema, "after up");
	expect_exit(d, 0, down);
	expect_schema(d, "", "after down --to 0");
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations"), 0, "history rows left");
}

/* ---- per-direction choice (popx) on SQLite and MariaDB ------------------ */

static void per_direction(enum eng e)
{
	struct tdb d;
	fixture_db(&d, e, "per_direction");
	EXPECT(&d, 0, "up");
	expect_schema(&d, "items(id,name,note) tags(id,label)", "after up");
	/* 0003: SQLite took its own up file (TEXT), MariaDB the generic one (VARCHAR(20)) */
	char *type = tdb_value(&d, e == ENG_LITE ? "SELECT type FROM pragma_table_info('items') WHERE name = 'note'"
						 : "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE "
						   "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items' AND COLUMN_NAME = 'note'");
	cr_assert_str_eq(type, e == ENG_LITE ? "TEXT" : "varchar(20)");
	free(type);
	/* the generic up of 0002 goes with the dialect down, so it is revertible */
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

Test(directories, per_direction_choice_on_sqlite) { per_direction(ENG_LITE); }
Test(directories, per_direction_choice_on_mariadb) { per_direction(ENG_MY); }

/* ---- .autocommit and transaction:false down scripts on PostgreSQL -------- */

static char *indexes(struct tdb *d)
{
	return text_of(d, "SELECT coalesce(string_agg(indexname, ',' ORDER BY indexname), '') FROM pg_indexes "
			  "WHERE schemaname = 'public' AND tablename = 'events'");
}

Test(directories, no_transaction_down_scripts_run_outside_a_transaction)
{
	struct tdb d;
	fixture_db(&d, ENG_PG, "autocommit_down");
	EXPECT(&d, 0, "up");
	char *idx = indexes(&d);
	cr_assert_str_eq(idx, "events_id_idx,events_kind_idx");
	free(idx);
	/* DROP INDEX CONCURRENTLY in a transaction fails with 25001 */
	EXPECT(&d, 0, "down", "--steps", "1");
	idx = indexes(&d);
	cr_assert_str_eq(idx, "events_kind_idx");
	free(idx);
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

Test(directories, rollback_runs_a_stored_autocommit_down_script_outside_a_transaction)
{
	struct tdb d;
	fixture_db(&d, ENG_PG, "autocommit_down");
	EXPECT(&d, 0, "up");
	/* the stored copy says what the file name said */
	char *stored = tdb_value(&d, "SELECT down_sql FROM schemagate_migrations WHERE version = '0002'");
	cr_assert(stored && strncmp(stored, SG_NO_TX_DIRECTIVE "\n", strlen(SG_NO_TX_DIRECTIVE) + 1) == 0, "%s", stored);
	free(stored);
	/* the older image knows only 0001 */
	char *old = sgt_path(d.dir, "old");
	cr_assert_eq(mkdir(old, 0755), 0);
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "cp '%s'/0001_* '%s'", d.mig, old) > 0);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
	struct sgt_result r;
	SG_DIR(&r, &d, old, "rollback");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *idx = indexes(&d);
	cr_assert_str_eq(idx, "");
	free(idx);
	expect_schema(&d, "events(id,kind)", "after rollback");
	free(old);
	tdb_drop(&d);
}

/* ---- dialect tags ---------------------------------------------------------- */

Test(directories, pgx_tag_is_postgres)
{
	struct tdb d;
	fixture_db(&d, ENG_PG, "pgx");
	EXPECT(&d, 0, "up");
	char *type = tdb_value(&d, "SELECT data_type FROM information_schema.columns WHERE table_name = 'docs' AND "
				   "column_name = 'body'");
	cr_assert_str_eq(type, "jsonb");
	free(type);
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

Test(directories, mariadb_files_win_on_mariadb_and_mysql_files_serve_it_otherwise)
{
	struct tdb d;
	fixture_db(&d, ENG_MY, "mariadb_vs_mysql");
	apply_and_revert(&d, "kv(k)", (const char *[]){"--target", "0001", NULL});
	EXPECT(&d, 0, "up");
	expect_schema(&d, "kv(k,v)", "after up");
	long len = tdb_long(&d, "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
				"DATABASE() AND TABLE_NAME = 'kv' AND COLUMN_NAME = 'k'");
	cr_assert_eq(len, 30, "the server is MariaDB: the .mariadb file (VARCHAR(30)) should run, got %ld", len);
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

static void dotted(enum eng e)
{
	struct tdb d;
	fixture_db(&d, e, "dotted_names");
	EXPECT(&d, 0, "up");
	char *names = tdb_value(&d, e == ENG_MY ? "SELECT GROUP_CONCAT(name ORDER BY version SEPARATOR ' ') FROM "
						  "schemagate_migrations"
					       : e == ENG_PG ? "SELECT string_agg(name, ' ' ORDER BY version) FROM "
							       "schemagate_migrations"
							     : "SELECT group_concat(name, ' ') FROM (SELECT name FROM "
							       "schemagate_migrations ORDER BY version)");
	cr_assert_str_eq(names, "2.9.0_schema release.final");
	free(names);
	expect_schema(&d, "release_final(id) schema_290(id)", "after up");
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

Test(directories, dotted_names_on_postgres) { dotted(ENG_PG); }
Test(directories, dotted_names_on_mariadb) { dotted(ENG_MY); }
Test(directories, dotted_names_on_sqlite) { dotted(ENG_LITE); }

/* ---- statement splitting -------------------------------------------------- */

Test(directories, mysql_trigger_without_delimiter_and_delimiter_dollar_procedure)
{
	struct tdb d;
	fixture_db(&d, ENG_MY, "mysql_routines");
	EXPECT(&d, 0, "up");
	free(tdb_value(&d, "INSERT INTO hits (id) VALUES (1)"));
	free(tdb_value(&d, "INSERT INTO hits (id, stamped) VALUES (2, 'given')"));
	free(tdb_value(&d, "CALL bump(2)"));
	char *rows = tdb_value(&d, "SELECT GROUP_CONCAT(CONCAT(id, ':', stamped, ':', n) ORDER BY id) FROM hits");
	cr_assert_str_eq(rows, "1:trigger:0,2:bumped;:1");
	free(rows);
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()"), 0);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"), 0);
	tdb_drop(&d);
}

Test(directories, postgres_begin_atomic_body_in_a_no_transaction_script)
{
	struct tdb d;
	fixture_db(&d, ENG_PG, "begin_atomic");
	EXPECT(&d, 0, "up");
	cr_assert_eq(tdb_long(&d, "SELECT add_nums(2, 40)"), 42);
	cr_assert_eq(tdb_long(&d, "SELECT a FROM nums"), 5);
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

static void bom(enum eng e)
{
	struct tdb d;
	fixture_db(&d, e, "bom");
	EXPECT(&d, 0, "up");
	char want[65];
	const char *text = "CREATE TABLE bom_t (id INTEGER);\n";
	sg_checksum(text, strlen(text), want);
	char *got = tdb_value(&d, "SELECT checksum FROM schemagate_migrations WHERE version = '0001'");
	cr_assert_str_eq(got, want, "the byte-order mark is not part of the checksum");
	free(got);
	expect_schema(&d, "bom_t(id)", "after up");
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

Test(directories, byte_order_mark_on_postgres) { bom(ENG_PG); }
Test(directories, byte_order_mark_on_mariadb) { bom(ENG_MY); }
Test(directories, byte_order_mark_on_sqlite) { bom(ENG_LITE); }

Test(directories, sqlite_vacuum_in_an_autocommit_script_with_lease_lock)
{
	struct tdb d;
	fixture_db(&d, ENG_LITE, "vacuum");
	apply_and_revert(&d, "junk(a)", (const char *[]){"--lock", "table", NULL});
	tdb_drop(&d);
}

/* VACUUM under the default lock: the lock is a flock on the file, so the
 * no-transaction script runs outside any transaction. */
Test(directories, sqlite_vacuum_in_an_autocommit_script)
{
	struct tdb d;
	fixture_db(&d, ENG_LITE, "vacuum");
	apply_and_revert(&d, "junk(a)", NULL);
	tdb_drop(&d);
}

/* ---- SQLite no-transaction scripts: PRAGMA foreign_keys, BEGIN ... ROLLBACK,
 * and the lock held across them ------------------------------------------- */

/* want: "id:parent_id,..." for the child rows, by id */
static void expect_children(struct tdb *d, const char *want, const char *when)
{
	char *got = text_of(d, "SELECT coalesce(group_concat(c, ','), '') FROM (SELECT id || ':' || parent_id AS c "
			       "FROM child ORDER BY id)");
	cr_assert_str_eq(got, want, "%s: child rows %s, want %s", when, got, want);
	free(got);
}

/* SQLite's table rebuild of a parent whose children cascade on delete, in
 * a popx .autocommit script: PRAGMA foreign_keys=OFF, copy, drop, rename,
 * PRAGMA foreign_keys=ON, then one parent is deleted. SQLite ignores PRAGMA
 * foreign_keys inside a transaction, so whatever the connection's own
 * setting (schemagate keeps SQLite's default, off), only a script run
 * outside one passes both checks: with enforcement on during the rebuild
 * the DROP deletes every child; without the closing PRAGMA taking effect
 * the last DELETE does not cascade. */
Test(directories, sqlite_foreign_keys_off_table_rebuild_in_an_autocommit_script)
{
	struct tdb d;
	fixture_db(&d, ENG_LITE, "foreign_keys_off");
	EXPECT(&d, 0, "up");
	expect_schema(&d, "child(id,parent_id) parent(id,name,label)", "after up");
	expect_children(&d, "2:2,3:2,4:3", "after the rebuild and the delete of parent 1");
	char *labels = tdb_value(&d, "SELECT group_concat(label, ',') FROM (SELECT label FROM parent ORDER BY id)");
	cr_assert_str_eq(labels, "TWO,THREE");
	free(labels);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM pragma_foreign_key_check"), 0, "dangling child rows");
	/* the down script rebuilds the other way, children kept */
	EXPECT(&d, 0, "down", "--to", "1");
	expect_schema(&d, "child(id,parent_id) parent(id,name)", "after down --to 1");
	expect_children(&d, "2:2,3:2,4:3", "after the reverse rebuild");
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

/* "0001=applied@TIME,0002=applied@TIME,..." */
static const char history_sql[] =
	"SELECT coalesce(group_concat(h, ','), '') FROM (SELECT version || '=' || status || '@' || "
	"coalesce(applied_at, '') AS h FROM schemagate_migrations ORDER BY version)";

/* A script that keeps its own transaction and rolls it back, marked
 * .autocommit as popx needs: it runs as written (its work is thrown away),
 * leaves no transaction open (the next migration and the history row
 * commit on the same connection), and the next run has nothing to do. */
Test(directories, sqlite_begin_rollback_stub_in_an_autocommit_script)
{
	struct tdb d;
	fixture_db(&d, ENG_LITE, "begin_rollback_stub");
	EXPECT(&d, 0, "up");
	expect_schema(&d, "items(id,note)", "after up (the stub's table was rolled back by the stub)");
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'"), 3);
	cr_assert_eq(tdb_long(&d, "SELECT statements_done FROM schemagate_migrations WHERE version = '0002'"), 4,
		     "the stub's four statements were not all counted");
	char *before = text_of(&d, history_sql);
	struct sgt_result r;
	SG(&r, &d, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *after = text_of(&d, history_sql);
	cr_assert_str_eq(after, before, "the second up changed the history");
	free(before);
	free(after);
	EXPECT(&d, 0, "verify");
	/* the down stub runs the same way */
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations"), 0, "history rows left");
	tdb_drop(&d);
}

/* The same stub without the mark would end schemagate's transaction: it is
 * refused before the database file is opened, byte for byte as it was. */
Test(directories, sqlite_begin_rollback_stub_without_the_mark_is_refused)
{
	struct tdb d;
	fixture_db(&d, ENG_LITE, "begin_rollback_stub");
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "cd '%s' && mv 0002_stub.sqlite3.autocommit.up.sql 0002_stub.sqlite3.up.sql && "
				 "mv 0002_stub.sqlite3.autocommit.down.sql 0002_stub.sqlite3.down.sql && "
				 "cp '%s' '%s.before'", d.mig, d.file, d.file) > 0);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	free(cmd);
	const char *const commands[][4] = {{"up"}, {"down", "--to", "0"}, {"lint"}};
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		struct sgt_result r;
		run_args(&r, &d, d.mig, commands[i]);
		cr_assert_eq(r.status, 2, "%s: exit %d\n%s", commands[i][0], r.status, r.err);
		/* lint lists every problem on stdout, the others stop at the first */
		const char *text = i == 2 ? r.out : r.err;
		cr_assert(strstr(text, "0002_stub.sqlite3.up.sql:3: top-level transaction control 'BEGIN'") &&
			  strstr(text, "schemagate:no-transaction"), "%s: %s", commands[i][0], text);
		cr_assert(i != 2 || strstr(text, "0002_stub.sqlite3.up.sql:6: top-level transaction control 'ROLLBACK'"),
			  "lint: %s", text);
		sgt_result_free(&r);
	}
	cr_assert(asprintf(&cmd, "cmp -s '%s' '%s.before'", d.file, d.file) > 0);
	cr_assert_eq(system(cmd), 0, "the database file changed");
	free(cmd);
	tdb_drop(&d);
}

/* How many times needle occurs in the file at path. */
static int occurrences(const char *path, const char *needle)
{
	char *s = sgt_slurp(path);
	int n = 0;
	for (const char *p = s; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(s);
	return n;
}

/* Two instances at once on a no-transaction script that reads for about
 * two seconds inside its own transaction (no SQLite write lock held): the
 * file lock alone keeps the second out, so the script starts once, its
 * INSERT lands once, and both exit 0, the second having waited. (Without
 * the lock, the history row's ownership check still keeps the INSERT to
 * one, but the script starts again and again.) */
Test(directories, sqlite_slow_no_transaction_script_runs_once_with_two_instances, .timeout = 120)
{
	struct tdb d;
	fixture_db(&d, ENG_LITE, "slow_no_transaction");
	struct fleet f = {0};
	const char *extra[] = {"--poll-interval", "100ms", NULL};
	fleet_add(&f, &d, "up", extra);
	fleet_add(&f, &d, "up", extra);
	fleet_wait(&f, 90000 * sgt_slowdown());
	cr_assert_eq(fleet_failures(&f, 2), 0, "an instance failed (logs above)");
	assert_exactly_once(&d, 2, "two instances on a slow no-transaction script");
	int started = 0, waited = 0;
	for (int i = 0; i < f.n; i++) {
		started += occurrences(f.log[i], "applying 0001_slow.sql");
		waited += file_has(f.log[i], "another instance brought the database to the target");
	}
	if (started != 1 || waited != 1) {
		dump_log("instance 0", f.log[0]);
		dump_log("instance 1", f.log[1]);
	}
	cr_assert_eq(started, 1, "the slow script was started %d times", started);
	cr_assert_eq(waited, 1, "%d instances waited for the other, want exactly 1", waited);
	EXPECT(&d, 0, "down", "--to", "0");
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log"), 0, "the down scripts left counter rows");
	fleet_free(&f);
	tdb_drop(&d);
}

/* ---- transaction control -------------------------------------------------- */

static void wrapper(enum eng e)
{
	struct tdb d;
	fixture_db(&d, e, "wrapper");
	EXPECT(&d, 0, "up");
	expect_schema(&d, "w1(a) w2(a)", "after up");
	/* absorbed into schemagate's transaction: a failure leaves nothing, twice */
	sgt_write(d.mig, "0002_wrapped_fails.up.sql",
		  "BEGIN;\nCREATE TABLE w3 (a INTEGER);\nINSERT INTO no_such_table VALUES (1);\nCOMMIT;\n");
	for (int i = 0; i < 2; i++) {
		struct sgt_result r;
		SG(&r, &d, "up");
		cr_assert_eq(r.status, 1, "attempt %d: %s", i, r.err);
		cr_assert(strstr(r.err, "no_such_table") && !strstr(r.err, "already exists"), "%s", r.err);
		sgt_result_free(&r);
		expect_schema(&d, "w1(a) w2(a)", "after the failed migration");
		cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations"), 1);
	}
	char *p = sgt_path(d.mig, "0002_wrapped_fails.up.sql");
	unlink(p);
	free(p);
	EXPECT(&d, 0, "down", "--to", "0");
	expect_schema(&d, "", "after down --to 0");
	tdb_drop(&d);
}

Test(directories, begin_commit_wrapper_is_absorbed_on_postgres) { wrapper(ENG_PG); }
Test(directories, begin_commit_wrapper_is_absorbed_on_sqlite) { wrapper(ENG_LITE); }

static void multi_transaction(enum eng e)
{
	struct tdb d;
	fixture_db(&d, e, "multi_transaction");
	struct sgt_result r;
	SG(&r, &d, "up");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "0002_two_transactions.up.sql:2: top-level transaction control 'COMMIT'") &&
		  strstr(r.err, "schemagate:no-transaction"), "%s", r.err);
	sgt_result_free(&r);
	cr_assert_not(tdb_has_schemagate_tables(&d), "the history table was created");
	expect_schema(&d, "", "after the refusal");
	tdb_drop(&d);
}

Test(directories, a_second_transaction_is_refused_on_postgres) { multi_transaction(ENG_PG); }
Test(directories, a_second_transaction_is_refused_on_sqlite) { multi_transaction(ENG_LITE); }

/* ---- bad directories: exit 2 before any lock or write ---------------------- */

struct bad_case {
	const char *what;
	void (*make)(const char *dir);
	const char *message;
};

static void good_file(const char *dir) { sgt_write(dir, "0001_a.up.sql", "CREATE TABLE a (x INTEGER);\n"); }

static void make_dangling(const char *dir)
{
	good_file(dir);
	char *p = sgt_path(dir, "0002_b.up.sql");
	cr_assert_eq(symlink("..data/0002_b.up.sql", p), 0);
	free(p);
}

static void make_fifo(const char *dir)
{
	good_file(dir);
	char *p = sgt_path(dir, "0002_b.up.sql");
	cr_assert_eq(mkfifo(p, 0644), 0);
	free(p);
}

static void make_fifo_other_name(const char *dir)
{
	good_file(dir);
	char *p = sgt_path(dir, "notes");
	cr_assert_eq(mkfifo(p, 0644), 0);
	free(p);
}

static void make_empty(const char *dir) { (void)dir; }

static void make_only_readme(const char *dir) { sgt_write(dir, "README.md", "# migrations\n"); }

static void make_bad_name(const char *dir)
{
	good_file(dir);
	sgt_write(dir, "0002-b.up.sql", "SELECT 1;\n");
}

static void make_competing(const char *dir)
{
	sgt_write(dir, "0001_a.pg.up.sql", "SELECT 1;\n");
	sgt_write(dir, "0001_a.postgres.up.sql", "SELECT 1;\n");
}

static void make_unterminated(const char *dir)
{
	good_file(dir);
	sgt_write(dir, "0002_b.up.sql", "-- schemagate:no-transaction\nSELECT 'unterminated;\n");
}

static void make_two_transactions(const char *dir)
{
	good_file(dir);
	sgt_write(dir, "0002_b.up.sql", "CREATE TABLE b (x INTEGER);\nCOMMIT;\nCREATE TABLE c (x INTEGER);\n");
}

static void make_only_other_engines(const char *dir)
{
	sgt_write(dir, "0001_a.cockroach.up.sql", "SELECT 1;\n");
	sgt_write(dir, "0001_a.down.sql", "SELECT 1;\n");
}

static const struct bad_case bad_cases[] = {
	{"dangling symlink", make_dangling, "0002_b.up.sql: dangling symlink to ..data/0002_b.up.sql"},
	{"FIFO named like a migration", make_fifo, "0002_b.up.sql: a FIFO, not a file"},
	{"FIFO with another name", make_fifo_other_name, "notes: a FIFO, not a file"},
	{"empty directory", make_empty, "holds no migrations"},
	{"only a README", make_only_readme, "holds no migrations"},
	{"name that does not parse", make_bad_name, "0002-b.up.sql: cannot parse"},
	{"competing files", make_competing, "both provide the up script of version 0001"},
	{"unterminated quote in a split script", make_unterminated, "0002_b.up.sql: unterminated quoted string"},
	{"second transaction", make_two_transactions, "0002_b.up.sql:2: top-level transaction control 'COMMIT'"},
	{"nothing for this engine", make_only_other_engines, "none of the migrations"},
};

Test(directories, bad_directories_exit_2_and_create_nothing)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct tdb d;
		tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
		bad_cases[i].make(d.mig);
		const char *cmds[] = {"up", "status", "verify", "down"};
		for (size_t k = 0; k < 4; k++) {
			struct sgt_result r;
			SG(&r, &d, cmds[k]);
			cr_assert_eq(r.status, 2, "%s, %s: exit %d: %s", bad_cases[i].what, cmds[k], r.status, r.err);
			cr_assert(strstr(r.err, bad_cases[i].message) != NULL, "%s, %s: %s", bad_cases[i].what, cmds[k],
				  r.err);
			sgt_result_free(&r);
		}
		cr_assert_not(tdb_has_schemagate_tables(&d), "%s: the history table was created", bad_cases[i].what);
		tdb_drop(&d);
	}
	/* a missing directory */
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	struct sgt_result r;
	SG_DIR(&r, &d, "/nonexistent/schemagate-migrations", "up");
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert(strstr(r.err, "/nonexistent/schemagate-migrations") != NULL, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_not(tdb_has_schemagate_tables(&d));
	tdb_drop(&d);
}

/* The verdict of a bad directory lands anywhere in the connect: during
 * the handshake, or while the driver asks the server what it is (read
 * only? Galera?). Whatever it interrupts, the run exits 2: a connection
 * closed on the way must not be closed again at the end (it was: exit
 * 139 in about 1 run in 50 on MariaDB, where the verdict of a file that
 * must be read to be refused landed in that question). */
static void verdict_anywhere_in_the_connect(enum eng e, int runs)
{
	struct tdb d;
	tdb_create(&d, e, tdb_server_for(e));
	good_file(d.mig);
	int crashes = 0;
	for (int i = 0; i < runs; i++) {
		/* a longer script to split: a later verdict */
		size_t pad = (size_t)(i % 16) * 16384;
		char *text = malloc(pad + 64);
		cr_assert(text);
		memset(text, '\n', pad);
		strcpy(text + pad, "SELECT 1;\nCOMMIT;\nSELECT 2;\n");
		sgt_write(d.mig, "0002_b.up.sql", text);
		free(text);
		struct sgt_result r;
		SG(&r, &d, "up");
		if (r.status != 2) {
			crashes++;
			fprintf(stderr, "run %d: exit %d\n%s", i, r.status, r.err);
		}
		sgt_result_free(&r);
	}
	cr_assert_eq(crashes, 0, "%d of %d runs did not exit 2", crashes, runs);
	tdb_drop(&d);
}

Test(directories, bad_directory_verdict_anywhere_in_a_mariadb_connect_exits_2)
{
	verdict_anywhere_in_the_connect(ENG_MY, 400);
}

Test(directories, bad_directory_verdict_anywhere_in_a_postgres_connect_exits_2)
{
	verdict_anywhere_in_the_connect(ENG_PG, 150);
}

/* A bad directory's verdict does not wait for the database: refused, or
 * a listener that never answers, with a connect timeout far longer than
 * the bound asserted here. */
Test(directories, bad_directory_with_the_database_down_exits_2_at_once)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	make_dangling(d.mig);
	/* a listener whose backlog completes the handshake and then says nothing */
	int silent = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	cr_assert_eq(bind(silent, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(silent, 16), 0);
	cr_assert_eq(getsockname(silent, (struct sockaddr *)&sa, &len), 0);
	char hang_pg[128], hang_my[128];
	snprintf(hang_pg, sizeof(hang_pg), "postgres://nobody@127.0.0.1:%d/none", ntohs(sa.sin_port));
	snprintf(hang_my, sizeof(hang_my), "mysql://nobody@127.0.0.1:%d/none", ntohs(sa.sin_port));
	/* port 1 refuses: a connection would be retried for the whole connect timeout */
	const char *urls[] = {"postgres://nobody@127.0.0.1:1/none", "mysql://nobody@127.0.0.1:1/none", hang_pg, hang_my};
	const char *cmds[] = {"up", "wait", "down"};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
			free(d.url);
			d.url = strdup(urls[i]);
			double t0 = sgt_now_ms();
			struct sgt_result r;
			SG(&r, &d, "--connect-timeout", "60s", "--lock-timeout", "60s", cmds[k]);
			double took = sgt_now_ms() - t0;
			cr_assert_eq(r.status, 2, "%s %s: exit %d\n%s", urls[i], cmds[k], r.status, r.err);
			cr_assert_lt(took, 10000.0 * sgt_slowdown(), "%s %s: took %.0f ms: the verdict waited for the database",
				     urls[i], cmds[k], took);
			cr_assert(strstr(r.err, "dangling symlink") != NULL, "%s", r.err);
			sgt_result_free(&r);
		}
	close(silent);
	/* SQLite's file is not even created */
	char *file = sgt_path(d.dir, "fresh.db");
	free(d.url);
	cr_assert(asprintf(&d.url, "sqlite:%s", file) > 0);
	struct sgt_result r;
	SG(&r, &d, "up");
	cr_assert_eq(r.status, 2, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_neq(access(file, F_OK), 0, "%s was created", file);
	free(file);
	tdb_drop(&d);
}

/* ---- a bad directory changes nothing, whatever the database does ---------
 * The directory is validated while the run connects and reads the history,
 * so the run reaches the database before the verdict. A directory large
 * enough to take a while gives a run that did not wait for the verdict
 * the time to take the lock (or write); the test watches the lock from
 * outside during the whole run. */

/* Is the migration lock of d taken? Has a schemagate session reached d? */
static bool lock_taken(struct tdb *d)
{
	if (d->eng == ENG_PG)
		return tdb_long(d, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
				   "(SELECT oid FROM pg_database WHERE datname = current_database())") > 0;
	if (d->eng == ENG_MY) {
		char *v = tdb_value(d, "SELECT IS_USED_LOCK(CONCAT('schemagate:', DATABASE(), '.schemagate_migrations'))");
		free(v);
		return v != NULL;
	}
	int fd = open(d->file, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0, "%s: %s", d->file, strerror(errno));
	bool taken = flock(fd, LOCK_EX | LOCK_NB) != 0;
	close(fd);   /* releases ours, if we got it */
	return taken;
}

static bool session_seen(struct tdb *d)
{
	if (d->eng == ENG_PG)
		return tdb_long(d, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
				   "AND application_name LIKE 'schemagate/%'") > 0;
	if (d->eng == ENG_MY)
		return tdb_long(d, "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
				   "AND ID <> CONNECTION_ID()") > 0;
	return false;   /* SQLite: a writer opens the file only after the verdict */
}

ParameterizedTestParameters(directories, bad_directory_changes_nothing)
{
	static enum eng engines[] = {ENG_PG, ENG_MY, ENG_LITE};
	return cr_make_param_array(enum eng, engines, sizeof(engines) / sizeof(engines[0]));
}

ParameterizedTest(enum eng *e, directories, bad_directory_changes_nothing, .timeout = 300)
{
	struct tdb d;
	tdb_create(&d, *e, tdb_server_for(*e));
	write_migrations(&d, 2, NULL);
	EXPECT(&d, 0, "up");   /* the history table is there */
	/* 2,000 more pending migrations of 40 kB each, the last one broken */
	char pad[2048];
	memset(pad, '-', sizeof(pad) - 2);
	pad[sizeof(pad) - 2] = '\n';
	pad[sizeof(pad) - 1] = '\0';
	struct sg_buf body = {0};
	for (int i = 0; i < 20; i++)
		sg_buf_puts(&body, pad);
	sg_buf_puts(&body, "INSERT INTO applied_log (v) VALUES ('x');\n");
	for (int i = 3; i <= 2002; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%04d_big.up.sql", i);
		sgt_write(d.mig, name, body.data);
	}
	sg_buf_free(&body);
	sgt_write(d.mig, "2003_broken.up.sql", "-- schemagate:no-transaction\nSELECT 'unterminated;\n");
	char *before = tdb_fingerprint(&d);
	const char *cmds[] = {"up", "down"};
	for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
		char *log = sgt_path(d.dir, "run.log");
		const char *argv[] = {"--database-url", d.url, "--dir", d.mig, cmds[k], NULL};
		pid_t pid = sgt_spawn(NULL, argv, log);
		bool locked = false, seen = false;
		int st = 0;
		pid_t done;
		while ((done = waitpid(pid, &st, WNOHANG)) == 0) {
			locked |= lock_taken(&d);
			seen |= session_seen(&d);
			usleep(2000);
		}
		cr_assert_eq(done, pid);
		char *out = sgt_slurp(log);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s on %s: status %d\n%s", cmds[k],
			  tdb_eng_name(d.eng), st, out);
		cr_assert(strstr(out, "2003_broken.up.sql: unterminated quoted string") != NULL, "%s", out);
		cr_assert_not(locked, "%s on %s took the lock before the directory's verdict\n%s", cmds[k],
			      tdb_eng_name(d.eng), out);
		/* up on a server: the run did reach the database before the verdict,
		 * so the checks above were made while it could have done harm */
		if (k == 0 && d.eng != ENG_LITE)
			cr_assert(seen, "%s on %s: no session seen during the run; the test proves nothing\n%s", cmds[k],
				  tdb_eng_name(d.eng), out);
		free(out);
		free(log);
		char *after = tdb_fingerprint(&d);
		cr_assert_str_eq(after, before, "%s on %s changed the database", cmds[k], tdb_eng_name(d.eng));
		free(after);
	}
	free(before);
	tdb_drop(&d);
}

Test(directories, an_unreadable_file_exits_2)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	good_file(d.mig);
	sgt_write(d.mig, "0002_secret.up.sql", "SELECT 1;\n");
	char *p = sgt_path(d.mig, "0002_secret.up.sql");
	cr_assert_eq(chmod(p, 0), 0);
	free(p);
	/* root reads anything: run as nobody (the directory and the database are world-writable scratch) */
	chmod(d.dir, 0777);
	chmod(d.mig, 0755);
	char *cmd = NULL;
	const char *as = geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
	cr_assert(asprintf(&cmd, "%s'%s' --database-url '%s' --dir '%s' up 2>&1", as, SG_BINARY, d.url, d.mig) > 0);
	int status = 0;
	char *out = sgt_sh(cmd, &status);
	cr_assert_eq(status, 2, "%s", out);
	cr_assert(strstr(out, "0002_secret.up.sql: cannot be read: Permission denied") != NULL, "%s", out);
	free(out);
	free(cmd);
	tdb_drop(&d);
}

/* ---- lint ----------------------------------------------------------------- */

static void run_lint(struct sgt_result *r, const char *dir, const char *const *extra)
{
	const char *argv[12] = {"--dir", dir, "lint"};
	int k = 3;
	for (; extra && *extra && k < 11; extra++)
		argv[k++] = *extra;
	argv[k] = NULL;
	sgt_run(r, NULL, argv);
}

Test(directories, lint_reports_every_problem_at_once)
{
	char *dir = sgt_tempdir();
	make_dangling(dir);   /* 0001_a and a dangling 0002_b */
	char *p = sgt_path(dir, "0003_c.up.sql");
	cr_assert_eq(mkfifo(p, 0644), 0);
	free(p);
	sgt_write(dir, "0004-d.up.sql", "SELECT 1;\n");
	sgt_write(dir, "0005_e.up.sql", "SELECT 1;\n");
	sgt_write(dir, "5_f.up.sql", "SELECT 1;\n");
	sgt_write(dir, "0006_g.mysql.up.sql", "SELECT 'unterminated;\n");
	sgt_write(dir, "0007_h.up.sql", "CREATE TABLE h (a INTEGER);\nCOMMIT;\n");
	sgt_write(dir, "0008_i.sql", "SELECT 1;\n-- migrate:up\nSELECT 2;\n");
	struct sgt_result r;
	run_lint(&r, dir, NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	const char *want[] = {
		"error: 0002_b.up.sql: dangling symlink",
		"error: 0003_c.up.sql: a FIFO, not a file",
		"error: 0004-d.up.sql: cannot parse",
		"error: duplicate version: 0005_e.up.sql and 5_f.up.sql",
		"error: 0006_g.mysql.up.sql: unterminated quoted string starting at line 1 [mysql]",
		"error: 0007_h.up.sql:2: top-level transaction control 'COMMIT'",
		"error: 0008_i.sql:1: SQL before '-- migrate:up'",
		"7 errors",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(strstr(r.out, want[i]) != NULL, "missing \"%s\" in:\n%s", want[i], r.out);
	sgt_result_free(&r);
	sgt_rmrf(dir);
	free(dir);
}

Test(directories, lint_strict_fails_on_warnings_and_json_is_one_document)
{
	char *dir = sgt_tempdir();
	sgt_write(dir, "0001_a.up.sql", "\xef\xbb\xbf" "CREATE TABLE a (x INTEGER);\n");
	sgt_write(dir, "0001_a.down.sql", "DROP TABLE a;\n");
	sgt_write(dir, "0002_empty.up.sql", "-- nothing yet\n");
	sgt_write(dir, "0002_empty.down.sql", "");
	sgt_write(dir, "seed.sql", "INSERT INTO a VALUES (1);\n");
	struct sgt_result r;
	run_lint(&r, dir, NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "warning: 0001_a.up.sql: starts with a UTF-8 byte-order mark") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "warning: 0002_empty.up.sql: empty up script") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "warning: seed.sql: not a migration file") != NULL, "%s", r.out);
	/* a rule's warning counts like the directory's own */
	cr_assert(strstr(r.out, "warning: 0001_a.up.sql:1:19: prefer-bigint-over-int") != NULL, "%s", r.out);
	sgt_result_free(&r);
	run_lint(&r, dir, (const char *[]){"--strict", NULL});
	cr_assert_eq(r.status, 4, "%s", r.err);
	cr_assert(strstr(r.err, "lint --strict: 4 warnings") != NULL, "%s", r.err);
	sgt_result_free(&r);
	run_lint(&r, dir, (const char *[]){"--json", NULL});
	cr_assert_eq(r.status, 0, "%s", r.err);
	size_t n = strlen(r.out);
	cr_assert(n > 2 && r.out[0] == '{' && r.out[n - 2] == '}' && r.out[n - 1] == '\n', "%s", r.out);
	cr_assert_eq(strchr(r.out, '\n'), r.out + n - 1, "not one line: %s", r.out);
	cr_assert(strstr(r.out, "\"counts\":{\"error\":0,\"warning\":4,") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "{\"level\":\"warning\",\"file\":\"seed.sql\",\"line\":0,\"column\":0,\"rule\":null,\"dialects\":[],") != NULL,
		  "%s", r.out);
	sgt_result_free(&r);
	/* a directory for one engine: lint only what it runs */
	sgt_write(dir, "0003_trg.up.sql", "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW\nBEGIN\n  IF NEW.x IS NULL "
					  "THEN SET NEW.x = 1; END IF;\nEND;\n");
	run_lint(&r, dir, NULL);
	cr_assert_eq(r.status, 2, "MySQL syntax in a generic file is an error for the other engines: %s", r.out);
	sgt_result_free(&r);
	run_lint(&r, dir, (const char *[]){"--dialect", "mysql", NULL});
	cr_assert_eq(r.status, 0, "%s", r.out);
	sgt_result_free(&r);
	sgt_rmrf(dir);
	free(dir);
}

Test(directories, lint_of_a_fifo_does_not_hang)
{
	char *dir = sgt_tempdir();
	good_file(dir);
	char *p = sgt_path(dir, "0001_a.down.sql");
	cr_assert_eq(mkfifo(p, 0644), 0);
	free(p);
	double t0 = sgt_now_ms();
	struct sgt_result r;
	run_lint(&r, dir, NULL);
	cr_assert_eq(r.status, 2, "%s", r.out);
	cr_assert_lt(sgt_now_ms() - t0, 5000.0);
	sgt_result_free(&r);
	sgt_rmrf(dir);
	free(dir);
}

Test(directories, new_accepts_every_tag_alias)
{
	char *dir = sgt_tempdir();
	const char *tags[] = {"postgres", "postgresql", "pg", "pgx", "mysql", "mariadb", "sqlite", "sqlite3"};
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		char name[32];
		snprintf(name, sizeof(name), "step_%zu", i);
		const char *argv[] = {"--dir", dir, "new", name, "--dialect", tags[i], NULL};
		struct sgt_result r;
		sgt_run(&r, NULL, argv);
		cr_assert_eq(r.status, 0, "--dialect %s: %s", tags[i], r.err);
		char suffix[48];
		snprintf(suffix, sizeof(suffix), "_%s.%s.up.sql\n", name, tags[i]);
		cr_assert(strstr(r.out, suffix) != NULL, "%s", r.out);
		sgt_result_free(&r);
	}
	const char *argv[] = {"--dir", dir, "new", "x", "--dialect", "cockroach", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 2, "%s", r.err);
	sgt_result_free(&r);
	sgt_rmrf(dir);
	free(dir);
}
