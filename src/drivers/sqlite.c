/*
 * sqlite.c - the SQLite driver.
 *
 * The lock is the database file's own write lock: the winner holds a
 * BEGIN IMMEDIATE transaction, so the OS releases it if the process dies
 * and nothing can ever be left "locked". Because the lock is a
 * transaction, each migration runs in a SAVEPOINT inside it: a migration
 * and its history row are released together, and everything the run did
 * commits when the lock is released. A process killed mid-run leaves the
 * database exactly as it was before the run.
 *
 * SQLite runs in-process, so there is no socket to poll: a progress
 * handler runs the loop every few thousand VM steps and interrupts the
 * statement when a signal or deadline asks to stop.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemagate/driver.h"
#include "schemagate/log.h"
#include "schemagate/sqlsplit.h"

struct sqlite_conn {
	struct sg_conn base;
	sqlite3 *db;
	struct sg_io *io;
	bool in_lock_txn;      /* BEGIN IMMEDIATE held as the lock */
	bool in_savepoint;
	bool trying_lock;      /* busy handler off while attempting the lock */
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
	if (sc->trying_lock)
		return 0;
	if (sg_io_check(sc->io) == SG_IO_CANCELED) {
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
	if (sg_io_check(sc->io) == SG_IO_CANCELED) {
		sc->canceled = true;
		return 1;
	}
	return 0;
}

static int fail_sqlite(struct sqlite_conn *sc, int rc, const char *sql, struct sg_error *err)
{
	const char *msg = sc->db ? sqlite3_errmsg(sc->db) : sqlite3_errstr(rc);
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%d", rc & 0xff);
	if (sc->canceled || (rc & 0xff) == SQLITE_INTERRUPT) {
		sc->canceled = false;
		err->kind = SG_ERRK_CANCELED;
		return sg_fail(err, SG_EXIT_SIGTERM, "sqlite: statement canceled");
	}
	int prim = rc & 0xff;
	if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED) {
		err->kind = SG_ERRK_TRANSIENT;
		return sg_fail(err, SG_EXIT_TIMEOUT, "sqlite: database is locked by another writer");
	}
	if (prim == SQLITE_CANTOPEN || prim == SQLITE_PERM || prim == SQLITE_READONLY ||
	    prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT || prim == SQLITE_IOERR || prim == SQLITE_FULL) {
		err->kind = SG_ERRK_PERMANENT;
		return sg_fail(err, SG_EXIT_DATABASE, "sqlite: %s", msg);
	}
	err->kind = SG_ERRK_STATEMENT;
	if (sql) {
		char head[120];
		sg_statement_head(sql, head, sizeof(head));
		return sg_fail(err, SG_EXIT_MIGRATION, "sqlite: %s (in statement: %s)", msg, head);
	}
	return sg_fail(err, SG_EXIT_MIGRATION, "sqlite: %s", msg);
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
	sc->busy_limit_ms = o->row_lock_wait_ms ? o->row_lock_wait_ms : BUSY_WAIT_LIMIT_MS;
	int rc = sqlite3_open_v2(path, &sc->db, flags, NULL);
	if (rc != SQLITE_OK) {
		/* A missing file for a read-only command may still appear (the
		 * migrating Job creates it): retry like a server starting up. */
		sg_fail(err, SG_EXIT_DATABASE, "sqlite: cannot open %s: %s", path,
			sc->db ? sqlite3_errmsg(sc->db) : sqlite3_errstr(rc));
		err->kind = (o->read_only && (rc & 0xff) == SQLITE_CANTOPEN) ? SG_ERRK_TRANSIENT : SG_ERRK_PERMANENT;
		sqlite3_close_v2(sc->db);
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
	free(sc);
}

/* Run every statement of sql; rows are discarded. */
static int sqlite_exec(struct sg_conn *c, const char *sql, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	const char *tail = sql;
	while (tail && *tail) {
		sqlite3_stmt *st = NULL;
		const char *start = tail;
		int rc = sqlite3_prepare_v2(sc->db, tail, -1, &st, &tail);
		if (rc != SQLITE_OK)
			return fail_sqlite(sc, rc, start, err);
		if (!st)
			break; /* only whitespace or comments left */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		if (rc != SQLITE_DONE) {
			sqlite3_finalize(st);
			return fail_sqlite(sc, rc, start, err);
		}
		sqlite3_finalize(st);
	}
	return 0;
}

static int sqlite_query(struct sg_conn *c, const char *sql, int nparams, const char *const *params,
			sg_row_fn fn, void *ctx, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
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

static int sqlite_begin(struct sg_conn *c, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	if (sc->in_lock_txn) {
		if (run(sc, "SAVEPOINT schemagate_migration", err) != 0)
			return -1;
		sc->in_savepoint = true;
		return 0;
	}
	return run(sc, "BEGIN IMMEDIATE", err);
}

static int sqlite_commit(struct sg_conn *c, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	if (sc->in_savepoint) {
		sc->in_savepoint = false;
		return run(sc, "RELEASE schemagate_migration", err);
	}
	return run(sc, "COMMIT", err);
}

static int sqlite_rollback(struct sg_conn *c, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	if (sc->in_savepoint) {
		sc->in_savepoint = false;
		if (run(sc, "ROLLBACK TO schemagate_migration", err) != 0)
			return -1;
		return run(sc, "RELEASE schemagate_migration", err);
	}
	if (sqlite3_get_autocommit(sc->db))
		return 0;
	return run(sc, "ROLLBACK", err);
}

static int sqlite_try_lock(struct sg_conn *c, const char *key, bool *acquired, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	*acquired = false;
	sc->trying_lock = true;
	struct sg_error e = {0};
	int rc = run(sc, "BEGIN IMMEDIATE", &e);
	sc->trying_lock = false;
	if (rc == 0) {
		sc->in_lock_txn = true;
		*acquired = true;
		return 0;
	}
	if (e.kind == SG_ERRK_TRANSIENT)
		return 0; /* another process holds the write lock */
	*err = e;
	return -1;
}

static int sqlite_unlock(struct sg_conn *c, const char *key, struct sg_error *err)
{
	struct sqlite_conn *sc = conn_of(c);
	if (!sc->in_lock_txn)
		return sg_fail(err, SG_EXIT_DATABASE, "sqlite: unlock without the lock held");
	sc->in_lock_txn = false;
	sc->in_savepoint = false;
	if (sqlite3_get_autocommit(sc->db))
		return sg_fail(err, SG_EXIT_DATABASE, "sqlite: the lock transaction ended early; nothing was committed");
	if (run(sc, "COMMIT", err) != 0) {
		struct sg_error ignored = {0};
		run(sc, "ROLLBACK", &ignored);
		return sg_error_prefix(err, "committing and releasing the lock");
	}
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
	.caps = SG_CAP_TRANSACTIONAL_DDL | SG_CAP_CANCEL,
	.connect = sqlite_connect,
	.close = sqlite_close,
	.exec = sqlite_exec,
	.query = sqlite_query,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.try_lock = sqlite_try_lock,
	.unlock = sqlite_unlock,
	.socket = NULL,
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
	.now_ms_sql = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
};
