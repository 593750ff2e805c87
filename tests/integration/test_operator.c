/*
 * test_operator.c - what an operator reads is true (issue 13), through the
 * built binary against the private PostgreSQL, MariaDB and SQLite:
 *
 *   - `status` shows one timestamp format on every engine, in text and
 *     JSON: RFC 3339, UTC, milliseconds, whatever the session time zone;
 *   - `status` shows baselined rows as baselined;
 *   - `status --check` exits 4 on a failed, partial or changed row, 6 when
 *     migrations are pending, 0 otherwise, and still prints the table;
 *   - a waiter interrupted while it holds nothing says so, and claims no
 *     rollback and no release;
 *   - a no-transaction migration that loses the lock mid-way does not
 *     claim that it was rolled back (its first statement stays done);
 *   - the ready line names the newest applied version (not the target),
 *     and status prints ": error" under a row only when there is one.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "sgdb.h"
#include "sgtest.h"

static const enum eng engines[] = { ENG_PG, ENG_MY, ENG_LITE };

/* schemagate --database-url URL --dir MIG ARGS..., with extra env. */
static void run_env(struct sgt_result *r, const struct tdb *d, const char *const *env, const char *const *args)
{
	const char *argv[24];
	int k = 0;
	argv[k++] = "--database-url";
	argv[k++] = d->url;
	argv[k++] = "--dir";
	argv[k++] = d->mig;
	for (; *args && k < 23; args++)
		argv[k++] = *args;
	argv[k] = NULL;
	sgt_run(r, env, argv);
}
#define SG(r, d, ...) run_env((r), (d), NULL, (const char *[]){__VA_ARGS__, NULL})
#define SG_ENV(r, d, env, ...) run_env((r), (d), (env), (const char *[]){__VA_ARGS__, NULL})

static void expect_exit(struct sgt_result *r, int want, const struct tdb *d, const char *what)
{
	cr_assert_eq(r->status, want, "%s on %s: exit %d, want %d\nstdout: %s\nstderr: %s", what,
		     tdb_eng_name(d->eng), r->status, want, r->out, r->err);
}

/* Every "applied_at":"..." value of a status --json document, in order,
 * joined by spaces ("null" for JSON null). */
static char *json_applied_at(const char *json)
{
	size_t cap = strlen(json) + 1, len = 0;
	char *out = calloc(1, cap);
	const char *key = "\"applied_at\":";
	for (const char *p = strstr(json, key); p; p = strstr(p, key)) {
		p += strlen(key);
		size_t n = p[0] == '"' ? strcspn(p + 1, "\"") : strcspn(p, ",}");
		const char *v = p[0] == '"' ? p + 1 : p;
		len += (size_t)snprintf(out + len, cap - len, "%s%.*s", len ? " " : "", (int)n, v);
	}
	return out;
}

static bool matches(const char *re, const char *s)
{
	regex_t rx;
	cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return ok;
}

#define RFC3339_MS "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

/* ---- timestamps ------------------------------------------------------- */

/*
 * Fresh rows from up, then one row set to a known instant written the way
 * a person or an older tool might (PostgreSQL with another offset; SQLite
 * text without the T and Z): status text and JSON show the same RFC 3339
 * UTC text on every engine, also when the session's time zone is not UTC.
 */
static void timestamps_on(enum eng e)
{
	struct tdb d;
	tdb_create(&d, e, tdb_server_for(e));
	write_migrations(&d, 3, NULL);
	struct sgt_result r;
	SG(&r, &d, "up");
	expect_exit(&r, 0, &d, "up");
	sgt_result_free(&r);

	static const char *const known[] = {
		[ENG_PG] = "UPDATE schemagate_migrations SET applied_at = '2026-01-02 03:04:05.678+02' WHERE version = '0002'",
		[ENG_MY] = "UPDATE schemagate_migrations SET applied_at = '2026-01-02 01:04:05.678' WHERE version = '0002'",
		[ENG_LITE] = "UPDATE schemagate_migrations SET applied_at = '2026-01-02 01:04:05.678' WHERE version = '0002'",
	};
	free(tdb_value(&d, "%s", known[e]));

	/* libpq sets the session's TimeZone from PGTZ; MariaDB's session zone
	 * does not apply to DATETIME, SQLite has none: the output must not care */
	const char *const tz[] = { "PGTZ=Pacific/Chatham", "TZ=America/St_Johns", NULL };
	SG_ENV(&r, &d, tz, "status", "--json");
	expect_exit(&r, 0, &d, "status --json");
	char *stamps = json_applied_at(r.out);
	cr_assert(matches("^" RFC3339_MS " 2026-01-02T01:04:05\\.678Z " RFC3339_MS "$", stamps),
		  "%s: status --json applied_at values: %s", tdb_eng_name(e), stamps);
	/* the text table carries the very same strings */
	char *first = strndup(stamps, strcspn(stamps, " "));
	sgt_result_free(&r);
	SG_ENV(&r, &d, tz, "status");
	expect_exit(&r, 0, &d, "status");
	cr_assert(strstr(r.out, first), "%s: text status lacks %s:\n%s", tdb_eng_name(e), first, r.out);
	cr_assert(strstr(r.out, " 2026-01-02T01:04:05.678Z "), "%s: %s", tdb_eng_name(e), r.out);
	/* and no other format anywhere in the table */
	cr_assert_not(matches("[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([+-][0-9]{2}| |$)", r.out),
		      "%s: a timestamp not in RFC 3339 UTC form:\n%s", tdb_eng_name(e), r.out);
	sgt_result_free(&r);
	free(first);
	free(stamps);
	tdb_drop(&d);
}

Test(status, timestamps_are_rfc3339_utc_ms_postgres, .timeout = 120) { timestamps_on(ENG_PG); }
Test(status, timestamps_are_rfc3339_utc_ms_mariadb, .timeout = 120) { timestamps_on(ENG_MY); }
Test(status, timestamps_are_rfc3339_utc_ms_sqlite, .timeout = 120) { timestamps_on(ENG_LITE); }

/* ---- baselined -------------------------------------------------------- */

/* The STATE column of the version's line in text status. */
static char *text_state(const char *out, const char *version)
{
	char start[32];
	snprintf(start, sizeof(start), "\n%s ", version);
	const char *line = strstr(out, start);
	cr_assert(line, "no line for %s:\n%s", version, out);
	char state[32] = "";
	cr_assert_eq(sscanf(line + strlen(start), " %31s", state), 1);
	return strdup(state);
}

Test(status, baselined_rows_show_as_baselined, .timeout = 180)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		struct tdb d;
		tdb_create(&d, engines[i], tdb_server_for(engines[i]));
		write_migrations(&d, 3, NULL);
		struct sgt_result r;
		SG(&r, &d, "baseline", "0002");
		expect_exit(&r, 0, &d, "baseline 0002");
		sgt_result_free(&r);
		SG(&r, &d, "status");
		expect_exit(&r, 0, &d, "status");
		const char *want[] = { "0001", "baselined", "0002", "baselined", "0003", "pending" };
		for (size_t k = 0; k < 6; k += 2) {
			char *state = text_state(r.out, want[k]);
			cr_expect_str_eq(state, want[k + 1], "%s: %s is %s:\n%s", tdb_eng_name(d.eng), want[k], state,
					 r.out);
			free(state);
		}
		sgt_result_free(&r);
		/* JSON: the plan state stays "applied", the row says baselined */
		SG(&r, &d, "status", "--json");
		cr_assert(strstr(r.out, "\"version\":\"0001\",\"name\":\"step_1\",\"state\":\"applied\""), "%s", r.out);
		cr_assert(strstr(r.out, "\"status\":\"baselined\""), "%s", r.out);
		sgt_result_free(&r);
		/* once up has run 0003, it shows as applied, the others still baselined */
		SG(&r, &d, "up");
		expect_exit(&r, 0, &d, "up");
		sgt_result_free(&r);
		SG(&r, &d, "status");
		char *s1 = text_state(r.out, "0001"), *s3 = text_state(r.out, "0003");
		cr_expect_str_eq(s1, "baselined");
		cr_expect_str_eq(s3, "applied");
		free(s1);
		free(s3);
		sgt_result_free(&r);
		tdb_drop(&d);
	}
}

/* ---- status --check --------------------------------------------------- */

/* status --check exits want and still prints the table on stdout. */
static void check_exits(struct tdb *d, int want, const char *why, const char *extra)
{
	struct sgt_result r;
	if (extra)
		SG(&r, d, "status", "--check", extra);
	else
		SG(&r, d, "status", "--check");
	cr_assert_eq(r.status, want, "%s: status --check on %s: exit %d, want %d\n%s%s", why, tdb_eng_name(d->eng),
		     r.status, want, r.out, r.err);
	cr_assert(strstr(r.out, "VERSION ") && strstr(r.out, "0001 "), "%s: the table is printed:\n%s", why, r.out);
	/* exit 6 is an answer (info "pending"), exit 4 a failure */
	if (want != 0)
		cr_assert(strstr(r.err, want == 6 ? "pending: status" : "status failed"), "%s: the reason is logged:\n%s",
			  why, r.err);
	sgt_result_free(&r);
	/* without --check: the same table, exit 0 */
	SG(&r, d, "status");
	cr_assert_eq(r.status, 0, "%s: plain status exits 0, got %d: %s", why, r.status, r.err);
	sgt_result_free(&r);
}

Test(status, check_exit_codes, .timeout = 240)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		struct tdb d;
		tdb_create(&d, engines[i], tdb_server_for(engines[i]));
		write_migrations(&d, 3, NULL);
		check_exits(&d, 6, "fresh database, 3 pending", NULL);
		cr_assert_not(tdb_has_schemagate_tables(&d), "status --check created something");
		struct sgt_result r;
		SG(&r, &d, "up", "--target", "0002");
		expect_exit(&r, 0, &d, "up --target 0002");
		sgt_result_free(&r);
		check_exits(&d, 6, "one pending", NULL);
		SG(&r, &d, "up");
		expect_exit(&r, 0, &d, "up");
		sgt_result_free(&r);
		check_exits(&d, 0, "at the target", NULL);

		free(tdb_value(&d, "UPDATE schemagate_migrations SET status = 'failed' WHERE version = '0002'"));
		check_exits(&d, 4, "a failed row", NULL);
		free(tdb_value(&d, "UPDATE schemagate_migrations SET status = 'partial' WHERE version = '0002'"));
		check_exits(&d, 4, "a partial row", NULL);
		free(tdb_value(&d, "UPDATE schemagate_migrations SET status = 'applied' WHERE version = '0002'"));
		check_exits(&d, 0, "repaired by hand", NULL);

		char *file = sgt_path(d.mig, "0003_step_3.up.sql");
		char *saved = sgt_slurp(file);
		sgt_write(d.mig, "0003_step_3.up.sql", "-- edited after it was applied\nSELECT 1;\n");
		check_exits(&d, 4, "a changed checksum", NULL);
		sgt_write(d.mig, "0003_step_3.up.sql", saved);
		check_exits(&d, 0, "file restored", NULL);

		/* a version this directory does not know: accepted, refused under --strict */
		free(tdb_value(&d, "INSERT INTO schemagate_migrations (version, name, checksum, status, statements_done, "
				   "applied_at, applied_by) VALUES ('0009', 'newer', '', 'applied', 0, %s, 'test')",
			       d.eng == ENG_PG ? "now()" : d.eng == ENG_MY ? "UTC_TIMESTAMP(3)" : "'2026-01-01T00:00:00.000Z'"));
		check_exits(&d, 0, "database ahead", NULL);
		check_exits(&d, 4, "database ahead under --strict", "--strict");
		free(saved);
		free(file);
		tdb_drop(&d);
	}
}

/* ---- messages ---------------------------------------------------------- */

/*
 * The ready line names the newest applied version, not the target: after
 * `up --target 0002` it is 0002; when a newer release applied 0003 and an
 * image that knows only 0001-0002 starts, the database is at 0003 (the
 * target is 0002).
 */
Test(messages, ready_names_the_newest_applied_version, .timeout = 180)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		struct tdb d;
		tdb_create(&d, engines[i], tdb_server_for(engines[i]));
		write_migrations(&d, 3, NULL);
		struct sgt_result r;
		SG(&r, &d, "up", "--target", "0002");
		expect_exit(&r, 0, &d, "up --target 0002");
		cr_expect(strstr(r.err, "database is at version 0002 (2 applied)"), "%s: %s", tdb_eng_name(d.eng), r.err);
		sgt_result_free(&r);
		SG(&r, &d, "up");
		expect_exit(&r, 0, &d, "up");
		cr_expect(strstr(r.err, "database is at version 0003 (3 applied)"), "%s: %s", tdb_eng_name(d.eng), r.err);
		sgt_result_free(&r);
		/* the old image: 0003's files are gone */
		char *up3 = sgt_path(d.mig, "0003_step_3.up.sql");
		cr_assert_eq(unlink(up3), 0, "%s", up3);
		SG(&r, &d, "up");
		expect_exit(&r, 0, &d, "up from an image without 0003");
		cr_expect(strstr(r.err, "database is at version 0003 ("), "%s: %s", tdb_eng_name(d.eng), r.err);
		cr_expect_not(strstr(r.err, "database is at version 0002"), "%s: %s", tdb_eng_name(d.eng), r.err);
		sgt_result_free(&r);
		free(up3);
		tdb_drop(&d);
	}
}

/* The line under a failed or partial row in text status: "after N
 * statement(s)", then ": error" only when there is an error. */
static const char *detail_line(const char *out, const char *status)
{
	char start[48];
	snprintf(start, sizeof(start), " %s after ", status);
	const char *p = strstr(out, start);
	cr_assert(p, "no \"%s\" line:\n%s", start, out);
	return p + 1;
}

Test(messages, status_names_an_error_only_when_there_is_one, .timeout = 180)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		struct tdb d;
		tdb_create(&d, engines[i], tdb_server_for(engines[i]));
		write_migrations(&d, 2, NULL);
		struct sgt_result r;
		SG(&r, &d, "up");
		expect_exit(&r, 0, &d, "up");
		sgt_result_free(&r);
		free(tdb_value(&d, "UPDATE schemagate_migrations SET status = 'partial', statements_done = 1, error = NULL "
				   "WHERE version = '0002'"));
		SG(&r, &d, "status");
		expect_exit(&r, 0, &d, "status");
		const char *line = detail_line(r.out, "partial");
		cr_expect_eq(strncmp(line, "partial after 1 statement(s)\n", 29), 0, "%s: %.60s", tdb_eng_name(d.eng),
			     line);
		sgt_result_free(&r);
		free(tdb_value(&d, "UPDATE schemagate_migrations SET status = 'failed', error = 'boom' WHERE version = '0002'"));
		SG(&r, &d, "status");
		expect_exit(&r, 0, &d, "status");
		line = detail_line(r.out, "failed");
		cr_expect_eq(strncmp(line, "failed after 1 statement(s): boom\n", 34), 0, "%s: %.60s", tdb_eng_name(d.eng),
			     line);
		sgt_result_free(&r);
		tdb_drop(&d);
	}
}

/* ---- stopping ---------------------------------------------------------- */

/* Wait until the log file at path contains text (true) or ms pass. */
static bool log_says(const char *path, const char *text, long ms)
{
	for (long waited = 0; waited <= ms; waited += 50) {
		char *log = sgt_slurp(path);
		bool found = log && strstr(log, text);
		free(log);
		if (found)
			return true;
		sleep_ms(50);
	}
	return false;
}

static void assert_claims_no_cleanup(const char *log, const char *who)
{
	static const char *const false_claims[] = { "rolling back", "rolled back", "releasing", "released",
						    "lock_released" };
	for (size_t i = 0; i < sizeof(false_claims) / sizeof(false_claims[0]); i++)
		cr_assert_null(strcasestr(log, false_claims[i]), "%s held nothing yet says '%s':\n%s", who,
			       false_claims[i], log);
}

/*
 * A holds the lock (PostgreSQL, MariaDB: a slow migration; SQLite: the
 * test holds the exclusive flock on the database file that is schemagate's
 * lock there); B contends; SIGTERM to B. B exits 143 and says it stopped
 * while waiting for (MariaDB: inside GET_LOCK, taking) the lock, and
 * nothing about a rollback or a release: it had neither a transaction nor
 * the lock.
 */
static void waiter_interrupted_on(enum eng e)
{
	struct tdb d;
	tdb_create(&d, e, tdb_server_for(e));
	const char *slow = e == ENG_PG ? "SELECT pg_sleep(20);" : e == ENG_MY ? "SELECT SLEEP(20);" : NULL;
	write_migrations(&d, 1, slow);
	char *a_log = sgt_path(d.dir, "a.log"), *b_log = sgt_path(d.dir, "b.log");
	const char *argv[] = { "--database-url", d.url, "--dir", d.mig, "-v", "up", NULL };
	pid_t a = 0;
	int holder = -1;
	if (e == ENG_LITE) {
		holder = open(d.file, O_RDONLY | O_CLOEXEC);
		cr_assert(holder >= 0 && flock(holder, LOCK_EX | LOCK_NB) == 0);
	} else {
		a = sgt_spawn(NULL, argv, a_log);
		cr_assert(log_says(a_log, "apply_start", 30000), "A never started applying");
	}
	pid_t b = sgt_spawn(NULL, argv, b_log);
	cr_assert(log_says(b_log, "to \"contending\"", 30000), "B never contended");
	sleep_ms(700);   /* B is in its lock loop (MariaDB: inside GET_LOCK's wait) */
	kill(b, SIGTERM);
	int status = sgt_wait(b);
	char *log = sgt_slurp(b_log);
	cr_assert_eq(status, 143, "%s: B exited %d:\n%s", tdb_eng_name(e), status, log);
	cr_assert(strstr(log, "received SIGTERM: stopping"), "%s", log);
	cr_assert(strstr(log, e == ENG_MY ? "up failed (error=\"interrupted by SIGTERM while taking the lock\")"
				       : "up failed (error=\"interrupted by SIGTERM while waiting for the lock\")"),
		  "%s: the failure names the interruption, not an earlier check:\n%s", tdb_eng_name(e), log);
	cr_assert_null(strstr(log, "lock_acquired"), "%s", log);
	assert_claims_no_cleanup(log, tdb_eng_name(e));
	free(log);
	if (holder >= 0) {
		close(holder);
	} else {
		kill(a, SIGTERM);
		sgt_wait(a);
	}
	free(a_log);
	free(b_log);
	tdb_drop(&d);
}

Test(stopping, waiter_interrupted_claims_no_rollback_postgres, .timeout = 120) { waiter_interrupted_on(ENG_PG); }
Test(stopping, waiter_interrupted_claims_no_rollback_mariadb, .timeout = 120) { waiter_interrupted_on(ENG_MY); }
Test(stopping, waiter_interrupted_claims_no_rollback_sqlite, .timeout = 120) { waiter_interrupted_on(ENG_LITE); }

/*
 * A no-transaction migration whose progress row is taken from it mid-way
 * (what a lost lock looks like from inside): its first statement was
 * committed and stays, so the log must not say "the migration was rolled
 * back". It contends again, takes the row over and finishes.
 */
Test(stopping, lost_lock_in_a_no_transaction_migration_claims_no_rollback, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	sgt_write(d.mig, "0001_nt.up.sql",
		  "-- schemagate:no-transaction\nCREATE TABLE t0 (a int);\nSELECT pg_sleep(3);\nCREATE TABLE t1 (a int);\n");
	char *log_path = sgt_path(d.dir, "a.log");
	const char *argv[] = { "--database-url", d.url, "--dir", d.mig, "up", NULL };
	pid_t a = sgt_spawn(NULL, argv, log_path);
	/* t0 is done once the row records statement 2 as next */
	for (int i = 0; i < 600 && tdb_long(&d, "SELECT count(*) FROM pg_tables WHERE tablename = 't0'") < 1; i++)
		sleep_ms(50);
	sleep_ms(300);
	free(tdb_value(&d, "UPDATE schemagate_migrations SET applied_by = 'someone/else' WHERE version = '0001'"));
	int status = sgt_wait(a);
	char *log = sgt_slurp(log_path);
	cr_assert_eq(status, 0, "exit %d:\n%s", status, log);
	cr_assert(strstr(log, "lost the lock"), "the row was taken: %s", log);
	cr_assert_null(strstr(log, "the migration was rolled back"), "t0 was committed, yet:\n%s", log);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM pg_tables WHERE tablename IN ('t0', 't1')"), 2);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'"), 1);
	free(log);
	free(log_path);
	tdb_drop(&d);
}
