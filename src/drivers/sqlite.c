/*
 * sqlite.c - the SQLite driver.
 *
 * The lock is a lock on the database file itself: an exclusive flock()
 * on it, held by the winner; the kernel drops it when the process dies,
 * so nothing can ever be left "locked". It is separate from SQLite's own
 * (fcntl) locks, so each migration runs in a BEGIN IMMEDIATE transaction
 * of its own, committing with its history row as on PostgreSQL, and a
 * no-transaction script (VACUUM, PRAGMA foreign_keys) runs outside any
 * transaction while other instances stay excluded. (flock needs a local
 * file system, as SQLite itself does.)
 *
 * SQLite runs in-process, so there is no socket to poll: a progress
 * handler runs the loop every few thousand VM steps; when the loop stops,
 * cancel() interrupts the statement. Waiters have no notifications and
 * re-read the history every wake_poll_ms instead (a cheap local read).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "schemagate/driver.h"
#include "schemagate/log.h"
#include "schemagate/sqlsplit.h"
#include "schemagate/sqlwords.h"

struct sqlite_conn {
	struct sg_conn base;
	sqlite3 *db;
	char *path;
	struct sg_io *io;
	int lock_fd;           /* flock()ed while the lock is held; -1 until first tried */
	bool locked;
	bool canceled;
	uint64_t busy_limit_ms;
};

#define BUSY_WAIT_LIMIT_MS 10000
#define BUSY_SLEEP_MS 10
#define PROGRESS_STEPS 20000

static struct sqlite_conn *conn_of(struct sg_conn *c) { return (struct sqlite_conn *)c; }

/* Readers wait briefly for a committing writer; the lock attempt never
 * waits (the coordinator's timer retries it). */
static int busy_handler(void *ctx, int count)
{
	struct sqlite_conn *sc = ctx;
	if (sg_io_check(sc->io) == SG_IO_CANCELED || sc->canceled) {
		sc->canceled = true;
		return 0;
	}
	if ((uint64_t)count * BUSY_SLEEP_MS >= sc->busy_limit_ms)
		return 0;
	sqlite3_sleep(BUSY_SLEEP_MS);
	return 1;
}

static int progress_handler(void *ctx)
{
	struct sqlite_conn *sc = ctx;
	if (sg_io_check(sc->io) == SG_IO_CANCELED || sc->canceled) {
		sc->canceled = true;
		return 1;
	}
	return 0;
}

static int fail_sqlite(struct sqlite_conn *sc, int rc, const char *sql, struct sg_error *err)
{
	const char *msg = sc->db ? sqlite3_errmsg(sc->db) : sqlite3_errstr(rc);
	char code[8];
	snprintf(code, sizeof(code), "%d", rc & 0xff);
	if (sc->canceled || (rc & 0xff) == SQLITE_INTERRUPT) {
		/* only the loop interrupts: there is no server to do it */
		sc->canceled = false;
		return sg_fail_canceled(err, true, code, "sqlite: statement canceled");
	}
	int prim = rc & 0xff;
	if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
		return sg_fail_db(err, SG_ERRK_TRANSIENT, code, "sqlite: database is locked by another writer");
	if (prim == SQLITE_CANTOPEN || prim == SQLITE_PERM || prim == SQLITE_READONLY ||
	    prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT || prim == SQLITE_IOERR || prim == SQLITE_FULL)
		return sg_fail_db(err, SG_ERRK_PERMANENT, code, "sqlite: %s", msg);
	if (sql) {
		char head[120];
		sg_statement_head(sql, head, sizeof(head));
		return sg_fail_db(err, SG_ERRK_STATEMENT, code, "sqlite: %s (in statement: %s)", msg, head);
	}
	return sg_fail_db(err, SG_ERRK_STATEMENT, code, "sqlite: %s", msg);
}

static int sqlite_connect(const struct sg_conn_opts *o, struct sg_conn **out, struct sg_error *err)
{
	*out = NULL;
	const char *path = o->url->path;
	int flags = SQLITE_OPEN_FULLMUTEX;
	flags |= o->read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	struct sqlite_conn *sc = sg_calloc(1, sizeof(*sc));
	sc->base.driver = &sg_driver_sqlite;
	sc->io = o->io;
	sc->busy_limit_ms = o->busy_wait_ms ? o->busy_wait_ms : BUSY_WAIT_LIMIT_MS;
	sc->lock_fd = -1;
	sc->base.affected = -1;
	sc->path = sg_strdup(path);
	if (o->read_only && o->missing_is_empty && access(path, F_OK) != 0 && errno == ENOENT) {
		/* nothing there yet: report an empty database, create nothing */
		sg_info("sqlite_missing", "sqlite: %s does not exist yet; reporting it as an empty database", path);
		path = ":memory:";
		flags = SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY;
	}
	int rc = sqlite3_open_v2(path, &sc->db, flags, NULL);
	if (rc != SQLITE_OK) {
		/* A missing file for a read-only command may still appear (the
		 * migrating Job creates it): retry like a server starting up. */
		sg_fail_db(err, (o->read_only && (rc & 0xff) == SQLITE_CANTOPEN) ? SG_ERRK_TRANSIENT : SG_ERRK_PERMANENT,
			   NULL, "sqlite: cannot open %s: %s", path, sc->db ? sqlite3_errmsg(sc->db) : sqlite3_errstr(rc));
		sqlite3_close_v2(sc->db);
		free(sc->path);
		free(sc);
		return -1;
	}
	sqlite3_extended_result_codes(sc->db, 1);
	sqlite3_busy_handler(sc->db, busy_handler, sc);
	sqlite3_progress_handler(sc->db, PROGRESS_STEPS, progress_handler, sc);
	*out = &sc->base;
	return 0;
}

static void sqlite_close(struct sg_conn *c)
{
	struct sqlite_conn *sc = conn_of(c);
	if (!sc)
		return;
	/* closing with an open transaction rolls it back */
	sqlite3_close_v2(sc->db);
	/* only now: closing any descriptor of the file drops the process's
	 * fcntl locks on it, which SQLite may have been holding */
	if (sc->lock_fd >= 0)
		close(sc->lock_fd);
	free(sc->path);
	free(sc);
}

/* The loop may stop (and call cancel) while a statement runs. */
static void busy(struct sqlite_conn *sc, bool on)
{
	sg_io_busy(sc->io, &sc->base, on);
	if (on) {
		sc->canceled = false;
		sc->base.affected = -1;
	}
	else if (sc->db)
		sc->base.affected = sqlite3_changes(sc->db);
}

static void sqlite_cancel(struct sg_conn *c)
{
	struct sqlite_conn *sc = conn_of(c);
	sc->canceled = true;
	sqlite3_interrupt(sc->db);
}

static int exec_busy(struct sqlite_conn *sc, const char *sql, struct sg_error *err);

/* Run every statement of sql; rows are discarded. */
static int sqlite_exec(struct sg_conn *c, const char *sql, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	busy(sc, true);
	int rc = exec_busy(sc, sql, err);
	busy(sc, false);
	return rc;
}

/* Past the blanks and comments that SQLite's prepare takes as part of the
 * statement after them: where the statement's own text starts. */
static const char *skip_blanks_and_comments(const char *p)
{
	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (p[0] == '-' && p[1] == '-')
			p += strcspn(p, "\n");
		else if (p[0] == '/' && p[1] == '*' && strstr(p + 2, "*/"))
			p = strstr(p + 2, "*/") + 2;
		else
			return p;
	}
}

/* Where the statement at text ends, by SQLite's own rule
 * (sqlite3_complete): for a statement prepare refused, whose tail says
 * nothing. */
static const char *statement_end(const char *text)
{
	for (const char *semi = strchr(text, ';'); semi; semi = strchr(semi + 1, ';')) {
		char *head = sg_strndup(text, (size_t)(semi + 1 - text));
		bool complete = sqlite3_complete(head) != 0;
		free(head);
		if (complete)
			return semi + 1;
	}
	return text + strlen(text);
}

/* A statement of a script failed: name it as PostgreSQL and MySQL errors
 * do, by number and line in the script, with its first line (not the
 * comment above it). A script of one statement needs no number. */
static int fail_in_script(struct sqlite_conn *sc, int rc, const char *script, const char *start, int number,
			  const char *tail, struct sg_error *err)
{
	const char *text = skip_blanks_and_comments(start);
	/* the statement alone: prepare's tail is where the next one starts */
	char *stmt = tail && tail > text ? sg_strndup(text, (size_t)(tail - text)) : sg_strdup(text);
	size_t len = strlen(stmt);
	while (len > 0 && isspace((unsigned char)stmt[len - 1]))
		stmt[--len] = '\0';
	if (number == 1 && (!tail || !*skip_blanks_and_comments(tail))) {
		fail_sqlite(sc, rc, stmt, err);
		free(stmt);
		return -1;
	}
	int line = 1;
	for (const char *p = script; p < text; p++)
		line += *p == '\n';
	char head[120];
	sg_statement_head(stmt, head, sizeof(head));
	free(stmt);
	fail_sqlite(sc, rc, NULL, err);
	if (err->kind != SG_ERRK_STATEMENT)
		return -1;
	size_t n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, " (statement %d, line %d: %s)", number, line, head);
	return -1;
}

static int exec_busy(struct sqlite_conn *sc, const char *sql, struct sg_error *err)
{
	const char *tail = sql;
	int number = 0;
	while (tail && *tail) {
		sqlite3_stmt *st = NULL;
		const char *start = tail;
		int rc = sqlite3_prepare_v2(sc->db, tail, -1, &st, &tail);
		if (rc != SQLITE_OK)
			return fail_in_script(sc, rc, sql, start, number + 1,
					      statement_end(skip_blanks_and_comments(start)), err);
		if (!st)
			break; /* only whitespace or comments left */
		number++;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE) {
			sqlite3_finalize(st);
			return fail_in_script(sc, rc, sql, start, number, tail, err);
		}
		sqlite3_finalize(st);
	}
	return 0;
}

static int query_busy(struct sqlite_conn *sc, const char *sql, int nparams, const char *const *params,
		      sg_row_fn fn, void *ctx, struct sg_error *err);

static int sqlite_query(struct sg_conn *c, const char *sql, int nparams, const char *const *params,
			sg_row_fn fn, void *ctx, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	busy(sc, true);
	int rc = query_busy(sc, sql, nparams, params, fn, ctx, err);
	busy(sc, false);
	return rc;
}

static int query_busy(struct sqlite_conn *sc, const char *sql, int nparams, const char *const *params,
		      sg_row_fn fn, void *ctx, struct sg_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(sc->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail_sqlite(sc, rc, sql, err);
	for (int i = 0; i < nparams; i++) {
		char name[16];
		snprintf(name, sizeof(name), "$%d", i + 1);
		int idx = sqlite3_bind_parameter_index(st, name);
		if (idx == 0)
			continue; /* parameter not used by this statement */
		if (params[i])
			rc = sqlite3_bind_text(st, idx, params[i], -1, SQLITE_STATIC);
		else
			rc = sqlite3_bind_null(st, idx);
		if (rc != SQLITE_OK) {
			sqlite3_finalize(st);
			return fail_sqlite(sc, rc, sql, err);
		}
	}
	int ncols = sqlite3_column_count(st);
	const char **vals = sg_calloc((size_t)ncols + 1, sizeof(char *));
	bool stop = false;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!fn)
			continue;
		for (int i = 0; i < ncols; i++)
			vals[i] = (const char *)sqlite3_column_text(st, i);
		stop = fn(ctx, ncols, vals) != 0;
	}
	free(vals);
	if (!stop && rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return fail_sqlite(sc, rc, sql, err);
	}
	sqlite3_finalize(st);
	return 0;
}

static int run(struct sqlite_conn *sc, const char *sql, struct sg_error *err)
{
	return sqlite_exec(&sc->base, sql, err);
}

/* IMMEDIATE: take the write lock now, waiting (busy handler) for a
 * writer that holds it, rather than fail half-way through a migration. */
static int sqlite_begin(struct sg_conn *c, struct sg_error *err)
{
	return run(conn_of(c), "BEGIN IMMEDIATE", err);
}

static int sqlite_commit(struct sg_conn *c, struct sg_error *err)
{
	return run(conn_of(c), "COMMIT", err);
}

static int sqlite_rollback(struct sg_conn *c, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	if (sqlite3_get_autocommit(sc->db))
		return 0;
	return run(sc, "ROLLBACK", err);
}

static bool sqlite_in_transaction(struct sg_conn *c)
{
	return !sqlite3_get_autocommit(conn_of(c)->db);
}

static bool in_memory(const struct sqlite_conn *sc)
{
	return !sc->path[0] || strcmp(sc->path, ":memory:") == 0 || strncmp(sc->path, "file::memory:", 13) == 0;
}

static int open_lock_fd(struct sqlite_conn *sc, struct sg_error *err)
{
	if (sc->lock_fd >= 0)
		return 0;
	sc->lock_fd = open(sc->path, O_RDONLY | O_CLOEXEC);
	if (sc->lock_fd < 0)
		return sg_fail_db(err, SG_ERRK_PERMANENT, NULL, "sqlite: cannot open %s to lock it: %s",
				  sc->path, strerror(errno));
	return 0;
}

/* key is unused: the file is the lock, whatever the history table. */
static int sqlite_try_lock(struct sg_conn *c, const char *key, uint64_t wait_ms, bool *acquired, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	*acquired = false;
	if (in_memory(sc)) {
		/* a private database: nobody else can reach it */
		sc->locked = *acquired = true;
		return 0;
	}
	if (open_lock_fd(sc, err) != 0)
		return -1;
	if (flock(sc->lock_fd, LOCK_EX | LOCK_NB) == 0) {
		sc->locked = *acquired = true;
		return 0;
	}
	if (errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return sg_fail_db(err, SG_ERRK_PERMANENT, NULL, "sqlite: locking %s: %s", sc->path,
			  strerror(errno));
}

/* A shared flock succeeds only while nobody holds the exclusive one; it
 * is given back at once. The kernel does not say who holds it. */
static int sqlite_lock_holder(struct sg_conn *c, const char *key, char *out, size_t outsz, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	out[0] = '\0';
	if (in_memory(sc) || sc->locked)
		return 0;
	if (open_lock_fd(sc, err) != 0)
		return -1;
	if (flock(sc->lock_fd, LOCK_SH | LOCK_NB) == 0) {
		flock(sc->lock_fd, LOCK_UN);
		return 0;
	}
	if (errno != EWOULDBLOCK)
		return sg_fail_db(err, SG_ERRK_PERMANENT, NULL, "sqlite: probing the lock on %s: %s",
				  sc->path, strerror(errno));
	snprintf(out, outsz, "another process (it holds the lock on %s)", sc->path);
	return 0;
}

static int sqlite_verify_lock(struct sg_conn *c, const char *key, struct sg_error *err)
{
	if (!conn_of(c)->locked)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL, "sqlite: the file lock is not held");
	return 0;
}

static int sqlite_unlock(struct sg_conn *c, const char *key, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	if (!sc->locked)
		return sg_fail_db(err, SG_ERRK_LOCK_LOST, NULL, "sqlite: unlock without the lock held");
	sc->locked = false;
	if (sc->lock_fd >= 0 && flock(sc->lock_fd, LOCK_UN) != 0)
		return sg_fail_db(err, SG_ERRK_PERMANENT, NULL, "sqlite: unlocking %s: %s", sc->path,
				  strerror(errno));
	return 0;
}

/* The few statements SQLite will not run (or ignores) inside a
 * transaction: VACUUM, PRAGMA foreign_keys, ATTACH, DETACH. */
static enum sg_stmt_kind sqlite_classify(const char *sql)
{
	static const char *const tx_control[] = { "BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", NULL };
	static const char *const alone[] = { "VACUUM", "PRAGMA", "ATTACH", "DETACH", NULL };
	char w[1][SG_SQL_WORD_MAX];
	if (sg_sql_words(sql, w, 1) == 0)
		return SG_STMT_TRANSACTIONAL;
	if (sg_sql_word_in(w[0], tx_control))
		return SG_STMT_TX_CONTROL;
	return sg_sql_word_in(w[0], alone) ? SG_STMT_STANDALONE : SG_STMT_TRANSACTIONAL;
}

/* "t" -> "main.t" */
static int sqlite_qualify(struct sg_conn *c, const char *table, char **out, struct sg_error *err)
{
	*out = strchr(table, '.') ? sg_strdup(table) : sg_asprintf("main.%s", table);
	return 0;
}

static int found(void *ctx, int ncols, const char *const *v)
{
	*(bool *)ctx = true;
	return 1;
}

/* "schema.table" -> "schema"."table" */
static void sqlite_quote_ident(const char *name, struct sg_buf *out)
{
	sg_quote_ident(name, '"', out);
}

static int sqlite_table_exists(struct sg_conn *c, const char *table, bool *exists, struct sg_error *err)
{
	*exists = false;
	const char *dot = strchr(table, '.');
	struct sg_buf sql = {0};
	sg_buf_puts(&sql, "SELECT 1 FROM ");
	if (dot) {
		char *schema = sg_strndup(table, (size_t)(dot - table));
		sqlite_quote_ident(schema, &sql);
		sg_buf_puts(&sql, ".");
		free(schema);
	}
	sg_buf_puts(&sql, "sqlite_master WHERE type = 'table' AND name = $1");
	const char *p[] = {dot ? dot + 1 : table};
	int rc = sqlite_query(c, sql.data, 1, p, found, exists, err);
	sg_buf_free(&sql);
	return rc;
}

static int sqlite_has_user_tables(struct sg_conn *c, const char *table, bool *any, struct sg_error *err)
{
	*any = false;
	const char *p[] = {table, "schemagate_events"};
	return sqlite_query(c, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
			       "AND name <> $1 AND name <> $2 LIMIT 1", 2, p, found, any, err);
}

const struct sg_driver sg_driver_sqlite = {
	.name = "sqlite",
	.engine = SG_ENGINE_SQLITE,
	.caps = SG_CAP_TRANSACTIONAL_DDL | SG_CAP_CONNECT_CREATES,
	.wake_poll_ms = 100,
	.connect = sqlite_connect,
	.close = sqlite_close,
	.cancel = sqlite_cancel,
	.exec = sqlite_exec,
	.query = sqlite_query,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.in_transaction = sqlite_in_transaction,
	.try_lock = sqlite_try_lock,
	.verify_lock = sqlite_verify_lock,
	.unlock = sqlite_unlock,
	.lock_holder = sqlite_lock_holder,
	.socket = NULL,
	.classify = sqlite_classify,
	.qualify = sqlite_qualify,
	.table_exists = sqlite_table_exists,
	.has_user_tables = sqlite_has_user_tables,
	.quote_ident = sqlite_quote_ident,
	.history_ddl = "CREATE TABLE IF NOT EXISTS %s ("
		       "version TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', checksum TEXT NOT NULL, "
		       "status TEXT NOT NULL, statements_done INTEGER NOT NULL DEFAULT 0, applied_at TEXT, "
		       "applied_by TEXT, duration_ms INTEGER, down_sql TEXT, tool_version TEXT, error TEXT)",
	.events_ddl = "CREATE TABLE IF NOT EXISTS %s ("
		      "id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT, instance TEXT, history_table TEXT, "
		      "event TEXT, version TEXT, outcome TEXT, detail TEXT)",
	.now_sql = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
	/* text as written by now_sql, or by hand in another form SQLite reads;
	 * what it cannot read is shown as stored */
	.applied_at_sql = "coalesce(strftime('%Y-%m-%dT%H:%M:%fZ', applied_at), applied_at)",
	.now_ms_sql = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
};
