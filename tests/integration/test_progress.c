/*
 * test_progress.c - long statements report what they do (SPEC 8): a
 * `progress` line every --progress-interval (10 s) with the phase and the
 * percent the server's own view reports, what the statement waits for and
 * who blocks it, and none of it changes what the migration does.
 *
 * Durations are made deterministic rather than big: the PostgreSQL index
 * is built on an IMMUTABLE function that sleeps 0.1 s per row, one row
 * per page, so blocks_done moves one block per 0.1 s whatever the load.
 * MariaDB has no per-row sleep an ALTER TABLE would run (SLEEP() is
 * refused in DEFAULT, CHECK and generated columns), so its table is sized
 * from a measured copy rate instead, and its report interval is short.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <math.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sgdb.h"
#include "sgtest.h"

/* The progress lines of a log, each malloc'd; returns how many. */
static int progress_lines(const char *log, char **out, int max)
{
	int n = 0;
	for (const char *p = log; p && *p && n < max;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *line = strndup(p, len);
		if (strstr(line, "progress: ") || strstr(line, "\"event\":\"progress\""))
			out[n++] = line;
		else
			free(line);
		p = end ? end + 1 : NULL;
	}
	return n;
}

static void free_lines(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		free(lines[i]);
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* Wait until the log at path holds `needle` (a progress line, say). */
static char *await_in_log(const char *path, const char *needle, double timeout_ms)
{
	double t0 = sgt_now_ms();
	for (;;) {
		char *log = sgt_slurp(path);
		if (log && strstr(log, needle))
			return log;
		if (sgt_now_ms() - t0 > timeout_ms) {
			cr_log_error("log so far:\n%s", log ? log : "(none)");
			free(log);
			cr_assert_fail("no \"%s\" in the log within %.0f ms", needle, timeout_ms);
		}
		free(log);
		sleep_ms(100);
	}
}

static pid_t spawn_up(struct tdb *d, const char *log, const char *interval)
{
	const char *argv[] = {"--database-url", d->url, "--dir", d->mig, "--progress-interval", interval, "up", NULL};
	return sgt_spawn(NULL, argv, log);
}

/* ---- PostgreSQL ----------------------------------------------------------- */

#define PG_ROWS 250

/* A table of PG_ROWS rows, one per page, and an index key that takes
 * 0.1 s per row: a concurrent build scans it in 25 s. */
static void pg_slow_table(struct tdb *d)
{
	free(tdb_value(d, "CREATE TABLE slow_rows (id int PRIMARY KEY, pad text) WITH (fillfactor = 10)"));
	free(tdb_value(d, "INSERT INTO slow_rows SELECT i, repeat('x', 1000) FROM generate_series(1, %d) i", PG_ROWS));
	free(tdb_value(d, "CREATE FUNCTION slow_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
			  "$$ BEGIN PERFORM pg_sleep(0.1); RETURN i; END $$"));
}

Test(progress, postgres_concurrent_index_reports_its_phase_and_a_rising_percent_every_10s, .timeout = 240)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	pg_slow_table(&d);
	long pages = tdb_long(&d, "SELECT pg_relation_size('slow_rows') / current_setting('block_size')::int");
	cr_assert_eq(pages, PG_ROWS, "one row per page: %ld pages", pages);
	sgt_write(d.mig, "0001_slow_index.up.sql",
		  "-- schemagate:no-transaction\nCREATE INDEX CONCURRENTLY slow_rows_key ON slow_rows (slow_key(id));\n");

	/* the default interval: the spec's 10 s */
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "--log-format", "json", "up", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_geq(r.seconds, 20, "the build took %.1fs: too short to show two reports", r.seconds);

	char *lines[32];
	int n = progress_lines(r.err, lines, 32);
	cr_assert_geq(n, 2, "%d progress lines in a %.0fs build:\n%s", n, r.seconds, r.err);
	double last = -1;
	long last_ms = 0;
	for (int i = 0; i < n; i++) {
		const char *l = lines[i];
		/* what pg_stat_progress_create_index says, and nothing else:
		 * the blocks are the table's pages and the percent is theirs */
		cr_assert(strstr(l, "CREATE INDEX CONCURRENTLY") && strstr(l, "\"phase\":\"building index: scanning table\""),
			  "%s", l);
		const char *b = strstr(l, "blocks ");
		const char *pc = strstr(l, "\"percent\":");
		const char *ms = strstr(l, "\"duration_ms\":");
		cr_assert(b && pc && ms, "%s", l);
		long done = 0, total = 0;
		cr_assert_eq(sscanf(b, "blocks %ld of %ld", &done, &total), 2, "%s", l);
		double percent = strtod(pc + 10, NULL);
		cr_assert_eq(total, pages, "%s", l);
		cr_assert(done > 0 && done < total, "%s", l);
		cr_assert(fabs(percent - 100.0 * (double)done / (double)total) < 0.06, "%s", l);
		cr_assert_gt(percent, last, "the percent did not rise: %s", l);
		/* every 10 s of the statement's running time */
		long running = atol(ms + 14);
		cr_assert(running >= 10000L * (i + 1) && running < 10000L * (i + 1) + 5000, "%s", l);
		cr_assert_gt(running, last_ms);
		last = percent;
		last_ms = running;
	}
	free_lines(lines, n);

	/* the probe changed nothing: applied once, the index valid, one
	 * history row, one apply event; a second run has nothing to do */
	cr_assert_eq(count_of(r.err, "\"event\":\"applied\""), 1, "%s", r.err);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM pg_index WHERE indexrelid = 'slow_rows_key'::regclass AND "
				  "indisvalid"), 1);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE version = '0001' AND "
				  "status = 'applied' AND statements_done = 1"), 1);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_events WHERE event = 'apply'"), 1);
	/* and the probe's connections are gone */
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'schemagate-progress/%'"), 0);
	sgt_result_free(&r);
	tdb_run(&d, NULL, &r, "verify", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	tdb_drop(&d);
}

/* A session of the test's own, named so that the report can name it. */
static PGconn *pg_blocker(struct tdb *d, const char *name)
{
	char *url = NULL;
	cr_assert(asprintf(&url, "%s?application_name=%s", d->url, name) > 0);
	PGconn *c = pg_open(url);
	free(url);
	return c;
}

static void pg_do(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
		  PQresultErrorMessage(res));
	PQclear(res);
}

/*
 * Run up on d while a session of the test's own, named name, holds what
 * its statements (begin, then hold) took; once a progress line names that
 * session, let it go. Returns the log as it was then (malloc'd); up must
 * then succeed.
 */
static char *up_blocked_by(struct tdb *d, const char *name, const char *begin, const char *hold)
{
	PGconn *blocker = pg_blocker(d, name);
	pg_do(blocker, begin);
	pg_do(blocker, hold);
	char *log = sgt_path(d->dir, "up.log"), *needle = NULL;
	pid_t pid = spawn_up(d, log, "2s");
	cr_assert(asprintf(&needle, "pid %d (application_name \"%s\"", PQbackendPID(blocker), name) > 0);
	char *text = await_in_log(log, needle, 30000);
	pg_do(blocker, "COMMIT");
	cr_assert_eq(sgt_wait(pid), 0);
	PQfinish(blocker);
	free(needle);
	free(log);
	return text;
}

Test(progress, postgres_statement_blocked_by_a_lock_names_the_blocker, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	free(tdb_value(&d, "CREATE TABLE busy (id int)"));
	sgt_write(d.mig, "0001_add_column.up.sql", "ALTER TABLE busy ADD COLUMN note text;\n");
	/* ACCESS SHARE on busy until the end of the transaction */
	char *text = up_blocked_by(&d, "sg-progress-blocker", "BEGIN", "SELECT count(*) FROM busy");
	/* the first report comes after 2 s; a loaded machine may make it 3 */
	const char *report = strstr(text, "statement running for ");
	cr_assert(report && strstr(report, "s: ALTER TABLE; waiting for Lock:relation, blocked by pid "), "%s", text);
	cr_assert(strstr(text, "\"sg-progress-blocker\", idle in transaction, transaction open "), "%s", text);
	free(text);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'busy' AND "
				  "column_name = 'note'"), 1);
	tdb_drop(&d);
}

Test(progress, postgres_concurrent_index_waiting_for_old_snapshots_names_the_transaction, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, tdb_server_for(ENG_PG));
	free(tdb_value(&d, "CREATE TABLE other (id int); CREATE TABLE indexed (id int)"));
	sgt_write(d.mig, "0001_index.up.sql",
		  "-- schemagate:no-transaction\nCREATE INDEX CONCURRENTLY indexed_id ON indexed (id);\n");
	/* a snapshot older than the build's, on another table: the build
	 * waits for it to end in its last phase */
	char *text = up_blocked_by(&d, "sg-old-snapshot", "BEGIN ISOLATION LEVEL REPEATABLE READ",
				   "SELECT count(*) FROM other");
	cr_assert(strstr(text, "CREATE INDEX CONCURRENTLY, waiting for old snapshots (0 of 1 transactions)"), "%s", text);
	free(text);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM pg_index WHERE indexrelid = 'indexed_id'::regclass AND "
				  "indisvalid"), 1);
	tdb_drop(&d);
}

/* ---- MariaDB -------------------------------------------------------------- */

static double alter_seconds(struct tdb *d, const char *sql)
{
	double t0 = sgt_now_ms();
	free(tdb_value(d, "%s", sql));
	return (sgt_now_ms() - t0) / 1000.0;
}

Test(progress, mariadb_alter_table_copy_reports_its_stage_and_a_rising_percent, .timeout = 240)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, tdb_server_for(ENG_MY));
	/* how fast this server copies rows now, then a table that takes
	 * about 8 s to copy at that rate (a busy machine's rate changes: the
	 * reports come every 500 ms, so a copy 3 times faster still shows
	 * several) */
	free(tdb_value(&d, "CREATE TABLE wide (id int PRIMARY KEY, a int, b varchar(100)) ENGINE=InnoDB"));
	free(tdb_value(&d, "INSERT INTO wide SELECT seq, seq, repeat('y', 100) FROM seq_1_to_100000"));
	double per_100k = alter_seconds(&d, "ALTER TABLE wide ADD COLUMN probe int, ALGORITHM=COPY");
	long rows = (long)(8.0 / (per_100k > 0.01 ? per_100k : 0.01) * 100000.0);
	if (rows > 3000000)
		rows = 3000000;
	if (rows < 100000)
		rows = 100000;
	free(tdb_value(&d, "INSERT INTO wide SELECT seq, seq, repeat('y', 100), NULL FROM seq_100001_to_%ld", rows));
	sgt_write(d.mig, "0001_rebuild.up.sql", "ALTER TABLE wide ADD COLUMN note varchar(20), ALGORITHM=COPY;\n");

	struct sgt_result r;
	tdb_run(&d, NULL, &r, "--progress-interval", "500ms", "up", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	char *lines[64];
	int n = progress_lines(r.err, lines, 64);
	/* the copy stage's reports: never falling, and rising over the copy
	 * (MariaDB updates the count every so many rows, so two reports close
	 * together may show the same) */
	double first = -1, last = -1;
	int copy_reports = 0;
	for (int i = 0; i < n; i++) {
		const char *stage = strstr(lines[i], "ALTER TABLE, stage 1 of 2: copy to tmp table, ");
		if (!stage)
			continue;
		double percent = strtod(stage + strlen("ALTER TABLE, stage 1 of 2: copy to tmp table, "), NULL);
		cr_assert(percent >= 0 && percent <= 100, "%s", lines[i]);
		cr_assert_geq(percent, last, "the percent fell: %s", lines[i]);
		if (first < 0)
			first = percent;
		last = percent;
		copy_reports++;
	}
	cr_assert(copy_reports >= 2 && last > first, "%d copy reports, from %.1f%% to %.1f%% (%ld rows, %.2fs per 100k "
		  "rows):\n%s", copy_reports, first, last, rows, per_100k, r.err);
	free_lines(lines, n);
	cr_assert_eq(count_of(r.err, "applied: applied 0001_rebuild.up.sql"), 1, "%s", r.err);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'"), 1);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
				  "AND TABLE_NAME = 'wide' AND COLUMN_NAME = 'note'"), 1);
	sgt_result_free(&r);
	tdb_drop(&d);
}

Test(progress, mariadb_alter_waiting_for_a_metadata_lock_names_the_open_transaction, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, tdb_server_for(ENG_MY));
	free(tdb_value(&d, "CREATE TABLE busy (id int PRIMARY KEY) ENGINE=InnoDB"));
	sgt_write(d.mig, "0001_add_column.up.sql", "ALTER TABLE busy ADD COLUMN note text;\n");
	MYSQL *blocker = my_open(d.server_url, d.name);
	cr_assert_eq(mysql_query(blocker, "START TRANSACTION"), 0, "%s", mysql_error(blocker));
	cr_assert_eq(mysql_query(blocker, "SELECT count(*) FROM busy"), 0, "%s", mysql_error(blocker));
	mysql_free_result(mysql_store_result(blocker));
	char *log = sgt_path(d.dir, "up.log"), *needle = NULL;
	pid_t pid = spawn_up(&d, log, "2s");
	cr_assert(asprintf(&needle, "connection %lu (", mysql_thread_id(blocker)) > 0);
	char *text = await_in_log(log, needle, 30000);
	cr_assert(strstr(text, "waiting for table metadata lock"), "%s", text);
	cr_assert(strstr(text, "sessions whose open transaction began before it"), "%s", text);
	free(text);
	cr_assert_eq(mysql_query(blocker, "COMMIT"), 0);
	cr_assert_eq(sgt_wait(pid), 0);
	mysql_close(blocker);
	free(needle);
	free(log);
	tdb_drop(&d);
}
