/*
 * sgdb.c - see sgdb.h.
 */
#include "sgdb.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schemagate/url.h"
#include "sgtest.h"

PGconn *pg_open(const char *url)
{
	PGconn *c = PQconnectdb(url);
	cr_assert(PQstatus(c) == CONNECTION_OK, "connecting to PostgreSQL: %s", PQerrorMessage(c));
	return c;
}

MYSQL *my_open(const char *url, const char *db)
{
	struct sg_url u = {0};
	struct sg_error err = {0};
	cr_assert_eq(sg_url_parse(url, &u, &err), 0, "%s", err.msg);
	MYSQL *m = mysql_init(NULL);
	cr_assert(m);
	MYSQL *ok = mysql_real_connect(m, u.host ? u.host : "127.0.0.1", u.user, u.password, db,
				       (unsigned)(u.port ? u.port : 3306), NULL, 0);
	cr_assert(ok, "connecting to MariaDB: %s", mysql_error(m));
	sg_url_free(&u);
	return m;
}

/* First value of the first row of sql (malloc'd), NULL when no row/NULL. */
char *tdb_value(struct tdb *d, const char *fmt, ...)
{
	char *sql = NULL;
	va_list ap;
	va_start(ap, fmt);
	cr_assert(vasprintf(&sql, fmt, ap) > 0);
	va_end(ap);
	char *out = NULL;
	if (d->eng == ENG_PG) {
		PGresult *res = PQexec(d->pg, sql);
		ExecStatusType st = PQresultStatus(res);
		cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(res));
		if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
			out = strdup(PQgetvalue(res, 0, 0));
		PQclear(res);
	} else if (d->eng == ENG_MY) {
		cr_assert_eq(mysql_query(d->my, sql), 0, "%s: %s", sql, mysql_error(d->my));
		MYSQL_RES *res = mysql_store_result(d->my);
		if (res) {
			MYSQL_ROW row = mysql_fetch_row(res);
			if (row && row[0])
				out = strdup(row[0]);
			mysql_free_result(res);
		}
	} else {
		sqlite3 *db = NULL;
		cr_assert_eq(sqlite3_open(d->file, &db), SQLITE_OK);
		sqlite3_busy_timeout(db, 10000);
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
		rc = sqlite3_step(st);
		cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
		if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			out = strdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	free(sql);
	return out;
}

long tdb_long(struct tdb *d, const char *sql)
{
	char *v = tdb_value(d, "%s", sql);
	long n = v ? atol(v) : -1;
	free(v);
	return n;
}

void tdb_create(struct tdb *d, enum eng eng, const char *server_url)
{
	static int counter;
	memset(d, 0, sizeof(*d));
	d->eng = eng;
	d->dir = sgt_tempdir();
	chmod(d->dir, 0755);
	d->mig = sgt_path(d->dir, "migrations");
	cr_assert_eq(mkdir(d->mig, 0755), 0);
	snprintf(d->name, sizeof(d->name), "sc_%ld_%d_%x", (long)getpid(), counter++, (unsigned)rand() & 0xffff);
	if (eng == ENG_LITE) {
		d->file = sgt_path(d->dir, "app.db");
		cr_assert(asprintf(&d->url, "sqlite:%s", d->file) > 0);
	} else if (eng == ENG_PG) {
		d->server_url = strdup(server_url);
		PGconn *c = pg_open(server_url);
		char *sql = NULL;
		cr_assert(asprintf(&sql, "CREATE DATABASE %s", d->name) > 0);
		PGresult *res = PQexec(c, sql);
		cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(c);
		free(sql);
		const char *slash = strrchr(server_url, '/');
		cr_assert(slash && !strchr(slash, '?'), "the PostgreSQL URL must end in /DATABASE");
		cr_assert(asprintf(&d->url, "%.*s/%s", (int)(slash - server_url), server_url, d->name) > 0);
		d->pg = pg_open(d->url);
	} else {
		d->server_url = strdup(server_url);
		MYSQL *m = my_open(server_url, NULL);
		char *sql = NULL;
		cr_assert(asprintf(&sql, "CREATE DATABASE %s", d->name) > 0);
		cr_assert_eq(mysql_query(m, sql), 0, "%s", mysql_error(m));
		mysql_close(m);
		free(sql);
		size_t n = strlen(server_url);
		cr_assert(asprintf(&d->url, "%s%s%s", server_url, server_url[n - 1] == '/' ? "" : "/", d->name) > 0);
		d->my = my_open(server_url, d->name);
	}
	/* the counter: no key, so a second application is a second row */
	free(tdb_value(d, "CREATE TABLE applied_log (v VARCHAR(32) NOT NULL)"));
}

void tdb_drop(struct tdb *d)
{
	if (d->pg) {
		PQfinish(d->pg);
		PGconn *c = pg_open(d->server_url);
		char *sql = NULL;
		cr_assert(asprintf(&sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->name) > 0);
		PQclear(PQexec(c, sql));
		PQfinish(c);
		free(sql);
	}
	if (d->my) {
		char *sql = NULL;
		cr_assert(asprintf(&sql, "DROP DATABASE IF EXISTS %s", d->name) > 0);
		mysql_query(d->my, sql);
		mysql_close(d->my);
		free(sql);
	}
	sgt_rmrf(d->dir);
	free(d->server_url);
	free(d->url);
	free(d->dir);
	free(d->mig);
	free(d->file);
}

const char *tdb_server_for(enum eng eng)
{
	if (eng == ENG_PG)
		return sgt_require_server("SG_TEST_PG_URL");
	if (eng == ENG_MY)
		return sgt_require_server("SG_TEST_MYSQL_URL");
	return NULL;
}

const char *tdb_eng_name(enum eng eng)
{
	return eng == ENG_PG ? "postgres" : eng == ENG_MY ? "mariadb" : "sqlite";
}

bool tdb_has_schemagate_tables(struct tdb *d)
{
	static const char *const sql[] = {
		[ENG_PG] = "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'schemagate%'",
		[ENG_MY] = "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND "
			   "TABLE_NAME LIKE 'schemagate%'",
		[ENG_LITE] = "SELECT count(*) FROM sqlite_master WHERE name LIKE 'schemagate%'",
	};
	return tdb_long(d, sql[d->eng]) > 0;
}

/* n migrations 0001..n; each records itself in applied_log. slow is an
 * engine statement put in front of the INSERT (NULL: none). */
void write_migrations(struct tdb *d, int n, const char *slow)
{
	for (int i = 1; i <= n; i++) {
		char name[64], sql[512];
		snprintf(name, sizeof(name), "%04d_step_%d.up.sql", i, i);
		snprintf(sql, sizeof(sql), "%s%sINSERT INTO applied_log (v) VALUES ('%04d');\n", slow ? slow : "",
			 slow ? "\n" : "", i);
		sgt_write(d->mig, name, sql);
	}
}

/* Every migration 1..n exactly once: counter rows, history, verify.
 * Prints the versions applied more than once before failing. */
void assert_exactly_once(struct tdb *d, int n, const char *what)
{
	long rows = tdb_long(d, "SELECT count(*) FROM applied_log");
	long distinct = tdb_long(d, "SELECT count(DISTINCT v) FROM applied_log");
	if (rows != distinct) {
		char *dup = tdb_value(d, "SELECT v FROM applied_log GROUP BY v HAVING count(*) > 1 ORDER BY v");
		fprintf(stderr, "%s: applied more than once, e.g. version %s\n", what, dup ? dup : "?");
		free(dup);
	}
	cr_assert_eq(rows, distinct, "%s: %ld counter rows for %ld migrations: some ran twice", what, rows, distinct);
	cr_assert_eq(distinct, n, "%s: %ld of %d migrations applied", what, distinct, n);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations WHERE status = 'applied'"), n,
		     "%s: history incomplete", what);
	cr_assert_eq(tdb_long(d, "SELECT count(*) FROM schemagate_migrations"), n, "%s: extra history rows", what);
	const char *argv[] = { "--database-url", d->url, "--dir", d->mig, "verify", NULL };
	struct sgt_result r;
	sgt_run(&r, NULL, argv);
	cr_assert_eq(r.status, 0, "%s: verify exited %d: %s", what, r.status, r.err);
	sgt_result_free(&r);
}
