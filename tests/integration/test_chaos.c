/*
 * test_chaos.c - killing the lock holder, on purpose and at random.
 *
 * Two kinds of tests:
 *  - the lease lock (--lock=table) on each engine: a holder SIGKILLed in
 *    the middle of a slow migration is taken over once its lease runs out;
 *    a holder whose renewals are blocked gives up (exit 3) before its lease
 *    can expire under it, and leaves nothing half-applied;
 *  - chaos rounds on PostgreSQL and MariaDB: 20 instances, 20 migrations,
 *    a watcher that SIGKILLs whoever holds the lock at random moments,
 *    three times a round. On MariaDB (DDL is not transactional) a kill
 *    mid-migration leaves a `partial` row and the survivors refuse with
 *    exit 4 by design; the watcher then plays the operator: it checks
 *    whether the migration's effect is in the database, runs
 *    `repair V --applied` or `--reverted` accordingly, and starts more
 *    instances. At the end every migration is applied exactly once.
 *
 * The holder is found from the instances' own logs: the running instance
 * that logged lock_acquired (every instance logs to its own file).
 *
 * Environment: SG_CHAOS_ROUNDS (default 2), SG_CHAOS_SEED (default: time
 * and pid; printed at the start and in every failure), SG_CHAOS_LOCK
 * (auto or table, default auto) for the chaos rounds. The servers are the
 * shared ones of tests/run.sh (SG_TEST_PG_URL, SG_TEST_MYSQL_URL).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "schemagate/url.h"
#include "sgdb.h"
#include "sgtest.h"

static void run_sg(struct sgt_result *r, struct tdb *d, const char *a1, const char *a2, const char *a3)
{
	const char *argv[] = { "--database-url", d->url, "--dir", d->mig, a1, a2, a3, NULL };
	sgt_run(r, NULL, argv);
}

/* ---- lease lock: the holder is killed mid-migration ---------------------- */

/* Wait until instance i logs that it started applying version. */
static void wait_applying(struct fleet *f, int i, const char *version, double timeout_ms)
{
	char needle[64];
	snprintf(needle, sizeof(needle), "version=%s ", version);
	double t0 = sgt_now_ms();
	for (;;) {
		char *s = sgt_slurp(f->log[i]);
		char *a = s ? strstr(s, "apply_start") : NULL;
		bool ok = a && strstr(a, needle);
		free(s);
		if (ok)
			return;
		fleet_reap(f);
		if (!f->running[i]) {
			dump_log("holder", f->log[i]);
			cr_assert_fail("the holder exited %d before applying %s", f->status[i], version);
		}
		cr_assert_lt(sgt_now_ms() - t0, timeout_ms, "the holder did not start %s", version);
		sleep_ms(20);
	}
}

static const char *const lease_args[] = { "--lock", "table", "--lock-lease", "3s", "--poll-interval", "200ms",
					   "--lock-timeout", "60s", NULL };

/*
 * The holder runs 0002 (a slow statement, then the INSERT) under a 3 s
 * lease; three waiters wait; the holder is SIGKILLed during the slow
 * statement. Returns with the survivors exited; fills the takeover time
 * (first survivor to log lock_acquired after the kill, -1 if none).
 */
static void kill_lease_holder(struct tdb *d, struct fleet *f, const char *slow, double *takeover_ms)
{
	char sql[512];
	snprintf(sql, sizeof(sql), "INSERT INTO applied_log (v) VALUES ('0001');\n");
	sgt_write(d->mig, "0001_first.up.sql", sql);
	snprintf(sql, sizeof(sql), "%s\nINSERT INTO applied_log (v) VALUES ('0002');\n", slow);
	sgt_write(d->mig, "0002_slow.up.sql", sql);

	int holder = fleet_add(f, d, "holder", lease_args);
	wait_applying(f, holder, "0002", 30000);
	for (int i = 0; i < 3; i++)
		fleet_add(f, d, "waiter", lease_args);
	sleep_ms(700);   /* the waiters are in their lock loop, the holder renewed */
	fleet_reap(f);
	cr_assert(f->running[holder], "the holder finished before the kill");
	fleet_kill(f, holder);
	double killed_at = f->exited_at[holder];
	*takeover_ms = -1;
	double t0 = sgt_now_ms();
	while (fleet_reap(f) > 0 && sgt_now_ms() - t0 < 60000) {
		for (int i = 0; i < f->n && *takeover_ms < 0; i++)
			if (i != holder && file_has(f->log[i], "lock_acquired"))
				*takeover_ms = sgt_now_ms() - killed_at;
		sleep_ms(20);
	}
	fleet_wait(f, 30000);
	for (int i = 0; i < f->n && *takeover_ms < 0; i++)
		if (i != holder && file_has(f->log[i], "lock_acquired"))
			*takeover_ms = f->exited_at[i] - killed_at;
}

static void assert_survivors_ready(struct fleet *f, const char *what)
{
	int failures = fleet_failures(f, f->n);
	cr_assert_eq(failures, 0, "%s: %d survivors did not exit 0", what, failures);
}

static void lease_kill_transactional(struct tdb *d, const char *engine, const char *slow)
{
	struct fleet f = {0};
	double takeover_ms;
	kill_lease_holder(d, &f, slow, &takeover_ms);
	fprintf(stderr, "lease kill %s: instances=%d kills=1 lease=3s takeover=%.0f ms after SIGKILL\n", engine, f.n,
		takeover_ms);
	assert_survivors_ready(&f, engine);
	cr_assert_geq(takeover_ms, 0, "no survivor ever acquired the lease");
	/* the lease was renewed every second: it cannot have run out much
	 * sooner than 2 s after the kill, and must have by 3 s */
	cr_assert_geq(takeover_ms, 1000.0, "the lease was taken %.0f ms after the kill: before it expired",
		      takeover_ms);
	cr_assert_lt(takeover_ms, 8000.0, "takeover took %.0f ms with a 3 s lease", takeover_ms);
	assert_exactly_once(d, 2, engine);
	fleet_free(&f);
}

Test(chaos, lease_holder_killed_postgres, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	lease_kill_transactional(&d, "postgres", "SELECT pg_sleep(5);");
	tdb_drop(&d);
}

Test(chaos, lease_holder_killed_sqlite, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_LITE, NULL);
	/* about 5 s of work inside the migration's transaction */
	lease_kill_transactional(&d, "sqlite",
				 "CREATE TABLE slow_t AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
				 "WHERE x < 12000000) SELECT count(*) AS n FROM c;");
	tdb_drop(&d);
}

/* MariaDB: the kill leaves 0002 `partial` (its SLEEP and INSERT share one
 * transaction, rolled back with the session). Once the holder's lease has
 * expired a survivor takes over the row and resumes it: every survivor
 * exits 0, nobody is asked for a repair. */
Test(chaos, lease_holder_killed_mariadb_is_resumed, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	struct fleet f = {0};
	double takeover_ms;
	kill_lease_holder(&d, &f, "SELECT SLEEP(5);", &takeover_ms);
	fprintf(stderr, "lease kill mariadb: instances=%d kills=1 lease=3s takeover=%.0f ms\n", f.n, takeover_ms);
	assert_survivors_ready(&f, "mariadb");
	cr_assert_geq(takeover_ms, 1000.0, "the lease was taken %.0f ms after the kill: before it expired",
		      takeover_ms);
	int resumed = 0;
	for (int i = 0; i < f.n; i++) {
		char *log = sgt_slurp(f.log[i]);
		cr_assert(f.killed[i] || !log || !strstr(log, "repair"), "a survivor asked for a repair:\n%s", log);
		resumed += !f.killed[i] && log && strstr(log, "resuming 0002") != NULL;
		free(log);
	}
	cr_assert_eq(resumed, 1, "%d survivors resumed 0002", resumed);
	assert_exactly_once(&d, 2, "mariadb after the lease holder was killed");
	fleet_free(&f);
	tdb_drop(&d);
}

/* ---- lease lock: the holder cannot renew --------------------------------- */

/* Run sh_cmd in the background (fork + sh -c); returns its pid. */
static pid_t background(const char *sh_cmd)
{
	pid_t p = fork();
	cr_assert(p >= 0);
	if (p == 0) {
		int fd = open("/dev/null", 0);
		dup2(fd, 0);
		execl("/bin/sh", "sh", "-c", sh_cmd, (char *)NULL);
		_exit(127);
	}
	return p;
}

/*
 * 0001 is applied; 0002 = CREATE TABLE slow_t, a 10 s sleep, the INSERT.
 * While the holder sleeps, another session locks the lease row for 8 s,
 * so every renewal blocks. A 3 s lease: the holder must give up (exit 3)
 * well before the blocker lets go, and roll back.
 */
static void renewal_blocked(struct tdb *d, const char *engine, const char *slow, const char *blocker_cmd,
			    const char *running_sql)
{
	sgt_write(d->mig, "0001_first.up.sql", "INSERT INTO applied_log (v) VALUES ('0001');\n");
	struct fleet f = {0};
	fleet_add(&f, d, "first", lease_args);
	fleet_wait(&f, 60000);
	if (f.status[0] != 0)
		dump_log("first up", f.log[0]);
	cr_assert_eq(f.status[0], 0);
	char sql[512];
	snprintf(sql, sizeof(sql), "CREATE TABLE slow_t (id INT);\n%s\nINSERT INTO applied_log (v) VALUES ('0002');\n",
		 slow);
	sgt_write(d->mig, "0002_slow.up.sql", sql);

	int h = fleet_add(&f, d, "holder", lease_args);
	wait_applying(&f, h, "0002", 30000);
	sleep_ms(500);
	double t0 = sgt_now_ms();
	pid_t blocker = background(blocker_cmd);
	/* when does the slow statement stop running on the server? */
	double stopped = -1;
	while (sgt_now_ms() - t0 < 30000) {
		int left = fleet_reap(&f);
		if (stopped < 0 && tdb_long(d, running_sql) == 0)
			stopped = sgt_now_ms() - t0;
		if (left == 0 && stopped >= 0)
			break;
		sleep_ms(50);
	}
	fleet_wait(&f, 1000);
	double took = f.exited_at[h] - t0;
	int bst = sgt_wait(blocker);
	fprintf(stderr, "lease renewal blocked %s: the slow statement stopped %.0f ms and the holder exited %d "
			"%.0f ms after the lease row was locked (lease 3s, blocker held it 8s; blocker exit %d)\n",
		engine, stopped, f.status[h], took, bst);
	dump_log("holder", f.log[h]);
	cr_assert_eq(f.status[h], 3, "a holder that cannot renew must exit 3, got %d", f.status[h]);
	cr_assert_lt(took, 7000.0, "the holder kept going %.0f ms without a lease", took);
	/* The last renewal was before the row was locked, so the lease ran
	 * out at most 3 s later; after that another instance may take over
	 * and the two must never migrate at once. 300 ms of slack for
	 * scheduling and this test's polling. */
	cr_assert_lt(stopped, 3300.0,
		     "the migration statement was still running %.0f ms after the last possible renewal "
		     "with a 3 s lease: another instance could have taken over meanwhile", stopped);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM applied_log WHERE v = '0002'"), 0, "0002's INSERT ran");
	fleet_free(&f);
}

Test(chaos, lease_renewal_blocked_postgres, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_PG, sgt_require_server("SG_TEST_PG_URL"));
	const char *bin = getenv("SG_TEST_PG_BIN");
	char *cmd = NULL;
	cr_assert(asprintf(&cmd,
			   "'%s/psql' -X -q '%s' -c 'BEGIN' -c 'SELECT * FROM schemagate_lock FOR UPDATE' "
			   "-c 'SELECT pg_sleep(8)' -c 'COMMIT' >/dev/null 2>&1",
			   bin && *bin ? bin : "/usr/lib/postgresql/15/bin", d.url) > 0);
	char *running = NULL;
	cr_assert(asprintf(&running, "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND state = 'active' "
			   "AND pid <> pg_backend_pid() AND application_name LIKE 'schemagate/%%' "
			   "AND query LIKE '%%pg_sleep(10)%%'", d.name) > 0);
	renewal_blocked(&d, "postgres", "SELECT pg_sleep(10);", cmd, running);
	free(running);
	free(cmd);
	/* rolled back: no table, no history row */
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM pg_tables WHERE tablename = 'slow_t'"), 0,
		     "slow_t survived: the migration was not rolled back");
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE version = '0002'"), 0,
		     "0002 was recorded");
	/* and the next run, with nobody blocking, applies it once */
	struct sgt_result r;
	run_sg(&r, &d, "--lock", "table", "up");
	cr_assert_eq(r.status, 0, "up after the abort: %s", r.err);
	sgt_result_free(&r);
	assert_exactly_once(&d, 2, "postgres after the aborted holder");
	tdb_drop(&d);
}

/* MariaDB: the blocked holder aborts during SLEEP(10), before the INSERT
 * (statements_done 0, CREATE TABLE slow_t done): the row is not
 * `applied`; the operator drops slow_t, repairs --reverted, reruns. */
Test(chaos, lease_renewal_blocked_mariadb, .timeout = 120)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, sgt_require_server("SG_TEST_MYSQL_URL"));
	struct sg_url u = {0};
	struct sg_error err = {0};
	cr_assert_eq(sg_url_parse(d.server_url, &u, &err), 0);
	char *cmd = NULL;
	cr_assert(asprintf(&cmd,
			   "printf 'BEGIN; SELECT * FROM schemagate_lock FOR UPDATE; SELECT SLEEP(8); COMMIT;\\n' | "
			   "MYSQL_PWD='%s' mariadb --no-defaults --protocol=tcp -h '%s' -P %d -u '%s' %s >/dev/null 2>&1",
			   u.password, u.host, u.port, u.user, d.name) > 0);
	char *running = NULL;
	cr_assert(asprintf(&running, "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = '%s' "
			   "AND INFO LIKE 'SELECT SLEEP(10)%%'", d.name) > 0);
	renewal_blocked(&d, "mariadb", "SELECT SLEEP(10);", cmd, running);
	free(running);
	free(cmd);
	sg_url_free(&u);
	char *st = tdb_value(&d, "SELECT concat(status, '/', statements_done) FROM schemagate_migrations "
				 "WHERE version = '0002'");
	fprintf(stderr, "history row of 0002 after the abort: %s\n", st ? st : "(none)");
	cr_assert(!st || strncmp(st, "applied", 7) != 0, "0002 recorded as applied");
	struct sgt_result r;
	if (st) {
		free(tdb_value(&d, "DROP TABLE IF EXISTS slow_t"));
		run_sg(&r, &d, "repair", "0002", "--reverted");
		cr_assert_eq(r.status, 0, "repair: %s", r.err);
		sgt_result_free(&r);
	}
	free(st);
	run_sg(&r, &d, "--lock", "table", "up");
	cr_assert_eq(r.status, 0, "up after the abort: %s", r.err);
	sgt_result_free(&r);
	assert_exactly_once(&d, 2, "mariadb after the aborted holder");
	tdb_drop(&d);
}

/* ---- chaos rounds --------------------------------------------------------- */

static unsigned chaos_seed(void)
{
	const char *s = getenv("SG_CHAOS_SEED");
	if (s && *s)
		return (unsigned)strtoul(s, NULL, 10);
	return (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
}

static int chaos_rounds(void)
{
	const char *s = getenv("SG_CHAOS_ROUNDS");
	int n = s && *s ? atoi(s) : 2;
	return n > 0 ? n : 2;
}

struct chaos_figures {
	int rounds, launched, kills, repairs, refusals;
};

/* The operator after survivors refused: for every partial/failed row,
 * look whether the migration's INSERT is in the database and say so. */
static int operator_repairs(struct tdb *d, unsigned seed)
{
	int repairs = 0;
	for (;;) {
		char *v = tdb_value(d, "SELECT version FROM schemagate_migrations WHERE status IN ('partial', 'failed') "
				       "ORDER BY version");
		if (!v)
			return repairs;
		char q[128];
		snprintf(q, sizeof(q), "SELECT count(*) FROM applied_log WHERE v = '%s'", v);
		long present = tdb_long(d, q);
		cr_assert_leq(present, 1, "seed %u: %s applied %ld times before the repair", seed, v, present);
		struct sgt_result r;
		run_sg(&r, d, "repair", v, present ? "--applied" : "--reverted");
		fprintf(stderr, "chaos: operator: repair %s %s\n", v, present ? "--applied" : "--reverted");
		cr_assert_eq(r.status, 0, "seed %u: repair %s exited %d: %s", seed, v, r.status, r.err);
		sgt_result_free(&r);
		free(v);
		repairs++;
	}
}

static void chaos(enum eng eng, const char *server_env)
{
	enum { N = 20, M = 20, KILLS = 3, MAX_LAUNCHES = 10 };
	const char *server = sgt_require_server(server_env);
	unsigned seed = chaos_seed();
	int rounds = chaos_rounds();
	const char *lock = getenv("SG_CHAOS_LOCK");
	bool table = lock && strcmp(lock, "table") == 0;
	const char *engine = eng == ENG_PG ? "postgres" : "mariadb";
	fprintf(stderr, "chaos %s: seed %u (SG_CHAOS_SEED=%u reproduces), rounds %d, --lock=%s\n", engine, seed, seed,
		rounds, table ? "table" : "auto");
	srand(seed);
	const char *extra_auto[] = { "--poll-interval", "200ms", "--lock-timeout", "90s", "--connect-timeout", "30s",
				     NULL };
	const char *extra_table[] = { "--lock", "table", "--lock-lease", "2s", "--poll-interval", "200ms",
				      "--lock-timeout", "90s", "--connect-timeout", "30s", NULL };
	const char *const *extra = table ? extra_table : extra_auto;
	struct chaos_figures fig = {0};

	for (int round = 1; round <= rounds; round++) {
		struct tdb d;
		tdb_create(&d, eng, server);
		write_migrations(&d, M, eng == ENG_PG ? "SELECT pg_sleep(0.2);" : "SELECT SLEEP(0.2);");
		int kills_left = KILLS, launches = 0;
		int round_kills = 0, round_repairs = 0;
		for (;;) {
			long done = tdb_long(&d, "SELECT count(DISTINCT v) FROM applied_log");
			if (done == M && launches > 0)
				break;
			cr_assert_lt(launches, MAX_LAUNCHES, "seed %u round %d: %d launches and still %ld of %d applied",
				     seed, round, launches, done, M);
			launches++;
			struct fleet f = {0};
			char tag[32];
			snprintf(tag, sizeof(tag), "r%d-l%d", round, launches);
			for (int i = 0; i < N; i++)
				fleet_add(&f, &d, tag, extra);
			fig.launched += N;
			double next_kill = sgt_now_ms() + 100 + rand() % 1500;
			double t0 = sgt_now_ms();
			while (fleet_reap(&f) > 0) {
				cr_assert_lt(sgt_now_ms() - t0, 100000.0, "seed %u round %d: instances hang", seed,
					     round);
				if (kills_left > 0 && sgt_now_ms() >= next_kill) {
					int h = fleet_holder(&f);
					if (h >= 0) {
						fleet_kill(&f, h);
						kills_left--;
						round_kills++;
						next_kill = sgt_now_ms() + 100 + rand() % 1500;
					} else {
						next_kill = sgt_now_ms() + 10;
					}
				}
				sleep_ms(5);
			}
			int refused = 0;
			for (int i = 0; i < N; i++) {
				if (f.killed[i] || f.status[i] == 0)
					continue;
				bool says_repair = file_has(f.log[i], "repair");
				if (eng == ENG_MY && f.status[i] == 4 && says_repair) {
					refused++;
					continue;
				}
				dump_log("survivor", f.log[i]);
				cr_assert_fail("seed %u round %d launch %d: survivor %d exited %d", seed, round, launches, i,
					       f.status[i]);
			}
			fig.refusals += refused;
			fleet_free(&f);
			if (eng == ENG_MY)
				round_repairs += operator_repairs(&d, seed);
			long rows = tdb_long(&d, "SELECT count(*) FROM applied_log");
			long distinct = tdb_long(&d, "SELECT count(DISTINCT v) FROM applied_log");
			cr_assert_eq(rows, distinct, "seed %u round %d: a migration was applied twice", seed, round);
		}
		fprintf(stderr, "chaos %s round %d: instances=%d migrations=%d kills=%d launches=%d repairs=%d\n",
			engine, round, launches * N, M, round_kills, launches, round_repairs);
		char what[96];
		snprintf(what, sizeof(what), "seed %u round %d", seed, round);
		assert_exactly_once(&d, M, what);
		fig.kills += round_kills;
		fig.repairs += round_repairs;
		fig.rounds++;
		tdb_drop(&d);
	}
	fprintf(stderr,
		"chaos %s: seed %u rounds=%d instances=%d migrations/round=%d kills=%d refusals(exit 4)=%d "
		"repairs=%d failures=0\n",
		engine, seed, fig.rounds, fig.launched, M, fig.kills, fig.refusals, fig.repairs);
	cr_assert_gt(fig.kills, 0, "seed %u: the watcher never found a holder to kill", seed);
}

Test(chaos, rounds_postgres, .timeout = 900)
{
	chaos(ENG_PG, "SG_TEST_PG_URL");
}

Test(chaos, rounds_mariadb, .timeout = 900)
{
	chaos(ENG_MY, "SG_TEST_MYSQL_URL");
}
