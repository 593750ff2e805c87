/*
 * driver.h - the one interface every database engine implements.
 *
 * The coordinator never asks which engine it talks to; it asks what the
 * driver can do (capabilities) and calls the table below through the
 * sg_conn_* wrappers. A driver that has to wait for its socket calls
 * io->wait(), which runs the coordinator's libuv loop (timers, signals,
 * deadlines) until the socket is ready. When io->wait() or io->check()
 * returns SG_IO_CANCELED the driver cancels the running statement
 * (PQcancel, KILL QUERY, sqlite3_interrupt), collects the error and
 * returns -1 with err->kind = SG_ERRK_CANCELED.
 *
 * Ownership: connect() allocates the connection; close() frees it and is
 * safe on NULL. Strings passed in are borrowed for the call only.
 */
#ifndef SCHEMAGATE_DRIVER_H
#define SCHEMAGATE_DRIVER_H

#include "schemagate/common.h"
#include "schemagate/url.h"

/* ---- the loop, as seen by a driver ------------------------------------ */

enum { SG_IO_READ = 1, SG_IO_WRITE = 2 };
#define SG_IO_CANCELED (-125)

struct sg_io {
	/* Wait for fd to become ready (SG_IO_READ/WRITE) while the loop runs.
	 * timeout_ms < 0 waits forever. Returns the ready events (>0), 0 on
	 * timeout, SG_IO_CANCELED when a signal or deadline asks to stop. */
	int (*wait)(struct sg_io *io, int fd, int events, int64_t timeout_ms);
	/* Run due timers and signals without blocking (for in-process
	 * engines); returns SG_IO_CANCELED or 0. */
	int (*check)(struct sg_io *io);
	/* Sleep on the loop; returns 0 or SG_IO_CANCELED. */
	int (*sleep)(struct sg_io *io, uint64_t ms);
	void *data;
};

static inline int sg_io_wait(struct sg_io *io, int fd, int events, int64_t timeout_ms)
{
	return io->wait(io, fd, events, timeout_ms);
}
static inline int sg_io_check(struct sg_io *io) { return io->check(io); }
static inline int sg_io_sleep(struct sg_io *io, uint64_t ms) { return io->sleep(io, ms); }

/* ---- capabilities ------------------------------------------------------ */

enum sg_driver_caps {
	/* DDL runs inside transactions: a migration and its history row
	 * commit together. Without it every script runs statement by
	 * statement with recorded progress. */
	SG_CAP_TRANSACTIONAL_DDL = 1u << 0,
	/* The lock belongs to a session and needs its own connection
	 * (advisory lock, GET_LOCK). Without it the lock lives on the work
	 * connection (SQLite's write transaction). */
	SG_CAP_DEDICATED_LOCK_CONN = 1u << 1,
	/* LISTEN/NOTIFY: waiters wake when the winner commits. */
	SG_CAP_NOTIFY = 1u << 2,
	/* A running statement can be canceled from the loop. */
	SG_CAP_CANCEL = 1u << 3,
	/* sg_conn_socket() returns an fd the loop can poll. */
	SG_CAP_POLLABLE = 1u << 4,
};

/* ---- connections ------------------------------------------------------- */

struct sg_driver;

/* Every driver's connection struct starts with this. */
struct sg_conn {
	const struct sg_driver *driver;
};

struct sg_conn_opts {
	const struct sg_url *url;
	const char *password;           /* --password-file; overrides the URL's */
	const char *application_name;   /* "schemagate/<instance>" */
	uint64_t attempt_timeout_ms;    /* one connection attempt */
	uint64_t ddl_lock_timeout_ms;   /* PostgreSQL lock_timeout; 0 = off */
	struct sg_io *io;               /* borrowed for the connection's life */
	bool read_only;                 /* wait/verify/status: never create or write */
	/* Lease connection: a statement blocked on a row lock fails after
	 * this long (PostgreSQL lock_timeout, InnoDB lock wait, SQLite busy
	 * wait) so a blocked renewal is noticed. 0 = engine default. */
	uint64_t row_lock_wait_ms;
};

/* Called per result row; values are text or NULL. Return non-zero to stop. */
typedef int (*sg_row_fn)(void *ctx, int ncols, const char *const *values);

struct sg_driver {
	const char *name;               /* "postgres" */
	enum sg_engine engine;
	unsigned caps;                  /* enum sg_driver_caps */

	/* One attempt. Fails with err->kind TRANSIENT (retry: refused, DNS,
	 * starting up, too many connections) or PERMANENT (auth, unknown
	 * database, permission; exit 5). The coordinator does the retrying. */
	int (*connect)(const struct sg_conn_opts *opts, struct sg_conn **out, struct sg_error *err);
	void (*close)(struct sg_conn *c);

	/* Run a script of one or more statements; results discarded. */
	int (*exec)(struct sg_conn *c, const char *sql, struct sg_error *err);
	/* One statement with text parameters written $1..$n (NULL = SQL NULL).
	 * fn may be NULL: rows are discarded (INSERT/UPDATE/DELETE). */
	int (*query)(struct sg_conn *c, const char *sql, int nparams, const char *const *params,
		     sg_row_fn fn, void *ctx, struct sg_error *err);

	int (*begin)(struct sg_conn *c, struct sg_error *err);
	int (*commit)(struct sg_conn *c, struct sg_error *err);
	int (*rollback)(struct sg_conn *c, struct sg_error *err);   /* no-op outside a transaction */

	/* Non-blocking lock attempt; key is the history table name as
	 * configured; the driver derives its lock id from it (and the
	 * database). unlock() checks that the release took effect. */
	int (*try_lock)(struct sg_conn *c, const char *key, bool *acquired, struct sg_error *err);
	int (*unlock)(struct sg_conn *c, const char *key, struct sg_error *err);
	/* Describe who holds the lock ("schemagate/pod-1/42 since 12:00:01
	 * (31s)"); "" when unknown. Optional (NULL). */
	int (*lock_holder)(struct sg_conn *c, const char *key, char *out, size_t outsz, struct sg_error *err);

	/* SG_CAP_NOTIFY only (else NULL). */
	int (*listen)(struct sg_conn *c, const char *key, struct sg_error *err);
	int (*notify)(struct sg_conn *c, const char *key, struct sg_error *err);
	/* Read what arrived on the socket; *got set if a notification came. */
	int (*consume_notifications)(struct sg_conn *c, bool *got, struct sg_error *err);
	/* SG_CAP_POLLABLE only; -1 otherwise. */
	int (*socket)(struct sg_conn *c);

	int (*table_exists)(struct sg_conn *c, const char *table, bool *exists, struct sg_error *err);
	/* Does the database hold any table besides schemagate's? (for
	 * up --baseline-version). Optional (NULL = assume yes). */
	int (*has_user_tables)(struct sg_conn *c, const char *table, bool *any, struct sg_error *err);
	/* Which SQL the server speaks, where one engine serves several
	 * (MariaDB behind a mysql:// URL): decides the migration files.
	 * Optional (NULL = the engine's own dialect). */
	enum sg_dialect (*dialect)(struct sg_conn *c);
	/* Append the quoted (possibly schema-qualified) identifier to out. */
	void (*quote_ident)(const char *name, struct sg_buf *out);
	/* Engine-specific checks around a no-transaction script: before_script
	 * may snapshot state, after_script fails the migration if the script
	 * left damage (invalid indexes after CREATE INDEX CONCURRENTLY).
	 * Optional (NULL). */
	int (*before_script)(struct sg_conn *c, struct sg_error *err);
	int (*after_script)(struct sg_conn *c, struct sg_error *err);

	/* Dialect for the state tables: printf formats whose single %s is the
	 * quoted table name; now_sql is the database clock as text. */
	const char *history_ddl;
	const char *events_ddl;
	const char *now_sql;
	/* The database clock in epoch milliseconds, as a BIGINT expression
	 * (the lease lock compares expiry times on the database's clock). */
	const char *now_ms_sql;
};

extern const struct sg_driver sg_driver_postgres;
extern const struct sg_driver sg_driver_mysql;
extern const struct sg_driver sg_driver_sqlite;

const struct sg_driver *sg_driver_for(enum sg_engine engine);

/* ---- wrappers the coordinator calls ------------------------------------ */

static inline bool sg_conn_can(const struct sg_conn *c, unsigned cap) { return (c->driver->caps & cap) != 0; }
static inline void sg_conn_close(struct sg_conn *c) { if (c) c->driver->close(c); }
static inline int sg_conn_exec(struct sg_conn *c, const char *sql, struct sg_error *err) { return c->driver->exec(c, sql, err); }
static inline int sg_conn_query(struct sg_conn *c, const char *sql, int n, const char *const *p,
				sg_row_fn fn, void *ctx, struct sg_error *err)
{
	return c->driver->query(c, sql, n, p, fn, ctx, err);
}
static inline int sg_conn_begin(struct sg_conn *c, struct sg_error *err) { return c->driver->begin(c, err); }
static inline int sg_conn_commit(struct sg_conn *c, struct sg_error *err) { return c->driver->commit(c, err); }
static inline int sg_conn_rollback(struct sg_conn *c, struct sg_error *err) { return c->driver->rollback(c, err); }

#endif
