/*
 * test_sqlite.c - the schemagate binary end to end against SQLite files.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sgtest.h"

struct fixture {
	char *dir;      /* scratch directory */
	char *mig;      /* dir/migrations */
	char *db;       /* dir/app.db */
	char url[600];
};

static void setup(struct fixture *f)
{
	f->dir = sgt_tempdir();
	f->mig = sgt_path(f->dir, "migrations");
	f->db = sgt_path(f->dir, "app.db");
	mkdir(f->mig, 0755);
	snprintf(f->url, sizeof(f->url), "sqlite:%s", f->db);
}

static void teardown(struct fixture *f)
{
	sgt_rmrf(f->dir);
	free(f->dir);
	free(f->mig);
	free(f->db);
}

/* Run the binary with --database-url and --dir plus args. */
static void sg(struct sgt_result *r, struct fixture *f, const char *a1, const char *a2, const char *a3,
	       const char *a4, const char *a5)
{
	const char *argv[] = {"--database-url", f->url, "--dir", f->mig, "--poll-interval", "100ms",
			      a1, a2, a3, a4, a5, NULL};
	sgt_run(r, NULL, argv);
}

static char *sql1(struct fixture *f, const char *query)
{
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "sqlite3 '%s' \"%s\" 2>&1", f->db, query) > 0);
	int st;
	char *out = sgt_sh(cmd, &st);
	free(cmd);
	size_t n = strlen(out);
	while (n && (out[n - 1] == '\n'))
		out[--n] = '\0';
	return out;
}

static void three_migrations(struct fixture *f)
{
	sgt_write(f->mig, "0001_users.up.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n"
						   "CREATE TABLE marks (v TEXT);\nINSERT INTO marks VALUES ('one');\n");
	sgt_write(f->mig, "0001_users.down.sql", "DROP TABLE marks;\nDROP TABLE users;\n");
	sgt_write(f->mig, "0002_email.up.sql", "ALTER TABLE users ADD COLUMN email TEXT;\n"
						   "INSERT INTO marks VALUES ('two');\n");
	sgt_write(f->mig, "0002_email.down.sql", "ALTER TABLE users DROP COLUMN email;\n");
	sgt_write(f->mig, "0003_index.up.sql", "CREATE INDEX users_email ON users (email);\n"
						   "INSERT INTO marks VALUES ('three');\n");
	sgt_write(f->mig, "0003_index.down.sql", "DROP INDEX users_email;\n");
}

static const char *SLOW_SQL =
	"CREATE TABLE slow (x INTEGER);\n"
	"INSERT INTO slow WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000000) "
	"SELECT count(*) FROM c;\n";

Test(sqlite, ten_processes_at_once_apply_each_migration_once)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	pid_t pids[10];
	for (int i = 0; i < 10; i++) {
		const char *argv[] = {"--database-url", f.url, "--dir", f.mig, "--poll-interval", "50ms", "up", NULL};
		pids[i] = sgt_spawn(NULL, argv, NULL);
	}
	for (int i = 0; i < 10; i++)
		cr_expect_eq(sgt_wait(pids[i]), 0, "instance %d did not exit 0", i);
	char *marks = sql1(&f, "SELECT group_concat(v, ',') FROM (SELECT v FROM marks ORDER BY rowid)");
	cr_expect_str_eq(marks, "one,two,three");
	char *hist = sql1(&f, "SELECT count(*), count(DISTINCT version) FROM schemagate_migrations WHERE status='applied'");
	cr_expect_str_eq(hist, "3|3");
	free(marks);
	free(hist);
	teardown(&f);
}

Test(sqlite, sigterm_during_long_migration_exits_143_and_records_nothing)
{
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0001_base.up.sql", "CREATE TABLE base (x INTEGER);\n");
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sgt_write(f.mig, "0002_slow.up.sql", SLOW_SQL);
	char *log = sgt_path(f.dir, "slow.log");
	const char *argv[] = {"--database-url", f.url, "--dir", f.mig, "up", NULL};
	pid_t pid = sgt_spawn(NULL, argv, log);
	usleep((useconds_t)(700 * 1000 * sgt_slowdown()));
	double t0 = sgt_now_ms();
	kill(pid, SIGTERM);
	int status = sgt_wait(pid);
	double ms = sgt_now_ms() - t0;
	char *out = sgt_slurp(log);
	cr_expect_eq(status, 143, "exit %d: %s", status, out);
	cr_expect_lt(ms, 2000.0 * sgt_slowdown(), "took %.0f ms to exit after SIGTERM", ms);
	char *tables = sql1(&f, "SELECT count(*) FROM sqlite_master WHERE name = 'slow'");
	cr_expect_str_eq(tables, "0", "the canceled migration left its table");
	char *hist = sql1(&f, "SELECT group_concat(version) FROM schemagate_migrations");
	cr_expect_str_eq(hist, "0001", "history changed: %s", hist);
	/* the next run succeeds (with a fast script) */
	sgt_write(f.mig, "0002_slow.up.sql", "CREATE TABLE slow (x INTEGER);\n");
	struct sgt_result r2;
	sg(&r2, &f, "up", NULL, NULL, NULL, NULL);
	cr_expect_eq(r2.status, 0, "%s", r2.err);
	sgt_result_free(&r2);
	free(out);
	free(log);
	free(tables);
	free(hist);
	teardown(&f);
}

Test(sqlite, verify_reports_pending_ready_and_changed_checksums)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	struct sgt_result r;
	/* one-shot: a missing database file is a connect failure, not a wait */
	sg(&r, &f, "verify", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 3, "verify without a database: %d %s", r.status, r.err);
	cr_expect_lt(r.seconds, 2.0 * sgt_slowdown(), "verify waited %.1fs", r.seconds);
	cr_expect(access(f.db, F_OK) != 0, "verify must not create the database");
	sgt_result_free(&r);
	sgt_write(f.dir, "app.db", "");
	sg(&r, &f, "verify", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 6, "verify before up: %d %s", r.status, r.err);
	sgt_result_free(&r);
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "verify", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sgt_write(f.mig, "0002_email.up.sql", "ALTER TABLE users ADD COLUMN email TEXT; -- edited\n");
	sg(&r, &f, "verify", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 4, "edited file: %d %s", r.status, r.err);
	cr_expect(strstr(r.err, "0002_email.up.sql") != NULL, "message names the file: %s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 4, "up refuses a changed file: %d", r.status);
	sgt_result_free(&r);
	sg(&r, &f, "repair", "--accept-checksums", NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "verify", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *ev = sql1(&f, "SELECT count(*) FROM schemagate_events WHERE event = 'repair' AND version = '0002'");
	cr_expect_str_eq(ev, "1", "repair is audited");
	free(ev);
	teardown(&f);
}

Test(sqlite, rollback_from_older_directory_uses_stored_down_scripts)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	sgt_write(f.mig, "0004_audit.up.sql", "CREATE TABLE audit (x TEXT);\n");
	sgt_write(f.mig, "0004_audit.down.sql", "DROP TABLE audit;\n");
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	/* the old image: its directory lacks 0003 and 0004 */
	char *old = sgt_path(f.dir, "old");
	mkdir(old, 0755);
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "cp '%s'/0001_* '%s'/0002_* '%s'/", f.mig, f.mig, old) > 0);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
	const char *argv[] = {"--database-url", f.url, "--dir", old, "rollback", NULL};
	sgt_run(&r, NULL, argv);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *hist = sql1(&f, "SELECT group_concat(version) FROM (SELECT version FROM schemagate_migrations ORDER BY version)");
	cr_expect_str_eq(hist, "0001,0002");
	char *objs = sql1(&f, "SELECT count(*) FROM sqlite_master WHERE name IN ('audit', 'users_email')");
	cr_expect_str_eq(objs, "0", "down scripts did not run");
	char *users = sql1(&f, "SELECT count(*) FROM sqlite_master WHERE name = 'users'");
	cr_expect_str_eq(users, "1", "rollback reverted too much");
	/* and the old image is ready */
	const char *vargv[] = {"--database-url", f.url, "--dir", old, "verify", NULL};
	sgt_run(&r, NULL, vargv);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	free(hist);
	free(objs);
	free(users);
	free(old);
	teardown(&f);
}

Test(sqlite, down_steps_and_down_to_zero)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "down", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *hist = sql1(&f, "SELECT group_concat(version) FROM (SELECT version FROM schemagate_migrations ORDER BY version)");
	cr_expect_str_eq(hist, "0001,0002");
	free(hist);
	sg(&r, &f, "down", "--to", "0", NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	hist = sql1(&f, "SELECT count(*) FROM schemagate_migrations");
	cr_expect_str_eq(hist, "0");
	char *users = sql1(&f, "SELECT count(*) FROM sqlite_master WHERE name = 'users'");
	cr_expect_str_eq(users, "0");
	free(hist);
	free(users);
	teardown(&f);
}

Test(sqlite, no_url_is_a_usage_error)
{
	const char *argv[] = {"up", NULL};
	const char *env[] = {"DATABASE_URL=", NULL};
	unsetenv("DATABASE_URL");
	struct sgt_result r;
	sgt_run(&r, env, argv);
	cr_expect_eq(r.status, 2, "%d %s", r.status, r.err);
	cr_expect(strstr(r.err, "URL") || strstr(r.err, "url"), "message names the missing URL: %s", r.err);
	sgt_result_free(&r);
}

Test(sqlite, missing_directory_is_a_usage_error)
{
	struct fixture f;
	setup(&f);
	char url[700];
	snprintf(url, sizeof(url), "sqlite:%s", f.db);
	const char *argv[] = {"--database-url", url, "--dir", "/nonexistent/migrations", "up", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_expect_eq(r.status, 2, "%d %s", r.status, r.err);
	cr_expect(strstr(r.err, "/nonexistent/migrations") != NULL, "%s", r.err);
	cr_expect(access(f.db, F_OK) != 0, "the database was touched");
	sgt_result_free(&r);
	teardown(&f);
}

Test(sqlite, duplicate_version_fails_before_connecting)
{
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0007_a.up.sql", "SELECT 1;\n");
	sgt_write(f.mig, "7_b.up.sql", "SELECT 1;\n");
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 2, "%d %s", r.status, r.err);
	cr_expect(strstr(r.err, "0007_a.up.sql") && strstr(r.err, "7_b.up.sql"), "names both files: %s", r.err);
	cr_expect(access(f.db, F_OK) != 0, "the database file was created");
	sgt_result_free(&r);
	teardown(&f);
}

Test(sqlite, syntax_error_exits_1_names_file_and_records_nothing)
{
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0001_ok.up.sql", "CREATE TABLE ok (x INTEGER);\n");
	sgt_write(f.mig, "0002_bad.up.sql", "CREATE TABLE bad (x INTEGER);\nSELEC oops;\n");
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 1, "%d %s", r.status, r.err);
	cr_expect(strstr(r.err, "0002_bad.up.sql") != NULL, "names the file: %s", r.err);
	cr_expect(strstr(r.err, "syntax error") != NULL, "database's message: %s", r.err);
	char *hist = sql1(&f, "SELECT group_concat(version) FROM schemagate_migrations");
	cr_expect_str_eq(hist, "0001", "0002 must not be recorded: %s", hist);
	char *bad = sql1(&f, "SELECT count(*) FROM sqlite_master WHERE name = 'bad'");
	cr_expect_str_eq(bad, "0", "the failed migration's first statement stayed");
	char *ev = sql1(&f, "SELECT count(*) FROM schemagate_events WHERE event = 'failure' AND version = '0002'");
	cr_expect_str_eq(ev, "1", "the failure is audited");
	free(hist);
	free(bad);
	free(ev);
	sgt_result_free(&r);
	teardown(&f);
}

Test(sqlite, strict_refuses_unknown_applied_versions)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *p = sgt_path(f.mig, "0003_index.up.sql");
	unlink(p);
	free(p);
	p = sgt_path(f.mig, "0003_index.down.sql");
	unlink(p);
	free(p);
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "ahead of the image is accepted by default: %s", r.err);
	cr_expect(strstr(r.err, "0003") != NULL, "warns about the unknown version: %s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "up", "--strict", NULL, NULL, NULL);
	cr_expect_eq(r.status, 4, "%d %s", r.status, r.err);
	cr_expect(strstr(r.err, "0003") != NULL, "%s", r.err);
	sgt_result_free(&r);
	teardown(&f);
}

Test(sqlite, program_after_double_dash_is_execed_with_same_pid)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	char *log = sgt_path(f.dir, "exec.log");
	const char *argv[] = {"--database-url", f.url, "--dir", f.mig, "up", "--", "/bin/sh", "-c",
			      "echo pid=$$; exit 7", NULL};
	pid_t pid = sgt_spawn(NULL, argv, log);
	int status = sgt_wait(pid);
	cr_expect_eq(status, 7);
	char *out = sgt_slurp(log);
	char want[64];
	snprintf(want, sizeof(want), "pid=%d\n", (int)pid);
	cr_expect(strstr(out, want) != NULL, "expected %s in %s", want, out);
	free(out);
	free(log);
	teardown(&f);
}

/* Same environment: what schemagate sets for itself (its thread pool's
 * size) does not reach the program; what it was given does. */
Test(sqlite, program_after_double_dash_gets_the_environment_schemagate_was_given)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	const char *given = getenv("UV_THREADPOOL_SIZE");
	const char *argv[] = {"--database-url", f.url, "--dir", f.mig, "-q", "up", "--", "/bin/sh", "-c",
			      "echo \"pool=${UV_THREADPOOL_SIZE-unset}\"", NULL};
	const char *envs[][2] = {{NULL, NULL}, {"UV_THREADPOOL_SIZE=3", NULL}};
	for (size_t i = 0; i < 2; i++) {
		char *log = sgt_path(f.dir, "exec.log");
		pid_t pid = sgt_spawn(envs[i][0] ? envs[i] : NULL, argv, log);
		cr_expect_eq(sgt_wait(pid), 0);
		char *out = sgt_slurp(log);
		char want[64];
		snprintf(want, sizeof(want), "pool=%s\n", i == 1 ? "3" : given ? given : "unset");
		cr_expect(out && strstr(out, want) != NULL, "expected %s in %s", want, out);
		free(out);
		free(log);
	}
	teardown(&f);
}

/* The mask of ignored signals in /proc/<pid>/status text ("SigIgn:\t..."). */
static unsigned long long sig_ignored(const char *status)
{
	const char *p = status ? strstr(status, "SigIgn:") : NULL;
	return p ? strtoull(p + 7, NULL, 16) : ~0ULL;
}

/* The program exec'd after `--` starts with the dispositions of the
 * signals schemagate handles (INT, PIPE, ALRM, TERM) as schemagate got
 * them, not schemagate's own: an ignored SIGPIPE would survive exec. */
Test(sqlite, program_after_double_dash_gets_the_original_signal_dispositions)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	const unsigned long long handled = (1ULL << (SIGINT - 1)) | (1ULL << (SIGPIPE - 1)) | (1ULL << (SIGALRM - 1)) |
					   (1ULL << (SIGTERM - 1));
	char *self = sgt_slurp("/proc/self/status");
	unsigned long long want = sig_ignored(self) & handled;
	free(self);
	char *log = sgt_path(f.dir, "exec.log");
	const char *argv[] = {"--database-url", f.url, "--dir", f.mig, "-q", "up", "--", "/bin/cat", "/proc/self/status",
			      NULL};
	pid_t pid = sgt_spawn(NULL, argv, log);
	cr_expect_eq(sgt_wait(pid), 0);
	char *got = sgt_slurp(log);
	cr_expect_eq(sig_ignored(got) & handled, want, "ignored signals %llx, schemagate was given %llx",
		     sig_ignored(got) & handled, want);
	cr_expect(got && strstr(got, "SigBlk:\t0000000000000000"), "signals blocked in the program: %s", got);
	free(got);
	free(log);
	teardown(&f);
}

Test(sqlite, wait_exits_zero_once_another_process_migrates)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	const char *wargv[] = {"--database-url", f.url, "--dir", f.mig, "--poll-interval", "100ms",
			       "--lock-timeout", "20s", "wait", NULL};
	pid_t waiter = sgt_spawn(NULL, wargv, NULL);
	usleep((useconds_t)(500 * 1000 * sgt_slowdown()));
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(sgt_wait(waiter), 0);
	/* wait never writes: against an empty database it times out */
	struct fixture g;
	setup(&g);
	three_migrations(&g);
	sgt_write(g.dir, "app.db", "");
	sg(&r, &g, "--lock-timeout", "300ms", "wait", NULL, NULL);
	cr_expect_eq(r.status, 3, "%d %s", r.status, r.err);
	sgt_result_free(&r);
	char *tables = sql1(&g, "SELECT count(*) FROM sqlite_master");
	cr_expect_str_eq(tables, "0", "wait created something");
	free(tables);
	teardown(&g);
	teardown(&f);
}

Test(sqlite, lock_timeout_exits_3)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	/* hold the write lock from a sqlite3 shell for 3 s (longer when the
	 * binary runs slower) */
	unsigned hold = (unsigned)(3 * sgt_slowdown());
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "(printf 'BEGIN IMMEDIATE;\\nSELECT 1;\\n'; sleep %u; printf 'COMMIT;\\n') | "
				 "sqlite3 '%s' >/dev/null 2>&1 &", hold, f.db) > 0);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
	usleep(500 * 1000);
	struct sgt_result r;
	sg(&r, &f, "--lock-timeout", "1s", "up", NULL, NULL);
	cr_expect_eq(r.status, 3, "%d %s", r.status, r.err);
	cr_expect(strstr(r.err, "lock") != NULL, "%s", r.err);
	sgt_result_free(&r);
	sleep(hold);
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	teardown(&f);
}

Test(sqlite, baseline_and_up_with_baseline_version)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	/* a database that predates schemagate: it already has 0001's tables */
	char *q = sql1(&f, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE marks (v TEXT);");
	free(q);
	struct sgt_result r;
	sg(&r, &f, "up", "--baseline-version", "1", NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *hist = sql1(&f, "SELECT group_concat(version || ':' || status) FROM (SELECT * FROM schemagate_migrations ORDER BY version)");
	cr_expect_str_eq(hist, "0001:baselined,0002:applied,0003:applied");
	char *marks = sql1(&f, "SELECT group_concat(v) FROM marks");
	cr_expect_str_eq(marks, "two,three", "0001 must not have run: %s", marks);
	free(hist);
	free(marks);
	teardown(&f);
}

Test(sqlite, status_json_lists_every_state)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	struct sgt_result r;
	sg(&r, &f, "--target", "0002", "up", NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "status", "--json", NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "\"version\":\"0001\"") && strstr(r.out, "\"state\":\"applied\""), "%s", r.out);
	cr_expect(strstr(r.out, "\"state\":\"pending\"") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "\"pending\":1") != NULL, "%s", r.out);
	cr_expect(strstr(r.err, "\"") == NULL || 1);
	sgt_result_free(&r);
	teardown(&f);
}

Test(sqlite, termination_log_gets_the_failure_reason)
{
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0001_bad.up.sql", "SELEC 1;\n");
	char *tl = sgt_path(f.dir, "termination-log");
	struct sgt_result r;
	sg(&r, &f, "--termination-log", tl, "up", NULL, NULL);
	cr_expect_eq(r.status, 1);
	char *reason = sgt_slurp(tl);
	cr_assert_not_null(reason);
	cr_expect(strstr(reason, "0001_bad.up.sql") != NULL, "%s", reason);
	free(reason);
	free(tl);
	sgt_result_free(&r);
	teardown(&f);
}

Test(sqlite, example_migrations_apply_verify_and_revert)
{
	struct fixture f;
	setup(&f);
	free(f.mig);
	f.mig = sgt_copy_example_migrations(f.dir);
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "verify", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "down", "--to", "0", NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *left = sql1(&f, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'schemagate_%' AND name NOT LIKE 'sqlite_%'");
	cr_expect_str_eq(left, "0", "tables left after down --to 0");
	free(left);
	teardown(&f);
}

Test(sqlite, out_of_order_pending_is_an_integrity_error_unless_allowed)
{
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0001_a.up.sql", "CREATE TABLE a (x INTEGER);\n");
	sgt_write(f.mig, "0003_c.up.sql", "CREATE TABLE c (x INTEGER);\n");
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	/* a branch merged late: 0002 is older than the newest applied */
	sgt_write(f.mig, "0002_b.up.sql", "CREATE TABLE b (x INTEGER);\n");
	sg(&r, &f, "verify", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 4, "verify: %d %s", r.status, r.err);
	sgt_result_free(&r);
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_expect_eq(r.status, 4, "up: %d %s", r.status, r.err);
	cr_expect(strstr(r.err, "0002_b.up.sql") && strstr(r.err, "--allow-out-of-order"), "%s", r.err);
	sgt_result_free(&r);
	sg(&r, &f, "up", "--allow-out-of-order", NULL, NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	char *b = sql1(&f, "SELECT count(*) FROM sqlite_master WHERE name = 'b'");
	cr_expect_str_eq(b, "1");
	free(b);
	teardown(&f);
}

Test(sqlite, overall_timeout_cancels_rolls_back_and_exits_3)
{
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0001_slow.up.sql", SLOW_SQL);
	struct sgt_result r;
	sg(&r, &f, "--timeout", "700ms", "up", NULL, NULL);
	cr_expect_eq(r.status, 3, "%d %s", r.status, r.err);
	cr_expect_lt(r.seconds, 3.0 * sgt_slowdown(), "took %.1fs", r.seconds);
	cr_expect(strstr(r.err, "--timeout") != NULL, "%s", r.err);
	sgt_result_free(&r);
	char *n = sql1(&f, "SELECT count(*) FROM sqlite_master WHERE name = 'slow'");
	cr_expect_str_eq(n, "0", "the canceled migration left its table");
	free(n);
	teardown(&f);
}

Test(sqlite, sigint_exits_130)
{
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0001_slow.up.sql", SLOW_SQL);
	const char *argv[] = {"--database-url", f.url, "--dir", f.mig, "up", NULL};
	pid_t pid = sgt_spawn(NULL, argv, NULL);
	usleep((useconds_t)(700 * 1000 * sgt_slowdown()));
	double t0 = sgt_now_ms();
	kill(pid, SIGINT);
	cr_expect_eq(sgt_wait(pid), 130);
	cr_expect_lt(sgt_now_ms() - t0, 2000.0 * sgt_slowdown());
	teardown(&f);
}

Test(sqlite, lock_none_applies_without_a_lock)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	struct sgt_result r;
	sg(&r, &f, "--lock", "none", "up", NULL, NULL);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.err, "lock_acquired") == NULL, "took a lock: %s", r.err);
	sgt_result_free(&r);
	char *hist = sql1(&f, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'");
	cr_expect_str_eq(hist, "3");
	free(hist);
	teardown(&f);
}

Test(sqlite, new_and_lint_through_the_command_line)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	const char *nargv[] = {"--dir", f.mig, "new", "add_flags", NULL};
	struct sgt_result r;
	sgt_run(&r, NULL, nargv);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "0004_add_flags.up.sql") && strstr(r.out, "0004_add_flags.down.sql"),
		  "new must follow the 4-digit style and print the paths: %s", r.out);
	sgt_result_free(&r);
	char *p = sgt_path(f.mig, "0004_add_flags.up.sql");
	cr_expect_eq(access(p, F_OK), 0);
	free(p);
	const char *largv[] = {"--dir", f.mig, "lint", NULL};
	sgt_run(&r, NULL, largv);
	cr_expect_eq(r.status, 0, "clean directory: %d %s %s", r.status, r.out, r.err);
	sgt_result_free(&r);
	sgt_write(f.mig, "3_dup.up.sql", "SELECT 1;\n");
	sgt_run(&r, NULL, largv);
	cr_expect_eq(r.status, 2, "duplicate version: %d", r.status);
	cr_expect(strstr(r.out, "3_dup.up.sql") != NULL, "lint names the file: %s", r.out);
	sgt_result_free(&r);
	teardown(&f);
}

/*
 * A reader during a long migration: once the writer's cache spills, SQLite
 * holds the file exclusively until the migration commits, so `status`
 * cannot read. It waits for its read as long as --lock-timeout allows (not
 * a fixed 10 s), then reports; with a short --lock-timeout it says the
 * file is locked (exit 3).
 */
Test(sqlite, status_during_a_long_migration_waits_up_to_the_lock_timeout, .timeout = 120)
{
	if (sgt_slowdown() > 1.0)
		cr_skip_test("a 25-million-row insert takes minutes under valgrind (SG_TEST_SLOWDOWN)");
	struct fixture f;
	setup(&f);
	sgt_write(f.mig, "0001_base.up.sql", "CREATE TABLE base (x INTEGER);\n");
	sgt_write(f.mig, "0002_big.up.sql",
		  "PRAGMA cache_size = 10;\n"
		  "CREATE TABLE big AS SELECT randomblob(1000) AS b FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
		  "SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c);\n"
		  "INSERT INTO big SELECT randomblob(10) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
		  "FROM c WHERE x < 25000000) SELECT count(*) FROM c);\n");
	char *log = sgt_path(f.dir, "up.log");
	const char *argv[] = {"--database-url", f.url, "--dir", f.mig, "up", NULL};
	pid_t pid = sgt_spawn(NULL, argv, log);
	double t0 = sgt_now_ms();
	char *s = NULL;
	while (sgt_now_ms() - t0 < 20000) {
		free(s);
		s = sgt_slurp(log);
		if (s && strstr(s, "applying 0002_big"))
			break;
		usleep(20 * 1000);
	}
	free(s);
	usleep(800 * 1000);   /* the 20 MB insert has spilled: the file is exclusively held */
	struct sgt_result r;
	sg(&r, &f, "--lock-timeout", "500ms", "status", NULL, NULL);
	cr_expect_eq(r.status, 3, "a 500ms read deadline: exit %d %s", r.status, r.err);
	cr_expect(strstr(r.err, "locked"), "%s", r.err);
	cr_expect_lt(r.seconds, 5.0, "status waited %.1f s with a 500ms deadline", r.seconds);
	sgt_result_free(&r);
	sg(&r, &f, "--lock-timeout", "60s", "status", NULL, NULL);
	fprintf(stderr, "status waited %.1f s for the migration's exclusive lock\n", r.seconds);
	cr_expect_eq(r.status, 0, "status with the default-length deadline: exit %d %s", r.status, r.err);
	cr_expect(strstr(r.out, "0001") && strstr(r.out, "base"), "%s", r.out);
	sgt_result_free(&r);
	cr_expect_eq(sgt_wait(pid), 0);
	free(log);
	teardown(&f);
}

/* The database header's file change counter (offset 24, big-endian): one
 * more for each write transaction committed (rollback journal). */
static unsigned long change_counter(const char *db)
{
	unsigned char h[28] = {0};
	FILE *fp = fopen(db, "rb");
	cr_assert(fp, "%s", db);
	cr_assert_eq(fread(h, 1, sizeof(h), fp), sizeof(h));
	fclose(fp);
	return (unsigned long)h[24] << 24 | (unsigned long)h[25] << 16 | (unsigned long)h[26] << 8 | h[27];
}

/* A fresh apply writes each migration in one transaction - its script,
 * its history row and its audit event - and nothing outside it (the
 * state tables are created once, together: one more); a no-op up writes
 * nothing. */
Test(sqlite, each_migration_is_one_write_transaction)
{
	struct fixture f;
	setup(&f);
	three_migrations(&f);
	struct sgt_result r;
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(change_counter(f.db), 1 + 3, "%lu write transactions for 3 migrations", change_counter(f.db));
	char *rows = sql1(&f, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'");
	cr_expect_str_eq(rows, "3");
	free(rows);
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(change_counter(f.db), 4, "a no-op up wrote to the database");
	sgt_write(f.mig, "0004_more.up.sql", "CREATE TABLE more (id INTEGER);\n");
	sg(&r, &f, "up", NULL, NULL, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_expect_eq(change_counter(f.db), 5, "%lu write transactions after one more migration", change_counter(f.db));
	teardown(&f);
}
