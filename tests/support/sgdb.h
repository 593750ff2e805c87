/*
 * sgdb.h - one scratch database per test on PostgreSQL, MariaDB or
 * SQLite, and a fleet of schemagate processes run against it, for the
 * tests that start many at once (test_scale.c, test_chaos.c).
 *
 * Every migration written by tdb_write_migrations INSERTs one row naming
 * its version into applied_log, a table with no key: a migration applied
 * twice shows up as a second row instead of an error.
 */
#ifndef SGDB_H
#define SGDB_H

#include <libpq-fe.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>

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
/* Run `schemagate --database-url d->url --dir DIR ARGS...` (dir NULL:
 * d->mig; the args NULL-terminated) and wait; returns the exit code. */
struct sgt_result;
int tdb_run(struct tdb *d, const char *dir, struct sgt_result *r, ...) __attribute__((sentinel));
/* The same with the args in a va_list, and `last` (when not NULL) after them. */
int tdb_vrun(struct tdb *d, const char *dir, struct sgt_result *r, va_list args, const char *last);
/* Everything in d a command could change, as one string (malloc'd): two
 * equal fingerprints mean the command changed nothing. */
char *tdb_fingerprint(struct tdb *d);
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

/* ---- a fleet of `schemagate ... up` processes ---------------------------- */

struct fleet {
	int n, cap;
	pid_t *pid;
	char **log;          /* d->dir/<tag>-<i>.log: its stdout and stderr */
	int *status;         /* exit code, or 128+signal; -1 while it runs */
	bool *running;
	bool *killed;        /* by fleet_kill */
	double *exited_at;   /* sgt_now_ms() when reaped */
};

/* Start `schemagate --database-url d->url --dir d->mig EXTRA... up`
 * (extra NULL-terminated, may be NULL); returns its index. */
int fleet_add(struct fleet *f, struct tdb *d, const char *tag, const char *const *extra);
/* Collect the instances that exited; returns how many still run. */
int fleet_reap(struct fleet *f);
/* Wait for all; past timeout_ms, kill the rest, show their logs, fail. */
void fleet_wait(struct fleet *f, double timeout_ms);
/* SIGKILL instance i and reap it. */
void fleet_kill(struct fleet *f, int i);
/* The running instance that logged lock_acquired (the holder, or one
 * that released a moment ago and is about to exit); -1 if none. */
int fleet_holder(struct fleet *f);
/* How many exited non-zero, not counting the killed; shows the logs of
 * the first `show` of them. */
int fleet_failures(struct fleet *f, int show);
void fleet_free(struct fleet *f);

/* ---- a private server (tests that pause, restart or starve it) ---------- */

struct private_server {
	char *dir;            /* its directory (DIR/server holds the server) */
	char *url;            /* admin URL */
	const char *script;   /* "pg.sh" or "mariadb.sh" */
};

/* Run tests/harness/<script> start in a temporary directory, with the
 * environment assignment env_assign ("SG_PG_MAX_CONNECTIONS=40") when not
 * NULL; the URL comes from the line exporting url_var. */
void private_server_start(struct private_server *s, const char *script, const char *env_assign,
			  const char *url_var);
/* Stop it (even paused) and remove its directory; safe when not started. */
void private_server_stop(struct private_server *s);
/* SIGSTOP / SIGCONT ("STOP", "CONT") every process of the server. */
void private_server_signal(struct private_server *s, const char *sig);

void sleep_ms(long ms);
bool file_has(const char *path, const char *needle);
/* Print the file to stderr under a "---- what (path)" header. */
void dump_log(const char *what, const char *path);

#endif
