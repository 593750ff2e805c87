/*
 * driver.h - the one interface every database engine implements.
 *
 * The coordinator never asks which engine it talks to; it asks what the
 * driver can do (capabilities) and calls the table below through the
 * sg_conn_* wrappers. A driver that has to wait for its socket calls
 * io->wait(), which runs the coordinator's libuv loop (timers, signals,
 * deadlines) until the socket is ready, and it reports each statement it
 * has in flight with sg_io_busy(). Stopping is the loop's business: when
 * it stops, it calls the driver's cancel() on every busy connection; the
 * driver then collects the statement's error as usual. When io->wait()
 * returns SG_IO_CANCELED the cleanup window is over: the driver abandons
 * the connection and fails with err->kind = SG_ERRK_CANCELED.
 *
 * Drivers report what happened (canceled, connection lost, SQLSTATE);
 * they never decide exit codes beyond a default the coordinator may
 * override.
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

struct sg_conn;

struct sg_io {
	/* Wait for fd to become ready (SG_IO_READ/WRITE) while the loop runs.
	 * timeout_ms < 0 waits forever. Returns the ready events (>0), 0 on
	 * timeout, SG_IO_CANCELED once the loop has stopped and (for a
	 * statement in flight) the cleanup window is over. */
	int (*wait)(struct sg_io *io, int fd, int events, int64_t timeout_ms);
	/* Run due timers and signals without blocking (for in-process
	 * engines); returns SG_IO_CANCELED past the cleanup window, else 0. */
	int (*check)(struct sg_io *io);
	/* Sleep on the loop; returns 0 or SG_IO_CANCELED (at once on a stop). */
	int (*sleep)(struct sg_io *io, uint64_t ms);
	/* A statement is in flight on c (busy) or has finished: the loop
	 * cancels busy connections when it stops. */
	void (*busy)(struct sg_io *io, struct sg_conn *c, bool busy);
	/* Resolve host to one numeric address (text) off the loop's thread,
	 * so a hanging resolver neither blocks signals nor outlives the
	 * connect timeout. 0, SG_IO_CANCELED, or -1 with the reason in addr. */
	int (*resolve)(struct sg_io *io, const char *host, char *addr, size_t addrsz, int64_t timeout_ms);
	void *data;
};

static inline int sg_io_wait(struct sg_io *io, int fd, int events, int64_t timeout_ms)
{
	return io->wait(io, fd, events, timeout_ms);
}
static inline int sg_io_check(struct sg_io *io) { return io->check(io); }
static inline int sg_io_sleep(struct sg_io *io, uint64_t ms) { return io->sleep(io, ms); }
static inline int sg_io_resolve(struct sg_io *io, const char *host, char *addr, size_t n, int64_t timeout_ms)
{
	return io->resolve(io, host, addr, n, timeout_ms);
}
static inline void sg_io_busy(struct sg_io *io, struct sg_conn *c, bool busy)
{
	if (io && io->busy)
		io->busy(io, c, busy);
}

/* ---- capabilities ------------------------------------------------------ */

enum sg_driver_caps {
	/* DDL runs inside transactions: a migration and its history row
	 * commit together. Without it every script runs statement by
	 * statement with recorded progress. */
	SG_CAP_TRANSACTIONAL_DDL = 1u << 0,
	/* LISTEN/NOTIFY: waiters wake when the winner commits. */
	SG_CAP_NOTIFY = 1u << 2,
	/* sg_conn_socket() returns an fd the loop can poll; the server runs
	 * in another process, so a second connection (the lease's) can act
	 * while this one waits for a statement. */
	SG_CAP_POLLABLE = 1u << 4,
	/* try_lock() can wait in the server for the holder to let go
	 * (GET_LOCK with a timeout): waiters wake the moment it does. */
	SG_CAP_LOCK_WAIT = 1u << 5,
	/* Statement-by-statement scripts: consecutive statements that do not
	 * commit implicitly share one transaction with their progress record
	 * (MySQL, for speed); without it each runs in its own (PostgreSQL and
	 * SQLite no-transaction scripts keep their commit-per-statement
	 * meaning). */
	SG_CAP_GROUP_STATEMENTS = 1u << 6,
	/* A writing connection creates the database when it does not exist
	 * (SQLite's file): a writer connects only once the migration
	 * directory is known to be valid, since a bad one changes nothing. */
	SG_CAP_CONNECT_CREATES = 1u << 7,
};

/* How one statement of a statement-by-statement script may run. */
enum sg_stmt_kind {
	/* can run inside a transaction and does not end one: it commits
	 * atomically with its progress record, so it is never in doubt */
	SG_STMT_TRANSACTIONAL = 0,
	/* commits implicitly (MySQL DDL) or cannot run in a transaction
	 * (CREATE INDEX CONCURRENTLY, VACUUM): run alone, progress recorded
	 * before and after; a kill in between leaves it in doubt */
	SG_STMT_STANDALONE,
	/* the script's own BEGIN/COMMIT/ROLLBACK/SAVEPOINT */
	SG_STMT_TX_CONTROL,
};

/* ---- connections ------------------------------------------------------- */

struct sg_driver;

/* Every driver's connection struct starts with this. */
struct sg_conn {
	const struct sg_driver *driver;
	/* rows changed by the last statement that reported a count (INSERT,
	 * UPDATE, DELETE); -1 when unknown */
	long affected;
};

struct sg_conn_opts {
	const struct sg_url *url;
	const char *password;           /* --password-file; overrides the URL's */
	const char *application_name;   /* "schemagate/<instance>" */
	uint64_t attempt_timeout_ms;    /* one connection attempt */
	/* Transactions started with begin() give up on a row or table lock
	 * after this long (PostgreSQL SET LOCAL lock_timeout, InnoDB lock
	 * wait, SQLite busy wait); 0 = the engine's default. Migrations use
	 * --ddl-lock-timeout; the lease connection a third of the lease, so a
	 * blocked renewal is noticed. */
	uint64_t lock_wait_ms;
	/* In-process engines (SQLite): how long a statement waits for another
	 * process's write lock before failing TRANSIENT; 0 = 10 s. */
	uint64_t busy_wait_ms;
	struct sg_io *io;               /* borrowed for the connection's life */
	bool read_only;                 /* wait/verify/status: never create or write */
	/* A read-only reporting command (status, verify, --dry-run): a
	 * database file that does not exist (SQLite) reads as empty. */
	bool missing_is_empty;
	/* The history table. A driver may ask whether it exists together
	 * with server_info() and answer the table_exists() that comes right
	 * after from that (PostgreSQL: one round trip less on every start). */
	const char *history_table;
};

/* What the server is, as a writer must know it (SPEC section 5, "Writers
 * need a primary"; Galera). Filled by server_info() after connecting. */
struct sg_server_info {
	char where[160];       /* the host and port reached ("127.0.0.1:5442") */
	/* in recovery (a standby) or read-only (transaction_read_only,
	 * read_only, super_read_only): a writer takes no lock here and waits */
	bool read_only;
	char read_only_why[64];/* "standby (in recovery)", "read_only=ON", ... */
	/* Galera (@@wsrep_on): the cluster's size and this node's name;
	 * cluster_size 0 = not a cluster */
	int cluster_size;
	char node[64];
	/* the node's global wsrep_OSU_method when it is not TOI ("RSU"): the
	 * session runs TOI all the same (the driver sets it), so every node
	 * gets the DDL; the coordinator warns once */
	char osu_method[16];
};

/*
 * What a long statement on a session is doing, as the server tells it
 * (the progress probe, SPEC 8). Numbers the server does not report are
 * -1; strings it does not report are "".
 */
struct sg_progress {
	bool found;            /* the session is there and running a statement */
	double seconds;        /* how long the statement has run, server side; -1 */
	char command[80];      /* "CREATE INDEX CONCURRENTLY", "CLUSTER", "ALTER TABLE" */
	char phase[80];        /* "building index: scanning table", "copy to tmp table" */
	int stage, max_stage;  /* MariaDB: stage 1 of 2 */
	int64_t blocks_done, blocks_total, tuples_done, tuples_total;
	double percent;        /* 0-100 as the server counts it (the phase's or the whole's); -1 */
	char wait[96];         /* what it waits for: "Lock:relation", "Waiting for table metadata lock" */
	/* who it waits for: "pid 123 (application_name \"psql\", idle in
	 * transaction, transaction open 14s)"; a concurrent index build
	 * waiting for old snapshots names the transactions it waits for */
	char blockers[400];
	/* the server cannot name the holder (a MariaDB metadata lock without
	 * performance_schema): blockers are the sessions that may hold it */
	bool blockers_guessed;
};

/* Called per result row; values are text or NULL. Return non-zero to stop. */
typedef int (*sg_row_fn)(void *ctx, int ncols, const char *const *values);

struct sg_driver {
	const char *name;               /* "postgres" */
	enum sg_engine engine;
	unsigned caps;                  /* enum sg_driver_caps */
	/* Waiters without notifications re-read the history at least this
	 * often (cheap in-process reads); 0 = the poll interval. */
	uint32_t wake_poll_ms;

	/* Offline, before any connection: are the URL's parameters ones this
	 * driver knows? A typo is exit 2 at once, not after --connect-timeout
	 * of retries. Optional (NULL = anything goes). */
	int (*check_url)(const struct sg_url *url, struct sg_error *err);
	/* One attempt. Fails with err->kind TRANSIENT (retry: refused, DNS,
	 * starting up, too many connections) or PERMANENT (auth, unknown
	 * database, permission; exit 5). The coordinator does the retrying. */
	int (*connect)(const struct sg_conn_opts *opts, struct sg_conn **out, struct sg_error *err);
	void (*close)(struct sg_conn *c);
	/* What the server is: where we reached it, whether it takes writes,
	 * whether it is a cluster node. Read-only: every command may ask.
	 * Optional (NULL = a writable single server). */
	int (*server_info)(struct sg_conn *c, struct sg_server_info *out, struct sg_error *err);
	/* up --create-database. Does this connect error say that the URL's
	 * database does not exist? create_database() then creates it from a
	 * connection that does not need it (PostgreSQL's maintenance
	 * database, MySQL's none); *created is false when it exists already
	 * (another instance won the race), which is success too. Optional
	 * (NULL: the engine creates its database itself, as SQLite does). */
	bool (*unknown_database)(const struct sg_error *err);
	/* Does this connect error say the password was refused? (for the
	 * hint about a '#' in it). Optional. */
	bool (*auth_failed)(const struct sg_error *err);
	int (*create_database)(const struct sg_conn_opts *opts, bool *created, struct sg_error *err);
	/* What the statement in flight on work is doing (progress, what it
	 * waits for and who blocks it), asked on a short-lived connection of
	 * its own to the very server work reached, never on work (busy). The
	 * connection holds nothing (no transaction, no lock, a statement
	 * timeout of a second or two) and is closed before this returns;
	 * opts->io bounds every wait (a side io: it gives way to the
	 * statement). out->found is false when the session runs nothing.
	 * Optional (NULL: the engine has no such view, SQLite). */
	int (*progress)(struct sg_conn *work, const struct sg_conn_opts *opts, struct sg_progress *out,
			struct sg_error *err);
	/* Ask the server to stop the statement in flight on c. Never blocks
	 * (a detached thread or a flag); called by the loop when it stops.
	 * The statement then fails with kind CANCELED through the usual path. */
	void (*cancel)(struct sg_conn *c);

	/* Run a script of one or more statements; results discarded. */
	int (*exec)(struct sg_conn *c, const char *sql, struct sg_error *err);
	/* One statement with text parameters written $1..$n (NULL = SQL NULL).
	 * fn may be NULL: rows are discarded (INSERT/UPDATE/DELETE). */
	int (*query)(struct sg_conn *c, const char *sql, int nparams, const char *const *params,
		     sg_row_fn fn, void *ctx, struct sg_error *err);

	int (*begin)(struct sg_conn *c, struct sg_error *err);
	int (*commit)(struct sg_conn *c, struct sg_error *err);
	int (*rollback)(struct sg_conn *c, struct sg_error *err);   /* no-op outside a transaction */
	/* Is a transaction open on c? The last check before a history row is
	 * written inside a migration's transaction: a script that committed
	 * behind our back must not be recorded as atomic. */
	bool (*in_transaction)(struct sg_conn *c);

	/* The session lock (--lock=auto). key is the history table as
	 * configured; the driver derives its lock id from it (and the
	 * database). try_lock may wait in the server up to wait_ms for a
	 * holder to let go (GET_LOCK); 0 never waits. verify() fails with
	 * kind LOCK_LOST unless the session running the current transaction
	 * holds the lock; unlock() checks that the release took effect. */
	int (*try_lock)(struct sg_conn *c, const char *key, uint64_t wait_ms, bool *acquired, struct sg_error *err);
	int (*verify_lock)(struct sg_conn *c, const char *key, struct sg_error *err);
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

	/* The table name as the server resolves it ("t" -> "public.t"), so
	 * two spellings of one table share one lock. Caller frees *out. */
	int (*qualify)(struct sg_conn *c, const char *table, char **out, struct sg_error *err);
	int (*table_exists)(struct sg_conn *c, const char *table, bool *exists, struct sg_error *err);
	/* Does the history table's schema hold any table besides
	 * schemagate's? (for up --baseline-version). Optional (NULL = yes). */
	int (*has_user_tables)(struct sg_conn *c, const char *table, bool *any, struct sg_error *err);
	/* Which SQL the server speaks, where one engine serves several
	 * (MariaDB behind a mysql:// URL): decides the migration files.
	 * Optional (NULL = the engine's own dialect). */
	enum sg_dialect (*dialect)(struct sg_conn *c);
	/* Append the quoted (possibly schema-qualified) identifier to out. */
	void (*quote_ident)(const char *name, struct sg_buf *out);
	/* Statement-by-statement scripts (MySQL; no-transaction scripts). */
	enum sg_stmt_kind (*classify)(const char *sql);
	/* Re-running sql after an interruption failed with err: does the
	 * error prove that sql had taken effect ("already exists" after a
	 * CREATE, "does not exist" after a DROP)? A documented table per
	 * engine. Optional (NULL = never). */
	bool (*already_done)(const char *sql, const struct sg_error *err);
	/* Around a standalone statement: repair what an interrupted earlier
	 * run left (an invalid index of a CREATE INDEX CONCURRENTLY), and fail
	 * if the statement left damage. Optional (NULL). */
	int (*before_statement)(struct sg_conn *c, const char *sql, struct sg_error *err);
	int (*after_statement)(struct sg_conn *c, const char *sql, struct sg_error *err);
	/* Run n statements in as few round trips as the engine allows, each
	 * on its own as exec() would (MySQL multi-statements: one that does
	 * not open a transaction commits alone); *done = how many succeeded
	 * before the first error; affected (NULL, or n entries) gets each
	 * one's affected rows (-1 not run). Optional (NULL = one exec each). */
	int (*exec_batch)(struct sg_conn *c, const char *const *sql, size_t n, size_t *done, long *affected,
			  struct sg_error *err);
	/* A transactional migration in one round trip: begin()'s BEGIN and
	 * settings, parts[0] (the script), a check that the script left the
	 * transaction open, the other parts, and COMMIT, sent as one message.
	 * An error skips the rest and leaves the transaction open (aborted)
	 * for rollback(); a script that ended the transaction itself leaves
	 * in_transaction() false. *script_done says whether the script ran to
	 * its end (an error then came from a later part). Optional (NULL:
	 * begin(), one exec each, commit()); needs quote_literal,
	 * verify_lock_sql and batch_elapsed_ms_sql. */
	int (*exec_transaction)(struct sg_conn *c, const char *const *parts, size_t n, bool *script_done,
				struct sg_error *err);
	/* Append value as a string literal; -1 when it cannot be (encoding). */
	int (*quote_literal)(struct sg_conn *c, const char *value, struct sg_buf *out);
	/* verify_lock as one statement for exec_transaction or exec_batch:
	 * it fails, with verify_lock's error, unless this session holds the
	 * lock. 1 when this server cannot (MySQL: no compound statements
	 * outside stored programs); the caller runs verify_lock. */
	int (*verify_lock_sql)(struct sg_conn *c, const char *key, struct sg_buf *out, struct sg_error *err);

	/* Dialect for the state tables: printf formats whose single %s is the
	 * quoted table name; now_sql is the database clock as text. */
	const char *history_ddl;
	const char *events_ddl;
	/* The rights a writing command needs on the history ($1) and events
	 * ($2) tables, both quoted: one row (object, "PRIV, PRIV") per object
	 * with rights this user lacks. A migration's bookkeeping may share its
	 * transaction's one message (exec_transaction), where a refusal
	 * would look like the script's own failure: checked before any
	 * migration runs. Optional (NULL: the first write says). */
	const char *history_rights_sql;
	const char *now_sql;
	/* The history row's applied_at as text in one format on every
	 * engine: RFC 3339, UTC, milliseconds ("2026-12-01T00:34:23.553Z"). */
	const char *applied_at_sql;
	/* The database clock in epoch milliseconds, as a BIGINT expression
	 * (the lease lock compares expiry times on the database's clock). */
	const char *now_ms_sql;
	/* exec_transaction: milliseconds since its message arrived, as a
	 * BIGINT expression (how long the script ran, on the server); in an
	 * exec_batch, since its verify_lock_sql statement ran. */
	const char *batch_elapsed_ms_sql;
};

extern const struct sg_driver sg_driver_postgres;
extern const struct sg_driver sg_driver_mysql;
extern const struct sg_driver sg_driver_sqlite;

const struct sg_driver *sg_driver_for(enum sg_engine engine);

/* ---- wrappers the coordinator calls ------------------------------------ */

static inline bool sg_conn_can(const struct sg_conn *c, unsigned cap) { return (c->driver->caps & cap) != 0; }
static inline void sg_conn_close(struct sg_conn *c) { if (c) c->driver->close(c); }
static inline void sg_conn_cancel(struct sg_conn *c) { if (c && c->driver->cancel) c->driver->cancel(c); }
static inline int sg_conn_exec(struct sg_conn *c, const char *sql, struct sg_error *err) { return c->driver->exec(c, sql, err); }
static inline int sg_conn_quote_literal(struct sg_conn *c, const char *v, struct sg_buf *out) { return c->driver->quote_literal ? c->driver->quote_literal(c, v, out) : -1; }
static inline int sg_conn_query(struct sg_conn *c, const char *sql, int n, const char *const *p,
				sg_row_fn fn, void *ctx, struct sg_error *err)
{
	return c->driver->query(c, sql, n, p, fn, ctx, err);
}
static inline int sg_conn_begin(struct sg_conn *c, struct sg_error *err) { return c->driver->begin(c, err); }
static inline int sg_conn_commit(struct sg_conn *c, struct sg_error *err) { return c->driver->commit(c, err); }
static inline int sg_conn_rollback(struct sg_conn *c, struct sg_error *err) { return c->driver->rollback(c, err); }
static inline bool sg_conn_in_transaction(struct sg_conn *c) { return c->driver->in_transaction(c); }

#endif
