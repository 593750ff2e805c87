/*
 * sgdb.c - see sgdb.h.
 */
#include "sgdb.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
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

int tdb_vrun(struct tdb *d, const char *dir, struct sgt_result *r, va_list args, const char *last)
{
	const char *argv[32] = {"--database-url", d->url, "--dir", dir ? dir : d->mig};
	int n = 4;
	const char *a;
	while ((a = va_arg(args, const char *)) != NULL && n < 30)
		argv[n++] = a;
	if (last)
		argv[n++] = last;
	argv[n] = NULL;
	sgt_run(r, NULL, argv);
	return r->status;
}

int tdb_run(struct tdb *d, const char *dir, struct sgt_result *r, ...)
{
	va_list ap;
	va_start(ap, r);
	int status = tdb_vrun(d, dir, r, ap, NULL);
	va_end(ap);
	return status;
}

/* Everything the database holds that a command could change, as one
 * string: the tables with their columns, every row of schemagate's
 * history, how many audit events and counter rows there are. SQLite: a
 * digest of the file's bytes. */
char *tdb_fingerprint(struct tdb *d)
{
	if (d->eng == ENG_LITE) {
		char *bytes = sgt_slurp(d->file);
		if (!bytes)
			return strdup("(no file)");
		struct stat st;
		cr_assert_eq(stat(d->file, &st), 0);
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		EVP_Digest(bytes, (size_t)st.st_size, md, &n, EVP_sha256(), NULL);
		free(bytes);
		char *hex = calloc(2 * n + 1, 1);
		for (unsigned i = 0; i < n; i++)
			sprintf(hex + 2 * i, "%02x", md[i]);
		return hex;
	}
	char *schema = d->eng == ENG_PG
		? tdb_value(d, "SELECT string_agg(table_name || '.' || column_name, ',' ORDER BY table_name, column_name) "
			       "FROM information_schema.columns WHERE table_schema = 'public'")
		: tdb_value(d, "SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '.', COLUMN_NAME) ORDER BY TABLE_NAME, COLUMN_NAME) "
			       "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()");
	char *hist = NULL, *events = NULL;
	if (tdb_long(d, d->eng == ENG_PG ? "SELECT count(*) FROM pg_tables WHERE tablename = 'schemagate_migrations'"
					 : "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
					   "AND TABLE_NAME = 'schemagate_migrations'") > 0) {
		hist = d->eng == ENG_PG
			? tdb_value(d, "SELECT string_agg(concat_ws('|', version, status, statements_done, checksum, "
				       "applied_at, applied_by, error), ',' ORDER BY version) FROM schemagate_migrations")
			: tdb_value(d, "SELECT GROUP_CONCAT(CONCAT_WS('|', version, status, statements_done, checksum, "
				       "applied_at, applied_by, error) ORDER BY version) FROM schemagate_migrations");
		events = tdb_value(d, "SELECT count(*) FROM schemagate_events");
	}
	char *out = NULL;
	cr_assert(asprintf(&out, "%s\n%s\n%s events\n%ld counter rows", schema ? schema : "",
			   hist ? hist : "(no history)", events ? events : "", tdb_long(d, "SELECT count(*) FROM applied_log")) > 0);
	free(schema);
	free(hist);
	free(events);
	return out;
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

/* ---- a fleet of processes -------------------------------------------------- */

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool file_has(const char *path, const char *needle)
{
	char *s = sgt_slurp(path);
	bool found = s && strstr(s, needle);
	free(s);
	return found;
}

void dump_log(const char *what, const char *path)
{
	char *s = sgt_slurp(path);
	fprintf(stderr, "---- %s (%s)\n%s\n", what, path, s ? s : "(missing)");
	free(s);
}

static void fleet_grow(struct fleet *f)
{
	if (f->n < f->cap)
		return;
	f->cap = f->cap ? 2 * f->cap : 32;
	f->pid = realloc(f->pid, (size_t)f->cap * sizeof(*f->pid));
	f->log = realloc(f->log, (size_t)f->cap * sizeof(*f->log));
	f->status = realloc(f->status, (size_t)f->cap * sizeof(*f->status));
	f->running = realloc(f->running, (size_t)f->cap * sizeof(*f->running));
	f->killed = realloc(f->killed, (size_t)f->cap * sizeof(*f->killed));
	f->exited_at = realloc(f->exited_at, (size_t)f->cap * sizeof(*f->exited_at));
	cr_assert(f->pid && f->log && f->status && f->running && f->killed && f->exited_at);
}

int fleet_add(struct fleet *f, struct tdb *d, const char *tag, const char *const *extra)
{
	fleet_grow(f);
	int i = f->n++;
	const char *argv[40];
	int k = 0;
	argv[k++] = "--database-url";
	argv[k++] = d->url;
	argv[k++] = "--dir";
	argv[k++] = d->mig;
	for (int j = 0; extra && extra[j] && k < 38; j++)
		argv[k++] = extra[j];
	argv[k++] = "up";
	argv[k] = NULL;
	char name[64];
	snprintf(name, sizeof(name), "%s-%03d.log", tag, i);
	f->log[i] = sgt_path(d->dir, name);
	f->pid[i] = sgt_spawn(NULL, argv, f->log[i]);
	f->running[i] = true;
	f->killed[i] = false;
	f->status[i] = -1;
	f->exited_at[i] = 0;
	return i;
}

int fleet_reap(struct fleet *f)
{
	int left = 0;
	for (int i = 0; i < f->n; i++) {
		if (!f->running[i])
			continue;
		int st;
		pid_t p = waitpid(f->pid[i], &st, WNOHANG);
		if (p == f->pid[i]) {
			f->running[i] = false;
			f->status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			f->exited_at[i] = sgt_now_ms();
		} else {
			left++;
		}
	}
	return left;
}

void fleet_wait(struct fleet *f, double timeout_ms)
{
	double t0 = sgt_now_ms();
	while (fleet_reap(f) > 0) {
		if (sgt_now_ms() - t0 > timeout_ms) {
			for (int i = 0; i < f->n; i++)
				if (f->running[i]) {
					dump_log("still running", f->log[i]);
					kill(f->pid[i], SIGKILL);
				}
			fleet_reap(f);
			cr_assert_fail("instances still running after %.0f s", timeout_ms / 1000);
		}
		sleep_ms(10);
	}
}

void fleet_kill(struct fleet *f, int i)
{
	cr_assert_eq(kill(f->pid[i], SIGKILL), 0);
	int st = sgt_wait(f->pid[i]);
	f->running[i] = false;
	f->killed[i] = true;
	f->status[i] = st;
	f->exited_at[i] = sgt_now_ms();
}

int fleet_holder(struct fleet *f)
{
	for (int i = 0; i < f->n; i++)
		if (f->running[i] && file_has(f->log[i], "lock_acquired"))
			return i;
	return -1;
}

int fleet_failures(struct fleet *f, int show)
{
	int failures = 0;
	for (int i = 0; i < f->n; i++) {
		if (f->killed[i] || f->status[i] == 0)
			continue;
		if (failures < show) {
			char what[64];
			snprintf(what, sizeof(what), "instance %d exited %d", i, f->status[i]);
			dump_log(what, f->log[i]);
		}
		failures++;
	}
	return failures;
}

void fleet_free(struct fleet *f)
{
	for (int i = 0; i < f->n; i++)
		free(f->log[i]);
	free(f->pid);
	free(f->log);
	free(f->status);
	free(f->running);
	free(f->killed);
	free(f->exited_at);
	memset(f, 0, sizeof(*f));
}

/* ---- a private server ------------------------------------------------------ */

void private_server_start(struct private_server *s, const char *script, const char *env_assign,
			  const char *url_var)
{
	memset(s, 0, sizeof(*s));
	s->script = script;
	s->dir = sgt_tempdir();
	chmod(s->dir, 0755);
	char *cmd = NULL;
	cr_assert(asprintf(&cmd, "%s sh '%s/tests/harness/%s' start '%s/server'", env_assign ? env_assign : "",
			   SG_SOURCE_DIR, script, s->dir) > 0);
	int st = 0;
	char *out = sgt_sh(cmd, &st);
	free(cmd);
	cr_assert_eq(st, 0, "%s start failed", script);
	char key[64];
	snprintf(key, sizeof(key), "export %s=", url_var);
	char *p = strstr(out, key);
	cr_assert(p, "%s printed no %s: %s", script, url_var, out);
	p += strlen(key);
	s->url = strndup(p, strcspn(p, "\n"));
	free(out);
}

void private_server_stop(struct private_server *s)
{
	if (!s->dir)
		return;
	char *cmd = NULL;
	/* a paused server cannot shut down */
	if (asprintf(&cmd, "pkill -CONT -f '%s/server' 2>/dev/null; sh '%s/tests/harness/%s' stop '%s/server' "
			   ">/dev/null 2>&1", s->dir, SG_SOURCE_DIR, s->script, s->dir) > 0 &&
	    system(cmd) != 0)
		fprintf(stderr, "could not stop the private server in %s\n", s->dir);
	free(cmd);
	sgt_rmrf(s->dir);
	free(s->dir);
	free(s->url);
	memset(s, 0, sizeof(*s));
}

void private_server_signal(struct private_server *s, const char *sig)
{
	char *cmd = NULL;
	if (strcmp(s->script, "pg.sh") == 0)
		cr_assert(asprintf(&cmd, "pm=$(head -n1 '%s/server/data/postmaster.pid') && kill -%s $pm $(pgrep -P $pm)",
				   s->dir, sig) > 0);
	else
		cr_assert(asprintf(&cmd, "kill -%s $(cat '%s/server/mysqld.pid')", sig, s->dir) > 0);
	int st = system(cmd);
	free(cmd);
	cr_assert_eq(st, 0, "could not send SIG%s to the server", sig);
}
