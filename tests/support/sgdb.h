/*
 * sgdb.h - one scratch database per test on PostgreSQL, MariaDB or
 * SQLite, for the tests that run many schemagate processes against it
 * (test_scale.c, test_chaos.c).
 *
 * Every migration written by tdb_write_migrations INSERTs one row naming
 * its version into applied_log, a table with no key: a migration applied
 * twice shows up as a second row instead of an error.
 */
#ifndef SGDB_H
#define SGDB_H

#include <libpq-fe.h>
#include <mysql.h>
#include <stdbool.h>

enum eng { ENG_PG, ENG_MY, ENG_LITE };

struct tdb {
	enum eng eng;
	char name[64];     /* database name (PG, MariaDB) */
	char *server_url;  /* PG: .../postgres, MariaDB: mysql://.../ */
	char *url;         /* what schemagate gets */
	char *dir;         /* scratch directory */
	char *mig;         /* dir/migrations */
	char *file;        /* SQLite file */
	PGconn *pg;        /* open on the test database */
	MYSQL *my;
};

PGconn *pg_open(const char *url);
MYSQL *my_open(const char *url, const char *db);
/* First value of the first row of sql (malloc'd), NULL when no row/NULL. */
char *tdb_value(struct tdb *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long tdb_long(struct tdb *d, const char *sql);
/* A fresh database (and scratch dir) on eng; server_url unused for SQLite. */
void tdb_create(struct tdb *d, enum eng eng, const char *server_url);
void tdb_drop(struct tdb *d);
/* n migrations 0001..n; slow is a statement put before the INSERT. */
void write_migrations(struct tdb *d, int n, const char *slow);
/* The private server for eng from tests/run.sh (NULL for SQLite): skips
 * or, under CI=true, fails like sgt_require_server. */
const char *tdb_server_for(enum eng eng);
const char *tdb_eng_name(enum eng eng);   /* "postgres", "mariadb", "sqlite" */
/* Has schemagate created any of its tables in d? */
bool tdb_has_schemagate_tables(struct tdb *d);
/* Every migration 1..n exactly once: counter rows, history, verify. */
void assert_exactly_once(struct tdb *d, int n, const char *what);

#endif
