/*
 * test_postgres_ha.c - a PostgreSQL primary and a streaming hot standby
 * (tests/harness/pg_ha.sh, started by tests/run.sh): libpq's list of
 * hosts, failover in the middle of a herd, writers that land on the
 * standby, read-only commands on the standby (SPEC section 5, "Writers
 * need a primary"; issue 22).
 *
 * The tests share one pair and run one at a time (CMakeLists.txt): a test
 * that promotes the standby leaves DIR/diverged behind, and the next test
 * starts with `pg_ha.sh reset`, a fresh pair on the same ports.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sgdb.h"
#include "sgtest.h"

#define PW "sg-test-pw"

struct pair {
	const char *dir;
	const char *primary, *standby;   /* ports */
};

static void harness(const char *verb, const char *dir)
{
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "sh '%s/tests/harness/pg_ha.sh' %s '%s' 2>&1", SG_SOURCE_DIR, verb, dir) > 0);
	int st = 0;
	char *out = sgt_sh(cmd, &st);
	cr_assert_eq(st, 0, "pg_ha.sh %s failed: %s", verb, out);
	free(out);
	free(cmd);
}

/* The pair from tests/run.sh, fresh if an earlier test promoted it. */
static struct pair ha_pair(void)
{
	struct pair p = { .dir = sgt_require_server("SG_TEST_PG_HA_DIR") };
	p.primary = getenv("SG_TEST_PG_HA_PRIMARY_PORT");
	p.standby = getenv("SG_TEST_PG_HA_STANDBY_PORT");
	cr_assert(p.primary && p.standby, "pg_ha.sh exports both ports");
	char *diverged = sgt_path(p.dir, "diverged");
	if (access(diverged, F_OK) == 0)
		harness("reset", p.dir);
	free(diverged);
	return p;
}

static char *url_at(const char *hosts, const char *db, const char *query)
{
	char *u = NULL;
	cr_assert(asprintf(&u, "postgresql://sg:" PW "@%s/%s%s%s", hosts, db, query ? "?" : "", query ? query : "") > 0);
	return u;
}

static char *one_host(const char *port, const char *db)
{
	char hosts[64];
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%s", port);
	return url_at(hosts, db, NULL);
}

/* A scratch database made on the primary (the standby replays it). */
static void create_db(struct tdb *d, const struct pair *p)
{
	char *server = one_host(p->primary, "postgres");
	tdb_create(d, ENG_PG, server);
	free(server);
}

/* After a failover: the test's view of d moves to the new primary. */
static void follow_promoted(struct tdb *d, const struct pair *p)
{
	PQfinish(d->pg);
	free(d->server_url);
	d->server_url = one_host(p->standby, "postgres");
	char *u = one_host(p->standby, d->name);
	d->pg = pg_open(u);
	free(u);
}

/* The replica has replayed everything the primary has written so far. */
static void wait_replayed(const struct pair *p)
{
	char *pu = one_host(p->primary, "postgres"), *su = one_host(p->standby, "postgres");
	PGconn *pc = pg_open(pu), *sc = pg_open(su);
	PGresult *res = PQexec(pc, "SELECT pg_current_wal_lsn()::text");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	char *lsn = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	const char *params[] = { lsn };
	bool done = false;
	for (int i = 0; i < 600 && !done; i++) {
		res = PQexecParams(sc, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", 1, NULL, params, NULL, NULL, 0);
		done = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (!done)
			sleep_ms(50);
	}
	cr_assert(done, "the standby did not replay %s", lsn);
	free(lsn);
	PQfinish(pc);
	PQfinish(sc);
	free(pu);
	free(su);
}

static void run_url(struct sgt_result *r, const char *url, const char *dir, const char *cmd)
{
	const char *argv[] = { "--database-url", url, "--dir", dir, "--lock-timeout", "60s", "--poll-interval",
			       "200ms", cmd, NULL };
	sgt_run(r, NULL, argv);
}

static bool any_log_has(struct fleet *f, const char *needle)
{
	for (int i = 0; i < f->n; i++)
		if (file_has(f->log[i], needle))
			return true;
	return false;
}

static void wait_for_log(struct fleet *f, const char *needle, double timeout_ms)
{
	double t0 = sgt_now_ms();
	while (!any_log_has(f, needle)) {
		cr_assert(fleet_reap(f) > 0 || any_log_has(f, needle), "every instance exited before logging '%s'",
			  needle);
		cr_assert_lt(sgt_now_ms() - t0, timeout_ms * sgt_slowdown(), "nobody logged '%s'", needle);
		sleep_ms(50);
	}
}

static long standby_advisory_locks(const struct pair *p)
{
	char *u = one_host(p->standby, "postgres");
	PGconn *c = pg_open(u);
	PGresult *res = PQexec(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'");
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	long n = atol(PQgetvalue(res, 0, 0));
	PQclear(res);
	PQfinish(c);
	free(u);
	return n;
}

Test(postgres_ha, multi_host_url_forms, .timeout = 180)
{
	struct pair p = ha_pair();
	struct tdb d;
	create_db(&d, &p);
	write_migrations(&d, 1, NULL);
	wait_replayed(&p);
	char hosts[128], query[160];
	struct sgt_result r;

	/* libpq's own form, the standby first: target_session_attrs passes
	 * through and the log names the host actually reached */
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%s,127.0.0.1:%s", p.standby, p.primary);
	char *u = url_at(hosts, d.name, "target_session_attrs=read-write");
	run_url(&r, u, d.mig, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	char reached[64];
	snprintf(reached, sizeof(reached), "connected to 127.0.0.1:%s", p.primary);
	cr_assert(strstr(r.err, reached), "the log does not name %s: %s", reached, r.err);
	sgt_result_free(&r);
	free(u);

	/* the query form libpq also takes */
	write_migrations(&d, 2, NULL);
	snprintf(query, sizeof(query), "host=127.0.0.1,127.0.0.1&port=%s,%s&target_session_attrs=read-write", p.standby,
		 p.primary);
	u = url_at("", d.name, query);
	run_url(&r, u, d.mig, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	free(u);

	/* IPv6 literals in the list */
	cr_assert(getenv("SG_TEST_PG_HA_IPV6"), "pg_ha.sh found no ::1 on this machine");
	write_migrations(&d, 3, NULL);
	snprintf(hosts, sizeof(hosts), "[::1]:%s,[::1]:%s", p.standby, p.primary);
	u = url_at(hosts, d.name, "target_session_attrs=primary");
	run_url(&r, u, d.mig, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	snprintf(reached, sizeof(reached), "connected to [::1]:%s", p.primary);
	cr_assert(strstr(r.err, reached), "the log does not name %s: %s", reached, r.err);
	sgt_result_free(&r);
	free(u);

	assert_exactly_once(&d, 3, "three URL forms");
	tdb_drop(&d);
}

/* A herd on a list of hosts; the primary dies while a migration runs and
 * the standby is promoted 2 s later: every instance exits 0 and each
 * migration ran once on the surviving database. */
Test(postgres_ha, failover_mid_herd_exactly_once, .timeout = 300)
{
	struct pair p = ha_pair();
	struct tdb d;
	create_db(&d, &p);
	write_migrations(&d, 4, "SELECT pg_sleep(0.7);");
	wait_replayed(&p);
	char hosts[128];
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%s,127.0.0.1:%s", p.primary, p.standby);
	free(d.url);
	d.url = url_at(hosts, d.name, "target_session_attrs=read-write");

	const char *extra[] = { "--lock-timeout", "120s", "--connect-timeout", "90s", "--poll-interval", "300ms", NULL };
	struct fleet f = { 0 };
	for (int i = 0; i < 20; i++)
		fleet_add(&f, &d, "ha", extra);
	wait_for_log(&f, "applying 0002", 60000);
	double died = sgt_now_ms();
	harness("kill-primary", p.dir);
	sleep_ms(2000);
	harness("promote", p.dir);
	fleet_wait(&f, 240000 * sgt_slowdown());
	cr_assert_eq(fleet_failures(&f, 3), 0, "an instance failed across the failover");
	double last = 0;
	for (int i = 0; i < f.n; i++)
		if (f.exited_at[i] > last)
			last = f.exited_at[i];
	fprintf(stderr, "postgres_ha: the last instance exited %.0f ms after the primary died\n", last - died);

	follow_promoted(&d, &p);
	assert_exactly_once(&d, 4, "failover mid-herd");
	fleet_free(&f);
	tdb_drop(&d);
}

/* `up` against the standby alone: no lock there, no exit, until the
 * standby is promoted; then it applies. */
Test(postgres_ha, standby_only_url_waits_for_a_primary, .timeout = 240)
{
	struct pair p = ha_pair();
	struct tdb d;
	create_db(&d, &p);
	write_migrations(&d, 2, NULL);
	wait_replayed(&p);
	free(d.url);
	d.url = one_host(p.standby, d.name);

	const char *extra[] = { "--lock-timeout", "120s", "--poll-interval", "200ms", NULL };
	struct fleet f = { 0 };
	fleet_add(&f, &d, "standby", extra);
	wait_for_log(&f, "connected to a read-only server (standby)", 30000);
	sleep_ms(1500);   /* several polls and a reconnect later */
	cr_assert_eq(fleet_reap(&f), 1, "up exited against a standby:");
	cr_assert_eq(standby_advisory_locks(&p), 0, "up took an advisory lock on the standby");
	cr_assert(file_has(f.log[0], "waiting for a primary"), "no word of waiting for a primary");

	harness("kill-primary", p.dir);
	harness("promote", p.dir);
	fleet_wait(&f, 90000 * sgt_slowdown());
	cr_assert_eq(fleet_failures(&f, 1), 0, "up did not apply once the standby was promoted");
	follow_promoted(&d, &p);
	assert_exactly_once(&d, 2, "standby promoted");
	fleet_free(&f);
	tdb_drop(&d);
}

/* 5 instances on the primary, 5 on the standby: the standby's wait until
 * the replica shows the target, then exit 0. */
Test(postgres_ha, mixed_herd_primary_and_standby, .timeout = 240)
{
	struct pair p = ha_pair();
	struct tdb d;
	create_db(&d, &p);
	write_migrations(&d, 3, "SELECT pg_sleep(0.2);");
	wait_replayed(&p);
	char *primary_url = one_host(p.primary, d.name), *standby_url = one_host(p.standby, d.name);
	const char *extra[] = { "--lock-timeout", "120s", "--poll-interval", "200ms", NULL };
	struct fleet f = { 0 };
	for (int i = 0; i < 10; i++) {
		free(d.url);
		d.url = strdup(i % 2 ? standby_url : primary_url);
		fleet_add(&f, &d, i % 2 ? "standby" : "primary", extra);
	}
	fleet_wait(&f, 120000 * sgt_slowdown());
	cr_assert_eq(fleet_failures(&f, 3), 0, "an instance of the mixed herd failed");
	for (int i = 1; i < 10; i += 2)
		cr_assert(!file_has(f.log[i], "lock acquired"), "instance %d took the lock on the standby", i);
	free(d.url);
	d.url = strdup(primary_url);
	assert_exactly_once(&d, 3, "mixed herd");
	free(primary_url);
	free(standby_url);
	fleet_free(&f);
	tdb_drop(&d);
}

/* Read-only commands work on a standby: wait (started before the
 * primary migrates), then verify and status. */
Test(postgres_ha, wait_and_verify_on_a_standby, .timeout = 180)
{
	struct pair p = ha_pair();
	struct tdb d;
	create_db(&d, &p);
	write_migrations(&d, 2, NULL);
	wait_replayed(&p);
	char *standby_url = one_host(p.standby, d.name);

	free(d.url);
	d.url = strdup(standby_url);
	const char *wait_args[] = { "--database-url", standby_url, "--dir", d.mig, "--lock-timeout", "60s",
				    "--poll-interval", "200ms", "wait", NULL };
	pid_t waiter = sgt_spawn(NULL, wait_args, NULL);
	sleep_ms(500);

	struct sgt_result r;
	char *primary_url = one_host(p.primary, d.name);
	run_url(&r, primary_url, d.mig, "up");
	cr_assert_eq(r.status, 0, "%s", r.err);
	sgt_result_free(&r);
	cr_assert_eq(sgt_wait(waiter), 0, "wait on the standby did not see the target");

	wait_replayed(&p);
	run_url(&r, standby_url, d.mig, "verify");
	cr_assert_eq(r.status, 0, "verify on the standby: %s", r.err);
	sgt_result_free(&r);
	run_url(&r, standby_url, d.mig, "status");
	cr_assert_eq(r.status, 0, "status on the standby: %s", r.err);
	cr_assert(strstr(r.out, "0002"), "%s", r.out);
	sgt_result_free(&r);

	free(d.url);
	d.url = primary_url;
	free(standby_url);
	tdb_drop(&d);
}
