/*
 * test_create_database.c - `up --create-database` (issue 26) against the
 * private PostgreSQL and MariaDB: 20 instances started at once against a
 * database that does not exist create it once, apply every migration
 * once and all exit 0; without the flag the error names it.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdb.h"
#include "sgtest.h"

/* A scratch database name on eng's server that does not exist (the one
 * tdb_create made is dropped again), with two migrations that keep their
 * own counter: no table of the test may exist before schemagate runs. */
static void missing_database(struct tdb *d, enum eng eng)
{
	tdb_create(d, eng, tdb_server_for(eng));
	char *sql = NULL;
	if (eng == ENG_PG) {
		PQfinish(d->pg);
		d->pg = NULL;
		PGconn *admin = pg_open(d->server_url);
		cr_assert(asprintf(&sql, "DROP DATABASE %s", d->name) > 0);
		PGresult *res = PQexec(admin, sql);
		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(admin);
	} else {
		cr_assert(asprintf(&sql, "DROP DATABASE %s", d->name) > 0);
		cr_assert_eq(mysql_query(d->my, sql), 0, "%s", mysql_error(d->my));
		mysql_close(d->my);
		d->my = NULL;
	}
	free(sql);
	sgt_write(d->mig, "0001_counter.up.sql",
		  "CREATE TABLE applied_log (v VARCHAR(32) NOT NULL);\nINSERT INTO applied_log VALUES ('0001');\n");
	sgt_write(d->mig, "0002_second.up.sql", "INSERT INTO applied_log VALUES ('0002');\n");
}

/* reconnect the test's own connection to the database schemagate made */
static void reopen(struct tdb *d)
{
	if (d->eng == ENG_PG)
		d->pg = pg_open(d->url);
	else
		d->my = my_open(d->server_url, d->name);
}

static void twenty_at_once(enum eng eng)
{
	struct tdb d;
	missing_database(&d, eng);
	struct fleet f = {0};
	const char *extra[] = {"--create-database", "--poll-interval", "200ms", NULL};
	for (int i = 0; i < 20; i++)
		fleet_add(&f, &d, "create", extra);
	fleet_wait(&f, 180000 * sgt_slowdown());
	cr_assert_eq(fleet_failures(&f, 3), 0, "%s: not every instance exited 0", tdb_eng_name(eng));
	int created = 0;
	for (int i = 0; i < f.n; i++) {
		char *log = sgt_slurp(f.log[i]);
		created += log && strstr(log, "database_created: created database ") != NULL;
		free(log);
	}
	fleet_free(&f);
	/* the server settles the race: one instance created it, the others
	 * found it there (or never needed to create it) */
	cr_assert_eq(created, 1, "%s: %d instances say they created the database", tdb_eng_name(eng), created);
	reopen(&d);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log WHERE v = '0001'"), 1);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM applied_log WHERE v = '0002'"), 1);
	cr_assert_eq(tdb_long(&d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'"), 2);
	tdb_drop(&d);
}

Test(create_database, twenty_instances_create_one_database_postgres) { twenty_at_once(ENG_PG); }
Test(create_database, twenty_instances_create_one_database_mariadb) { twenty_at_once(ENG_MY); }

static void without_flag(enum eng eng)
{
	struct tdb d;
	missing_database(&d, eng);
	struct sgt_result r;
	tdb_run(&d, NULL, &r, "up", NULL);
	cr_assert_eq(r.status, 5, "%s: exit %d\n%s", tdb_eng_name(eng), r.status, r.err);
	/* the line the user sees, whole: the server's words, then the flag */
	const char *re = eng == ENG_PG
		? "\n[0-9TZ:.-]+ ERROR +failed: up failed \\(error=\"connecting to postgres 127\\.0\\.0\\.1:[0-9]+/sc_[0-9a-f_]+ "
		  "as sg: 3D000 database \\\\\"sc_[0-9a-f_]+\\\\\" does not exist \\(schemagate up --create-database "
		  "creates it\\)\"\\)\n$"
		: "\n[0-9TZ:.-]+ ERROR +failed: up failed \\(error=\"connecting to mysql://sg:\\*\\*\\*@127\\.0\\.0\\.1:[0-9]+/"
		  "sc_[0-9a-f_]+: mysql 1049: Unknown database 'sc_[0-9a-f_]+' \\(schemagate up --create-database "
		  "creates it\\)\"\\)\n$";
	regex_t rx;
	cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	cr_assert_eq(regexec(&rx, r.err, 0, NULL, 0), 0, "%s: the last line is not the expected one:\n%s",
		     tdb_eng_name(eng), r.err);
	regfree(&rx);
	sgt_result_free(&r);
	/* and nothing was created */
	if (eng == ENG_PG) {
		PGconn *admin = pg_open(d.server_url);
		char *sql = NULL;
		cr_assert(asprintf(&sql, "SELECT count(*) FROM pg_database WHERE datname = '%s'", d.name) > 0);
		PGresult *res = PQexec(admin, sql);
		cr_assert_str_eq(PQgetvalue(res, 0, 0), "0");
		PQclear(res);
		PQfinish(admin);
		free(sql);
	}
	/* tdb_drop drops nothing that is not there */
	tdb_drop(&d);
}

Test(create_database, without_the_flag_the_error_names_it_postgres) { without_flag(ENG_PG); }
Test(create_database, without_the_flag_the_error_names_it_mariadb) { without_flag(ENG_MY); }
