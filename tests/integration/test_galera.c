/*
 * test_galera.c - a three-node MariaDB Galera cluster (tests/harness/
 * galera.sh, started by tests/run.sh): --lock=auto uses the lease there
 * (GET_LOCK is node-local), reads are causal, and a certification
 * conflict (1213) on a lease statement is a lost race (issue 22).
 *
 * The tests share the cluster and run one at a time (CMakeLists.txt).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdb.h"
#include "sgtest.h"

static const char *node_url(int n)
{
	char name[32];
	snprintf(name, sizeof(name), "SG_TEST_GALERA_URL%d", n);
	return sgt_require_server(name);
}

/* d's database on node n: mysql://sg:...@127.0.0.1:PORTn/DB */
static char *db_on(const struct tdb *d, int n)
{
	char *u = NULL;
	const char *base = node_url(n);
	cr_assert(asprintf(&u, "%s%s", base, d->name) > 0);
	return u;
}

/* What node n holds of d: counter rows, distinct versions, applied rows. */
static void assert_once_on_node(const struct tdb *d, int n, int migrations, const char *what)
{
	MYSQL *m = my_open(node_url(n), d->name);
	const char *sql = "SELECT (SELECT count(*) FROM applied_log), (SELECT count(DISTINCT v) FROM applied_log), "
			  "(SELECT count(*) FROM schemagate_migrations WHERE status = 'applied')";
	/* causal: what the cluster committed is visible here */
	cr_assert_eq(mysql_query(m, "SET SESSION wsrep_sync_wait = 1"), 0, "%s", mysql_error(m));
	cr_assert_eq(mysql_query(m, sql), 0, "%s", mysql_error(m));
	MYSQL_RES *res = mysql_store_result(m);
	MYSQL_ROW row = mysql_fetch_row(res);
	cr_assert(row);
	long rows = atol(row[0]), distinct = atol(row[1]), applied = atol(row[2]);
	mysql_free_result(res);
	mysql_close(m);
	cr_assert_eq(rows, distinct, "%s, node %d: %ld counter rows for %ld migrations: some ran twice", what, n, rows,
		     distinct);
	cr_assert_eq(distinct, migrations, "%s, node %d: %ld of %d applied", what, n, distinct, migrations);
	cr_assert_eq(applied, migrations, "%s, node %d: %ld applied history rows", what, n, applied);
}

static int herd_rounds(void)
{
	const char *v = getenv("SG_GALERA_ROUNDS");
	return v && atoi(v) > 0 ? atoi(v) : 3;
}

/* 30 instances, 10 per node, 10 migrations that sleep and insert a
 * counter row; rounds on fresh databases: every instance exits 0, and on
 * every node each migration ran once with one applied history row. */
Test(galera, herd_across_three_nodes_applies_once, .timeout = 900)
{
	int rounds = herd_rounds();
	for (int round = 1; round <= rounds; round++) {
		struct tdb d;
		tdb_create(&d, ENG_MY, node_url(1));
		write_migrations(&d, 10, "DO SLEEP(0.1);");
		char *urls[3];
		for (int n = 0; n < 3; n++)
			urls[n] = db_on(&d, n + 1);
		const char *extra[] = { "--lock-timeout", "300s", "--poll-interval", "300ms", "--lock-lease", "6s", NULL };
		struct fleet f = { 0 };
		char *own = d.url;
		for (int i = 0; i < 30; i++) {
			d.url = urls[i % 3];
			fleet_add(&f, &d, "galera", extra);
		}
		d.url = own;
		fleet_wait(&f, 600000 * sgt_slowdown());
		char what[32];
		snprintf(what, sizeof(what), "round %d", round);
		cr_assert_eq(fleet_failures(&f, 3), 0, "%s: an instance failed", what);
		cr_assert(file_has(f.log[0], "Galera cluster of 3 nodes"), "%s: the lease decision is not logged", what);
		for (int n = 1; n <= 3; n++)
			assert_once_on_node(&d, n, 10, what);
		for (int n = 0; n < 3; n++)
			free(urls[n]);
		fleet_free(&f);
		tdb_drop(&d);
	}
}

static void harness(const char *verb, int node)
{
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "sh '%s/tests/harness/galera.sh' %s '%s' %d 2>&1", SG_SOURCE_DIR, verb,
			   sgt_require_server("SG_TEST_GALERA_DIR"), node) > 0);
	int st = 0;
	char *out = sgt_sh(cmd, &st);
	cr_assert_eq(st, 0, "galera.sh %s %d failed: %s", verb, node, out);
	free(out);
	free(cmd);
}

static int killed_node;

/* the cluster is whole again for the next test (and the ASan pass) */
static void rejoin_killed(void)
{
	if (killed_node)
		harness("rejoin", killed_node);
}

/* SIGKILL the mariadbd the lease holder works on, mid-migration: every
 * instance on the two other nodes exits 0, each migration once. */
Test(galera, winner_node_killed_mid_herd, .timeout = 600, .fini = rejoin_killed)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, node_url(1));
	write_migrations(&d, 6, "DO SLEEP(0.5);");
	char *urls[3];
	for (int n = 0; n < 3; n++)
		urls[n] = db_on(&d, n + 1);
	const char *extra[] = { "--lock-timeout", "300s", "--poll-interval", "300ms", "--lock-lease", "6s",
				"--connect-timeout", "15s", NULL };
	struct fleet f = { 0 };
	char *own = d.url;
	for (int i = 0; i < 15; i++) {
		d.url = urls[i % 3];
		fleet_add(&f, &d, "galera", extra);
	}
	d.url = own;
	int holder = -1;
	double t0 = sgt_now_ms();
	while ((holder = fleet_holder(&f)) < 0 || !file_has(f.log[holder], "applying 0002")) {
		cr_assert_lt(sgt_now_ms() - t0, 120000 * sgt_slowdown(), "no winner reached migration 0002");
		fleet_reap(&f);
		sleep_ms(50);
	}
	killed_node = holder % 3 + 1;
	harness("kill", killed_node);
	fleet_wait(&f, 300000 * sgt_slowdown());
	for (int i = 0; i < f.n; i++)
		if (i % 3 + 1 != killed_node)
			cr_assert_eq(f.status[i], 0, "instance %d on a surviving node exited %d", i, f.status[i]);
	int survivor = killed_node % 3 + 1;
	assert_once_on_node(&d, survivor, 6, "winner's node killed");
	for (int n = 0; n < 3; n++)
		free(urls[n]);
	fleet_free(&f);
	free(d.server_url);
	d.server_url = strdup(node_url(survivor));
	mysql_close(d.my);
	d.my = my_open(d.server_url, d.name);
	tdb_drop(&d);
}

/* node 1 back in total order isolation for the next test, whatever
 * happened to this one */
static void restore_toi(void)
{
	MYSQL *m = my_open(node_url(1), NULL);
	mysql_query(m, "SET GLOBAL wsrep_OSU_method = 'TOI'");
	mysql_close(m);
}

/* A DBA left node 1 in RSU (rolling schema upgrade: DDL on this node
 * only). schemagate's session still runs TOI, so the table its migration
 * creates exists on every node, and it warns once about the setting. */
Test(galera, rsu_node_still_migrates_every_node, .timeout = 300, .fini = restore_toi)
{
	struct tdb d;
	tdb_create(&d, ENG_MY, node_url(1));
	sgt_write(d.mig, "0001_rsu.up.sql", "CREATE TABLE rsu_t (x INT PRIMARY KEY);\nINSERT INTO rsu_t VALUES (1);\n");
	MYSQL *m = my_open(node_url(1), NULL);
	cr_assert_eq(mysql_query(m, "SET GLOBAL wsrep_OSU_method = 'RSU'"), 0, "%s", mysql_error(m));
	mysql_close(m);
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "wsrep_OSU_method is RSU: schemagate's session runs TOI") != NULL, "%s", r.err);
	sgt_result_free(&r);
	for (int n = 2; n <= 3; n++) {
		MYSQL *o = my_open(node_url(n), d.name);
		cr_assert_eq(mysql_query(o, "SET SESSION wsrep_sync_wait = 1"), 0, "%s", mysql_error(o));
		cr_assert_eq(mysql_query(o, "SELECT count(*) FROM rsu_t"), 0,
			     "node %d does not have the migration's table: %s", n, mysql_error(o));
		mysql_free_result(mysql_store_result(o));
		mysql_close(o);
	}
	restore_toi();
	tdb_drop(&d);
}
